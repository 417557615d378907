//! SIP: the wire format, SDP, transactions and dialogs. Pure state machines; only
//! `transport.rs` touches sockets.

pub mod sdp;
pub mod transaction;
pub mod wire;

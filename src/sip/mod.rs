//! SIP: the wire format, SDP, transactions and dialogs. Pure state machines; only
//! `transport.rs` touches sockets.

pub mod dial;
pub mod dialog;
pub mod digest;
pub mod gate;
pub mod identity;
pub mod link;
pub mod locate;
pub mod qualify;
pub mod registrar;
pub mod replaces;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod wire;

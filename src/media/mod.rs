//! Media: G.711 codecs, RTP packets, DTMF detection.

pub mod dtmf;
pub mod g711;
pub mod player;
pub mod recorder;
pub mod rtp;

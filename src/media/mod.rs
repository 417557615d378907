//! Media: G.711 codecs, RTP packets, DTMF detection, prompt playback, recording, bridging.

pub mod bridge;
pub mod dtmf;
pub mod g711;
pub mod latch;
pub mod leg;
pub mod player;
pub mod recorder;
pub mod recording_control;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stereo;

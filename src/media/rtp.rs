//! RTP packets.

//! RTP packets (RFC 3550) on rtp-rs: parsing what arrives and building what we send, into
//! caller-provided buffers so the pacing loop allocates nothing per packet.

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// The largest RTP packet accepted or built: a UDP datagram on a plain Ethernet path.
pub const MAX_PACKET: usize = 1500;
/// 20 ms of 8 kHz audio: the samples (and G.711 bytes) in one packet.
pub const SAMPLES_PER_PACKET: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Parses an RTP packet; `None` for anything that is not one (including RTCP, which shares
/// the port under rtcp-mux and uses payload types 72-76 in this position).
pub fn parse(buf: &[u8]) -> Option<Packet<'_>> {
    if buf.len() > MAX_PACKET {
        return None;
    }
    let r = RtpReader::new(buf).ok()?;
    let pt = r.payload_type();
    if (72..=76).contains(&pt) {
        return None;
    }
    Some(Packet {
        payload_type: pt,
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        marker: r.mark(),
        payload: r.payload(),
    })
}

/// One outgoing RTP stream: its SSRC, sequence and timestamp.
#[derive(Debug, Clone)]
pub struct Stream {
    pub ssrc: u32,
    pub payload_type: u8,
    sequence: u16,
    timestamp: u32,
    /// The next packet starts a talk spurt (RFC 3551: marker on the first packet).
    marker: bool,
    /// Packets and payload bytes built so far, as a sender report counts them (wrapping).
    packets: u32,
    octets: u32,
}

impl Stream {
    /// A stream starting at the given (random, RFC 3550 §5.1) sequence and timestamp.
    pub fn new(ssrc: u32, payload_type: u8, sequence: u16, timestamp: u32) -> Stream {
        Stream {
            ssrc,
            payload_type,
            sequence,
            timestamp,
            marker: true,
            packets: 0,
            octets: 0,
        }
    }

    /// Builds the next packet of `samples` samples into `out`; returns its length.
    pub fn next_into(&mut self, payload: &[u8], samples: u32, out: &mut [u8]) -> Option<usize> {
        self.build(self.payload_type, payload, samples, self.marker, out)
    }

    /// Builds a packet with another payload type (telephone-event) on the same clock.
    pub fn event_into(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        marker: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let ts = self.timestamp;
        let n = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(ts)
            .marked(marker)
            .payload(payload)
            .build_into(out)
            .ok()?;
        self.sequence = self.sequence.wrapping_add(1);
        self.count(payload.len());
        Some(n)
    }

    fn count(&mut self, payload: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload as u32);
    }

    /// Packets and payload bytes sent, for RTCP (RFC 3550 §6.4.1; they wrap).
    pub fn sent(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    fn build(
        &mut self,
        pt: u8,
        payload: &[u8],
        samples: u32,
        marker: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let n = RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(self.timestamp)
            .marked(marker)
            .payload(payload)
            .build_into(out)
            .ok()?;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker = false;
        self.count(payload.len());
        Some(n)
    }

    /// Skips `samples` of silence that were not sent (the clock runs on).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker = true;
    }

    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_parse_back_with_advancing_sequence_and_clock() {
        let mut s = Stream::new(0xdead_beef, 0, 65535, 4_294_967_200);
        let mut buf = [0u8; MAX_PACKET];
        let payload = [0xFFu8; SAMPLES_PER_PACKET];
        let n = s.next_into(&payload, 160, &mut buf).unwrap();
        assert_eq!(n, 12 + 160);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker),
            (0, 65535, 4_294_967_200, 0xdead_beef, true)
        );
        assert_eq!(p.payload, &payload[..]);
        assert_eq!(s.sent(), (1, 160), "what a sender report counts");
        let n = s.next_into(&payload, 160, &mut buf).unwrap();
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(
            (p.sequence, p.timestamp, p.marker),
            (0, 4_294_967_200u32.wrapping_add(160), false),
            "both wrap"
        );
    }

    #[test]
    fn garbage_rtcp_and_oversized_datagrams_are_not_rtp() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80]).is_none());
        assert!(parse(&[0x00; 12]).is_none(), "version 0");
        let rtcp_sr = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(parse(&rtcp_sr).is_none());
        assert!(parse(&[0x80; 2000]).is_none());
        // A CSRC count pointing past the end.
        assert!(parse(&[0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_none());
    }
}

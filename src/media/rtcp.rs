//! Call quality (RFC 3550): what arrives on a leg — how many packets, how many lost, how
//! irregularly they came (interarrival jitter, §6.4.1 and A.8) — and RTCP, by which the far
//! end tells us the same of what we send and we tell it of what it sends; with our sender
//! report's time echoed back, the round trip (§6.4.1, LSR/DLSR). Pure: the media loop feeds
//! it packets and the time, and sends the reports it builds.
//!
//! Hand-written rather than a crate: the receiver and sender reports and a CNAME are all a
//! phone line needs, and the RTCP crates come with a WebRTC stack.

/// 8 kHz: the RTP clock of G.711, in which jitter is counted.
const CLOCK: f64 = 8000.0;
/// A sequence jump larger than this is a new start (§A.1's MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;
/// The most RTCP packets read from one datagram, and report blocks kept from it.
const MAX_PACKETS: usize = 8;

/// What arrived on a leg from its far end's stream (RFC 3550 A.1, A.3, A.8), counted in
/// segments: a new source, or packets the media loop chose not to see for a while (see
/// `skip_gap`), start a new one without counting what came between as lost.
#[derive(Debug, Clone, Default)]
pub struct Reception {
    /// Packets expected in the finished segments (`received` counts them all).
    done_expected: u64,
    /// The next packet starts a new segment.
    gap: bool,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    /// For the fraction lost since the last report.
    expected_prior: u64,
    received_prior: u64,
    /// In RTP timestamp units, scaled as §A.8 does (×16).
    jitter: u64,
    last_transit: Option<i64>,
}

impl Reception {
    /// A packet from the far end: its SSRC, sequence number and timestamp, when it arrived
    /// in the RTP clock's units (samples at 8 kHz from any fixed origin), and whether it is
    /// audio (a key's event packets share the sequence but not the clock: no jitter).
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: u64, audio: bool) {
        if self.ssrc != Some(ssrc) || self.gap {
            // A new source (the first, or the far end restarted), or after a gap: a new
            // segment from here.
            let (expected, received) = (self.expected(), self.received);
            *self = Reception {
                done_expected: expected,
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                jitter: self.jitter,
                ..Reception::default()
            };
            self.expected_prior = expected;
            self.received_prior = received;
            self.received = received + 1;
            self.last_transit = audio.then_some(arrival as i64 - i64::from(timestamp));
            return;
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta != 0 && delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
        } else if delta != 0 && delta <= u16::MAX - 100 {
            // A big jump: the far end's sequence restarted without a new SSRC.
            self.gap = true;
            return self.on_packet(ssrc, seq, timestamp, arrival, audio);
        }
        // Else a duplicate or a late one: counted as received (§A.3 does the same).
        self.received += 1;
        if !audio {
            return;
        }
        let transit = arrival as i64 - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps wrap: the difference is taken in 32 bits.
            let d = (transit - last) as i32;
            let d = i64::from(d.unsigned_abs());
            let j = self.jitter as i64;
            self.jitter = (j + d - ((j + 8) >> 4)).max(0) as u64;
        }
        self.last_transit = Some(transit);
    }

    /// The far end's packets will not be seen for a while (nobody listens to them and the
    /// kernel drops them): what is missing before the next one is not a loss.
    pub fn skip_gap(&mut self) {
        self.gap = true;
    }

    /// The far end's SSRC, once something arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    fn extended_max(&self) -> u64 {
        u64::from(self.cycles) * 65536 + u64::from(self.max_seq)
    }

    /// Packets expected: in each segment, from its first sequence number to its highest.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        self.done_expected + (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets lost (never negative: duplicates do not make up for losses here).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// The interarrival jitter, in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        (self.jitter >> 4) as f64 / CLOCK * 1000.0
    }

    /// A report block about this stream (§6.4.1), counting the fraction lost since the last
    /// one; `lsr`/`dlsr` from the far end's last sender report, if any.
    pub fn report(&mut self, lsr: u32, dlsr: u32) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let interval_expected = expected.saturating_sub(self.expected_prior);
        let interval_received = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let interval_lost = interval_expected.saturating_sub(interval_received);
        let fraction = (interval_lost << 8)
            .checked_div(interval_expected)
            .map_or(0, |f| f.min(255) as u8);
        Some(ReportBlock {
            ssrc,
            fraction_lost: fraction,
            cumulative_lost: self.lost().min(0x7F_FFFF) as u32,
            highest_seq: self.extended_max() as u32,
            jitter: (self.jitter >> 4) as u32,
            lsr,
            dlsr,
        })
    }
}

/// One report block: what a receiver says of one stream (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Lost since the previous report, in 256ths.
    pub fraction_lost: u8,
    /// Lost since the start (24 bits; we never write a negative count).
    pub cumulative_lost: u32,
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last sender report received, and the delay
    /// since, in 1/65536 s.
    pub lsr: u32,
    pub dlsr: u32,
}

impl ReportBlock {
    pub fn jitter_ms(&self) -> f64 {
        f64::from(self.jitter) / CLOCK * 1000.0
    }

    pub fn fraction_lost(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }

    /// The round trip it shows, in milliseconds, given when it arrived (`now`, the middle
    /// 32 bits of our NTP clock): `None` when the far end had no sender report of ours yet.
    pub fn round_trip_ms(&self, now: u32) -> Option<f64> {
        if self.lsr == 0 {
            return None;
        }
        let rtt = now.wrapping_sub(self.lsr).wrapping_sub(self.dlsr);
        // Beyond a minute is a clock mix-up, not a round trip.
        (rtt < 60 << 16).then(|| f64::from(rtt) * 1000.0 / 65536.0)
    }
}

/// What one RTCP datagram told: the sender report's NTP time (middle 32 bits) and who sent
/// it, and the report blocks about the streams it receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub sender: Option<(u32, u32)>,
    pub blocks: Vec<ReportBlock>,
}

/// Reads a compound RTCP datagram (SR, RR; SDES, BYE and the rest are skipped); `None` when
/// it is not RTCP at all. Bounded: at most `MAX_PACKETS` packets and their blocks.
pub fn parse(buf: &[u8]) -> Option<Received> {
    let mut out = Received::default();
    let mut at = 0;
    let mut packets = 0;
    while at + 4 <= buf.len() && packets < MAX_PACKETS {
        let head = &buf[at..];
        if head[0] >> 6 != 2 {
            return None;
        }
        let count = usize::from(head[0] & 0x1F);
        let kind = head[1];
        let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
        if len > head.len() {
            return None;
        }
        let body = &head[4..len];
        let blocks_at = match kind {
            200 if body.len() >= 24 => {
                let ssrc = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let ntp_mid = u32::from_be_bytes([body[6], body[7], body[8], body[9]]);
                out.sender = Some((ssrc, ntp_mid));
                Some(24)
            }
            201 if body.len() >= 4 => Some(4),
            200 | 201 => return None,
            192..=199 | 202..=223 => None,
            _ if packets == 0 => return None,
            _ => None,
        };
        if let Some(from) = blocks_at {
            for b in body[from..].chunks_exact(24).take(count) {
                let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                out.blocks.push(ReportBlock {
                    ssrc: word(0),
                    fraction_lost: b[4],
                    cumulative_lost: u32::from_be_bytes([0, b[5], b[6], b[7]]),
                    highest_seq: word(8),
                    jitter: word(12),
                    lsr: word(16),
                    dlsr: word(20),
                });
            }
        }
        at += len;
        packets += 1;
    }
    (packets > 0).then_some(out)
}

/// Our report (§6.4): a sender report — we always send — with a block about what we receive
/// when anything arrived, then our CNAME (§6.5.1), as one compound datagram.
pub struct SenderReport<'a> {
    pub ssrc: u32,
    /// Our NTP time (64 bits) and the RTP timestamp of the same instant.
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    pub octets: u32,
    pub block: Option<ReportBlock>,
    pub cname: &'a str,
}

impl SenderReport<'_> {
    pub fn build(&self) -> Vec<u8> {
        let blocks = usize::from(self.block.is_some());
        let mut out = Vec::with_capacity(28 + 24 * blocks + 8 + self.cname.len() + 4);
        out.push(0x80 | blocks as u8);
        out.push(200);
        out.extend_from_slice(&((6 + 6 * blocks) as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.octets.to_be_bytes());
        if let Some(b) = &self.block {
            out.extend_from_slice(&b.ssrc.to_be_bytes());
            out.push(b.fraction_lost);
            out.extend_from_slice(&b.cumulative_lost.min(0xFF_FFFF).to_be_bytes()[1..]);
            out.extend_from_slice(&b.highest_seq.to_be_bytes());
            out.extend_from_slice(&b.jitter.to_be_bytes());
            out.extend_from_slice(&b.lsr.to_be_bytes());
            out.extend_from_slice(&b.dlsr.to_be_bytes());
        }
        // SDES: one chunk, our SSRC and CNAME, ended by a null item and padded to 32 bits.
        let cname = &self.cname.as_bytes()[..self.cname.len().min(255)];
        let chunk = 4 + 2 + cname.len() + 1;
        let padded = chunk.div_ceil(4) * 4;
        out.push(0x81);
        out.push(202);
        out.extend_from_slice(&(padded as u16 / 4).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(1);
        out.push(cname.len() as u8);
        out.extend_from_slice(cname);
        out.resize(out.len() + padded - chunk + 1, 0);
        out
    }
}

/// The middle 32 bits of a 64-bit NTP time, as LSR carries it.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A 64-bit NTP time for `micros` microseconds since any fixed origin (only our own reports'
/// times come back to us, so the origin does not matter).
pub fn ntp_from_micros(micros: u64) -> u64 {
    let secs = micros / 1_000_000;
    let frac = ((micros % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms packets (160 samples), arriving `late` samples after their time.
    fn feed(r: &mut Reception, seqs: impl IntoIterator<Item = u16>, late: impl Fn(u16) -> u64) {
        for s in seqs {
            let ts = u32::from(s).wrapping_mul(160);
            r.on_packet(7, s, ts, u64::from(s) * 160 + 10_000 + late(s), true);
        }
    }

    #[test]
    fn losses_are_counted_across_the_sequence_wrap_and_steady_packets_have_no_jitter() {
        let mut r = Reception::default();
        // 65530 … 65535, 0 … 9 without 3 and 4: 16 expected, 14 received.
        feed(
            &mut r,
            (65530..=65535).chain((0..10).filter(|s| *s != 3 && *s != 4)),
            |_| 0,
        );
        assert_eq!((r.expected(), r.received(), r.lost()), (16, 14, 2));
        assert_eq!(r.jitter_ms(), 0.0);
        let b = r.report(0, 0).unwrap();
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 16) as u8);
        assert_eq!(b.highest_seq, 65536 + 9);
        // Nothing new since: nothing lost in this interval.
        assert_eq!(r.report(0, 0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn jitter_follows_the_arrival_spread_as_rfc_3550_computes_it() {
        let mut r = Reception::default();
        // Every other packet 40 samples (5 ms) late: each transit difference is 40.
        feed(&mut r, 0..2000, |s| if s % 2 == 1 { 40 } else { 0 });
        // J converges to the mean |D| = 40 samples = 5 ms.
        assert!((r.jitter_ms() - 5.0).abs() < 0.2, "{}", r.jitter_ms());
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn a_new_source_or_a_skipped_stretch_is_a_new_segment_not_a_loss() {
        let mut r = Reception::default();
        feed(&mut r, 0..50, |_| 0);
        r.on_packet(8, 1000, 0, 0, true);
        assert_eq!((r.received(), r.expected(), r.ssrc()), (51, 51, Some(8)));
        // The loop stops looking (the kernel drops what nobody hears) from 1000 to 1500.
        r.skip_gap();
        for s in 1500..1510u16 {
            r.on_packet(8, s, u32::from(s) * 160, u64::from(s) * 160, true);
        }
        // One lost afterwards still counts.
        r.on_packet(8, 1511, 1511 * 160, 1511 * 160, true);
        assert_eq!((r.received(), r.expected(), r.lost()), (62, 63, 1));
        // A key's event packets count in the sequence, not in the jitter.
        r.on_packet(8, 1512, 5, 1512 * 160 + 4000, false);
        assert_eq!((r.received(), r.lost()), (63, 1));
        assert_eq!(r.jitter_ms(), 0.0);
    }

    #[test]
    fn our_sender_report_reads_back_and_the_round_trip_comes_from_lsr_and_dlsr() {
        let mut r = Reception::default();
        feed(&mut r, 0..100, |_| 0);
        let sent_at = ntp_from_micros(5_000_000);
        let block = r.report(0x1234_0000, 0x0001_0000);
        let sr = SenderReport {
            ssrc: 99,
            ntp: sent_at,
            rtp_timestamp: 1600,
            packets: 100,
            octets: 16000,
            block,
            cname: "hotline",
        }
        .build();
        assert_eq!(sr.len() % 4, 0);
        let got = parse(&sr).unwrap();
        assert_eq!(got.sender, Some((99, ntp_middle(sent_at))));
        assert_eq!(got.blocks, vec![block.unwrap()]);
        // The far end echoes our SR's time and held it 1 s; it arrives 1.25 s after we sent:
        // 250 ms round trip.
        let echo = ReportBlock {
            lsr: ntp_middle(sent_at),
            dlsr: 1 << 16,
            ..block.unwrap()
        };
        let now = ntp_middle(ntp_from_micros(6_250_000));
        let rtt = echo.round_trip_ms(now).unwrap();
        assert!((rtt - 250.0).abs() < 0.1, "{rtt}");
        assert_eq!(ReportBlock { lsr: 0, ..echo }.round_trip_ms(now), None);
    }

    #[test]
    fn what_is_not_rtcp_or_lies_about_its_length_is_refused() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x80, 0, 0, 0]), None, "RTP, not RTCP");
        // An RR saying it is 100 words long in 8 bytes.
        assert_eq!(parse(&[0x81, 201, 0, 100, 0, 0, 0, 1]), None);
        // An RR claiming 31 blocks with none: read as what is there.
        let rr = [0x9F, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(parse(&rr).unwrap().blocks, vec![]);
        // Random bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let n = (x % 64) as usize;
            let buf: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&buf);
        }
    }
}

//! Voicemail recording: the caller's RTP payloads back into 8 kHz 16-bit samples. Packets are
//! put in sequence order through a small reorder window, so a late packet lands where it
//! belongs; a lost one becomes 20 ms of silence, so the message keeps its timing.

use std::collections::BTreeMap;

use super::g711::Law;
use super::rtp::SAMPLES_PER_PACKET;

/// Packets held back for late arrivals: 8 × 20 ms.
const WINDOW: usize = 8;
/// A jump this large in sequence numbers is a new stream, not loss.
const MAX_GAP: u64 = 50;

#[derive(Debug)]
pub struct Recorder {
    samples: Vec<i16>,
    max_samples: usize,
    /// Extended sequence number → decoded frame.
    pending: BTreeMap<u64, Vec<i16>>,
    /// The next sequence number to write, once the first packet is known.
    next: Option<u64>,
    /// The last 16-bit sequence number seen and its extended value.
    last: Option<(u16, u64)>,
}

impl Recorder {
    pub fn new(max_seconds: u32) -> Recorder {
        Recorder {
            samples: Vec::new(),
            max_samples: max_seconds as usize * 8000,
            pending: BTreeMap::new(),
            next: None,
            last: None,
        }
    }

    /// Extends a 16-bit sequence number across wraps, near the last one seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => 1 << 16 | seq as u64,
            Some((prev, prev_ext)) => {
                let delta = seq.wrapping_sub(prev) as i16 as i64;
                (prev_ext as i64 + delta).max(0) as u64
            }
        };
        if self.last.is_none_or(|(_, e)| ext > e) {
            self.last = Some((seq, ext));
        }
        ext
    }

    /// One audio packet from the caller.
    pub fn push(&mut self, sequence: u16, law: Law, payload: &[u8]) {
        if self.is_full() {
            return;
        }
        let ext = self.extend(sequence);
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            return; // too late: its place is already written
        }
        if ext == next {
            // In order, the common case: straight into the recording, nothing held. The packets
            // held behind a gap it closes follow it.
            let take = payload.len().min(self.room());
            self.samples
                .extend(payload[..take].iter().map(|&b| law.decode(b)));
            self.next = Some(ext + 1);
            while self
                .pending
                .first_key_value()
                .is_some_and(|(&seq, _)| Some(seq) == self.next)
            {
                self.flush_one();
            }
            return;
        }
        let frame = payload.iter().map(|&b| law.decode(b)).collect();
        self.pending.insert(ext, frame);
        while self.pending.len() > WINDOW {
            self.flush_one();
        }
    }

    /// Writes the oldest held packet, with silence for the ones missing before it.
    fn flush_one(&mut self) {
        let Some((seq, frame)) = self.pending.pop_first() else {
            return;
        };
        let next = self.next.unwrap_or(seq);
        let missing = seq.saturating_sub(next);
        if missing > 0 && missing <= MAX_GAP {
            let silence = missing as usize * SAMPLES_PER_PACKET;
            self.samples
                .extend(std::iter::repeat_n(0, silence.min(self.room())));
        }
        let take = frame.len().min(self.room());
        self.samples.extend_from_slice(&frame[..take]);
        self.next = Some(seq + 1);
    }

    fn room(&self) -> usize {
        self.max_samples.saturating_sub(self.samples.len())
    }

    pub fn is_full(&self) -> bool {
        self.samples.len() >= self.max_samples
    }

    /// Everything recorded, the held packets included.
    pub fn finish(mut self) -> Vec<i16> {
        while !self.pending.is_empty() {
            self.flush_one();
        }
        self.samples
    }
}

/// A whole 8 kHz mono 16-bit WAV file in memory (a recording is bounded by `max_s`).
pub fn wav_bytes(samples: &[i16]) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut w = hound::WavWriter::new(&mut out, spec)?;
    // hound's 16-bit writer: the samples go into one buffer, not through a write call each
    // (this runs on the call tasks' thread, for every message left).
    let len = u32::try_from(samples.len()).map_err(|_| hound::Error::TooWide)?;
    let mut block = w.get_i16_writer(len);
    for &s in samples {
        block.write_sample(s);
    }
    block.flush()?;
    w.finalize()?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> Vec<u8> {
        vec![Law::Pcmu.encode(value); SAMPLES_PER_PACKET]
    }

    #[test]
    fn late_packets_land_in_order_and_lost_ones_are_silence() {
        let mut r = Recorder::new(10);
        r.push(65534, Law::Pcmu, &frame(1000));
        r.push(0, Law::Pcmu, &frame(3000)); // arrives before 65535, across the wrap
        r.push(65535, Law::Pcmu, &frame(2000));
        r.push(2, Law::Pcmu, &frame(5000)); // 1 is lost
        let s = r.finish();
        assert_eq!(s.len(), 5 * SAMPLES_PER_PACKET);
        let at = |i: usize| s[i * SAMPLES_PER_PACKET];
        assert!(at(0) > 900 && at(1) > 1900 && at(2) > 2900);
        assert_eq!(at(3), 0, "the lost packet is silence");
        assert!(at(4) > 4900);
    }

    #[test]
    fn a_packet_older_than_the_window_is_dropped_and_the_length_is_capped() {
        let mut r = Recorder::new(1);
        for seq in 10..30u16 {
            r.push(seq, Law::Pcma, &frame(100));
        }
        r.push(11, Law::Pcma, &frame(100)); // long written
        for seq in 30..100u16 {
            r.push(seq, Law::Pcma, &frame(100));
        }
        assert!(r.is_full());
        assert_eq!(r.finish().len(), 8000);
    }

    #[test]
    fn the_wav_is_8khz_mono_16_bit() {
        let samples: Vec<i16> = (0..20_000).map(|i| (i * 7 - 60_000) as i16).collect();
        let bytes = wav_bytes(&samples).unwrap();
        assert_eq!(bytes.len(), 44 + 40_000);
        let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        assert_eq!(r.spec().channels, 1);
        assert_eq!(r.spec().bits_per_sample, 16);
        let back: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(back, samples, "every sample, in order");
    }
}

//! A recorded call's two sides lined up: what the caller says (left) and what the agent
//! says (right), 20 ms at a time, as the bridge relays them. A side that sends nothing for a
//! while (a muted phone, lost packets) is filled with silence so the two stay together;
//! while paused (a card number being read out) both sides are written as silence, so the
//! file keeps the call's length. Pure: the media loop feeds it, a writer thread writes it.

use std::collections::VecDeque;

use super::rtp::SAMPLES_PER_PACKET;

/// One side may run this far ahead (100 ms) before the other is taken as silent.
const LAG: usize = SAMPLES_PER_PACKET * 5;
/// Neither side keeps more than this (2 s) waiting: the oldest goes first.
const MAX_WAITING: usize = 8000 * 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Agent,
}

#[derive(Debug)]
pub struct Stereo {
    caller: VecDeque<i16>,
    agent: VecDeque<i16>,
    paused: bool,
    /// Mixed into one channel instead of two.
    mono: bool,
    /// Samples per channel written while paused, for the record.
    paused_samples: u64,
}

impl Stereo {
    pub fn new(mono: bool) -> Stereo {
        Stereo {
            caller: VecDeque::new(),
            agent: VecDeque::new(),
            paused: false,
            mono,
            paused_samples: 0,
        }
    }

    pub fn channels(&self) -> u16 {
        if self.mono { 1 } else { 2 }
    }

    /// What one side said (linear samples, 8 kHz).
    pub fn push(&mut self, side: Side, samples: &[i16]) {
        let queue = match side {
            Side::Caller => &mut self.caller,
            Side::Agent => &mut self.agent,
        };
        if self.paused {
            queue.extend(std::iter::repeat_n(0, samples.len()));
        } else {
            queue.extend(samples.iter().copied());
        }
        let excess = queue.len().saturating_sub(MAX_WAITING);
        queue.drain(..excess);
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Seconds written as silence because the recording was paused.
    pub fn paused_seconds(&self) -> f64 {
        self.paused_samples as f64 / 8000.0
    }

    /// Appends every whole 20 ms ready to `out`: interleaved caller, agent (or their mix).
    /// Returns how many samples per channel it added.
    pub fn take(&mut self, out: &mut Vec<i16>) -> usize {
        let (short, long) = if self.caller.len() < self.agent.len() {
            (&mut self.caller, self.agent.len())
        } else {
            (&mut self.agent, self.caller.len())
        };
        if long - short.len() > LAG {
            short.extend(std::iter::repeat_n(0, long - short.len()));
        }
        let ready = self.caller.len().min(self.agent.len());
        let n = ready - ready % SAMPLES_PER_PACKET;
        for (c, a) in self.caller.drain(..n).zip(self.agent.drain(..n)) {
            if self.mono {
                out.push(((i32::from(c) + i32::from(a)) / 2) as i16);
            } else {
                out.extend([c, a]);
            }
        }
        if self.paused {
            self.paused_samples += n as u64;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_come_out_together_caller_left_agent_right() {
        let mut s = Stereo::new(false);
        let mut out = Vec::new();
        s.push(Side::Caller, &[1; 160]);
        assert_eq!(s.take(&mut out), 0, "the agent has said nothing yet");
        s.push(Side::Agent, &[2; 200]);
        assert_eq!(s.take(&mut out), 160);
        assert_eq!(&out[..4], &[1, 2, 1, 2]);
        assert_eq!(out.len(), 320);
    }

    #[test]
    fn a_silent_side_is_filled_with_silence_once_the_other_is_well_ahead() {
        let mut s = Stereo::new(false);
        let mut out = Vec::new();
        for _ in 0..5 {
            s.push(Side::Caller, &[7; 160]);
        }
        assert_eq!(
            s.take(&mut out),
            0,
            "within the lag: the agent's may still come"
        );
        s.push(Side::Caller, &[7; 160]);
        assert_eq!(s.take(&mut out), 960);
        assert!(out.chunks(2).all(|f| f == [7, 0]));
    }

    #[test]
    fn paused_both_sides_are_silence_and_counted_and_mono_mixes() {
        let mut s = Stereo::new(true);
        let mut out = Vec::new();
        s.set_paused(true);
        s.push(Side::Caller, &[100; 160]);
        s.push(Side::Agent, &[300; 160]);
        s.take(&mut out);
        assert!(out.iter().all(|&x| x == 0));
        assert_eq!(s.paused_seconds(), 0.02);
        s.set_paused(false);
        out.clear();
        s.push(Side::Caller, &[100; 160]);
        s.push(Side::Agent, &[300; 160]);
        assert_eq!(s.take(&mut out), 160);
        assert_eq!(out, vec![200; 160], "one channel, both voices");
    }

    #[test]
    fn a_side_nobody_drains_stays_bounded() {
        let mut s = Stereo::new(false);
        for _ in 0..1000 {
            s.push(Side::Caller, &[1; 160]);
        }
        assert!(s.caller.len() <= MAX_WAITING);
    }
}

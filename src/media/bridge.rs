//! Two bridged legs (a caller and an agent) hear each other: what one leg's far end says is
//! decoded to linear samples, handed to the other leg, and re-encoded there in that leg's
//! own law, 20 ms at a time, so a PCMU caller and a PCMA agent talk to each other. The media
//! loop does the IO; this is only the buffering, bounded on both sides.

use std::collections::VecDeque;

use super::g711::Law;
use super::rtp::SAMPLES_PER_PACKET;

/// Audio waiting to be relayed is capped at this much (160 ms): a late burst is trimmed
/// rather than delaying the conversation.
pub const MAX_RELAY: usize = SAMPLES_PER_PACKET * 8;

/// One leg's side of a bridge. Its buffers keep their capacity: no allocation per tick.
#[derive(Debug)]
pub struct BridgeSide {
    /// What this leg's far end said since the last relay, for the peer.
    heard: Vec<i16>,
    /// What the peer said, waiting to be sent to this leg.
    inbox: VecDeque<i16>,
    frame: [u8; SAMPLES_PER_PACKET],
}

impl Default for BridgeSide {
    fn default() -> Self {
        BridgeSide {
            heard: Vec::new(),
            inbox: VecDeque::new(),
            frame: [0; SAMPLES_PER_PACKET],
        }
    }
}

impl BridgeSide {
    /// An audio payload from this leg's far end, in `law`. Beyond `MAX_RELAY` samples not yet
    /// relayed, the rest is dropped.
    pub fn hear(&mut self, law: Law, payload: &[u8]) {
        let room = MAX_RELAY.saturating_sub(self.heard.len());
        self.heard
            .extend(payload.iter().take(room).map(|&b| law.decode(b)));
    }

    /// Whether something heard waits to be relayed.
    pub fn has_heard(&self) -> bool {
        !self.heard.is_empty()
    }

    /// Takes what was heard, to hand to the peer with `receive`; give the buffer back with
    /// `give_back` so it keeps its capacity.
    pub fn take_heard(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.heard)
    }

    pub fn give_back(&mut self, mut heard: Vec<i16>) {
        heard.clear();
        self.heard = heard;
    }

    /// What the peer heard, queued to be sent to this leg; the oldest beyond `MAX_RELAY` goes.
    pub fn receive(&mut self, heard: &mut Vec<i16>) {
        self.inbox.extend(heard.drain(..));
        let excess = self.inbox.len().saturating_sub(MAX_RELAY);
        self.inbox.drain(..excess);
    }

    /// The next 20 ms for this leg, encoded in its `law`, once the peer has said that much.
    pub fn next_frame(&mut self, law: Law) -> Option<&[u8]> {
        if self.inbox.len() < SAMPLES_PER_PACKET {
            return None;
        }
        for (out, s) in self
            .frame
            .iter_mut()
            .zip(self.inbox.drain(..SAMPLES_PER_PACKET))
        {
            *out = law.encode(s);
        }
        Some(&self.frame)
    }

    /// The bridge ended: nothing is kept.
    pub fn clear(&mut self) {
        self.heard.clear();
        self.inbox.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relays what `from` heard to `to`, as the media loop does each tick.
    fn relay(from: &mut BridgeSide, to: &mut BridgeSide) {
        let mut heard = from.take_heard();
        to.receive(&mut heard);
        from.give_back(heard);
    }

    fn payload(seed: u8) -> Vec<u8> {
        (0..SAMPLES_PER_PACKET)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn a_pcmu_caller_and_a_pcma_agent_hear_each_other_transcoded() {
        let (mut caller, mut agent) = (BridgeSide::default(), BridgeSide::default());
        let said_by_caller = payload(1);
        let said_by_agent = payload(2);
        caller.hear(Law::Pcmu, &said_by_caller);
        agent.hear(Law::Pcma, &said_by_agent);
        relay(&mut caller, &mut agent);
        relay(&mut agent, &mut caller);
        let to_agent = agent.next_frame(Law::Pcma).unwrap().to_vec();
        let expected: Vec<u8> = said_by_caller
            .iter()
            .map(|&b| Law::Pcma.encode(Law::Pcmu.decode(b)))
            .collect();
        assert_eq!(to_agent, expected);
        let to_caller = caller.next_frame(Law::Pcmu).unwrap().to_vec();
        let expected: Vec<u8> = said_by_agent
            .iter()
            .map(|&b| Law::Pcmu.encode(Law::Pcma.decode(b)))
            .collect();
        assert_eq!(to_caller, expected);
        // Same law on both legs: the bytes pass unchanged.
        caller.hear(Law::Pcma, &said_by_agent);
        relay(&mut caller, &mut agent);
        assert_eq!(agent.next_frame(Law::Pcma).unwrap(), &said_by_agent[..]);
    }

    #[test]
    fn frames_leave_whole_and_in_order_with_the_remainder_kept() {
        let (mut a, mut b) = (BridgeSide::default(), BridgeSide::default());
        let first = payload(3);
        a.hear(Law::Pcma, &first[..100]);
        relay(&mut a, &mut b);
        assert!(
            b.next_frame(Law::Pcma).is_none(),
            "12.5 ms is not a frame yet"
        );
        a.hear(Law::Pcma, &first[100..]);
        a.hear(Law::Pcma, &payload(4)[..40]);
        assert!(a.has_heard());
        relay(&mut a, &mut b);
        assert!(!a.has_heard());
        assert_eq!(b.next_frame(Law::Pcma).unwrap(), &first[..]);
        assert!(
            b.next_frame(Law::Pcma).is_none(),
            "40 samples wait for more"
        );
        a.hear(Law::Pcma, &payload(4)[40..]);
        relay(&mut a, &mut b);
        assert_eq!(b.next_frame(Law::Pcma).unwrap(), &payload(4)[..]);
    }

    #[test]
    fn a_late_burst_is_trimmed_to_the_newest_160_ms() {
        let (mut a, mut b) = (BridgeSide::default(), BridgeSide::default());
        // 30 packets arrive at once, relayed every 8: the receiving side keeps the newest.
        for round in 0..3u8 {
            for i in 0..10u8 {
                a.hear(Law::Pcma, &payload(round * 10 + i));
            }
            relay(&mut a, &mut b);
        }
        let mut frames = Vec::new();
        while let Some(f) = b.next_frame(Law::Pcma) {
            frames.push(f.to_vec());
        }
        assert_eq!(frames.len(), MAX_RELAY / SAMPLES_PER_PACKET);
        // Each round heard at most 8 packets (the first 8); the inbox keeps the last 8 of all.
        assert_eq!(frames.last().unwrap(), &payload(27));
        assert_eq!(frames.first().unwrap(), &payload(20));
        a.hear(Law::Pcma, &payload(1));
        relay(&mut a, &mut b);
        b.clear();
        assert!(
            b.next_frame(Law::Pcma).is_none(),
            "a cleared side sends nothing"
        );
    }
}

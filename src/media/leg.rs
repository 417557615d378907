//! One leg's media as pure logic. Receiving: what it does with each packet its far end sends
//! (whose packets count, symmetric RTP latching, `latch`; key presses, RFC 4733 events or
//! tones in the audio; the far end's voice for the leg it is bridged to and for a voicemail
//! recorder), and when its silence means the far end is gone. Sending ([`Outgoing`]): what
//! goes out each 20 ms, a playback, the bridged leg's voice or silence. No socket, no clock, no
//! channel: the media loop reads and decrypts each packet, hands it in with the tick, sends
//! the frame it is given, and carries out what comes back.

use std::net::SocketAddr;

use super::bridge::BridgeSide;
use super::dtmf::{EventReceiver, ToneDetector};
use super::g711::Law;
use super::latch::{Latch, Verdict};
use super::player::Playback;
use super::recorder::Recorder;
use super::rtp;
use super::rtp::SAMPLES_PER_PACKET;

/// What the leg's owner is told of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// A key the caller pressed.
    Digit(char),
    /// A key on an agent's phone.
    AgentDigit(char),
    /// The voicemail recorder reached its length limit.
    RecordingFull,
}

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// From a stranger (or the far end's other port, not a key): dropped, and counted.
    Refused,
    /// Not RTP.
    Ignored,
    /// Used: the figures the leg's reception statistics need, and whether the far end's
    /// address was learnt or moved with it (the media loop sends there from now on).
    Used {
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        /// Audio (not a key press).
        audio: bool,
        moved: bool,
    },
}

/// One leg's receiving side.
#[derive(Debug)]
pub struct MediaLeg {
    pub latch: Latch,
    /// The payload type of RFC 4733 events, when the far end offered them and keys count.
    pub telephone_event: Option<u8>,
    /// An agent's phone: its keys are the agent's.
    pub agent_keys: bool,
    events: EventReceiver,
    /// In-band key detection (for a far end that offered no telephone-event).
    pub tones: Option<ToneDetector>,
    /// A voicemail being recorded.
    pub recording: Option<Recorder>,
    /// The far end's voice, for the leg this one is bridged to.
    pub bridge: BridgeSide,
    /// Something came from the far end since the last silence check.
    pub heard: bool,
    /// A caller's leg, whose silence ends the call.
    timed: bool,
    /// Whether the far end should be sending now: not after it offered `recvonly` or
    /// `inactive`.
    expects_media: bool,
    /// Ticks of silence before the last thing heard.
    silent_ticks: u32,
}

impl MediaLeg {
    pub fn new(
        latch: Latch,
        telephone_event: Option<u8>,
        agent_keys: bool,
        tones: bool,
    ) -> MediaLeg {
        MediaLeg {
            latch,
            telephone_event,
            agent_keys,
            events: EventReceiver::default(),
            tones: tones.then(ToneDetector::default),
            recording: None,
            bridge: BridgeSide::default(),
            heard: false,
            timed: false,
            expects_media: true,
            silent_ticks: 0,
        }
    }

    /// A caller's leg: its silence ends the call (see [`MediaLeg::silence`]).
    pub fn timed(mut self, timed: bool) -> MediaLeg {
        self.timed = timed;
        self
    }

    /// Whether the far end should be sending (a re-INVITE said): its silence counts afresh.
    pub fn expect_media(&mut self, expects: bool) {
        self.expects_media = expects;
        self.silent_ticks = 0;
    }

    /// Counts `elapsed` ticks of silence unless something arrived meanwhile: `true` once,
    /// when the silence of a timed leg whose far end should be sending reaches `limit`.
    pub fn silence(&mut self, elapsed: u32, limit: u32) -> bool {
        if std::mem::take(&mut self.heard) || !self.expects_media || !self.timed {
            self.silent_ticks = 0;
            return false;
        }
        let before = self.silent_ticks;
        self.silent_ticks = self.silent_ticks.saturating_add(elapsed);
        before < limit && self.silent_ticks >= limit
    }

    /// Whether the leg has any use for the far end's audio (else the kernel may drop it).
    pub fn uses_audio(&self, bridged: bool) -> bool {
        bridged || self.recording.is_some() || self.tones.is_some()
    }

    /// Takes one packet (decrypted) from `from` at tick `now`; `bridged`: its voice goes to
    /// the leg bridged to this one. What the owner must hear of it goes to `tell`.
    pub fn take(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        now: u64,
        bridged: bool,
        tell: &mut impl FnMut(Told),
    ) -> Taken {
        let Some(p) = rtp::parse(bytes) else {
            return Taken::Ignored;
        };
        let was_latched = self.latch.is_latched();
        let before = self.latch.remote();
        let keys = Some(p.payload_type) == self.telephone_event;
        match self.latch.on_packet(from, now) {
            Verdict::Media => {}
            Verdict::KeysOnly if keys => {}
            Verdict::KeysOnly | Verdict::Refused => return Taken::Refused,
        }
        self.heard = true;
        let used = Taken::Used {
            ssrc: p.ssrc,
            sequence: p.sequence,
            timestamp: p.timestamp,
            audio: !keys,
            moved: !was_latched || self.latch.remote() != before,
        };
        if keys {
            if let Some(d) = self.events.on_packet(p.timestamp, p.payload) {
                tell(if self.agent_keys {
                    Told::AgentDigit(d)
                } else {
                    Told::Digit(d)
                });
            }
            return used;
        }
        let Some(law) = Law::from_payload_type(p.payload_type) else {
            return used; // from the far end, in nothing we decode
        };
        if bridged {
            self.bridge.hear(law, p.payload);
        }
        if let Some(r) = self.recording.as_mut().filter(|r| !r.is_full()) {
            r.push(p.sequence, law, p.payload);
            if r.is_full() {
                tell(Told::RecordingFull);
            }
        }
        if let Some(t) = &mut self.tones {
            let samples: Vec<i16> = p.payload.iter().map(|&b| law.decode(b)).collect();
            for d in t.feed(&samples) {
                tell(Told::Digit(d));
            }
        }
        used
    }
}

/// What a leg sends each 20 ms: its playback (a prompt, the hold music) while there is one,
/// else the voice of the leg bridged to it, else silence (which keeps its RTP clock and any NAT
/// binding alive).
#[derive(Debug)]
pub struct Outgoing {
    /// The playback, and the tag its end is reported with.
    playing: Option<(Playback, u64)>,
    silence: [u8; SAMPLES_PER_PACKET],
}

impl Outgoing {
    pub fn new(law: Law) -> Outgoing {
        Outgoing {
            playing: None,
            silence: [law.encode(0); SAMPLES_PER_PACKET],
        }
    }

    pub fn play(&mut self, playback: Playback, tag: u64) {
        self.playing = Some((playback, tag));
    }

    pub fn stop(&mut self) {
        self.playing = None;
    }

    /// The tag of what plays, if anything does.
    pub fn playing(&self) -> Option<u64> {
        self.playing.as_ref().map(|p| p.1)
    }

    /// The next 20 ms to send in `law`, and the tag of a playback that has just ended (its
    /// last frame went before: this one is silence).
    pub fn next_frame<'a>(
        &'a mut self,
        bridge: &'a mut BridgeSide,
        law: Law,
    ) -> (&'a [u8], Option<u64>) {
        let at = self.playing.as_mut().map(|(p, _)| p.advance());
        match at {
            Some(Some(at)) => {
                let frame = self.playing.as_ref().and_then(|(p, _)| p.frame(at));
                (frame.unwrap_or(&self.silence), None)
            }
            Some(None) => {
                let ended = self.playing.take().map(|(_, tag)| tag);
                (&self.silence, ended)
            }
            None => (bridge.next_frame(law).unwrap_or(&self.silence), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const PHONE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 40000);
    const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 5004);

    fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn leg(tones: bool) -> MediaLeg {
        MediaLeg::new(
            Latch::new(PHONE, PHONE.ip(), 0),
            (!tones).then_some(101),
            false,
            tones,
        )
    }

    fn take(
        leg: &mut MediaLeg,
        bytes: &[u8],
        from: SocketAddr,
        bridged: bool,
    ) -> (Taken, Vec<Told>) {
        let mut told = Vec::new();
        let t = leg.take(bytes, from, 1, bridged, &mut |x| told.push(x));
        (t, told)
    }

    #[test]
    fn the_far_end_is_learnt_and_a_stranger_is_refused() {
        let mut l = leg(false);
        let audio = packet(0, 1, 160, &[0xff; 160]);
        let (t, _) = take(&mut l, &audio, PHONE, false);
        assert!(
            matches!(
                t,
                Taken::Used {
                    moved: true,
                    audio: true,
                    ..
                }
            ),
            "{t:?}"
        );
        assert!(l.heard);
        let (t, _) = take(&mut l, &audio, PHONE, false);
        assert!(matches!(t, Taken::Used { moved: false, .. }), "{t:?}");
        assert_eq!(take(&mut l, &audio, STRANGER, false).0, Taken::Refused);
        assert_eq!(take(&mut l, b"not rtp", PHONE, false).0, Taken::Ignored);
    }

    #[test]
    fn a_key_press_is_told_once_as_the_callers_or_the_agents() {
        for agent in [false, true] {
            let mut l = leg(false);
            l.agent_keys = agent;
            let mut told = Vec::new();
            // Key 5: three packets of one event, the last ones marking its end.
            for (i, end) in [false, true, true].into_iter().enumerate() {
                let duration = (160 * (i as u16 + 1)).to_be_bytes();
                let payload = [5, if end { 0x8a } else { 0x0a }, duration[0], duration[1]];
                let p = packet(101, 10 + i as u16, 8000, &payload);
                let (t, mut t2) = take(&mut l, &p, PHONE, false);
                assert!(matches!(t, Taken::Used { audio: false, .. }), "{t:?}");
                told.append(&mut t2);
            }
            let want = if agent {
                Told::AgentDigit('5')
            } else {
                Told::Digit('5')
            };
            assert_eq!(told, vec![want]);
        }
    }

    #[test]
    fn the_voice_goes_to_the_bridge_only_when_bridged_and_fills_a_recorder_to_its_limit() {
        let mut l = leg(false);
        let audio = packet(0, 1, 160, &[0x80; 160]);
        take(&mut l, &audio, PHONE, false);
        assert!(!l.bridge.has_heard());
        take(&mut l, &packet(0, 2, 320, &[0x80; 160]), PHONE, true);
        assert!(l.bridge.has_heard());
        // One second of recording: 50 packets, told full once.
        l.recording = Some(Recorder::new(1));
        let mut told = Vec::new();
        for i in 0..60u16 {
            let (_, mut t) = take(
                &mut l,
                &packet(0, 100 + i, 160 * u32::from(i), &[0x80; 160]),
                PHONE,
                false,
            );
            told.append(&mut t);
        }
        assert_eq!(told, vec![Told::RecordingFull]);
        assert!(l.uses_audio(false));
    }

    #[test]
    fn tones_in_the_audio_are_keys_for_a_far_end_without_events() {
        let mut l = leg(true);
        // 697 Hz + 1209 Hz: the key 1, 100 ms, then silence.
        let mut told = Vec::new();
        for i in 0..10u32 {
            let payload: Vec<u8> = (0..160u32)
                .map(|n| {
                    let t = f64::from(i * 160 + n) / 8000.0;
                    let s = if i < 5 {
                        0.3 * (2.0 * std::f64::consts::PI * 697.0 * t).sin()
                            + 0.3 * (2.0 * std::f64::consts::PI * 1209.0 * t).sin()
                    } else {
                        0.0
                    };
                    Law::Pcmu.encode((s * 16000.0) as i16)
                })
                .collect();
            let (_, mut t) = take(
                &mut l,
                &packet(0, i as u16, i * 160, &payload),
                PHONE,
                false,
            );
            told.append(&mut t);
        }
        assert_eq!(told, vec![Told::Digit('1')]);
    }

    #[test]
    fn a_caller_leg_is_reported_once_after_its_silence_unless_it_should_not_be_sending() {
        let mut l = leg(false).timed(true);
        let audio = packet(0, 1, 160, &[0xff; 160]);
        take(&mut l, &audio, PHONE, false);
        assert!(!l.silence(50, 100), "heard something this second");
        assert!(!l.silence(50, 100));
        assert!(l.silence(50, 100), "100 ticks of silence");
        assert!(!l.silence(50, 100), "reported once");
        // On hold (the far end said recvonly): its silence is no sign it is gone.
        l.expect_media(false);
        assert!((0..10).all(|_| !l.silence(50, 100)));
        // An agent's leg (not timed) is never reported.
        let mut agent = leg(false);
        assert!((0..10).all(|_| !agent.silence(50, 100)));
    }

    #[test]
    fn a_leg_sends_its_playback_then_reports_its_end_then_the_bridged_voice_or_silence() {
        let law = Law::Pcmu;
        let mut out = Outgoing::new(law);
        let mut bridge = BridgeSide::default();
        let silence = [law.encode(0); SAMPLES_PER_PACKET];
        // Nothing plays, nobody is bridged: silence.
        assert_eq!(out.next_frame(&mut bridge, law), (&silence[..], None));
        // Two frames of a prompt, then its end is told with the silence after it.
        let prompt: std::sync::Arc<[u8]> = (0..2 * SAMPLES_PER_PACKET)
            .map(|i| (i / SAMPLES_PER_PACKET) as u8 + 1)
            .collect();
        out.play(Playback::new(vec![prompt], false), 7);
        assert_eq!(out.playing(), Some(7));
        let (f, ended) = out.next_frame(&mut bridge, law);
        assert_eq!((f[0], ended), (1, None));
        let (f, ended) = out.next_frame(&mut bridge, law);
        assert_eq!((f[0], ended), (2, None));
        assert_eq!(out.next_frame(&mut bridge, law), (&silence[..], Some(7)));
        assert_eq!(out.playing(), None);
        // Bridged: the other side's voice, once 20 ms of it arrived.
        let mut heard = vec![1000i16; SAMPLES_PER_PACKET];
        bridge.receive(&mut heard);
        let (f, ended) = out.next_frame(&mut bridge, law);
        assert_eq!(f.len(), SAMPLES_PER_PACKET);
        assert_ne!(f, &silence[..]);
        assert_eq!(ended, None);
        // A playback goes before the bridged voice; stopped, it is never told as ended.
        out.play(
            Playback::new(vec![vec![9u8; SAMPLES_PER_PACKET].into()], true),
            8,
        );
        assert_eq!(out.next_frame(&mut bridge, law).0[0], 9);
        out.stop();
        assert_eq!(out.next_frame(&mut bridge, law), (&silence[..], None));
    }
}

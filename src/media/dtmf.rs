//! Keypad digits from the three ways phones send them: RFC 4733 telephone-events, SIP INFO
//! bodies, and tones in the audio itself (a Goertzel detector, for gateways that do that).

/// RFC 4733 event codes 0-15.
const EVENTS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

pub fn event_digit(code: u8) -> Option<char> {
    EVENTS.get(code as usize).copied()
}

pub fn digit_event(digit: char) -> Option<u8> {
    EVENTS
        .iter()
        .position(|&c| c == digit.to_ascii_uppercase())
        .map(|i| i as u8)
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl Event {
    pub fn parse(payload: &[u8]) -> Option<Event> {
        // Redundant events (RFC 2198) and multiple events in one packet come first; a
        // 4-byte payload is the common case, and longer ones carry the current event first.
        let p = payload.get(..4)?;
        Some(Event {
            code: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3F,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.code,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of telephone-event packets into digits, each exactly once: an event is
/// known by its RTP timestamp, so retransmitted end packets, repeated sequence numbers and
/// audio packets in between change nothing.
#[derive(Debug, Default)]
pub struct EventReceiver {
    last: Option<Last>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    timestamp: u32,
    code: u8,
    duration: u16,
    ended: bool,
}

/// A long event is sent in segments (RFC 4733 §2.5.1.3): a new segment starts where the last
/// one's duration ends; allow this much slack (samples) before calling it a new key press.
const SEGMENT_SLACK: u32 = 1600;

impl EventReceiver {
    /// Feeds one telephone-event packet; returns a digit when a new key press starts.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let e = Event::parse(payload)?;
        let digit = event_digit(e.code)?;
        match &mut self.last {
            Some(l) if l.timestamp == timestamp => {
                l.ended |= e.end;
                l.duration = l.duration.max(e.duration);
                None
            }
            Some(l)
                if !l.ended
                    && l.code == e.code
                    && timestamp.wrapping_sub(l.timestamp)
                        <= u32::from(l.duration) + SEGMENT_SLACK =>
            {
                // The next segment of a long press.
                *l = Last {
                    timestamp,
                    code: e.code,
                    duration: e.duration,
                    ended: e.end,
                };
                None
            }
            _ => {
                self.last = Some(Last {
                    timestamp,
                    code: e.code,
                    duration: e.duration,
                    ended: e.end,
                });
                Some(digit)
            }
        }
    }
}

/// A digit from a SIP INFO body: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`.
pub fn from_info(content_type: &str, body: &str) -> Option<char> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let value = match ct.as_str() {
        "application/dtmf-relay" => body
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
            })?
            .to_string(),
        "application/dtmf" => body.trim().to_string(),
        _ => return None,
    };
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if digit_event(c).is_some() => Some(c.to_ascii_uppercase()),
        // `application/dtmf` may also carry the event number.
        _ => value.parse::<u8>().ok().and_then(event_digit),
    }
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Power of one frequency in a block of samples (the Goertzel algorithm).
fn goertzel(samples: &[f32], freq: f32) -> f32 {
    let k = 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s = x + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// In-band DTMF: finds keypad tones in 8 kHz audio, block by block. A digit is reported once
/// it has held for two blocks (ITU-T Q.24 asks for 40 ms), and again only after a pause.
#[derive(Debug, Default)]
pub struct ToneDetector {
    buffer: Vec<f32>,
    candidate: Option<char>,
    held: u32,
    reported: bool,
}

/// Samples per analysis block: 20 ms.
const BLOCK: usize = 160;

impl ToneDetector {
    /// Feeds audio; returns digits whose tones started in it.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        for &s in samples {
            self.buffer.push(f32::from(s));
            if self.buffer.len() == BLOCK {
                let d = detect(&self.buffer);
                self.buffer.clear();
                if d.is_some() && d == self.candidate {
                    self.held += 1;
                } else {
                    self.candidate = d;
                    self.held = 1;
                    self.reported = false;
                }
                if let Some(c) = d
                    && self.held >= 2
                    && !self.reported
                {
                    self.reported = true;
                    out.push(c);
                }
            }
        }
        out
    }
}

/// The digit in one block, if its two tones stand clear of everything else.
fn detect(block: &[f32]) -> Option<char> {
    let energy: f32 = block.iter().map(|x| x * x).sum();
    // Below about -40 dBm0: silence or line noise.
    if energy < 2.0e6 {
        return None;
    }
    let rows = ROWS.map(|f| goertzel(block, f));
    let cols = COLS.map(|f| goertzel(block, f));
    let (r, &rp) = rows.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let (c, &cp) = cols.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    // Twist: the two tones within 8 dB of each other.
    if rp > cp * 6.3 || cp > rp * 6.3 {
        return None;
    }
    // Each peak at least 6 dB above the other tones of its group.
    if rows
        .iter()
        .enumerate()
        .any(|(i, &p)| i != r && p * 4.0 > rp)
        || cols
            .iter()
            .enumerate()
            .any(|(i, &p)| i != c && p * 4.0 > cp)
    {
        return None;
    }
    // The two tones carry most of the block's energy: speech spreads it out.
    let tone_energy = (rp + cp) * 2.0 / block.len() as f32;
    if tone_energy < energy * 0.6 {
        return None;
    }
    Some(KEYPAD[r][c])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: u8, end: bool, duration: u16) -> [u8; 4] {
        Event {
            code,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn an_event_with_retransmitted_ends_is_one_digit() {
        let mut r = EventReceiver::default();
        assert_eq!(r.on_packet(1000, &ev(5, false, 160)), Some('5'));
        assert_eq!(r.on_packet(1000, &ev(5, false, 320)), None);
        for _ in 0..3 {
            assert_eq!(r.on_packet(1000, &ev(5, true, 800)), None);
        }
        // The same key again is a new event with a new timestamp.
        assert_eq!(r.on_packet(3000, &ev(5, false, 160)), Some('5'));
        assert_eq!(r.on_packet(3000, &ev(5, true, 400)), None);
        assert_eq!(r.on_packet(5000, &ev(11, false, 0)), Some('#'));
    }

    #[test]
    fn lost_starts_long_presses_and_garbage() {
        let mut r = EventReceiver::default();
        // Only an end packet arrived: still one digit.
        assert_eq!(r.on_packet(100, &ev(1, true, 800)), Some('1'));
        assert_eq!(r.on_packet(100, &ev(1, true, 800)), None);
        // A long press in two segments is one digit.
        assert_eq!(r.on_packet(10_000, &ev(2, false, 65535)), Some('2'));
        assert_eq!(
            r.on_packet(10_000u32.wrapping_add(65535), &ev(2, false, 4000)),
            None
        );
        // Ends lost, same key pressed again much later: a new digit.
        assert_eq!(r.on_packet(200_000, &ev(2, false, 160)), Some('2'));
        assert_eq!(r.on_packet(1, &[1, 2]), None);
        assert_eq!(r.on_packet(2, &ev(200, false, 0)), None);
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            from_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            from_info(
                "Application/DTMF-Relay; charset=x",
                "signal= #\nDuration=100"
            ),
            Some('#')
        );
        assert_eq!(from_info("application/dtmf", "7"), Some('7'));
        assert_eq!(from_info("application/dtmf", "11"), Some('#'));
        assert_eq!(from_info("application/dtmf-relay", "Duration=160"), None);
        assert_eq!(from_info("text/plain", "5"), None);
        assert_eq!(from_info("application/dtmf", "x"), None);
    }

    /// Raw 8 kHz mono samples from sox: an input (a file, or `-n` to synthesise), then effects.
    fn sox_samples(input: &[&str], effects: &[&str]) -> Vec<i16> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.raw");
        let st = std::process::Command::new("sox")
            .arg("-D")
            .args(input)
            .args([
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                "-t",
                "raw",
            ])
            .arg(&out)
            .args(effects)
            .status()
            .expect("sox must be installed (.ci/run installs it)");
        assert!(st.success());
        std::fs::read(out)
            .unwrap()
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    fn tone(digit: char, seconds: f32, gain_db: i32) -> Vec<i16> {
        let (r, c) = (0..16)
            .map(|i| (i / 4, i % 4))
            .find(|&(r, c)| KEYPAD[r][c] == digit)
            .unwrap();
        let (f1, f2) = (ROWS[r].to_string(), COLS[c].to_string());
        let len = seconds.to_string();
        let gain = gain_db.to_string();
        sox_samples(
            &["-n"],
            &["synth", &len, "sine", &f1, "sine", &f2, "gain", &gain],
        )
    }

    fn silence(seconds: f32) -> Vec<i16> {
        vec![0; (seconds * 8000.0) as usize]
    }

    #[test]
    fn tones_from_sox_are_every_key_once() {
        let mut audio = Vec::new();
        for d in KEYPAD.iter().flatten() {
            audio.extend(tone(*d, 0.08, -9));
            audio.extend(silence(0.06));
        }
        let mut det = ToneDetector::default();
        // Fed in odd-sized chunks, as packets of any size would arrive.
        let found: Vec<char> = audio.chunks(97).flat_map(|c| det.feed(c)).collect();
        let want: Vec<char> = KEYPAD.iter().flatten().copied().collect();
        assert_eq!(found, want);
    }

    #[test]
    fn a_long_press_is_one_digit_and_a_quiet_one_still_counts() {
        let mut det = ToneDetector::default();
        assert_eq!(det.feed(&tone('5', 1.0, -6)), vec!['5']);
        let mut det = ToneDetector::default();
        assert_eq!(det.feed(&tone('0', 0.1, -24)), vec!['0']);
        // Too short to be a key press (20 ms).
        let mut det = ToneDetector::default();
        assert!(det.feed(&tone('7', 0.02, -6)).is_empty());
    }

    #[test]
    fn speech_and_hold_music_are_not_digits() {
        let prompts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let mut heard = 0;
        for e in std::fs::read_dir(prompts).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "wav") {
                let audio = sox_samples(&[path.to_str().unwrap()], &[]);
                heard += audio.len();
                let mut det = ToneDetector::default();
                assert_eq!(
                    det.feed(&audio),
                    Vec::<char>::new(),
                    "talk-off in {}",
                    path.display()
                );
            }
        }
        assert!(heard > 8000 * 60, "a minute of speech at least was checked");
    }
}

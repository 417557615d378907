//! G.711 µ-law (PCMU) and A-law (PCMA): the classic truncating encoders and table decoders of
//! the ITU-T reference, which every phone and gateway agrees with.

/// Quantization segments end here (µ-law, on 14-bit magnitudes plus bias).
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// A-law segment ends, on 13-bit magnitudes.
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| value <= e).unwrap_or(8)
}

/// Encodes one 16-bit linear sample to µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    let v = v.min(CLIP) + BIAS;
    let seg = segment(v, &ULAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    (((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF)) as u8 ^ mask
}

/// Encodes one 16-bit linear sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ALAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let quant = if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (((seg as i32) << 4) | quant) as u8 ^ mask
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0F) as i32) << 3) + 0x84;
    let t = t << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const ULAW_TABLE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_const(i as u8);
        i += 1;
    }
    t
};

const ALAW_TABLE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_const(i as u8);
        i += 1;
    }
    t
};

pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// The two G.711 laws, by their RTP names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0.
    Pcmu,
    /// A-law, RTP payload type 8.
    Pcma,
}

impl Law {
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Pcmu),
            8 => Some(Law::Pcma),
            _ => None,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Pcmu => ulaw_encode(sample),
            Law::Pcma => alaw_encode(sample),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Pcmu => ulaw_decode(code),
            Law::Pcma => alaw_decode(code),
        }
    }

    /// Re-encodes a payload of the other law into this one (for bridging PCMU and PCMA legs).
    pub fn transcode_from(self, from: Law, payload: &mut [u8]) {
        if from != self {
            for b in payload.iter_mut() {
                *b = self.encode(from.decode(*b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Known values of the ITU-T reference.
    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7E); // -1 >> 2 is -1: magnitude 1, code 1
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for code in 0..=255u8 {
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes as 0xFF.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), want, "µ-law {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn transcoding_keeps_the_sound() {
        let mut p: Vec<u8> = (-4000..4000)
            .step_by(100)
            .map(|s| ulaw_encode(s as i16))
            .collect();
        let orig = p.clone();
        Law::Pcma.transcode_from(Law::Pcmu, &mut p);
        for (a, u) in p.iter().zip(&orig) {
            let (x, y) = (alaw_decode(*a) as i32, ulaw_decode(*u) as i32);
            assert!((x - y).abs() <= 64, "{x} vs {y}");
        }
    }

    fn sox(args: &[&str], input: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (i, o) = (dir.path().join("in.raw"), dir.path().join("out.raw"));
        std::fs::write(&i, input).unwrap();
        let mut full: Vec<&str> = vec!["-D"];
        let (ins, outs) = args.split_at(args.iter().position(|a| *a == "->").unwrap());
        full.extend(ins);
        full.push(i.to_str().unwrap());
        full.extend(&outs[1..]);
        full.push(o.to_str().unwrap());
        let st = Command::new("sox")
            .args(&full)
            .status()
            .expect("sox must be installed (.ci/run installs it)");
        assert!(st.success());
        std::fs::read(o).unwrap()
    }

    fn decoded_by_sox(encoding: &str) -> Vec<i16> {
        let codes: Vec<u8> = (0..=255).collect();
        let out = sox(
            &[
                "-t", "raw", "-r", "8000", "-c", "1", "-e", encoding, "-b", "8", "->", "-t", "raw",
                "-e", "signed", "-b", "16",
            ],
            &codes,
        );
        out.chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    fn encoded_by_sox(encoding: &str) -> Vec<u8> {
        let all: Vec<u8> = (i16::MIN..=i16::MAX)
            .flat_map(|s| s.to_le_bytes())
            .collect();
        sox(
            &[
                "-t", "raw", "-r", "8000", "-c", "1", "-e", "signed", "-b", "16", "->", "-t",
                "raw", "-e", encoding, "-b", "8",
            ],
            &all,
        )
    }

    #[test]
    fn decoders_match_sox_byte_for_byte() {
        let u = decoded_by_sox("mu-law");
        let a = decoded_by_sox("a-law");
        for code in 0..=255u8 {
            assert_eq!(ulaw_decode(code), u[code as usize], "µ-law {code:#04x}");
            assert_eq!(alaw_decode(code), a[code as usize], "A-law {code:#04x}");
        }
    }

    /// sox's encoders round where the reference truncates: they differ by one step on a fixed
    /// few hundred of the 65,536 inputs, never more.
    #[test]
    fn encoders_agree_with_sox_but_for_rounding() {
        for (law, name) in [(Law::Pcmu, "mu-law"), (Law::Pcma, "a-law")] {
            let theirs = encoded_by_sox(name);
            let mut differ = 0;
            for (i, s) in (i16::MIN..=i16::MAX).enumerate() {
                let (ours, sox) = (law.encode(s), theirs[i]);
                if ours != sox {
                    differ += 1;
                    let (a, b) = (law.decode(ours) as i32, law.decode(sox) as i32);
                    let step = (a - b).abs();
                    // Adjacent codes: the nearer one is within one quantization step.
                    assert!(
                        step <= 1024 && ((s as i32 - a).abs() - (s as i32 - b).abs()).abs() <= step,
                        "{name} {s}: ours {ours:#04x} sox {sox:#04x}"
                    );
                }
            }
            // Measured: exactly these many; a change means an encoder changed.
            let expected = if law == Law::Pcmu { 508 } else { 1020 };
            assert_eq!(differ, expected, "{name}: inputs that differ from sox");
        }
    }
}

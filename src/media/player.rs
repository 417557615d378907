//! Prompts as the pacing tick sends them: each WAV is decoded once at load and encoded once per
//! G.711 law into 20 ms frames, shared by every call (`Arc<[u8]>`). A `Playback` is a cursor
//! over a list of prompts; it never copies audio.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::g711::Law;
use super::rtp::SAMPLES_PER_PACKET;

/// One prompt, encoded in both laws, padded with silence to whole 20 ms frames.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub pcmu: Arc<[u8]>,
    pub pcma: Arc<[u8]>,
}

impl Encoded {
    pub fn from_samples(samples: &[i16]) -> Encoded {
        let frames = samples.len().div_ceil(SAMPLES_PER_PACKET).max(1);
        let encode = |law: Law| -> Arc<[u8]> {
            let mut out: Vec<u8> = samples.iter().map(|&s| law.encode(s)).collect();
            out.resize(frames * SAMPLES_PER_PACKET, law.encode(0));
            out.into()
        };
        Encoded {
            pcmu: encode(Law::Pcmu),
            pcma: encode(Law::Pcma),
        }
    }

    pub fn law(&self, law: Law) -> &Arc<[u8]> {
        match law {
            Law::Pcmu => &self.pcmu,
            Law::Pcma => &self.pcma,
        }
    }

    pub fn seconds(&self) -> f64 {
        self.pcmu.len() as f64 / 8000.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

/// Every prompt a server plays, by name.
#[derive(Debug, Default, Clone)]
pub struct Prompts {
    map: HashMap<String, Encoded>,
}

/// The tone before a voicemail recording: 400 ms of 1 kHz.
pub const BEEP: &str = "<beep>";

impl Prompts {
    /// Loads `dir/NAME.wav` for each name. Every file must be 8 kHz mono 16-bit, as the
    /// validator already checked for flow prompts.
    pub fn load<'a>(
        dir: &Path,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Prompts, PromptError> {
        let mut map = HashMap::new();
        for name in names {
            let path = dir.join(format!("{name}.wav"));
            let err = |message: String| PromptError::Read {
                path: path.display().to_string(),
                message,
            };
            let reader = hound::WavReader::open(&path).map_err(|e| err(e.to_string()))?;
            let spec = reader.spec();
            if spec.sample_rate != 8000
                || spec.channels != 1
                || spec.bits_per_sample != 16
                || spec.sample_format != hound::SampleFormat::Int
            {
                return Err(err(format!(
                    "must be 8 kHz mono 16-bit PCM, is {} Hz, {} channel(s), {} bits",
                    spec.sample_rate, spec.channels, spec.bits_per_sample
                )));
            }
            let samples: Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
            let samples = samples.map_err(|e| err(e.to_string()))?;
            map.insert(name.to_string(), Encoded::from_samples(&samples));
        }
        let beep: Vec<i16> = (0..3200)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect();
        map.insert(BEEP.to_string(), Encoded::from_samples(&beep));
        Ok(Prompts { map })
    }

    pub fn get(&self, name: &str) -> Option<&Encoded> {
        self.map.get(name)
    }

    /// The frames of these prompts in one law; unknown names are skipped.
    pub fn frames(&self, names: &[String], law: Law) -> Vec<Arc<[u8]>> {
        names
            .iter()
            .filter_map(|n| self.map.get(n))
            .map(|e| Arc::clone(e.law(law)))
            .collect()
    }
}

/// A cursor over prompts being played to one call.
#[derive(Debug, Clone)]
pub struct Playback {
    items: Vec<Arc<[u8]>>,
    item: usize,
    offset: usize,
    /// Hold music starts over when it ends.
    looped: bool,
}

impl Playback {
    pub fn new(items: Vec<Arc<[u8]>>, looped: bool) -> Playback {
        Playback {
            items,
            item: 0,
            offset: 0,
            looped,
        }
    }

    /// The next 20 ms frame, or `None` when the last prompt has ended.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let at = self.advance()?;
        self.frame(at)
    }

    /// Moves on to the next 20 ms frame: where it is (see [`Playback::frame`]), or `None`
    /// when the last prompt has ended.
    pub fn advance(&mut self) -> Option<(usize, usize)> {
        loop {
            let len = self.items.get(self.item)?.len();
            if self.offset + SAMPLES_PER_PACKET <= len {
                let at = self.offset;
                self.offset += SAMPLES_PER_PACKET;
                return Some((self.item, at));
            }
            self.item += 1;
            self.offset = 0;
            if self.item >= self.items.len() && self.looped && !self.items.is_empty() {
                self.item = 0;
            }
            if self.item >= self.items.len() {
                return None;
            }
        }
    }

    /// The frame [`Playback::advance`] moved to.
    pub fn frame(&self, (item, at): (usize, usize)) -> Option<&[u8]> {
        self.items.get(item)?.get(at..at + SAMPLES_PER_PACKET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_whole_frames_and_play_back_in_order() {
        let a = Encoded::from_samples(&vec![1000i16; 200]);
        assert_eq!(a.pcmu.len(), 320, "padded to two frames");
        assert_eq!(a.pcmu[199], Law::Pcmu.encode(1000));
        assert_eq!(a.pcmu[200], Law::Pcmu.encode(0), "silence after the end");
        let b = Encoded::from_samples(&vec![-1000i16; 160]);
        let mut p = Playback::new(vec![a.pcma.clone(), b.pcma.clone()], false);
        let mut frames = Vec::new();
        while let Some(f) = p.next_frame() {
            frames.push(f.to_vec());
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2][0], Law::Pcma.encode(-1000));
        assert!(p.next_frame().is_none());
    }

    #[test]
    fn hold_music_loops_and_an_empty_list_ends_at_once() {
        let a = Encoded::from_samples(&[5i16; 160]);
        let mut p = Playback::new(vec![a.pcmu.clone()], true);
        for _ in 0..10 {
            assert!(p.next_frame().is_some());
        }
        assert!(Playback::new(Vec::new(), true).next_frame().is_none());
    }

    #[test]
    fn the_demo_prompts_load_and_a_bad_file_is_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let p = Prompts::load(&dir, ["welcome", "hold"]).unwrap();
        assert!(p.get("hold").unwrap().seconds() > 1.0);
        assert!(p.get(BEEP).is_some());
        let e = Prompts::load(&dir, ["no-such-prompt"]).unwrap_err();
        assert!(e.to_string().contains("no-such-prompt.wav"), "{e}");
    }
}

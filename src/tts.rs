//! Prompts written as text (`prompt = { say = "For sales, press 1." }`): rendered once by a
//! local text-to-speech command — espeak-ng by default, any command that writes a WAV file
//! (`[tts] command`) — into a cache beside the prompts (`prompts/.tts/KEY.wav`, the key a hash
//! of the command, the voice and the text), at `validate`, `serve` start and reload; never on
//! a caller's time. The rendered file is an ordinary 8 kHz mono 16-bit prompt: the validator
//! reads its length like any other's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Where rendered prompts live, inside the prompts folder.
pub const CACHE: &str = ".tts";
/// The longest text a prompt may say.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// The longest a render may take.
const RENDER_TIMEOUT: Duration = Duration::from_secs(60);

/// `[tts]`: the text-to-speech command.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Tts {
    /// The command, its arguments separated by spaces; `{text}`, `{voice}` and `{out}` (the
    /// WAV file to write) are replaced, each as one argument (no shell).
    pub command: String,
    /// The voice of the default language, English (`en-us`, a Piper model path…).
    pub voice: String,
    /// The voice of each other language (`[tts.voices] es = "es"`); a language not listed is
    /// spoken by the voice named by its code (espeak-ng has `es`, `fr`, …).
    pub voices: std::collections::BTreeMap<String, String>,
}

impl Default for Tts {
    fn default() -> Self {
        Tts {
            command: "espeak-ng -v {voice} -s 165 -w {out} {text}".to_string(),
            voice: "en-us".to_string(),
            voices: std::collections::BTreeMap::new(),
        }
    }
}

impl Tts {
    /// The voice that speaks `language`.
    pub fn voice_for<'a>(&'a self, language: &'a str) -> &'a str {
        match self.voices.get(language) {
            Some(v) => v,
            None if language.is_empty() || language == crate::flow::language::DEFAULT => {
                &self.voice
            }
            None => language,
        }
    }

    /// The cache key of `text` in `language` with this command and its voice.
    pub fn key(&self, language: &str, text: &str) -> String {
        let mut h = Sha256::new();
        for part in [self.command.as_str(), self.voice_for(language), text] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        h.finalize()
            .iter()
            .take(10)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The prompt name `text` in `language` renders to (`.tts/KEY`).
    pub fn name(&self, language: &str, text: &str) -> String {
        format!("{CACHE}/{}", self.key(language, text))
    }

    /// Renders `text` in `language` into `prompts/.tts/KEY.wav` unless it is there already;
    /// its name.
    pub fn ensure(&self, prompts: &Path, language: &str, text: &str) -> Result<String, String> {
        let name = self.name(language, text);
        let file = prompts.join(format!("{name}.wav"));
        if file.is_file() {
            return Ok(name);
        }
        let dir = prompts.join(CACHE);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the cache {}: {e}", dir.display()))?;
        // Files of this render alone (another process may render the same text at once: a
        // `validate` in CI beside a `serve` reloading); the finished file is renamed into
        // place, so a reader never sees half of one.
        static RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mine = format!(
            "{}.{}.{}",
            self.key(language, text),
            std::process::id(),
            RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let raw = dir.join(format!("{mine}.raw.wav"));
        let part = dir.join(format!("{mine}.part"));
        let result = self
            .run(self.voice_for(language), text, &raw)
            .and_then(|()| convert(&raw, &part, &file));
        let _ = std::fs::remove_file(&raw);
        result.map(|()| name)
    }

    fn run(&self, voice: &str, text: &str, out: &Path) -> Result<(), String> {
        let args: Vec<String> = self
            .command
            .split_whitespace()
            .map(|a| {
                a.replace("{voice}", voice)
                    .replace("{out}", &out.to_string_lossy())
                    .replace("{text}", text)
            })
            .collect();
        let Some((program, rest)) = args.split_first() else {
            return Err("[tts] command is empty".to_string());
        };
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "no text-to-speech engine: `{program}` is not installed (Debian: apt-get install espeak-ng; or set [tts] command)"
                    )
                } else {
                    format!("`{program}` could not run: {e}")
                }
            })?;
        #[allow(clippy::disallowed_methods)] // a bound on a child process, at load time
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut why = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = (&mut e).take(2000).read_to_string(&mut why);
                    }
                    return Err(format!("`{program}` failed ({status}): {}", why.trim()));
                }
                Ok(None) if started.elapsed() > RENDER_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "`{program}` took over {} s",
                        RENDER_TIMEOUT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("`{program}`: {e}")),
            }
        }
    }
}

/// Reads any PCM WAV (rate, channels, 8/16/24/32-bit or float) and writes it as 8 kHz mono
/// 16-bit PCM, through the temporary file `tmp` so a reader never sees half of it.
fn convert(from: &Path, tmp: &Path, to: &Path) -> Result<(), String> {
    let mut reader = hound::WavReader::open(from)
        .map_err(|e| format!("the engine wrote no readable WAV: {e}"))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    let samples = resample(&mono, spec.sample_rate, 8000);
    let out_spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = || -> Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(tmp, out_spec)?;
        for s in &samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        w.finalize()
    };
    let written = write()
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(tmp, to).map_err(|e| format!("cannot write {}: {e}", to.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// Band-limited resampling: each output sample is a Hann-windowed sinc of the input around
/// its time, the cut-off below both Nyquist frequencies. Deterministic.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 {
        return input.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let cutoff = 0.95 * (f64::from(to.min(from)) / f64::from(from)) / 2.0; // cycles per input sample
    let half = (8.0 * ratio.max(1.0)).ceil() as i64;
    let n_out = ((input.len() as f64) / ratio).floor() as usize;
    let mut out = Vec::with_capacity(n_out);
    for n in 0..n_out {
        let t = n as f64 * ratio;
        let centre = t.floor() as i64;
        let mut acc = 0.0f64;
        let mut norm = 0.0f64;
        for k in (centre - half)..=(centre + half) {
            if k < 0 || k as usize >= input.len() {
                continue;
            }
            let x = k as f64 - t;
            let sinc = if x.abs() < 1e-9 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.5 + 0.5 * (std::f64::consts::PI * x / (half as f64 + 1.0)).cos();
            let c = sinc * w;
            acc += f64::from(input[k as usize]) * c;
            norm += c;
        }
        out.push(if norm.abs() > 1e-9 {
            (acc / norm) as f32
        } else {
            0.0
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_the_text_the_voice_and_the_command() {
        let t = Tts::default();
        assert_eq!(
            t.key("en", "For sales, press 1."),
            t.key("en", "For sales, press 1.")
        );
        assert_ne!(
            t.key("en", "For sales, press 1."),
            t.key("en", "For sales, press 2.")
        );
        let other = Tts {
            voice: "en-gb".into(),
            ..Tts::default()
        };
        assert_ne!(t.key("en", "Hola"), other.key("en", "Hola"));
        // Each language its voice: the same words in Spanish are another rendering.
        assert_ne!(t.key("en", "Hola"), t.key("es", "Hola"));
        assert_eq!(t.voice_for("es"), "es");
        assert_eq!(t.voice_for("en"), "en-us");
        let mexican = Tts {
            voices: [("es".to_string(), "es-419".to_string())].into(),
            ..Tts::default()
        };
        assert_eq!(mexican.voice_for("es"), "es-419");
        assert!(t.name("en", "x").starts_with(".tts/"));
    }

    #[test]
    fn resampling_keeps_a_tone_and_its_length() {
        // 440 Hz at 22050 Hz for one second, to 8 kHz.
        let input: Vec<f32> = (0..22050)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 22050.0).sin() * 0.5)
            .collect();
        let out = resample(&input, 22050, 8000);
        assert_eq!(out.len(), 8000);
        let rms = (out.iter().map(|x| x * x).sum::<f32>() / out.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "{rms}");
        // A tone above the new Nyquist frequency is gone, not folded back.
        let high: Vec<f32> = (0..22050)
            .map(|i| (2.0 * std::f32::consts::PI * 6000.0 * i as f32 / 22050.0).sin() * 0.5)
            .collect();
        let out = resample(&high, 22050, 8000);
        let rms = (out[100..7900].iter().map(|x| x * x).sum::<f32>() / 7800.0).sqrt();
        assert!(rms < 0.05, "{rms}");
    }

    /// Processes rendering the same text at once (a `validate` beside a `serve`): each gets
    /// the whole file, and nothing is left behind but it.
    #[test]
    fn renders_of_the_same_text_at_once_do_not_trip_over_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Para ventas, pulse uno. Para facturación, pulse dos.";
        let names: Vec<Result<String, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Tts::default().ensure(dir.path(), "es", text)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for n in &names {
            assert_eq!(n.as_deref(), Ok(Tts::default().name("es", text).as_str()));
        }
        let left: Vec<String> = std::fs::read_dir(dir.path().join(CACHE))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let r = hound::WavReader::open(
            dir.path()
                .join(format!("{}.wav", names[0].as_ref().unwrap())),
        )
        .unwrap();
        assert!(r.duration() > 8000, "{}", r.duration());
    }

    #[test]
    fn espeak_renders_once_into_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tts::default();
        let name = t.ensure(dir.path(), "en", "For sales, press 1.").unwrap();
        let file = dir.path().join(format!("{name}.wav"));
        let r = hound::WavReader::open(&file).unwrap();
        assert_eq!((r.spec().sample_rate, r.spec().channels), (8000, 1));
        assert!(r.duration() > 8000 / 2, "{}", r.duration());
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(
            t.ensure(dir.path(), "en", "For sales, press 1.").unwrap(),
            name
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            modified
        );
        let missing = Tts {
            command: "no-such-tts-engine {out} {text}".into(),
            ..Tts::default()
        };
        let e = missing.ensure(dir.path(), "en", "Hello").unwrap_err();
        assert!(e.contains("apt-get install espeak-ng"), "{e}");
    }
}

//! Test fixtures: a temporary line folder (flows/, prompts/ with real WAV files, an optional
//! hotline.toml) and the real `hotline` binary run in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Writes a WAV file of `seconds` of a quiet tone.
pub fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (seconds * f64::from(rate)) as u32;
    for i in 0..n {
        let s = ((f64::from(i) * 0.05).sin() * 3000.0) as i16;
        for _ in 0..channels {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

impl Fixture {
    /// Prompts: `hello` 1 s, `menu` 2 s, `bye` 1 s, `long` 60 s, `stereo` (bad), `wide` (16 kHz, bad).
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows")).unwrap();
        let prompts = dir.path().join("prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        for (name, secs) in [("hello", 1.0), ("menu", 2.0), ("bye", 1.0), ("long", 60.0)] {
            write_wav(&prompts.join(format!("{name}.wav")), 8000, 1, secs);
        }
        write_wav(&prompts.join("stereo.wav"), 8000, 2, 1.0);
        write_wav(&prompts.join("wide.wav"), 16000, 1, 1.0);
        Fixture { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn flow(&self, name: &str, toml: &str) -> &Fixture {
        std::fs::write(self.path().join("flows").join(format!("{name}.toml")), toml).unwrap();
        self
    }

    pub fn config(&self, toml: &str) -> &Fixture {
        std::fs::write(self.path().join("hotline.toml"), toml).unwrap();
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_in(self.path(), args)
    }

    /// `hotline validate --format json` in the fixture.
    pub fn validate(&self) -> (i32, Value) {
        let out = self.run(&["validate", "--format", "json"]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        (out.code, out.json())
    }

    /// The rule ids and nodes `validate` reports.
    pub fn findings(&self) -> Vec<(String, Option<String>)> {
        findings(&self.validate().1)
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hotline"))
}

pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked"),
        "hotline panicked: {}",
        o.stderr
    );
    o
}

pub fn findings(v: &Value) -> Vec<(String, Option<String>)> {
    v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["rule"].as_str().unwrap().to_string(),
                d["node"].as_str().map(String::from),
            )
        })
        .collect()
}

pub fn rules(v: &Value) -> Vec<String> {
    findings(v).into_iter().map(|f| f.0).collect()
}

/// The repository root, for tests that run on the demo line.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

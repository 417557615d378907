//! The validator's text output, word for word: each folder of `tests/fixtures/validate/` is a
//! line (`flows/`, `hotline.toml`) beside `expected.txt`, what `hotline validate` prints for it
//! (standard output, then its exit code). A change in wording is a reviewed diff of those
//! files: run `HOTLINE_BLESS=1 cargo test --test golden` to write them anew, and read the diff.

mod common;

use std::path::{Path, PathBuf};

use common::Fixture;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// What `validate` prints for the case, in a fixture with the usual test prompts.
fn output(case: &Path) -> String {
    let fx = Fixture::new();
    for e in std::fs::read_dir(case.join("flows")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, fx.path().join("flows").join(p.file_name().unwrap())).unwrap();
    }
    if case.join("hotline.toml").is_file() {
        fx.config(&std::fs::read_to_string(case.join("hotline.toml")).unwrap());
    }
    let out = fx.run(&["validate"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    format!("{}\nexit code {}\n", out.stdout.trim_end(), out.code)
}

/// The first line where two texts part, for the failure message.
fn first_difference(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    for i in 0..e.len().max(g.len()) {
        let (a, b) = (e.get(i).copied(), g.get(i).copied());
        if a != b {
            return format!(
                "line {}:\n  expected: {}\n  got:      {}",
                i + 1,
                a.unwrap_or("(nothing)"),
                b.unwrap_or("(nothing)")
            );
        }
    }
    String::new()
}

#[test]
fn the_validators_words_are_the_reviewed_ones() {
    let bless = std::env::var_os("HOTLINE_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 5, "{cases:?}");
    let mut wrong = Vec::new();
    for case in &cases {
        let got = output(case);
        let file = case.join("expected.txt");
        if bless {
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        if expected != got {
            wrong.push(format!(
                "{}: {}\n--- got ---\n{got}",
                case.display(),
                first_difference(&expected, &got)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "validate's output changed (HOTLINE_BLESS=1 cargo test --test golden writes it anew, \
         then review the diff):\n{}",
        wrong.join("\n")
    );
}

//! Every input in the fuzz targets' committed corpora (`tests/fuzz/seeds/<target>/`: seeds
//! and what the fuzzer kept) replayed through the same functions the targets run, on the
//! stable toolchain: a crash the fuzzer once found stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
        n += 1;
    }
    assert!(n > 0, "{target} has a corpus");
}

#[test]
fn sip_wire() {
    replay("sip_wire", hotline::fuzz::sip_wire);
}

#[test]
fn rtp_dtmf() {
    replay("rtp_dtmf", hotline::fuzz::rtp_dtmf);
}

#[test]
fn sdp() {
    replay("sdp", hotline::fuzz::sdp);
}

#[test]
fn digest() {
    replay("digest", hotline::fuzz::digest);
}

#[test]
fn flow_toml() {
    replay("flow_toml", hotline::fuzz::flow_toml);
}

#[test]
fn config_toml() {
    replay("config_toml", hotline::fuzz::config_toml);
}

#[test]
fn calls_query() {
    replay("calls_query", hotline::fuzz::calls_query);
}

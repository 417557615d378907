//! What the fuzz targets in `tests/fuzz/` run, one function per parser that reads input
//! from outside: the network (SIP, RTP, digest credentials, SDP, the API's query string) or
//! an operator's file (flows, `hotline.toml`). Each must answer or refuse, never panic. The
//! targets call these under libFuzzer (`cargo +nightly fuzz`); `cargo test` replays the
//! committed corpus through them (`tests/fuzz_corpus.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use crate::media::srtp::{Srtp, Suite};
use crate::media::{dtmf, g711::Law, recorder::Recorder, rtp};
use crate::sip::{dialog, registrar, sdp, transaction, transport::Link, wire};

/// Our side of an SDP negotiation, or an SRTP key, for inputs that need one.
const KEYING: sdp::Keying = sdp::Keying {
    local: [0x5a; crate::media::srtp::MASTER_LEN],
    required: false,
};

/// Any bytes as a SIP datagram and a TCP stream: an accepted message survives a round trip
/// through our own serialisation, and everything read from it is read without a panic.
pub fn sip_wire(data: &[u8]) {
    if let Ok(m) = wire::parse_datagram(data) {
        let _ = wire::validate(&m);
        let again = wire::parse_datagram(&m.to_bytes()).expect("our own serialisation parses");
        assert_eq!(again.start, m.start);
        if let Some(method) = m.method() {
            let _ = transaction::Key::of(&m, method);
        }
        let _ = dialog::Dialog::from_invite(&m, "t");
        for v in m.all("Via") {
            for part in wire::split_list(v) {
                let _ = wire::parse_via(part);
            }
        }
        let _ = sdp::parse_offer(&String::from_utf8_lossy(&m.body)).map(|o| o.negotiate(&KEYING));
    }
    let _ = wire::parse_stream(data);
}

/// Any bytes as RTP packets, RFC 4733 events, SIP INFO bodies and audio.
pub fn rtp_dtmf(data: &[u8]) {
    let mut events = dtmf::EventReceiver::default();
    let mut recorder = Recorder::new(1);
    let mut tones = dtmf::ToneDetector::default();
    for chunk in data.chunks(64) {
        if let Some(p) = rtp::parse(chunk) {
            let _ = events.on_packet(p.timestamp, p.payload);
            if let Some(law) = Law::from_payload_type(p.payload_type) {
                recorder.push(p.sequence, law, p.payload);
                let samples: Vec<i16> = p.payload.iter().map(|&b| law.decode(b)).collect();
                let _ = tones.feed(&samples);
            }
        }
    }
    // The same bytes as SRTP packets: refused unless they authenticate, never a panic.
    let mut srtp = Srtp::new(Suite::AesCm128HmacSha1_80, &KEYING.local);
    let mut short = Srtp::new(Suite::AesCm128HmacSha1_32, &KEYING.local);
    for chunk in data.chunks(64) {
        let _ = srtp.unprotect(&mut chunk.to_vec());
        let _ = short.unprotect(&mut chunk.to_vec());
    }
    let text = String::from_utf8_lossy(data);
    let _ = dtmf::from_info("application/dtmf-relay", &text);
    let _ = dtmf::from_info("application/dtmf", &text);
    let _ = recorder.finish();
}

/// Any text as an SDP offer: parsed, negotiated, and our answer to it described and read
/// back.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(offer) = sdp::parse_offer(&text)
        && let Ok(agreed) = offer.negotiate(&KEYING)
    {
        let answer = sdp::describe(
            1,
            1,
            "192.0.2.1".parse().expect("an address"),
            20000,
            Some((&offer, &agreed)),
            sdp::OfferSrtp::No,
        );
        let back = sdp::parse_offer(&answer);
        assert!(back.is_ok(), "our own answer parses: {answer}");
        // An SRTP answer carries our key, readable by the offerer.
        if agreed.srtp.is_some() {
            let back = back.expect("checked above");
            assert_eq!(back.crypto.first().map(|c| c.key), Some(KEYING.local));
        }
    }
    let ours = sdp::describe(
        1,
        1,
        "192.0.2.1".parse().expect("an address"),
        20000,
        None,
        sdp::OfferSrtp::BestEffort(KEYING.local),
    );
    let _ = sdp::read_answer(&ours, &text);
}

/// Any text as a REGISTER's `Authorization` header value (and whatever header lines it
/// smuggles in): the registrar challenges, refuses or accepts, and never panics.
pub fn digest(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let text = format!(
        "REGISTER sip:hotline.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@hotline.local>;tag=1\r\nTo: <sip:alice@hotline.local>\r\nCall-ID: fuzz\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.0.2.9>\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\r\n"
    );
    let Ok(m) = wire::parse_datagram(text.as_bytes()) else {
        return;
    };
    let users = vec![registrar::User {
        id: "alice".into(),
        password: "change-me".into(),
    }];
    let mut r = registrar::Registrar::new(
        "hotline.local",
        &[registrar::Algorithm::Md5, registrar::Algorithm::Sha256],
        users,
        [1; 16],
    );
    let source: SocketAddr = "192.0.2.9:5060".parse().expect("an address");
    #[allow(clippy::disallowed_methods)] // an origin only: the registrar is given it
    let now = Instant::now();
    for _ in 0..3 {
        let _ = r.register(&m, source, Link::Udp, now);
    }
}

/// Any text as a flow file: loaded, resolved and checked by every rule.
pub fn flow_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = crate::flow::model::FlowSet::default();
    let mut diags = Vec::new();
    crate::flow::load::load_text(&mut set, Path::new("flows/main.toml"), text, &mut diags);
    crate::flow::load::finish(&mut set, None, &mut diags);
    let ctx = crate::flow::check::Context {
        queues: None,
        lookups: None,
        switches: None,
        calendars: None,
        // The embedded policy: a transfer's URI, whatever the fuzzer writes, is judged too.
        dial: Some(std::sync::Arc::new(
            crate::config::Loaded::embedded().config.dial_policy(),
        )),
        max_steps: None,
    };
    let _ = crate::flow::check::check(&set, &ctx);
}

/// Any text as `hotline.toml`: loaded and checked, or refused with a reason.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Loaded::parse(text, None);
    }
}

/// Any text as the query string of `GET /api/calls`, run against a real (empty) store: a
/// filter is a parameter, never SQL.
pub fn calls_query(data: &[u8]) {
    let q = String::from_utf8_lossy(data);
    if let Ok((limit, filter)) = crate::api::calls_query(Some(&q)) {
        thread_local! {
            static STORE: Option<(scratch::Dir, crate::store::Store)> = scratch::store();
        }
        STORE.with(|s| {
            if let Some((_, store)) = s {
                store
                    .calls(&filter, limit)
                    .expect("a filter never breaks the query");
            }
        });
    }
}

/// A store in a folder of its own, removed when the thread ends.
mod scratch {
    pub struct Dir(pub std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn store() -> Option<(Dir, crate::store::Store)> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hotline-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let store = crate::store::Store::open(&dir).ok()?;
        Some((Dir(dir), store))
    }
}

//! Any bytes from the network, as a datagram and as a TCP stream: the wire layer must answer
//! with a message or a rejection, never panic, and a message it accepts must survive a round
//! trip through its own serialisation.
#![no_main]

use hotline::sip::{dialog, sdp, transaction, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
        let _ = sdp::parse_offer(&String::from_utf8_lossy(&m.body)).map(|o| o.negotiate());
    }
    let _ = wire::parse_stream(data);
});

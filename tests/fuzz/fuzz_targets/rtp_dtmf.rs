//! Any bytes as an RTP packet, an RFC 4733 event, a SIP INFO body and audio: never a panic.
#![no_main]

use hotline::media::{dtmf, g711::Law, recorder::Recorder, rtp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
    let text = String::from_utf8_lossy(data);
    let _ = dtmf::from_info("application/dtmf-relay", &text);
    let _ = dtmf::from_info("application/dtmf", &text);
    let _ = recorder.finish();
});

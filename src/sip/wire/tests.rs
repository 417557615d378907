use super::*;

fn torture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/sip-torture/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the wire layer must make of each RFC 4475 message: `Ok` (parse, then the method's
/// handler decides) or the status it must answer with (0: a response, dropped unanswered).
const EXPECTED: [(&str, Result<(), u16>); 50] = [
    // 3.1.1: valid, tricky
    ("wsinv", Ok(())),
    ("intmeth", Ok(())),
    ("esc01", Ok(())),
    ("escnull", Ok(())),
    ("esc02", Ok(())),
    ("lwsdisp", Ok(())),
    ("longreq", Ok(())),
    ("dblreq", Ok(())),
    ("semiuri", Ok(())),
    ("transports", Ok(())),
    ("mpart01", Ok(())),
    ("unreason", Ok(())),
    ("noreason", Ok(())),
    // 3.1.2: invalid
    ("badinv01", Err(400)),
    ("clerr", Err(400)),
    ("ncl", Err(400)),
    ("scalar02", Err(400)),
    ("scalarlg", Err(0)),
    ("quotbal", Err(400)),
    ("ltgtruri", Err(400)),
    ("lwsruri", Err(400)),
    ("lwsstart", Err(400)),
    ("trws", Err(400)),
    ("escruri", Err(400)),
    ("baddate", Err(400)),
    ("regbadct", Err(400)),
    ("badaspec", Err(400)),
    ("baddn", Err(400)),
    ("badvers", Err(505)),
    ("mismatch01", Err(400)),
    ("mismatch02", Err(400)),
    ("bigcode", Err(0)),
    // 3.2: transaction layer
    ("badbranch", Ok(())),
    // 3.3: application layer (method handlers answer 420, 415 and the like)
    ("insuf", Err(400)),
    ("unkscm", Err(416)),
    ("novelsc", Err(416)),
    ("unksm2", Ok(())),
    ("bext01", Ok(())),
    ("invut", Ok(())),
    ("regaut01", Ok(())),
    ("multi01", Err(400)),
    ("mcl01", Err(400)),
    ("bcast", Ok(())),
    ("zeromf", Ok(())),
    ("cparam01", Ok(())),
    ("cparam02", Ok(())),
    ("regescrt", Ok(())),
    ("sdp01", Ok(())),
    // 3.4: backward compatibility
    ("inv2543", Ok(())),
    // Not referenced by the RFC: a request line without a SIP version.
    ("test", Err(400)),
];

fn verdict(bytes: &[u8]) -> Result<Message, Reject> {
    let m = parse_datagram(bytes)?;
    validate(&m)?;
    Ok(m)
}

#[test]
fn every_torture_message_gets_what_rfc_4475_says() {
    let dir = format!("{}/tests/data/sip-torture", env!("CARGO_MANIFEST_DIR"));
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dat")
        })
        .count();
    assert_eq!(files, EXPECTED.len(), "every file has an expectation");
    let mut wrong = Vec::new();
    for (name, want) in EXPECTED {
        let got = verdict(&torture(name)).map(|_| ()).map_err(|r| r.status);
        if got != want {
            let why = verdict(&torture(name))
                .err()
                .map(|r| r.reason)
                .unwrap_or_default();
            wrong.push(format!("{name}: want {want:?}, got {got:?} {why}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_rejected_request_keeps_what_the_answer_needs() {
    let r = verdict(&torture("mismatch01")).unwrap_err();
    let m = r.message.expect("the request, to answer it");
    let resp = response_to(&m, r.status, &r.reason, Some("abc"), &[], Vec::new());
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(
        text.starts_with("SIP/2.0 400 CSeq Method Does Not Match\r\n"),
        "{text}"
    );
    assert!(text.contains("Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\n"));
    assert!(text.contains("To: sip:j.user@example.com;tag=abc\r\n"));
    assert!(text.contains("Call-ID: mismatch01.dj0234sxdfl3\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}

#[test]
fn folding_compact_names_and_whitespace_are_normalised() {
    let m = verdict(&torture("wsinv")).unwrap();
    assert_eq!(m.get("call-id"), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(m.get("Max-Forwards"), Some("0068"));
    assert_eq!(
        m.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        parse_cseq(m.get("CSeq").unwrap()),
        Some((9, "INVITE".into()))
    );
    let vias: Vec<Via> = m
        .all("Via")
        .flat_map(split_list)
        .map(|v| parse_via(v).unwrap())
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(
        (
            vias[1].transport.as_str(),
            vias[1].host.as_str(),
            vias[1].branch()
        ),
        ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    let to = parse_name_addr(m.get("To").unwrap()).unwrap();
    assert_eq!(to.param("tag"), Some("1918181833n"));
    let from = parse_name_addr(m.get("From").unwrap()).unwrap();
    assert_eq!(from.param("tag"), Some("98asjd8"));
    assert_eq!(m.body.len(), 150);
}

#[test]
fn a_datagram_with_two_requests_keeps_only_the_first() {
    let m = verdict(&torture("dblreq")).unwrap();
    assert_eq!(m.method(), Some("REGISTER"));
    assert!(m.body.is_empty());
}

#[test]
fn streams_are_framed_by_content_length() {
    let one = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nl: 4\r\n\r\nbody";
    let mut two = b"\r\n\r\n".to_vec();
    two.extend_from_slice(one);
    two.extend_from_slice(one);
    for cut in [10, one.len() - 2] {
        assert!(
            matches!(parse_stream(&one[..cut]), Ok(Framed::Incomplete)),
            "cut at {cut}"
        );
    }
    let Ok(Framed::Complete(m, used)) = parse_stream(&two) else {
        panic!()
    };
    assert_eq!((m.body.as_slice(), used), (&b"body"[..], 4 + one.len()));
    let Ok(Framed::Complete(_, used2)) = parse_stream(&two[used..]) else {
        panic!()
    };
    assert_eq!(used + used2, two.len());
    // On a stream, a message must say how long its body is.
    let no_length = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
    assert_eq!(parse_stream(no_length).unwrap_err().status, 400);
}

#[test]
fn hostile_input_is_refused_not_panicked_on() {
    let huge_cl = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
    assert_eq!(parse_datagram(huge_cl).unwrap_err().status, 400);
    assert_eq!(parse_datagram(b"").unwrap_err().status, 400);
    assert_eq!(parse_datagram(b"\xff\xfe\r\n\r\n").unwrap_err().status, 400);
    assert_eq!(
        parse_datagram(b" folded\r\nX: y\r\n\r\n")
            .unwrap_err()
            .status,
        400
    );
    let many: String =
        "OPTIONS sip:a@b SIP/2.0\r\n".to_string() + &"X: y\r\n".repeat(1000) + "\r\n";
    assert_eq!(parse_datagram(many.as_bytes()).unwrap_err().status, 400);
    assert!(matches!(
        parse_stream(&vec![b'a'; 70_000]),
        Err(Reject { status: 400, .. })
    ));
    // Random bytes: any verdict, no panic.
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        let buf: Vec<u8> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                {
                    let alphabet = b"SIP/2.0 \r\n:;<>\"@,=abcINVITE0123 ";
                    alphabet[(x as usize) % alphabet.len()]
                }
            })
            .collect();
        let _ = verdict(&buf);
        let _ = parse_stream(&buf);
    }
}

#[test]
fn the_top_via_records_where_a_request_came_from() {
    let text = "OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP proxy;branch=z9hG4bK0\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: v1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let mut m = parse_datagram(text.as_bytes()).unwrap();
    stamp_via(&mut m, "203.0.113.7:40123".parse().unwrap());
    assert_eq!(
        m.get("Via"),
        Some(
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;received=203.0.113.7;rport=40123, SIP/2.0/UDP proxy;branch=z9hG4bK0"
        )
    );
    let resp = response_to(&m, 200, "OK", Some("t"), &[], Vec::new());
    assert!(resp.get("Via").unwrap().contains("rport=40123"));
    // Same address, no rport: nothing to add.
    let text = text.replace(";rport", "").replace("10.0.0.5", "127.0.0.1");
    let mut m = parse_datagram(text.as_bytes()).unwrap();
    let before = m.get("Via").unwrap().to_string();
    stamp_via(&mut m, "127.0.0.1:5062".parse().unwrap());
    assert_eq!(m.get("Via"), Some(before.as_str()));
}

/// A rejected request is answered, not dropped: every one whose status is not 0 carries what
/// the answer needs (its Via among it), even when its request line is what is wrong.
#[test]
fn every_rejected_request_can_be_answered() {
    for (name, want) in EXPECTED {
        let Err(code) = want else { continue };
        if code == 0 {
            continue;
        }
        let r = verdict(&torture(name)).unwrap_err();
        if name == "test" {
            assert!(r.message.is_none(), "no Via: nothing to answer along");
            continue;
        }
        let m = r
            .message
            .unwrap_or_else(|| panic!("{name}: {} {} unanswerable", r.status, r.reason));
        assert!(m.get("Via").is_some(), "{name}");
        let resp = response_to(&m, r.status, &r.reason, Some("t"), &[], Vec::new());
        assert!(
            String::from_utf8(resp.to_bytes())
                .unwrap()
                .starts_with(&format!("SIP/2.0 {code} ")),
            "{name}"
        );
    }
}

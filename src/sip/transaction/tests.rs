use super::*;

fn torture(name: &str) -> Message {
    let path = format!(
        "{}/tests/data/sip-torture/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    wire::parse_datagram(&std::fs::read(path).unwrap()).unwrap()
}

const INVITE: &str = "INVITE sip:main@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\nFrom: <sip:c@x>;tag=1\r\nTo: <sip:main@127.0.0.1>\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
const OPTIONS: &str = "OPTIONS sip:main@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-2\r\nFrom: <sip:c@x>;tag=1\r\nTo: <sip:main@127.0.0.1>\r\nCall-ID: b\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn msg(s: &str) -> Message {
    wire::parse_datagram(s.as_bytes()).unwrap()
}

fn response(code: u16) -> Message {
    wire::response_to(&msg(INVITE), code, "X", Some("t"), &[], Vec::new())
}

struct Clock(Instant);
impl Clock {
    fn at(&self, s: f64) -> Instant {
        self.0 + Duration::from_secs_f64(s)
    }
    fn secs(&self, t: Instant) -> f64 {
        (t - self.0).as_secs_f64()
    }
}

#[allow(clippy::disallowed_methods)] // the test's own clock origin
fn clock() -> Clock {
    Clock(Instant::now())
}

/// Runs the timers up to `until`, recording when each output happened.
fn run(t: &mut Transaction, c: &Clock, until: f64) -> Vec<(f64, Output)> {
    let mut out = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if at > c.at(until) {
            break;
        }
        for o in t.on_timer(at) {
            out.push(((c.secs(at) * 1000.0).round() / 1000.0, o));
        }
    }
    out
}

fn times(outs: &[(f64, Output)], pred: impl Fn(&Output) -> bool) -> Vec<f64> {
    outs.iter().filter(|o| pred(&o.1)).map(|o| o.0).collect()
}

fn is_resend(o: &Output) -> bool {
    matches!(o, Output::Resend(_))
}

#[test]
fn server_invite_sends_100_and_absorbs_retransmissions() {
    let c = clock();
    let (mut t, out) = Transaction::server(&msg(INVITE), Config::default(), c.at(0.0));
    let Output::Send(trying) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(trying.starts_with(b"SIP/2.0 100 Trying"));
    assert_eq!(
        t.on_request(false, c.at(0.5)),
        vec![Output::Resend(Arc::clone(trying))]
    );
    assert_eq!(t.poll_timeout(), None, "no timers while the owner decides");
}

#[test]
fn timer_g_retransmits_a_failure_until_the_ack_then_timer_i_ends_it() {
    let c = clock();
    let (mut t, _) = Transaction::server(&msg(INVITE), Config::default(), c.at(0.0));
    let busy = response(486).to_bytes();
    assert!(matches!(
        &t.respond(486, busy, c.at(0.0))[..],
        [Output::Send(_)]
    ));
    let outs = run(&mut t, &c, 8.0);
    // T1, doubling, capped at T2 = 4 s.
    assert_eq!(times(&outs, is_resend), [0.5, 1.5, 3.5, 7.5]);
    assert!(
        matches!(&t.on_request(false, c.at(8.0))[..], [Output::Resend(_)]),
        "a retransmitted INVITE gets the 486 again"
    );
    t.on_request(true, c.at(9.0));
    assert_eq!(t.state(), State::Confirmed);
    assert_eq!(t.poll_timeout(), Some(c.at(14.0)), "Timer I: T4");
    run(&mut t, &c, 14.0);
    assert!(t.is_terminated());
}

#[test]
fn timer_h_gives_up_on_a_missing_ack() {
    let c = clock();
    let (mut t, _) = Transaction::server(&msg(INVITE), Config::default(), c.at(0.0));
    t.respond(486, response(486).to_bytes(), c.at(0.0));
    let outs = run(&mut t, &c, 100.0);
    assert_eq!(times(&outs, |o| *o == Output::TimedOut), [32.0], "64*T1");
    assert_eq!(
        times(&outs, is_resend),
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    assert!(t.is_terminated());
}

#[test]
fn a_2xx_is_retransmitted_until_acked() {
    let c = clock();
    let (mut t, _) = Transaction::server(&msg(INVITE), Config::default(), c.at(0.0));
    t.respond(200, response(200).to_bytes(), c.at(0.0));
    assert_eq!(t.state(), State::Accepted);
    let outs = run(&mut t, &c, 2.0);
    assert_eq!(times(&outs, is_resend), [0.5, 1.5]);
    t.on_request(true, c.at(2.0));
    assert!(t.is_terminated());
    // Without an ACK: the call is dead after 64*T1.
    let (mut t, _) = Transaction::server(&msg(INVITE), Config::default(), c.at(0.0));
    t.respond(200, response(200).to_bytes(), c.at(0.0));
    assert_eq!(
        times(&run(&mut t, &c, 100.0), |o| *o == Output::TimedOut),
        [32.0]
    );
}

#[test]
fn timer_j_keeps_a_non_invite_answer_for_retransmissions() {
    let c = clock();
    let (mut t, out) = Transaction::server(&msg(OPTIONS), Config::default(), c.at(0.0));
    assert!(out.is_empty(), "no 100 for non-INVITE");
    assert!(
        t.on_request(false, c.at(0.1)).is_empty(),
        "Trying: nothing to resend yet"
    );
    t.respond(200, b"SIP/2.0 200 OK\r\n\r\n".to_vec(), c.at(0.2));
    assert!(matches!(
        &t.on_request(false, c.at(1.0))[..],
        [Output::Resend(_)]
    ));
    assert_eq!(t.poll_timeout(), Some(c.at(32.2)), "Timer J: 64*T1");
    run(&mut t, &c, 40.0);
    assert!(t.is_terminated());
    // Over TCP nothing is retransmitted, so nothing is waited for.
    let (mut t, _) = Transaction::server(
        &msg(OPTIONS),
        Config {
            reliable: true,
            ..Config::default()
        },
        c.at(0.0),
    );
    t.respond(200, b"SIP/2.0 200 OK\r\n\r\n".to_vec(), c.at(0.0));
    assert!(t.is_terminated());
}

#[test]
fn timers_a_and_b_retransmit_an_invite_then_give_up() {
    let c = clock();
    let (mut t, out) = Transaction::client(
        true,
        INVITE.as_bytes().to_vec(),
        Config::default(),
        c.at(0.0),
    );
    assert!(matches!(&out[..], [Output::Send(_)]));
    let outs = run(&mut t, &c, 40.0);
    assert_eq!(
        times(&outs, is_resend),
        [0.5, 1.5, 3.5, 7.5, 15.5, 31.5],
        "A doubles without a cap"
    );
    assert_eq!(times(&outs, |o| *o == Output::TimedOut), [32.0], "B: 64*T1");
}

#[test]
fn a_provisional_stops_timer_a_and_a_failure_is_acked_then_timer_d() {
    let c = clock();
    let (mut t, _) = Transaction::client(
        true,
        INVITE.as_bytes().to_vec(),
        Config::default(),
        c.at(0.0),
    );
    let out = t.on_response(response(180), |_| Vec::new(), c.at(0.2));
    assert!(matches!(&out[..], [Output::Response(_)]));
    assert!(
        times(&run(&mut t, &c, 5.0), is_resend).is_empty(),
        "ringing: no more retransmits"
    );
    let out = t.on_response(response(486), |_| b"ACK".to_vec(), c.at(6.0));
    assert!(matches!(&out[..], [Output::Send(a), Output::Response(_)] if &a[..] == b"ACK"));
    // A retransmitted 486 is ACKed again, and not passed up twice.
    assert!(
        matches!(&t.on_response(response(486), |_| Vec::new(), c.at(7.0))[..], [Output::Resend(a)] if &a[..] == b"ACK")
    );
    assert_eq!(t.poll_timeout(), Some(c.at(38.0)), "Timer D: 32 s");
    run(&mut t, &c, 40.0);
    assert!(t.is_terminated());
}

#[test]
fn timers_e_f_and_k_for_non_invite_requests() {
    let c = clock();
    let (mut t, _) = Transaction::client(
        false,
        OPTIONS.as_bytes().to_vec(),
        Config::default(),
        c.at(0.0),
    );
    let outs = run(&mut t, &c, 40.0);
    assert_eq!(
        times(&outs, is_resend),
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        "E: T1 doubling to T2"
    );
    assert_eq!(times(&outs, |o| *o == Output::TimedOut), [32.0], "F: 64*T1");
    let (mut t, _) = Transaction::client(
        false,
        OPTIONS.as_bytes().to_vec(),
        Config::default(),
        c.at(0.0),
    );
    t.on_response(response(100), |_| Vec::new(), c.at(0.1));
    assert_eq!(
        times(&run(&mut t, &c, 9.0), is_resend),
        [0.5, 4.5, 8.5],
        "Proceeding: every T2"
    );
    t.on_response(response(200), |_| Vec::new(), c.at(9.0));
    assert_eq!(t.poll_timeout(), Some(c.at(14.0)), "K: T4");
    run(&mut t, &c, 20.0);
    assert!(t.is_terminated());
}

#[test]
fn over_tcp_there_are_no_retransmit_timers() {
    let c = clock();
    let tcp = Config {
        reliable: true,
        ..Config::default()
    };
    let (mut t, _) = Transaction::client(true, INVITE.as_bytes().to_vec(), tcp, c.at(0.0));
    let outs = run(&mut t, &c, 40.0);
    assert!(times(&outs, is_resend).is_empty());
    assert_eq!(times(&outs, |o| *o == Output::TimedOut), [32.0]);
    let (mut t, _) = Transaction::server(&msg(INVITE), tcp, c.at(0.0));
    t.respond(486, response(486).to_bytes(), c.at(0.0));
    t.on_request(true, c.at(1.0));
    assert!(t.is_terminated(), "Timer I is 0 on TCP");
}

#[test]
fn transaction_keys_with_and_without_an_rfc_3261_branch() {
    let a = Key::of(&msg(INVITE), "INVITE").unwrap();
    assert!(
        matches!(&a, Key::Branch { branch, sent_by, .. } if branch == "z9hG4bK-1" && sent_by == "127.0.0.1:5061")
    );
    assert_ne!(Key::of(&msg(INVITE), "ACK"), Some(a));
    // A branch that is only the magic cookie is not unique: fall back to RFC 2543 matching.
    assert!(matches!(
        Key::of(&torture("badbranch"), "OPTIONS"),
        Some(Key::Rfc2543 { .. })
    ));
    assert!(matches!(
        Key::of(&torture("inv2543"), "INVITE"),
        Some(Key::Rfc2543 { cseq: 56, .. })
    ));
}

//! The calls hotline answers, on a virtual clock: a scripted caller's phone sends INVITE,
//! ACK, CANCEL, INFO, re-INVITE and BYE (or loses them), and `switch::uas` answers without a
//! socket. Timer H's 32 s take microseconds. The driver here does what `server/` does: it
//! takes every call for a line and answers it as told.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hotline::sip::link::Link;
use hotline::sip::sdp::Direction;
use hotline::sip::transaction;
use hotline::sip::wire::{self, Message, Start};
use hotline::switch::admission::Admission;
use hotline::switch::uas::{Answer, Input, Output, Signal, Uas};
use hotline::switch::{Entropy, Local};

struct Counter(u64);

impl Entropy for Counter {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0 * 0x9E37_79B9
    }
    fn key(&mut self) -> [u8; 30] {
        [7; 30]
    }
}

/// What the driver saw happen to a call.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Started(String),
    Session(String, Signal),
    Gone(String, bool),
}

struct Sim {
    uas: Uas,
    start: Instant,
    now: Instant,
    /// What went on the wire: when, to whom, what, and whether a retransmission.
    wire: Vec<(Duration, SocketAddr, Message, bool)>,
    seen: Vec<Seen>,
    /// How the driver answers the calls it takes.
    answer: Answer,
    /// Calls taken (rung).
    taken: usize,
}

const CALLER: u16 = 5080;

fn phone(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn caller_sdp(direction: &str) -> String {
    format!(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

impl Sim {
    #[allow(clippy::disallowed_methods)] // the clock is virtual; any origin will do
    fn new(max_calls: u32, answer: Answer) -> Sim {
        let local = Local {
            advertise: "127.0.0.1".into(),
            port: 5060,
            tls_port: None,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            timers: transaction::Config::default(),
        };
        let start = Instant::now();
        let admission = Admission::new(max_calls, 0, start);
        Sim {
            uas: Uas::new(local, Box::new(Counter(0)), admission, false),
            start,
            now: start,
            wire: Vec::new(),
            seen: Vec::new(),
            answer,
            taken: 0,
        }
    }

    fn pump(&mut self) {
        while let Some(o) = self.uas.poll_output() {
            match o {
                Output::Transmit {
                    peer,
                    bytes,
                    resend,
                    ..
                } => {
                    let msg = wire::parse_datagram(&bytes).expect("valid SIP goes out");
                    self.wire.push((self.now - self.start, peer, msg, resend));
                }
                Output::Invite {
                    key,
                    req,
                    link,
                    peer,
                } => {
                    if let Some(offered) = self.uas.offer(&key, &req, link, peer, false, self.now) {
                        self.uas.ring(offered, 30_000, self.answer, self.now);
                        self.taken += 1;
                    }
                }
                Output::Register { key, req, .. } => {
                    self.uas.respond(&key, &req, 200, "OK", &[], self.now)
                }
                Output::Start { call_id, .. } => self.seen.push(Seen::Started(call_id)),
                Output::Session { call_id, signal } => {
                    self.seen.push(Seen::Session(call_id, signal))
                }
                Output::Gone { call_id, cancelled } => {
                    self.seen.push(Seen::Gone(call_id, cancelled))
                }
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(t) = self.uas.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            self.uas.handle(Input::Timeout, self.now);
            self.pump();
        }
        self.now = until;
    }

    fn send(&mut self, text: &str) {
        let msg = wire::parse_datagram(text.as_bytes()).expect("the script is valid SIP");
        self.uas.handle(
            Input::Message {
                msg,
                link: Link::Udp,
                peer: phone(CALLER),
            },
            self.now,
        );
        self.pump();
    }

    /// Responses to the caller: status and CSeq, retransmissions included when `all`.
    fn responses(&self, all: bool) -> Vec<(u16, String)> {
        self.wire
            .iter()
            .filter(|(_, _, _, resend)| all || !resend)
            .filter_map(|(_, _, m, _)| match &m.start {
                Start::Response { code, .. } => {
                    Some((*code, m.get("CSeq").unwrap_or_default().to_string()))
                }
                Start::Request { .. } => None,
            })
            .collect()
    }

    fn requests(&self, method: &str) -> Vec<&Message> {
        self.wire
            .iter()
            .filter(|(_, _, m, resend)| !resend && m.method() == Some(method))
            .map(|(_, _, m, _)| m)
            .collect()
    }

    /// Our To tag in the call's answers (the dialog's local tag).
    fn our_tag(&self) -> String {
        self.wire
            .iter()
            .filter_map(|(_, _, m, _)| m.get("To").and_then(wire::parse_name_addr))
            .find_map(|n| n.param("tag").map(str::to_string))
            .expect("a tagged answer went out")
    }

    fn take_seen(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.seen)
    }
}

/// A request from the caller: `call` names the dialog, `to_tag` puts it inside it.
fn request(
    method: &str,
    call: &str,
    cseq: u32,
    branch: &str,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    let cseq_method = if method == "ACK" && branch.ends_with("-invite") {
        "ACK"
    } else {
        method
    };
    format!(
        "{method} sip:main@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{CALLER};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+34600111222@carrier.test>;tag=caller-tag\r\n\
         To: <sip:main@127.0.0.1>{to_tag}\r\n\
         Call-ID: {call}\r\n\
         CSeq: {cseq} {cseq_method}\r\n\
         Contact: <sip:caller@127.0.0.1:{CALLER}>\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        len = body.len(),
    )
}

fn invite(call: &str, body: &str) -> String {
    request("INVITE", call, 1, &format!("{call}-invite"), None, body)
}

/// The ACK of a 2xx: a transaction of its own, in the dialog.
fn ack(sim: &Sim, call: &str, cseq: u32, body: &str) -> String {
    request(
        "ACK",
        call,
        cseq,
        &format!("{call}-ack-{cseq}"),
        Some(&sim.our_tag()),
        body,
    )
}

fn in_dialog(sim: &Sim, method: &str, call: &str, cseq: u32, body: &str) -> String {
    let branch = format!("{call}-{}-{cseq}", method.to_ascii_lowercase());
    request(method, call, cseq, &branch, Some(&sim.our_tag()), body)
}

#[test]
fn a_call_is_answered_with_our_sdp_started_on_its_offer_and_ended_by_its_bye() {
    let mut sim = Sim::new(0, Answer::Now);
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    assert_eq!(
        sim.responses(false),
        vec![(100, "1 INVITE".into()), (200, "1 INVITE".into())]
    );
    let ok = &sim.wire[1].2;
    let sdp = String::from_utf8_lossy(&ok.body);
    assert!(sdp.contains("m=audio 30000 RTP/AVP 0"), "{sdp}");
    assert!(
        ok.get("Contact")
            .is_some_and(|c| c.contains("127.0.0.1:5060"))
    );
    assert_eq!(sim.take_seen(), vec![Seen::Started("c1".into())]);
    // The ACK stops the 200's retransmissions.
    sim.send(&ack(&sim, "c1", 1, ""));
    sim.advance(10_000);
    assert_eq!(sim.responses(true).len(), 2, "no 200 again after the ACK");
    sim.send(&in_dialog(&sim, "BYE", "c1", 2, ""));
    assert_eq!(sim.responses(false).last(), Some(&(200, "2 BYE".into())));
    assert_eq!(
        sim.take_seen(),
        vec![Seen::Session("c1".into(), Signal::Hangup)]
    );
    // The session ends; every transaction's timer runs out.
    sim.uas.ended("c1");
    sim.advance(40_000);
    assert!(sim.uas.is_empty());
    assert_eq!(sim.uas.transactions(), 0);
    assert_eq!(sim.uas.poll_timeout(), None);
}

#[test]
fn a_call_rings_then_is_answered_after_the_configured_delay() {
    let mut sim = Sim::new(0, Answer::After(Duration::from_millis(1500)));
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    assert_eq!(
        sim.responses(false),
        vec![(100, "1 INVITE".into()), (180, "1 INVITE".into())]
    );
    assert!(sim.uas.is_ringing("c1"));
    sim.advance(1_499);
    assert_eq!(sim.responses(false).len(), 2, "still ringing");
    sim.advance(1);
    assert_eq!(sim.responses(false).last(), Some(&(200, "1 INVITE".into())));
    assert_eq!(sim.take_seen(), vec![Seen::Started("c1".into())]);
}

#[test]
fn a_caller_who_cancels_while_it_rings_gets_487_and_the_call_is_gone() {
    let mut sim = Sim::new(0, Answer::After(Duration::from_secs(5)));
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    sim.advance(1_000);
    // A CANCEL is the INVITE's branch and CSeq number, its own method.
    sim.send(&request("CANCEL", "c1", 1, "c1-invite", None, ""));
    let answers = sim.responses(false);
    assert!(answers.contains(&(200, "1 CANCEL".into())), "{answers:?}");
    assert!(answers.contains(&(487, "1 INVITE".into())), "{answers:?}");
    assert_eq!(sim.take_seen(), vec![Seen::Gone("c1".into(), true)]);
    // The answer timer fires into nothing; the 487's ACK ends its transaction.
    sim.send(&request(
        "ACK",
        "c1",
        1,
        "c1-invite",
        Some(&sim.our_tag()),
        "",
    ));
    sim.advance(40_000);
    assert!(
        !sim.responses(false)
            .iter()
            .any(|r| r.0 == 200 && r.1 == "1 INVITE")
    );
    assert!(sim.uas.is_empty());
    assert_eq!(sim.uas.transactions(), 0);
    // A CANCEL for nothing we know: 481.
    sim.send(&request("CANCEL", "c9", 1, "c9-invite", None, ""));
    assert_eq!(sim.responses(false).last(), Some(&(481, "1 CANCEL".into())));
}

#[test]
fn a_200_never_acknowledged_is_resent_then_the_call_ends_with_a_bye_at_timer_h() {
    let mut sim = Sim::new(0, Answer::Now);
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    sim.take_seen();
    sim.advance(31_000);
    let resent: Vec<Duration> = sim
        .wire
        .iter()
        .filter(|(_, _, m, resend)| *resend && matches!(m.start, Start::Response { code: 200, .. }))
        .map(|(at, ..)| *at)
        .collect();
    // 0.5 s, then doubling to T2 (4 s), then every 4 s.
    assert_eq!(resent.first(), Some(&Duration::from_millis(500)));
    assert_eq!(resent.get(1), Some(&Duration::from_millis(1500)));
    assert!(resent.len() >= 8, "{resent:?}");
    assert!(sim.requests("BYE").is_empty(), "not yet");
    sim.advance(1_000);
    assert_eq!(sim.requests("BYE").len(), 1, "Timer H (64·T1) ended it");
    assert_eq!(
        sim.take_seen(),
        vec![Seen::Session("c1".into(), Signal::Hangup)]
    );
}

#[test]
fn a_delayed_offer_gets_ours_in_the_200_and_starts_on_the_acks_answer() {
    let mut sim = Sim::new(0, Answer::Now);
    sim.send(&invite("c1", ""));
    let ok = sim.wire.last().map(|w| w.2.clone()).expect("an answer");
    assert!(matches!(ok.start, Start::Response { code: 200, .. }));
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 30000"));
    assert!(sim.take_seen().is_empty(), "no media agreed yet");
    sim.send(&ack(&sim, "c1", 1, &caller_sdp("sendrecv")));
    assert_eq!(sim.take_seen(), vec![Seen::Started("c1".into())]);

    // An ACK with no answer we can use ends the call: BYE, and it is gone.
    sim.send(&invite("c2", ""));
    let mut no_answer = ack(&sim, "c2", 1, "");
    no_answer = no_answer.replace(
        &format!("tag={}", sim.our_tag()),
        &format!("tag={}", tag_of(&sim, "c2")),
    );
    sim.send(&no_answer);
    assert_eq!(sim.take_seen(), vec![Seen::Gone("c2".into(), false)]);
    assert_eq!(sim.requests("BYE").len(), 1);
    assert!(!sim.uas.contains("c2"));
}

/// Our tag in the answers of one call.
fn tag_of(sim: &Sim, call: &str) -> String {
    sim.wire
        .iter()
        .filter(|(_, _, m, _)| m.get("Call-ID") == Some(call))
        .filter_map(|(_, _, m, _)| m.get("To").and_then(wire::parse_name_addr))
        .find_map(|n| n.param("tag").map(str::to_string))
        .expect("a tagged answer")
}

#[test]
fn hold_info_digits_and_a_stale_cseq_reach_the_session_as_they_should() {
    let mut sim = Sim::new(0, Answer::Now);
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    sim.send(&ack(&sim, "c1", 1, ""));
    sim.take_seen();
    // Hold: a re-INVITE with sendonly; our answer says recvonly, and so does the session's
    // media from now on (we only receive).
    sim.send(&in_dialog(&sim, "INVITE", "c1", 2, &caller_sdp("sendonly")));
    let ok = sim.wire.last().map(|w| w.2.clone()).expect("an answer");
    assert!(String::from_utf8_lossy(&ok.body).contains("a=recvonly"));
    let seen = sim.take_seen();
    assert!(
        matches!(
            &seen[..],
            [Seen::Session(
                _,
                Signal::Media {
                    direction: Direction::RecvOnly,
                    ..
                }
            )]
        ),
        "{seen:?}"
    );
    sim.send(&ack(&sim, "c1", 2, ""));
    // A key as SIP INFO.
    let info = in_dialog(&sim, "INFO", "c1", 3, "").replace(
        "Content-Length: 0",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 24",
    ) + "Signal=5\r\nDuration=160\r\n";
    sim.send(&info);
    assert_eq!(sim.responses(false).last(), Some(&(200, "3 INFO".into())));
    assert_eq!(
        sim.take_seen(),
        vec![Seen::Session("c1".into(), Signal::Digit('5'))]
    );
    // An older CSeq than the dialog's last is refused, and reaches no one.
    sim.send(&in_dialog(&sim, "INFO", "c1", 2, ""));
    let last = sim.responses(false).last().cloned();
    assert!(
        last.as_ref().is_some_and(|(code, _)| *code == 500),
        "{last:?}"
    );
    assert!(sim.take_seen().is_empty());
    // A request in a dialog we do not know: 481.
    sim.send(&request("BYE", "c7", 2, "c7-bye", Some("nope"), ""));
    assert_eq!(sim.responses(false).last(), Some(&(481, "2 BYE".into())));
}

#[test]
fn a_full_line_turns_new_calls_away_with_503_and_keeps_no_state_for_them() {
    let mut sim = Sim::new(1, Answer::Now);
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    sim.send(&ack(&sim, "c1", 1, ""));
    let before = sim.uas.transactions();
    sim.send(&invite("c2", &caller_sdp("sendrecv")));
    let refused = sim.wire.last().map(|w| w.2.clone()).expect("an answer");
    assert!(
        matches!(refused.start, Start::Response { code: 503, ref reason } if reason == "Too Many Calls")
    );
    assert_eq!(refused.get("Retry-After"), Some("5"));
    assert_eq!(sim.uas.transactions(), before, "stateless");
    assert_eq!(sim.uas.take_counts().1, 1, "counted as refused");
    assert!(!sim.uas.contains("c2"));
    // The first call's INVITE again (a retransmission) is not a new call.
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    assert!(
        !sim.wire
            .iter()
            .filter(|w| w.2.get("Call-ID") == Some("c1"))
            .any(|w| matches!(w.2.start, Start::Response { code: 503, .. }))
    );
}

#[test]
fn a_200_never_acknowledged_gives_way_to_a_new_call_on_a_full_line() {
    let mut sim = Sim::new(1, Answer::Now);
    sim.send(&invite("c1", &caller_sdp("sendrecv")));
    sim.take_seen();
    sim.advance(5_000);
    // Four seconds unconfirmed: the flood's call is ended (this caller is still turned
    // away: its session has yet to let go)...
    sim.send(&invite("c2", &caller_sdp("sendrecv")));
    assert_eq!(
        sim.take_seen(),
        vec![Seen::Session("c1".into(), Signal::Hangup)]
    );
    assert_eq!(sim.requests("BYE").len(), 1);
    assert!(!sim.uas.contains("c2"));
    // ... and once it has, the next one gets in, 28 s before Timer H would have let it.
    sim.uas.ended("c1");
    sim.send(&invite("c3", &caller_sdp("sendrecv")));
    assert_eq!(sim.take_seen(), vec![Seen::Started("c3".into())]);
}

#[test]
fn draining_refuses_new_calls_then_shutdown_ends_every_call_in_its_own_way() {
    let mut sim = Sim::new(0, Answer::Held);
    sim.send(&invite("ringing", &caller_sdp("sendrecv")));
    sim.send(&invite("started", &caller_sdp("sendrecv")));
    sim.uas.answer("started", sim.now);
    sim.pump();
    sim.send(&invite("awaiting", ""));
    sim.uas.answer("awaiting", sim.now);
    sim.pump();
    sim.take_seen();
    sim.uas.drain();
    sim.send(&invite("late", &caller_sdp("sendrecv")));
    let late = sim.wire.last().map(|w| w.2.clone()).expect("an answer");
    assert!(matches!(late.start, Start::Response { code: 503, .. }));
    assert_eq!(late.get("Retry-After"), Some("60"));
    assert_eq!(sim.uas.len(), 3);

    sim.uas.shut_down(sim.now);
    sim.pump();
    let mut seen = sim.take_seen();
    seen.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        seen,
        vec![
            Seen::Gone("awaiting".into(), false),
            Seen::Gone("ringing".into(), false),
            Seen::Session("started".into(), Signal::Shutdown),
        ]
    );
    let ringing_503 = sim.wire.iter().any(|w| {
        w.2.get("Call-ID") == Some("ringing")
            && matches!(w.2.start, Start::Response { code: 503, .. })
    });
    assert!(ringing_503, "the ringing call is refused 503");
    let byes: Vec<&str> = sim
        .requests("BYE")
        .iter()
        .filter_map(|m| m.get("Call-ID"))
        .collect();
    assert_eq!(byes, vec!["awaiting"]);
    sim.uas.ended("started");
    sim.advance(60_000);
    assert!(sim.uas.is_empty());
    assert!(!sim.uas.requests_pending());
}

/// What a caller's phone (or the call's own session) does, at one step of a script.
#[derive(Debug, Clone)]
enum Step {
    /// Time passes (ms).
    Wait(u64),
    /// The INVITE (again, when it is a retransmission); `offer`: with SDP.
    Invite {
        offer: bool,
    },
    /// The ACK of our 2xx; `answer`: with SDP.
    Ack {
        answer: bool,
    },
    Cancel,
    Bye,
    /// A re-INVITE putting us on hold.
    Hold,
    Info,
    /// The driver answers a call it held ringing.
    Answer,
    /// The flow hangs up: BYE, and the session ends.
    FlowHangsUp,
    /// The server drains, and its grace period ends.
    Shutdown,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0u64..40_000).prop_map(Step::Wait),
        2 => proptest::bool::ANY.prop_map(|offer| Step::Invite { offer }),
        2 => proptest::bool::ANY.prop_map(|answer| Step::Ack { answer }),
        1 => Just(Step::Cancel),
        1 => Just(Step::Bye),
        1 => Just(Step::Hold),
        1 => Just(Step::Info),
        2 => Just(Step::Answer),
        1 => Just(Step::FlowHangsUp),
        1 => Just(Step::Shutdown),
    ]
}

fn answer_mode() -> impl proptest::strategy::Strategy<Value = Answer> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Answer::Now),
        Just(Answer::Held),
        (1u64..5_000).prop_map(|ms| Answer::After(Duration::from_millis(ms))),
    ]
}

impl Sim {
    /// The driver's side of the call: a session told the caller hung up (or the server shuts
    /// down) ends, and says so.
    fn sessions_end(&mut self, seen: &mut Vec<Seen>) {
        for s in self.take_seen() {
            if let Seen::Session(id, Signal::Hangup | Signal::Shutdown) = &s {
                self.uas.ended(id);
            }
            seen.push(s);
        }
    }

    /// Our tag for the call, when an answer carried one.
    fn tag_if_any(&self) -> Option<String> {
        self.wire
            .iter()
            .filter(|(_, _, m, _)| matches!(m.start, Start::Response { code: 101.., .. }))
            .filter_map(|(_, _, m, _)| m.get("To").and_then(wire::parse_name_addr))
            .find_map(|n| n.param("tag").map(str::to_string))
    }

    /// The caller's phone answers our BYEs (when it answers at all).
    fn caller_reacts(&mut self, seen_wire: &mut usize, answers_bye: bool) {
        while *seen_wire < self.wire.len() {
            let (_, _, msg, resend) = self.wire[*seen_wire].clone();
            *seen_wire += 1;
            if answers_bye && !resend && msg.method() == Some("BYE") {
                let ok = wire::response_to(&msg, 200, "OK", None, &[], Vec::new());
                self.uas.handle(
                    Input::Message {
                        msg: ok,
                        link: Link::Udp,
                        peer: phone(CALLER),
                    },
                    self.now,
                );
                self.pump();
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

    /// Every call hotline answers is freed, with its transactions and timers, within its
    /// deadline, whatever the caller does: INVITEs again, lost or empty ACKs, CANCEL racing
    /// the answer, BYE in every state, hold, INFO, the flow hanging up, shutdown mid-call, a
    /// BYE of ours never answered. And the driver hears of its end once: a session that
    /// started is told to end, a call that never started is gone.
    #[test]
    fn every_answered_call_is_freed_within_its_deadline_whatever_the_caller_does(
        script in proptest::collection::vec(step(), 1..12),
        answer in answer_mode(),
        answers_bye in proptest::bool::ANY,
    ) {
        let mut sim = Sim::new(0, answer);
        let mut seen = Vec::new();
        let mut seen_wire = 0;
        let mut cseq = 1;
        for s in &script {
            match s {
                Step::Wait(ms) => sim.advance(*ms),
                Step::Invite { offer } => {
                    let sdp = if *offer { caller_sdp("sendrecv") } else { String::new() };
                    sim.send(&invite("c1", &sdp));
                }
                Step::Ack { answer } => {
                    if let Some(tag) = sim.tag_if_any() {
                        let sdp = if *answer { caller_sdp("sendrecv") } else { String::new() };
                        let branch = format!("ack-{cseq}");
                        sim.send(&request("ACK", "c1", 1, &branch, Some(&tag), &sdp));
                    }
                }
                Step::Cancel => sim.send(&request("CANCEL", "c1", 1, "c1-invite", None, "")),
                Step::Bye | Step::Hold | Step::Info => {
                    if let Some(tag) = sim.tag_if_any() {
                        cseq += 1;
                        let (method, body) = match s {
                            Step::Bye => ("BYE", String::new()),
                            Step::Hold => ("INVITE", caller_sdp("sendonly")),
                            _ => ("INFO", String::new()),
                        };
                        let branch = format!("{method}-{cseq}");
                        sim.send(&request(method, "c1", cseq, &branch, Some(&tag), &body));
                    }
                }
                Step::Answer => {
                    sim.uas.answer("c1", sim.now);
                    sim.pump();
                }
                Step::FlowHangsUp => {
                    if sim.uas.is_started("c1") {
                        sim.uas.hang_up("c1", sim.now);
                        sim.uas.ended("c1");
                        sim.pump();
                    }
                }
                Step::Shutdown => {
                    sim.uas.drain();
                    sim.uas.shut_down(sim.now);
                    sim.pump();
                }
            }
            sim.sessions_end(&mut seen);
            sim.caller_reacts(&mut seen_wire, answers_bye);
        }
        // The caller goes quiet; a call still ringing or waiting is ended by shutdown, a
        // session still running ends by its flow.
        if sim.uas.is_started("c1") {
            sim.uas.hang_up("c1", sim.now);
            sim.uas.ended("c1");
        }
        sim.uas.shut_down(sim.now);
        sim.pump();
        sim.sessions_end(&mut seen);
        sim.caller_reacts(&mut seen_wire, answers_bye);
        // Every deadline of RFC 3261 is within 64·T1 (32 s) of the last request.
        sim.advance(120_000);
        sim.sessions_end(&mut seen);
        proptest::prop_assert!(sim.uas.is_empty());
        proptest::prop_assert_eq!(sim.uas.transactions(), 0);
        proptest::prop_assert_eq!(sim.uas.poll_timeout(), None, "a timer left");
        proptest::prop_assert!(!sim.uas.requests_pending());
        let started = seen.iter().filter(|s| matches!(s, Seen::Started(_))).count();
        let gone = seen.iter().filter(|s| matches!(s, Seen::Gone(..))).count();
        // (An INVITE again after its transaction is over is a new call.)
        proptest::prop_assert_eq!(started + gone, sim.taken, "{:?}", seen);
    }
}

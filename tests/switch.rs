//! The switch on a virtual clock: scripted phones answer, refuse, ring out and hang up the
//! calls hotline places, with no socket and no waiting. Timer B's 32 s take microseconds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hotline::sip::link::Link;
use hotline::sip::sdp;
use hotline::sip::transaction;
use hotline::sip::wire::{self, Message, Start};
use hotline::switch::{
    Context, Dial, Entropy, Event, Input, Local, Output, Party, Phase, Switch, Unreached, admission,
};

/// Counts instead of guessing: every run of a test sees the same tags and branches.
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

/// A message the switch sent, and when.
struct Sent {
    at: Duration,
    link: Link,
    peer: SocketAddr,
    msg: Message,
    resend: bool,
}

struct Sim {
    switch: Switch,
    start: Instant,
    now: Instant,
    wire: Vec<Sent>,
    events: Vec<Event>,
    /// TCP connections the switch asked for: the leg and where.
    connects: Vec<(String, SocketAddr)>,
}

const DESK: u16 = 5070;
const MOBILE: u16 = 5072;

fn phone(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The SDP a scripted phone answers with.
fn phone_sdp(rtp: u16) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

impl Sim {
    #[allow(clippy::disallowed_methods)] // the clock is virtual; any origin will do
    fn new() -> Sim {
        let local = Local {
            advertise: "127.0.0.1".into(),
            port: 5060,
            tls_port: None,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            timers: transaction::Config::default(),
        };
        let start = Instant::now();
        Sim {
            switch: Switch::new(local, Box::new(Counter(0))),
            start,
            now: start,
            wire: Vec::new(),
            events: Vec::new(),
            connects: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(o) = self.switch.poll_output() {
            match o {
                Output::Transmit {
                    link,
                    peer,
                    bytes,
                    resend,
                } => self.wire.push(Sent {
                    at: self.now - self.start,
                    link,
                    peer,
                    msg: wire::parse_datagram(&bytes).expect("the switch sends valid SIP"),
                    resend,
                }),
                Output::Event(e) => self.events.push(e),
                Output::Connect { leg, peer } => self.connects.push((leg, peer)),
            }
        }
    }

    /// Moves the clock on by `ms`, firing every timeout on the way at its own time.
    fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(t) = self.switch.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            self.switch.handle(Input::Timeout, self.now);
            self.pump();
        }
        self.now = until;
    }

    fn deliver(&mut self, msg: Message, from: SocketAddr) {
        assert!(self.switch.owns(&msg), "the switch owns {:?}", msg.start);
        self.switch.handle(
            Input::Message {
                msg,
                link: Link::Udp,
                peer: from,
            },
            self.now,
        );
        self.pump();
    }

    /// A message from the network as the server hands it over: to the switch when it is one
    /// of its legs', else dropped (a stray response, a request for a leg long gone).
    fn offer(&mut self, msg: Message, from: SocketAddr) {
        if self.switch.owns(&msg) {
            self.deliver(msg, from);
        }
    }

    fn place(&mut self, port: u16, context: Option<Context>) -> String {
        let dial = Dial {
            uri: format!("sip:alice@127.0.0.1:{port}"),
            to: "sip:alice@hotline.test".into(),
            from: Party {
                display: "Ana \"the\" García\\".into(),
                uri: "sip:+34600111222@carrier.test".into(),
            },
            assert_identity: true,
            link: Link::Udp,
            peer: phone(port),
            rtp_port: 41000,
            srtp: sdp::OfferSrtp::No,
            context,
            media: u64::from(port),
            auth: None,
            redirect: None,
        };
        let id = self.switch.place(dial, self.now);
        self.pump();
        id
    }

    /// What the switch sent `peer` with this method (requests) or to this CSeq (responses),
    /// first transmissions only.
    fn sent(&self, peer: SocketAddr, method: &str) -> Vec<&Message> {
        self.wire
            .iter()
            .filter(|s| s.peer == peer && !s.resend)
            .filter(|s| match &s.msg.start {
                Start::Request { method: m, .. } => m == method,
                Start::Response { .. } => false,
            })
            .map(|s| &s.msg)
            .collect()
    }

    fn responses(&self, peer: SocketAddr) -> Vec<(u16, String)> {
        self.wire
            .iter()
            .filter(|s| s.peer == peer)
            .filter_map(|s| match &s.msg.start {
                Start::Response { code, .. } => {
                    Some((*code, s.msg.get("CSeq").unwrap_or_default().to_string()))
                }
                Start::Request { .. } => None,
            })
            .collect()
    }

    fn invite_to(&self, peer: SocketAddr) -> Message {
        self.sent(peer, "INVITE")
            .first()
            .map(|m| (*m).clone())
            .expect("an INVITE was sent")
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The phone's answer to a request, with its tag and Contact (where it was dialled).
fn answer(req: &Message, code: u16, reason: &str, body: Option<String>) -> Message {
    let contact = match &req.start {
        Start::Request { uri, .. } if uri.contains("127.0.0.1") => uri.as_str(),
        _ => "sip:alice@127.0.0.1:5070",
    };
    let mut extra = vec![("Contact".to_string(), format!("<{contact}>"))];
    if body.is_some() {
        extra.push(("Content-Type".into(), "application/sdp".into()));
    }
    wire::response_to(
        req,
        code,
        reason,
        Some("phone-tag"),
        &extra,
        body.unwrap_or_default().into_bytes(),
    )
}

/// A request the phone sends inside the leg's dialog.
fn from_phone(sim: &Sim, peer: SocketAddr, method: &str, cseq: u32, body: &str) -> Message {
    let invite = sim.invite_to(peer);
    let ours = invite.get("From").unwrap_or_default();
    let text = format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-phone-{method}-{cseq}\r\n\
         From: <sip:alice@hotline.test>;tag=phone-tag\r\n\
         To: {ours}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@127.0.0.1:{port}>\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        port = peer.port(),
        call_id = invite.get("Call-ID").unwrap_or_default(),
        ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        },
        len = body.len(),
    );
    wire::parse_datagram(text.as_bytes()).expect("a valid request")
}

fn answered(events: &[Event], leg: &str) -> Option<sdp::Agreed> {
    events.iter().find_map(|e| match e {
        Event::Answered { leg: l, agreed } if l == leg => Some(*agreed),
        _ => None,
    })
}

fn closed(events: &[Event], leg: &str) -> Option<bool> {
    events.iter().find_map(|e| match e {
        Event::Closed { leg: l, up, .. } if l == leg => Some(*up),
        _ => None,
    })
}

#[test]
fn the_invite_says_who_calls_and_what_they_told_the_line_and_nothing_they_could_inject() {
    let mut sim = Sim::new();
    let context = Context {
        caller: "sip:+34600111222@carrier.test\r\nX-Evil: 1".into(),
        queue: Some("support".into()),
        path: vec!["menu".into(), "support".into()],
        waited: Some(Duration::from_secs(42)),
        callback_attempt: None,
        variables: vec![("order id".into(), "A-17".into())],
        transferred_by: Some("alice".into()),
        transfer_note: Some("wants a refund\r\nX-Evil: 2".into()),
    };
    sim.place(DESK, Some(context));
    let invite = sim.invite_to(phone(DESK));
    let from = invite.get("From").unwrap_or_default();
    assert!(
        from.starts_with("\"Ana the García\" <sip:+34600111222@carrier.test>;tag="),
        "{from}"
    );
    assert_eq!(
        invite.get("P-Asserted-Identity"),
        Some("\"Ana the García\" <sip:+34600111222@carrier.test>")
    );
    assert_eq!(invite.get("To"), Some("<sip:alice@hotline.test>"));
    assert_eq!(invite.get("X-Hotline-Queue"), Some("support"));
    assert_eq!(invite.get("X-Hotline-Path"), Some("menu support"));
    assert_eq!(invite.get("X-Hotline-Waited"), Some("42"));
    assert_eq!(invite.get("X-Hotline-Var-order-id"), Some("A-17"));
    assert_eq!(
        invite.get("X-Hotline-Caller"),
        Some("sip:+34600111222@carrier.testX-Evil: 1")
    );
    assert_eq!(invite.get("X-Hotline-Transferred-By"), Some("alice"));
    assert_eq!(
        invite.get("X-Hotline-Transfer-Note"),
        Some("wants a refundX-Evil: 2")
    );
    assert_eq!(
        invite.get("X-Evil"),
        None,
        "no header from the caller's or the agent's text"
    );
    assert_eq!(invite.get("Content-Type"), Some("application/sdp"));
    let offer = String::from_utf8_lossy(&invite.body);
    assert!(offer.contains("m=audio 41000 RTP/AVP"), "{offer}");
}

#[test]
fn a_phone_that_never_answers_is_retransmitted_to_then_unreached_after_timer_b() {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    sim.advance(40_000);
    let sends: Vec<u128> = sim
        .wire
        .iter()
        .filter(|s| s.msg.method() == Some("INVITE"))
        .map(|s| s.at.as_millis())
        .collect();
    // Timer A doubles from T1 (RFC 3261 §17.1.1.2) until Timer B (64·T1) gives up.
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    let events = sim.take_events();
    assert_eq!(
        events.first(),
        Some(&Event::Unreached {
            leg: leg.clone(),
            why: Unreached::NoResponse
        })
    );
    assert_eq!(closed(&events, &leg), Some(false));
    assert!(sim.switch.is_empty());
    assert_eq!(sim.switch.poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn an_answer_is_acknowledged_once_per_2xx_and_the_leg_is_up() {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(answer(&invite, 180, "Ringing", None), phone(DESK));
    assert!(sim.take_events().is_empty(), "ringing changes nothing yet");
    sim.advance(3_000);
    let ok = answer(&invite, 200, "OK", Some(phone_sdp(40_000)));
    sim.deliver(ok.clone(), phone(DESK));
    let events = sim.take_events();
    let agreed = answered(&events, &leg).expect("answered");
    assert_eq!(agreed.remote.1, 40_000);
    assert_eq!(sim.switch.phase(&leg), Some(Phase::Up));
    let acks = sim.sent(phone(DESK), "ACK");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].get("CSeq"), Some("1 ACK"));
    match &acks[0].start {
        Start::Request { uri, .. } => assert_eq!(uri, "sip:alice@127.0.0.1:5070"),
        Start::Response { .. } => unreachable!(),
    }
    // The phone did not hear our ACK and sends its 200 again: the same ACK, and no second
    // answer for the user.
    sim.deliver(ok, phone(DESK));
    assert!(sim.take_events().is_empty());
    let resent = sim
        .wire
        .iter()
        .filter(|s| s.msg.method() == Some("ACK") && s.resend)
        .count();
    assert_eq!(resent, 1);
    // No INVITE retransmission after the ringing started (Timer A stops on a 1xx).
    assert_eq!(
        sim.wire
            .iter()
            .filter(|s| s.msg.method() == Some("INVITE"))
            .count(),
        1
    );
}

#[test]
fn two_phones_ring_one_answers_and_the_other_is_cancelled_as_answered_elsewhere() {
    let mut sim = Sim::new();
    let desk = sim.place(DESK, None);
    let mobile = sim.place(MOBILE, None);
    let desk_invite = sim.invite_to(phone(DESK));
    let mobile_invite = sim.invite_to(phone(MOBILE));
    assert_ne!(desk_invite.get("Call-ID"), mobile_invite.get("Call-ID"));
    sim.deliver(answer(&mobile_invite, 180, "Ringing", None), phone(MOBILE));
    sim.advance(2_000);
    sim.deliver(
        answer(&desk_invite, 200, "OK", Some(phone_sdp(40_000))),
        phone(DESK),
    );
    assert!(answered(&sim.take_events(), &desk).is_some());
    // Its user (the agent's ring) stops the other phone.
    sim.switch.cancel(&mobile, true, sim.now);
    sim.pump();
    let cancels = sim.sent(phone(MOBILE), "CANCEL");
    assert_eq!(cancels.len(), 1);
    let cancel = cancels[0];
    assert_eq!(
        cancel.get("Via"),
        mobile_invite.get("Via"),
        "the INVITE's branch"
    );
    assert_eq!(cancel.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(
        cancel.get("Reason"),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    assert_eq!(sim.switch.phase(&mobile), Some(Phase::Cancelled));
    // The phone confirms, and its INVITE ends 487: we ACK that, and the leg is simply gone.
    sim.deliver(answer(cancel, 200, "OK", None), phone(MOBILE));
    sim.deliver(
        answer(&mobile_invite, 487, "Request Terminated", None),
        phone(MOBILE),
    );
    let ack = sim.sent(phone(MOBILE), "ACK");
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].get("Via"), mobile_invite.get("Via"));
    let events = sim.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(closed(&events, &mobile), Some(false));
    assert_eq!(sim.switch.phase(&desk), Some(Phase::Up));
}

#[test]
fn a_decline_is_acknowledged_and_reported_with_its_code() {
    for code in [486, 603] {
        let mut sim = Sim::new();
        let leg = sim.place(DESK, None);
        let invite = sim.invite_to(phone(DESK));
        sim.deliver(answer(&invite, code, "No", None), phone(DESK));
        let events = sim.take_events();
        assert_eq!(
            events,
            [
                Event::Refused {
                    leg: leg.clone(),
                    code
                },
                Event::Closed {
                    leg: leg.clone(),
                    media: u64::from(DESK),
                    up: false
                }
            ]
        );
        assert_eq!(sim.sent(phone(DESK), "ACK").len(), 1);
        // The phone's 6xx, retransmitted, is ACKed again and reported no more.
        sim.deliver(answer(&invite, code, "No", None), phone(DESK));
        assert!(sim.take_events().is_empty());
    }
}

#[test]
fn an_answer_that_crosses_our_cancel_is_acknowledged_then_hung_up() {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    sim.switch.cancel(&leg, false, sim.now);
    sim.pump();
    assert_eq!(sim.sent(phone(DESK), "CANCEL")[0].get("Reason"), None);
    sim.deliver(
        answer(&invite, 200, "OK", Some(phone_sdp(40_000))),
        phone(DESK),
    );
    assert_eq!(sim.sent(phone(DESK), "ACK").len(), 1);
    let byes = sim.sent(phone(DESK), "BYE");
    assert_eq!(byes.len(), 1, "hung up at once");
    assert_eq!(byes[0].get("CSeq"), Some("2 BYE"));
    let bye = byes[0].clone();
    let events = sim.take_events();
    assert!(answered(&events, &leg).is_none(), "nobody is bridged to it");
    assert_eq!(closed(&events, &leg), Some(true));
    assert!(
        sim.switch.requests_pending(),
        "the BYE waits for its answer"
    );
    let cancel = sim.sent(phone(DESK), "CANCEL")[0].clone();
    sim.deliver(answer(&cancel, 200, "OK", None), phone(DESK));
    assert!(sim.switch.requests_pending(), "the BYE still waits");
    sim.deliver(answer(&bye, 200, "OK", None), phone(DESK));
    assert!(!sim.switch.requests_pending());
}

#[test]
fn an_answer_we_cannot_use_is_hung_up_and_reported_unreached() {
    // No media in common.
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    let video_only = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                      m=video 40000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    sim.deliver(
        answer(&invite, 200, "OK", Some(video_only.into())),
        phone(DESK),
    );
    let events = sim.take_events();
    assert_eq!(
        events.first(),
        Some(&Event::Unreached {
            leg: leg.clone(),
            why: Unreached::Unusable
        })
    );
    assert_eq!(sim.sent(phone(DESK), "BYE").len(), 1);
    // No Contact: nowhere to send an ACK or a BYE.
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    let no_contact = wire::response_to(
        &invite,
        200,
        "OK",
        Some("t"),
        &[],
        phone_sdp(40_000).into_bytes(),
    );
    sim.deliver(no_contact, phone(DESK));
    let events = sim.take_events();
    assert_eq!(
        events.first(),
        Some(&Event::Unreached {
            leg: leg.clone(),
            why: Unreached::Unusable
        })
    );
    assert!(sim.switch.is_empty());
}

/// Places a leg and has the desk phone answer it.
fn up() -> (Sim, String) {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(
        answer(&invite, 200, "OK", Some(phone_sdp(40_000))),
        phone(DESK),
    );
    sim.take_events();
    (sim, leg)
}

#[test]
fn the_phone_hanging_up_is_answered_reported_and_its_retransmission_answered_again() {
    let (mut sim, leg) = up();
    let bye = from_phone(&sim, phone(DESK), "BYE", 1, "");
    sim.deliver(bye.clone(), phone(DESK));
    assert_eq!(sim.responses(phone(DESK)), [(200, "1 BYE".to_string())]);
    let events = sim.take_events();
    assert_eq!(events[0], Event::HungUp { leg: leg.clone() });
    assert_eq!(closed(&events, &leg), Some(true));
    // The phone missed our 200: its BYE again gets the same answer, no second event.
    sim.deliver(bye, phone(DESK));
    assert_eq!(sim.responses(phone(DESK)).len(), 2);
    assert!(sim.take_events().is_empty());
}

#[test]
fn hanging_up_sends_bye_in_the_dialog_and_forgets_the_leg() {
    let (mut sim, leg) = up();
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    let bye = sim.sent(phone(DESK), "BYE")[0].clone();
    assert_eq!(
        bye.get("To").map(|t| t.contains("tag=phone-tag")),
        Some(true)
    );
    assert_eq!(closed(&sim.take_events(), &leg), Some(true));
    assert!(sim.switch.is_empty());
    // The phone never answers the BYE: it is retransmitted, then given up (Timer F).
    sim.advance(40_000);
    assert!(!sim.switch.requests_pending());
    let byes = sim
        .wire
        .iter()
        .filter(|s| s.msg.method() == Some("BYE"))
        .count();
    assert!(byes > 5, "retransmitted: {byes}");
}

/// Places a leg to `dial` and has it answered with these extra headers.
fn answered_with(dial: Dial, headers: &[(&str, &str)]) -> (Sim, String) {
    let mut sim = Sim::new();
    let peer = dial.peer;
    let leg = sim.switch.place(dial, sim.now);
    sim.pump();
    let invite = sim.invite_to(peer);
    let mut ok = answer(&invite, 200, "OK", Some(phone_sdp(40_000)));
    ok.headers.retain(|h| h.name != "Contact");
    for (name, value) in headers {
        ok.headers.push(wire::Header {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    sim.deliver(ok, peer);
    sim.take_events();
    (sim, leg)
}

fn requests_to(sim: &Sim, to: SocketAddr) -> Vec<String> {
    sim.wire
        .iter()
        .filter(|s| s.peer == to)
        .filter_map(|s| s.msg.method().map(str::to_string))
        .collect()
}

#[test]
fn the_ack_and_bye_go_to_the_far_ends_contact_or_its_record_route_not_back_through_a_proxy_or_nat()
{
    let forked = phone(5094);
    let proxy = phone(5096);
    // Dialled directly; the answer came from a forking proxy there, which did not stay on
    // the path: the phone's Contact is where the dialog goes.
    let (mut sim, leg) = answered_with(dial_to(5092), &[("Contact", "<sip:bob@127.0.0.1:5094>")]);
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(requests_to(&sim, forked), ["ACK", "BYE"]);
    assert_eq!(requests_to(&sim, phone(5092)), ["INVITE"]);
    let bye = &sim.sent(forked, "BYE")[0];
    assert_eq!(
        bye.start,
        Start::Request {
            method: "BYE".into(),
            uri: "sip:bob@127.0.0.1:5094".into()
        }
    );

    // A proxy that record-routes stays on the path: ACK and BYE go to it, with the Route.
    let (mut sim, leg) = answered_with(
        dial_to(5092),
        &[
            ("Contact", "<sip:bob@127.0.0.1:5094>"),
            ("Record-Route", "<sip:127.0.0.1:5096;lr>"),
        ],
    );
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(requests_to(&sim, proxy), ["ACK", "BYE"]);
    assert!(requests_to(&sim, forked).is_empty());
    assert_eq!(
        sim.sent(proxy, "BYE")[0].get("Route"),
        Some("<sip:127.0.0.1:5096;lr>")
    );

    // Sent through an outbound proxy (a trunk's): the proxy keeps the dialog, whatever the
    // far end's Contact says.
    let through = Dial {
        uri: "sip:+19005550100@carrier.test".into(),
        ..dial_to(5092)
    };
    let (mut sim, leg) = answered_with(through, &[("Contact", "<sip:gw@127.0.0.1:5094>")]);
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(requests_to(&sim, phone(5092)), ["INVITE", "ACK", "BYE"]);
    assert!(requests_to(&sim, forked).is_empty());

    // A phone behind a NAT writes its private address: it is only reached where it answered
    // from.
    let (mut sim, leg) =
        answered_with(dial_to(5092), &[("Contact", "<sip:bob@192.168.1.20:5060>")]);
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(requests_to(&sim, phone(5092)), ["INVITE", "ACK", "BYE"]);
    // Nor does a Contact asking for TCP move it: there is no connection to it.
    let (mut sim, leg) = answered_with(
        dial_to(5092),
        &[("Contact", "<sip:bob@127.0.0.1:5094;transport=tcp>")],
    );
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(requests_to(&sim, phone(5092)), ["INVITE", "ACK", "BYE"]);
}

/// What the caller told the line, long enough that the INVITE carrying it is too big for UDP.
fn long_story() -> Context {
    Context {
        caller: "+34600111222".into(),
        queue: Some("billing".into()),
        path: (0..12).map(|i| format!("menu-{i}")).collect(),
        waited: Some(Duration::from_secs(42)),
        callback_attempt: None,
        variables: (0..12)
            .map(|i| (format!("field_{i}"), "x".repeat(40)))
            .collect(),
        transferred_by: None,
        transfer_note: None,
    }
}

#[test]
fn an_invite_too_big_for_udp_goes_over_tcp_and_over_udp_when_no_connection_can_be_made() {
    // A small one goes at once over UDP, as always.
    let mut sim = Sim::new();
    sim.place(DESK, None);
    assert!(sim.connects.is_empty());
    assert_eq!(sim.wire[0].link, Link::Udp);

    // A big one waits for a TCP connection to the same address, then goes over it, its Via
    // and Contact saying TCP; no retransmission over a reliable transport.
    let mut sim = Sim::new();
    let leg = sim.place(DESK, Some(long_story()));
    assert!(sim.wire.is_empty(), "nothing over UDP");
    assert_eq!(sim.connects, [(leg.clone(), phone(DESK))]);
    sim.switch.connected(&leg, Some(Link::Tcp(7)), sim.now);
    sim.pump();
    let sent = &sim.wire[0];
    assert_eq!(sent.link, Link::Tcp(7));
    assert!(sent.msg.to_bytes().len() > 1300);
    assert!(
        sent.msg
            .get("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP "))
    );
    assert!(
        sent.msg
            .get("Contact")
            .is_some_and(|c| c.contains("transport=tcp"))
    );
    assert!(sent.msg.get("X-Hotline-Path").is_some());
    sim.advance(5_000);
    assert_eq!(sim.wire.len(), 1, "not retransmitted over TCP");
    // Answered over it: ACK and BYE over it too.
    let invite = sim.invite_to(phone(DESK));
    sim.switch.handle(
        Input::Message {
            msg: answer(&invite, 200, "OK", Some(phone_sdp(40_000))),
            link: Link::Tcp(7),
            peer: phone(DESK),
        },
        sim.now,
    );
    sim.pump();
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    let links: Vec<_> = sim
        .wire
        .iter()
        .map(|s| (s.msg.method().unwrap_or("?"), s.link))
        .collect();
    assert_eq!(
        links,
        [
            ("INVITE", Link::Tcp(7)),
            ("ACK", Link::Tcp(7)),
            ("BYE", Link::Tcp(7))
        ]
    );

    // No connection (refused, or none in time): over UDP after all, retransmitted as UDP is.
    let mut sim = Sim::new();
    let leg = sim.place(DESK, Some(long_story()));
    sim.switch.connected(&leg, None, sim.now);
    sim.pump();
    assert_eq!(sim.wire.len(), 1);
    assert_eq!(sim.wire[0].link, Link::Udp);
    assert!(
        sim.wire[0]
            .msg
            .get("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/UDP "))
    );
    sim.advance(1_000);
    assert!(sim.wire.len() > 1, "retransmitted over UDP");
    let mut sim = Sim::new();
    sim.place(DESK, Some(long_story()));
    sim.advance(3_900);
    assert!(sim.wire.is_empty());
    sim.advance(200);
    assert_eq!(
        sim.wire.first().map(|s| s.link),
        Some(Link::Udp),
        "not waited for forever"
    );

    // Hung up while it waits: nothing is sent, the leg is gone.
    let mut sim = Sim::new();
    let leg = sim.place(DESK, Some(long_story()));
    sim.switch.hang_up(&leg, sim.now);
    sim.pump();
    assert_eq!(closed(&sim.take_events(), &leg), Some(false));
    sim.switch.connected(&leg, Some(Link::Tcp(7)), sim.now);
    sim.pump();
    assert!(sim.wire.is_empty());
    assert!(sim.switch.is_empty());
}

#[test]
fn a_refer_from_the_phone_is_accepted_reported_and_its_progress_notified() {
    let (mut sim, leg) = up();
    let invite = sim.invite_to(phone(DESK));
    assert!(
        invite.get("Allow").is_some_and(|a| a.contains("REFER")),
        "the phone is told it may transfer"
    );
    let refer = |sim: &Sim, cseq: u32, refer_to: Option<&str>| {
        let mut r = from_phone(sim, phone(DESK), "REFER", cseq, "");
        if let Some(to) = refer_to {
            r.headers.push(wire::Header {
                name: "Refer-To".into(),
                value: to.into(),
            });
        }
        r
    };
    // No Refer-To, or a Replaces without its tags: refused, nothing reported.
    let bad = refer(&sim, 2, None);
    sim.deliver(bad, phone(DESK));
    let attended = refer(&sim, 3, Some("<sip:bob@hotline.test?Replaces=abc>"));
    sim.deliver(attended, phone(DESK));
    assert_eq!(
        sim.responses(phone(DESK)),
        [(400, "2 REFER".to_string()), (400, "3 REFER".to_string())]
    );
    assert!(sim.take_events().is_empty());
    // A blind transfer to the billing queue: 202, and its user hears of it.
    let blind = refer(&sim, 4, Some("<sip:billing@hotline.test>"));
    sim.deliver(blind, phone(DESK));
    assert_eq!(sim.responses(phone(DESK))[2], (202, "4 REFER".to_string()));
    assert_eq!(
        sim.take_events(),
        [Event::Referred {
            leg: leg.clone(),
            to: "sip:billing@hotline.test".into(),
            replaces: None,
        }]
    );
    // Its progress, then its end: NOTIFYs in the dialog with the status as a sipfrag.
    sim.switch.notify(&leg, 100, "Trying", sim.now);
    sim.switch.notify(&leg, 200, "OK", sim.now);
    sim.pump();
    let notifies = sim.sent(phone(DESK), "NOTIFY");
    assert_eq!(notifies.len(), 2);
    let (first, last) = (notifies[0], notifies[1]);
    assert_eq!(first.get("Event"), Some("refer;id=4"));
    assert_eq!(first.get("Subscription-State"), Some("active;expires=60"));
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        "SIP/2.0 100 Trying\r\n"
    );
    assert_eq!(
        last.get("Subscription-State"),
        Some("terminated;reason=noresource")
    );
    assert_eq!(
        last.get("Content-Type"),
        Some("message/sipfrag;version=2.0")
    );
    assert_eq!(String::from_utf8_lossy(&last.body), "SIP/2.0 200 OK\r\n");
    assert!(last.get("To").is_some_and(|t| t.contains("tag=phone-tag")));
    // The subscription is over: no more NOTIFY for it.
    sim.switch.notify(&leg, 200, "OK", sim.now);
    sim.pump();
    assert_eq!(sim.sent(phone(DESK), "NOTIFY").len(), 2);
    // An attended transfer: the dialog it replaces comes with it, the address without it.
    let attended = refer(
        &sim,
        5,
        Some("<sip:bob@hotline.test?Replaces=abc%40desk%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
    );
    sim.deliver(attended, phone(DESK));
    assert_eq!(sim.responses(phone(DESK))[3], (202, "5 REFER".to_string()));
    let replaces = hotline::sip::replaces::Replaces {
        call_id: "abc@desk".into(),
        to_tag: "1".into(),
        from_tag: "2".into(),
        early_only: false,
    };
    assert_eq!(
        sim.take_events(),
        [Event::Referred {
            leg: leg.clone(),
            to: "sip:bob@hotline.test".into(),
            replaces: Some(replaces),
        }]
    );
    // The phone was to hang up once told; it has not after 10 s, so it is hung up.
    sim.advance(9_000);
    assert!(sim.sent(phone(DESK), "BYE").is_empty());
    sim.advance(1_500);
    assert_eq!(sim.sent(phone(DESK), "BYE").len(), 1);
    assert_eq!(closed(&sim.take_events(), &leg), Some(true));
}

#[test]
fn a_reinvite_moves_the_media_and_one_without_our_codec_changes_nothing() {
    let (mut sim, leg) = up();
    let hold = phone_sdp(40_002).replace("a=sendrecv", "a=sendonly");
    sim.deliver(
        from_phone(&sim, phone(DESK), "INVITE", 2, &hold),
        phone(DESK),
    );
    let events = sim.take_events();
    match events.as_slice() {
        [
            Event::Media {
                leg: l,
                remote,
                direction,
                ..
            },
        ] => {
            assert_eq!(l, &leg);
            assert_eq!(remote.port(), 40_002);
            assert_eq!(*direction, sdp::Direction::RecvOnly);
        }
        other => panic!("{other:?}"),
    }
    let codes: Vec<u16> = sim.responses(phone(DESK)).iter().map(|r| r.0).collect();
    assert_eq!(codes, [100, 200]);
    let g729 = "v=0\r\no=p 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 40004 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    sim.deliver(
        from_phone(&sim, phone(DESK), "INVITE", 3, g729),
        phone(DESK),
    );
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.responses(phone(DESK)).last().map(|r| r.0), Some(488));
}

#[test]
fn a_new_offer_crossing_ours_is_glare_and_gets_491_until_the_ack_comes() {
    let (mut sim, _leg) = up();
    // An offerless re-INVITE: our 200 carries our offer; the answer comes in the ACK.
    sim.deliver(from_phone(&sim, phone(DESK), "INVITE", 2, ""), phone(DESK));
    let last = sim.responses(phone(DESK)).last().cloned();
    assert_eq!(last, Some((200, "2 INVITE".to_string())));
    // Before that ACK, the phone offers again: the offers cross (RFC 3261 §14.2).
    let offer = phone_sdp(40_006);
    sim.deliver(
        from_phone(&sim, phone(DESK), "INVITE", 3, &offer),
        phone(DESK),
    );
    assert_eq!(sim.responses(phone(DESK)).last().map(|r| r.0), Some(491));
    assert!(sim.take_events().is_empty(), "the media did not move");
    // The ACK with the answer settles it; the same offer again is taken.
    let mut ack = from_phone(&sim, phone(DESK), "ACK", 2, &phone_sdp(40_000));
    // A 2xx's ACK is its own transaction: a branch of its own.
    for h in &mut ack.headers {
        if h.name == "Via" {
            h.value = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-phone-ack-2".into();
        }
    }
    sim.deliver(ack, phone(DESK));
    sim.deliver(
        from_phone(&sim, phone(DESK), "INVITE", 4, &offer),
        phone(DESK),
    );
    assert_eq!(sim.responses(phone(DESK)).last().map(|r| r.0), Some(200));
    assert!(matches!(
        sim.take_events().as_slice(),
        [Event::Media { remote, .. }] if remote.port() == 40_006
    ));
}

#[test]
fn a_request_for_a_leg_we_do_not_know_is_not_ours() {
    let mut sim = Sim::new();
    sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    // A stranger's BYE with the right Call-ID but no dialog yet: answered 481, nothing else.
    let bye = from_phone(&sim, phone(DESK), "BYE", 1, "");
    sim.deliver(bye, phone(DESK));
    assert_eq!(sim.responses(phone(DESK)), [(481, "1 BYE".to_string())]);
    assert!(sim.take_events().is_empty());
    // Not ours at all: a new call from someone else, which the signalling answers.
    let stranger = "INVITE sip:support@127.0.0.1 SIP/2.0\r\n\
                    Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-stranger\r\n\
                    From: <sip:bob@example.com>;tag=b\r\nTo: <sip:support@127.0.0.1>\r\n\
                    Call-ID: someone-else\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let stranger = wire::parse_datagram(stranger.as_bytes()).expect("valid");
    assert!(!sim.switch.owns(&stranger));
    assert_eq!(invite.get("CSeq"), Some("1 INVITE"));
}

// ---------------------------------------------------------------------------------------
// Agents: the routing core in front of the switch, glued as the server glues them.

use std::collections::BTreeMap;

use hotline::routing::{
    AgentConfig, AgentState, QueueConfig, Requested, Router, RouterAction, RouterEvent, Strategy,
};

const ALICE: usize = 0;
const BOB_PHONE: u16 = 5074;

/// The router's Ring and CancelRing go to the switch; the switch's AgentAnswered and
/// AgentDeclined go back to the router. Every event the switch gives is kept in `log`.
struct Routed {
    sim: Sim,
    router: Router,
    /// Each agent's phones (their ports).
    phones: Vec<Vec<u16>>,
    log: Vec<Event>,
    next_media: u64,
}

impl Routed {
    fn new(phones: Vec<Vec<u16>>, strategy: Strategy) -> Routed {
        let sim = Sim::new();
        let agents: Vec<AgentConfig> = ["alice", "bob"]
            .iter()
            .take(phones.len())
            .map(|id| AgentConfig {
                id: id.to_string(),
                skills: BTreeMap::from([("support".to_string(), 1)]),
            })
            .collect();
        let queues = [QueueConfig {
            name: "support".into(),
            skills: vec!["support".into()],
            strategy,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
            retry: Duration::from_secs(5),
        }];
        let router = Router::new(&agents, &queues, true, sim.now);
        let mut r = Routed {
            sim,
            router,
            phones,
            log: Vec::new(),
            next_media: 100,
        };
        for agent in 0..r.phones.len() {
            r.route(RouterEvent::Registered { agent });
        }
        r
    }

    fn route(&mut self, event: RouterEvent) {
        let actions = self.router.handle(event, self.sim.now);
        self.act(actions);
    }

    fn act(&mut self, actions: Vec<RouterAction>) {
        for a in actions {
            match a {
                RouterAction::Ring { call, agent, .. } => {
                    let phones = self.phones[agent]
                        .iter()
                        .map(|&port| {
                            self.next_media += 1;
                            Phone {
                                uri: format!("sip:agent@127.0.0.1:{port}"),
                                link: Link::Udp,
                                peer: phone(port),
                                rtp_port: 41000,
                                media: self.next_media,
                                srtp: sdp::OfferSrtp::No,
                            }
                        })
                        .collect();
                    let dial = Dial {
                        uri: String::new(),
                        to: "sip:agent@hotline.test".into(),
                        from: Party {
                            display: "Ana".into(),
                            uri: "sip:ana@carrier.test".into(),
                        },
                        assert_identity: true,
                        link: Link::Udp,
                        peer: phone(0),
                        rtp_port: 0,
                        srtp: sdp::OfferSrtp::No,
                        context: Some(Context {
                            caller: "sip:ana@carrier.test".into(),
                            queue: Some("support".into()),
                            ..Context::default()
                        }),
                        media: 0,
                        auth: None,
                        redirect: None,
                    };
                    let now = self.sim.now;
                    self.sim
                        .switch
                        .ring(Ring { call, agent }, phones, &dial, now);
                }
                RouterAction::CancelRing {
                    call,
                    agent,
                    elsewhere,
                } => {
                    let now = self.sim.now;
                    self.sim
                        .switch
                        .cancel_ring(Ring { call, agent }, elsewhere, now);
                }
            }
        }
        self.settle();
    }

    /// Hands the switch's agent answers to the router until nothing new comes.
    fn settle(&mut self) {
        loop {
            self.sim.pump();
            let events = self.sim.take_events();
            if events.is_empty() {
                return;
            }
            for e in events {
                self.log.push(e.clone());
                match e {
                    Event::AgentAnswered { ring, .. } => self.route(RouterEvent::Answered {
                        call: ring.call,
                        agent: ring.agent,
                    }),
                    Event::AgentDeclined { ring, .. } => self.route(RouterEvent::Declined {
                        call: ring.call,
                        agent: ring.agent,
                    }),
                    _ => {}
                }
            }
        }
    }

    /// The clock moves on by `ms`: the switch's and the router's timers fire in order.
    fn advance(&mut self, ms: u64) {
        let until = self.sim.now + Duration::from_millis(ms);
        loop {
            let next = [self.sim.switch.poll_timeout(), self.router.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= until)
                .min();
            let Some(t) = next else { break };
            self.sim.now = self.sim.now.max(t);
            let now = self.sim.now;
            self.sim.switch.handle(Input::Timeout, now);
            self.settle();
            if self.router.poll_timeout().is_some_and(|r| r <= now) {
                self.route(RouterEvent::Timer);
            }
        }
        self.sim.now = until;
    }

    fn deliver(&mut self, msg: Message, port: u16) {
        self.sim.deliver(msg, phone(port));
        self.settle();
    }

    /// Every INVITE `port` got, in order.
    fn invites(&self, port: u16) -> Vec<Message> {
        self.sim
            .sent(phone(port), "INVITE")
            .into_iter()
            .cloned()
            .collect()
    }

    fn state(&self, agent: usize) -> AgentState {
        self.router.agent_state(agent).map(|s| s.0).expect("agent")
    }

    /// The phone at `port` rings: 180 to its last INVITE.
    fn ringing(&mut self, port: u16) {
        let invite = self.invites(port).pop().expect("an INVITE");
        self.deliver(answer(&invite, 180, "Ringing", None), port);
    }
}

#[test]
fn an_agents_two_phones_ring_together_and_the_one_not_answered_is_cancelled() {
    let mut r = Routed::new(vec![vec![DESK, MOBILE]], Strategy::LongestIdle);
    r.route(RouterEvent::Enqueue {
        call: 1,
        queue: 0,
        priority: 0,
    });
    assert_eq!(r.invites(DESK).len(), 1);
    assert_eq!(r.invites(MOBILE).len(), 1);
    assert_eq!(r.invites(DESK)[0].get("X-Hotline-Queue"), Some("support"));
    r.ringing(MOBILE);
    r.advance(4_000);
    let desk = r.invites(DESK).remove(0);
    r.deliver(answer(&desk, 200, "OK", Some(phone_sdp(40_000))), DESK);
    assert_eq!(r.router.connected_agent(1), Some(ALICE));
    assert_eq!(r.state(ALICE), AgentState::Busy);
    let cancel = r.sim.sent(phone(MOBILE), "CANCEL")[0].clone();
    assert_eq!(
        cancel.get("Reason"),
        Some("SIP;cause=200;text=\"Call completed elsewhere\"")
    );
    let mobile = r.invites(MOBILE).remove(0);
    r.deliver(answer(&mobile, 487, "Request Terminated", None), MOBILE);
    let answers = r
        .log
        .iter()
        .filter(|e| matches!(e, Event::AgentAnswered { .. } | Event::AgentDeclined { .. }))
        .count();
    assert_eq!(answers, 1, "one answer for the agent: {:?}", r.log);
}

#[test]
fn one_phone_busy_leaves_the_other_ringing() {
    let mut r = Routed::new(vec![vec![DESK, MOBILE]], Strategy::LongestIdle);
    r.route(RouterEvent::Enqueue {
        call: 1,
        queue: 0,
        priority: 0,
    });
    let desk = r.invites(DESK).remove(0);
    r.deliver(answer(&desk, 486, "Busy Here", None), DESK);
    assert!(r.sim.sent(phone(MOBILE), "CANCEL").is_empty());
    assert_eq!(r.state(ALICE), AgentState::Ringing);
    let mobile = r.invites(MOBILE).remove(0);
    r.deliver(answer(&mobile, 200, "OK", Some(phone_sdp(40_000))), MOBILE);
    assert_eq!(r.router.connected_agent(1), Some(ALICE));
}

#[test]
fn a_6xx_on_one_phone_stops_the_others_and_the_next_agent_rings() {
    let mut r = Routed::new(
        vec![vec![DESK, MOBILE], vec![BOB_PHONE]],
        Strategy::LongestIdle,
    );
    r.route(RouterEvent::Enqueue {
        call: 1,
        queue: 0,
        priority: 0,
    });
    assert!(r.invites(BOB_PHONE).is_empty(), "alice first");
    let desk = r.invites(DESK).remove(0);
    r.deliver(answer(&desk, 603, "Decline", None), DESK);
    assert_eq!(r.sim.sent(phone(MOBILE), "CANCEL").len(), 1);
    assert!(r.log.contains(&Event::AgentDeclined {
        ring: Ring {
            call: 1,
            agent: ALICE
        },
        code: Some(603)
    }));
    assert_eq!(r.invites(BOB_PHONE).len(), 1, "bob rings next");
    // The mobile's 487 for our CANCEL says nothing more about alice.
    let mobile = r.invites(MOBILE).remove(0);
    r.deliver(answer(&mobile, 487, "Request Terminated", None), MOBILE);
    let declined = r
        .log
        .iter()
        .filter(|e| matches!(e, Event::AgentDeclined { .. }))
        .count();
    assert_eq!(declined, 1);
}

#[test]
fn a_busy_agent_is_offered_the_caller_again_after_the_retry() {
    let mut r = Routed::new(vec![vec![DESK]], Strategy::LongestIdle);
    r.route(RouterEvent::Enqueue {
        call: 1,
        queue: 0,
        priority: 0,
    });
    let first = r.invites(DESK).remove(0);
    r.deliver(answer(&first, 486, "Busy Here", None), DESK);
    assert_eq!(r.state(ALICE), AgentState::Available, "busy is not away");
    r.advance(4_000);
    assert_eq!(r.invites(DESK).len(), 1, "not rung again before the retry");
    r.advance(2_000);
    let invites = r.invites(DESK);
    assert_eq!(invites.len(), 2, "rung again once the retry (5 s) is up");
    assert_ne!(invites[0].get("Call-ID"), invites[1].get("Call-ID"));
}

#[test]
fn ring_no_answer_goes_to_the_next_agent_and_the_first_is_offered_again_later() {
    let mut r = Routed::new(vec![vec![DESK], vec![BOB_PHONE]], Strategy::LongestIdle);
    r.route(RouterEvent::Enqueue {
        call: 1,
        queue: 0,
        priority: 0,
    });
    r.ringing(DESK);
    r.advance(14_900);
    assert!(r.invites(BOB_PHONE).is_empty());
    r.advance(200);
    // Alice let it ring for the queue's 15 s: her phone stops, she is away, bob rings.
    assert_eq!(r.sim.sent(phone(DESK), "CANCEL").len(), 1);
    assert_eq!(r.state(ALICE), AgentState::NotReady);
    assert_eq!(r.invites(BOB_PHONE).len(), 1);
    let desk = r.invites(DESK).remove(0);
    r.deliver(answer(&desk, 487, "Request Terminated", None), DESK);
    r.ringing(BOB_PHONE);
    // Alice is back; bob lets it ring out too: the caller is offered to alice again.
    r.route(RouterEvent::SetState {
        agent: ALICE,
        state: Requested::Available,
        reason: None,
    });
    r.advance(15_100);
    assert_eq!(r.sim.sent(phone(BOB_PHONE), "CANCEL").len(), 1);
    assert_eq!(
        r.invites(DESK).len(),
        2,
        "alice is offered the caller again"
    );
    let again = r.invites(DESK).remove(1);
    r.deliver(answer(&again, 200, "OK", Some(phone_sdp(40_000))), DESK);
    assert_eq!(r.router.connected_agent(1), Some(ALICE));
}

// ---------------------------------------------------------------------------------------
// Transfers and callbacks.

use hotline::switch::{CallbackMiss, Phone, Ring, TransferFailure};

const CALLER: u16 = 5090;

/// A call to `port`, as a transfer or a callback dials it.
fn dial_to(port: u16) -> Dial {
    let from = Party {
        display: "support".into(),
        uri: "sip:hotline@hotline.test".into(),
    };
    let uri = format!("sip:someone@127.0.0.1:{port}");
    Dial {
        rtp_port: 42000,
        media: 9,
        ..Dial::to_address(&uri, phone(port), from, None)
    }
}

#[test]
fn a_transfer_target_that_never_answers_is_cancelled_when_its_time_is_up() {
    let mut sim = Sim::new();
    let leg = sim
        .switch
        .transfer(7, dial_to(DESK), Duration::from_secs(20), sim.now);
    sim.pump();
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(answer(&invite, 180, "Ringing", None), phone(DESK));
    sim.advance(19_900);
    assert!(sim.take_events().is_empty());
    assert!(sim.sent(phone(DESK), "CANCEL").is_empty());
    sim.advance(200);
    assert_eq!(sim.sent(phone(DESK), "CANCEL").len(), 1);
    assert_eq!(
        sim.take_events(),
        [Event::TransferFailed {
            call: 7,
            why: TransferFailure::NoAnswer
        }]
    );
    sim.deliver(
        answer(&invite, 487, "Request Terminated", None),
        phone(DESK),
    );
    assert_eq!(
        sim.take_events(),
        [Event::Closed {
            leg,
            media: 9,
            up: false
        }]
    );
}

#[test]
fn a_transfer_fails_with_the_targets_refusal_or_connects_on_its_answer() {
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, dial_to(DESK), Duration::from_secs(20), sim.now);
    sim.pump();
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(answer(&invite, 404, "Not Found", None), phone(DESK));
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::TransferFailed {
            call: 7,
            why: TransferFailure::Refused(404)
        })
    );
    let mut sim = Sim::new();
    let leg = sim
        .switch
        .transfer(8, dial_to(DESK), Duration::from_secs(20), sim.now);
    sim.pump();
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(
        answer(&invite, 200, "OK", Some(phone_sdp(40_000))),
        phone(DESK),
    );
    assert!(matches!(
        sim.take_events().as_slice(),
        [Event::TransferAnswered { call: 8, leg: l, .. }] if *l == leg
    ));
    // Answered, its ring time no longer applies.
    sim.advance(30_000);
    assert!(sim.sent(phone(DESK), "CANCEL").is_empty());
    assert_eq!(sim.switch.phase(&leg), Some(Phase::Up));
}

/// When each INVITE to `port` first left, in seconds.
fn invite_times(sim: &Sim, port: u16) -> Vec<u64> {
    sim.wire
        .iter()
        .filter(|s| s.peer == phone(port) && !s.resend && s.msg.method() == Some("INVITE"))
        .map(|s| s.at.as_secs())
        .collect()
}

#[test]
fn a_callback_is_tried_three_times_two_minutes_apart_then_given_up_with_its_reason() {
    let mut sim = Sim::new();
    // First call: it rings 30 s unanswered.
    sim.switch.call_back(9, 0, dial_to(CALLER), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CALLER));
    sim.deliver(answer(&first, 180, "Ringing", None), phone(CALLER));
    sim.advance(30_000);
    assert_eq!(sim.sent(phone(CALLER), "CANCEL").len(), 1);
    assert_eq!(
        sim.take_events(),
        [Event::CallbackLater {
            id: 9,
            attempts: 1,
            why: CallbackMiss::NoAnswer,
            retry_in: Duration::from_secs(120)
        }]
    );
    sim.deliver(
        answer(&first, 487, "Request Terminated", None),
        phone(CALLER),
    );
    sim.take_events();
    sim.advance(119_000);
    assert!(sim.take_events().is_empty(), "not due yet");
    sim.advance(1_000);
    assert_eq!(sim.take_events(), [Event::CallbackDue { id: 9 }]);
    // Second call, two minutes after the first was given up on: busy.
    sim.switch.call_back(9, 1, dial_to(CALLER), sim.now);
    sim.pump();
    let second = sim.sent(phone(CALLER), "INVITE")[1].clone();
    sim.deliver(answer(&second, 486, "Busy Here", None), phone(CALLER));
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::CallbackLater {
            id: 9,
            attempts: 2,
            why: CallbackMiss::Refused(486),
            retry_in: Duration::from_secs(120)
        })
    );
    sim.advance(120_000);
    assert_eq!(sim.take_events(), [Event::CallbackDue { id: 9 }]);
    // Third and last: nothing answers at all; its ring time ends it before Timer B would.
    sim.switch.call_back(9, 2, dial_to(CALLER), sim.now);
    sim.pump();
    sim.advance(40_000);
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::CallbackFailed {
            id: 9,
            attempts: 3,
            why: CallbackMiss::NoAnswer
        })
    );
    assert_eq!(invite_times(&sim, CALLER), [0, 150, 270]);
    sim.advance(600_000);
    assert!(
        !sim.take_events()
            .iter()
            .any(|e| matches!(e, Event::CallbackDue { .. })),
        "a callback given up is not tried again"
    );
}

#[test]
fn a_callback_the_agent_leaves_counts_as_a_try_and_stops_the_ringing() {
    let mut sim = Sim::new();
    sim.switch.call_back(9, 0, dial_to(CALLER), sim.now);
    sim.pump();
    sim.advance(5_000);
    sim.switch
        .callback_missed(9, 0, CallbackMiss::AgentLeft, sim.now);
    sim.pump();
    assert_eq!(sim.sent(phone(CALLER), "CANCEL").len(), 1);
    assert_eq!(
        sim.take_events(),
        [Event::CallbackLater {
            id: 9,
            attempts: 1,
            why: CallbackMiss::AgentLeft,
            retry_in: Duration::from_secs(120)
        }]
    );
    // Its ring time passing changes nothing more (the unanswered leg just goes, Timer B).
    sim.advance(30_000);
    let events = sim.take_events();
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Closed { up: false, .. })),
        "{events:?}"
    );
}

#[test]
fn a_callback_answered_by_the_caller_is_bridged_to_the_agent_who_waits() {
    let mut r = Routed::new(vec![vec![DESK]], Strategy::LongestIdle);
    // The callback keeps the caller's place: alice is rung first.
    r.route(RouterEvent::Enqueue {
        call: 5,
        queue: 0,
        priority: 0,
    });
    r.route(RouterEvent::ToCallback { call: 5 });
    let desk = r.invites(DESK).pop().expect("alice rung for the callback");
    r.deliver(answer(&desk, 200, "OK", Some(phone_sdp(40_000))), DESK);
    let agent_leg = r
        .log
        .iter()
        .find_map(|e| match e {
            Event::AgentAnswered { ring, leg, .. } if ring.call == 5 => Some(leg.clone()),
            _ => None,
        })
        .expect("alice answered");
    assert_eq!(r.router.connected_agent(5), Some(ALICE));
    // Alice hears ringback while the caller's number is dialled.
    let now = r.sim.now;
    let caller_leg = r.sim.switch.call_back(5, 0, dial_to(CALLER), now);
    r.settle();
    r.advance(6_000);
    let invite = r.invites(CALLER).pop().expect("the caller dialled");
    r.deliver(answer(&invite, 200, "OK", Some(phone_sdp(40_010))), CALLER);
    assert!(r.log.iter().any(|e| matches!(
        e,
        Event::CallbackAnswered { id: 5, leg, attempts: 1, agreed } if *leg == caller_leg && agreed.remote.1 == 40_010
    )));
    // Both ends up: the server bridges the two legs' media.
    assert_eq!(r.sim.switch.phase(&agent_leg), Some(Phase::Up));
    assert_eq!(r.sim.switch.phase(&caller_leg), Some(Phase::Up));
    // Its ring time passing later changes nothing.
    r.advance(60_000);
    assert_eq!(r.sim.switch.phase(&caller_leg), Some(Phase::Up));
    assert!(
        !r.log
            .iter()
            .any(|e| matches!(e, Event::CallbackLater { .. }))
    );
}

// ---------------------------------------------------------------------------------------
// A carrier that asks for credentials.

use hotline::sip::digest::{Params, Secret};

const CARRIER: u16 = 5080;

fn through_carrier() -> Dial {
    Dial {
        auth: Some(Secret {
            username: "line1".into(),
            password: "s3cret".into(),
        }),
        ..dial_to(CARRIER)
    }
}

/// A challenge as a carrier writes it.
fn challenge(req: &Message, code: u16, nonce: &str, extra: &str) -> Message {
    let name = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    let mut headers = vec![(
        name.to_string(),
        format!(
            "Digest realm=\"carrier.test\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{extra}"
        ),
    )];
    headers.push((
        name.to_string(),
        format!("Digest realm=\"carrier.test\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\"{extra}"),
    ));
    wire::response_to(req, code, "Auth", Some("carrier"), &headers, Vec::new())
}

/// The carrier's own check of an answer, written from RFC 7616 without the switch's code.
fn carrier_accepts(req: &Message, header: &str, password: &str) -> bool {
    use sha2::Digest;
    let Some(p) = req.get(header).and_then(Params::parse) else {
        return false;
    };
    let h = |s: String| match p.get("algorithm") {
        Some("SHA-256") => format!("{:x}", sha2::Sha256::digest(s.as_bytes())),
        _ => format!("{:x}", md5::Md5::digest(s.as_bytes())),
    };
    let f = |k: &str| p.get(k).unwrap_or_default().to_string();
    let uri = match &req.start {
        Start::Request { uri, .. } => uri.clone(),
        Start::Response { .. } => return false,
    };
    let ha1 = h(format!("{}:{}:{password}", f("username"), f("realm")));
    let method = req.method().unwrap_or_default();
    let ha2 = h(format!("{method}:{}", f("uri")));
    f("uri") == uri
        && f("response")
            == h(format!(
                "{ha1}:{}:{}:{}:{}:{ha2}",
                f("nonce"),
                f("nc"),
                f("cnonce"),
                f("qop")
            ))
}

#[test]
fn a_carriers_challenge_is_answered_once_in_the_same_call_and_the_call_goes_through() {
    let mut sim = Sim::new();
    let leg = sim
        .switch
        .transfer(7, through_carrier(), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    assert!(first.get("Proxy-Authorization").is_none());
    sim.deliver(challenge(&first, 407, "n-1", ""), phone(CARRIER));
    // The 407 is acknowledged, and the INVITE sent again with the answer.
    let acks = sim.sent(phone(CARRIER), "ACK");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].get("CSeq"), Some("1 ACK"));
    let invites = sim.sent(phone(CARRIER), "INVITE");
    assert_eq!(invites.len(), 2, "one INVITE again, not a loop");
    let again = invites[1].clone();
    assert_eq!(again.get("Call-ID"), first.get("Call-ID"));
    assert_eq!(again.get("From"), first.get("From"), "the same From tag");
    assert_eq!(again.get("CSeq"), Some("2 INVITE"));
    assert_ne!(again.get("Via"), first.get("Via"), "a new transaction");
    assert!(
        carrier_accepts(&again, "Proxy-Authorization", "s3cret"),
        "{:?}",
        again.get("Proxy-Authorization")
    );
    assert!(
        again
            .get("Proxy-Authorization")
            .unwrap_or_default()
            .contains("algorithm=SHA-256"),
        "the stronger of the two challenges"
    );
    assert!(!carrier_accepts(&again, "Proxy-Authorization", "guess"));
    assert!(sim.take_events().is_empty(), "still ringing");
    // The carrier then asks the callee's own realm (401): answered as well, both kept.
    sim.deliver(challenge(&again, 401, "n-2", ""), phone(CARRIER));
    let third = sim.sent(phone(CARRIER), "INVITE")[2].clone();
    assert_eq!(third.get("CSeq"), Some("3 INVITE"));
    assert!(carrier_accepts(&third, "Authorization", "s3cret"));
    assert!(carrier_accepts(&third, "Proxy-Authorization", "s3cret"));
    // A CANCEL now goes with the INVITE that rings.
    sim.deliver(answer(&third, 180, "Ringing", None), phone(CARRIER));
    sim.deliver(
        answer(&third, 200, "OK", Some(phone_sdp(40_000))),
        phone(CARRIER),
    );
    assert!(matches!(
        sim.take_events().as_slice(),
        [Event::TransferAnswered { call: 7, leg: l, .. }] if *l == leg
    ));
    let ack = sim.sent(phone(CARRIER), "ACK").last().map(|m| (*m).clone());
    assert_eq!(
        ack.and_then(|a| a.get("CSeq").map(str::to_string)),
        Some("3 ACK".into())
    );
}

#[test]
fn wrong_credentials_are_refused_not_looped_and_a_stale_nonce_is_tried_again() {
    // Challenged again for the realm we answered: the password is wrong; give up.
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, through_carrier(), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    sim.deliver(challenge(&first, 407, "n-1", ""), phone(CARRIER));
    let again = sim.sent(phone(CARRIER), "INVITE")[1].clone();
    sim.deliver(challenge(&again, 407, "n-2", ""), phone(CARRIER));
    assert_eq!(sim.sent(phone(CARRIER), "INVITE").len(), 2);
    assert_eq!(sim.sent(phone(CARRIER), "ACK").len(), 2);
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::TransferFailed {
            call: 7,
            why: TransferFailure::Refused(407)
        })
    );
    assert!(sim.switch.is_empty());

    // The same challenge marked stale: the nonce expired, the password is fine.
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, through_carrier(), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    sim.deliver(challenge(&first, 407, "n-1", ""), phone(CARRIER));
    let again = sim.sent(phone(CARRIER), "INVITE")[1].clone();
    sim.deliver(
        challenge(&again, 407, "n-2", ", stale=true"),
        phone(CARRIER),
    );
    let third = sim.sent(phone(CARRIER), "INVITE")[2].clone();
    let p = Params::parse(third.get("Proxy-Authorization").unwrap_or_default()).unwrap();
    assert_eq!(p.get("nonce"), Some("n-2"));
    assert_eq!(
        third.all("Proxy-Authorization").count(),
        1,
        "the stale answer is replaced, not kept beside the new one"
    );
    // Stale for ever is a loop too: it ends.
    for _ in 0..3 {
        let last = sim
            .sent(phone(CARRIER), "INVITE")
            .last()
            .map(|m| (*m).clone());
        if let Some(last) = last {
            sim.deliver(challenge(&last, 407, "n-x", ", stale=true"), phone(CARRIER));
        }
    }
    assert_eq!(
        sim.sent(phone(CARRIER), "INVITE").len(),
        4,
        "three answers at most"
    );
    assert!(sim.switch.is_empty());

    // Without credentials a challenge is a refusal, as before.
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, dial_to(CARRIER), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    sim.deliver(challenge(&first, 407, "n-1", ""), phone(CARRIER));
    assert_eq!(sim.sent(phone(CARRIER), "INVITE").len(), 1);
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::TransferFailed {
            call: 7,
            why: TransferFailure::Refused(407)
        })
    );
}

// ---------------------------------------------------------------------------------------
// Redirects.

use hotline::sip::dial::{DialPolicy, Route};
use hotline::switch::Redirect;

/// A callback through the carrier's trunk (at 127.0.0.1:CARRIER), which carries Spanish
/// numbers only.
fn redirectable() -> Dial {
    let policy = DialPolicy {
        trunks: vec![Route {
            name: "carrier".into(),
            host: "127.0.0.1".into(),
            port: CARRIER,
            domain: "carrier.test".into(),
            numbers: vec!["+34".into()],
            auth: None,
            caller_id: "+34910000000".into(),
            present_caller: true,
            proto: hotline::sip::dial::Proto::Udp,
            port_given: true,
        }],
        ..DialPolicy::default()
    };
    Dial {
        redirect: Some(Redirect {
            policy: std::sync::Arc::new(policy),
            host: "127.0.0.1".into(),
            port: CARRIER,
        }),
        ..dial_to(CARRIER)
    }
}

fn moved(req: &Message, contacts: &[&str]) -> Message {
    let headers: Vec<(String, String)> = contacts
        .iter()
        .map(|c| ("Contact".to_string(), format!("<{c}>")))
        .collect();
    wire::response_to(
        req,
        302,
        "Moved Temporarily",
        Some("c"),
        &headers,
        Vec::new(),
    )
}

#[test]
fn a_redirect_is_followed_only_to_what_the_dial_policy_allows() {
    // To a premium number abroad, on a host the redirect names: refused, nothing dialled.
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, redirectable(), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    sim.deliver(
        moved(
            &first,
            &["sip:+19005550100@evil.example", "tel:+19005550101"],
        ),
        phone(CARRIER),
    );
    assert_eq!(sim.sent(phone(CARRIER), "INVITE").len(), 1);
    assert_eq!(
        sim.take_events().first(),
        Some(&Event::TransferFailed {
            call: 7,
            why: TransferFailure::Refused(302)
        })
    );

    // To a Spanish number: the trunk carries it, so it is dialled there, in the same call.
    let mut sim = Sim::new();
    let leg = sim
        .switch
        .transfer(7, redirectable(), Duration::from_secs(20), sim.now);
    sim.pump();
    let first = sim.invite_to(phone(CARRIER));
    sim.deliver(
        moved(
            &first,
            &[
                "sip:+19005550100@evil.example",
                "sip:+34600999888@elsewhere.example",
            ],
        ),
        phone(CARRIER),
    );
    let invites = sim.sent(phone(CARRIER), "INVITE");
    assert_eq!(invites.len(), 2);
    let again = invites[1].clone();
    assert!(matches!(
        &again.start,
        Start::Request { uri, .. } if uri == "sip:+34600999888@carrier.test;user=phone"
    ));
    assert_eq!(again.get("Call-ID"), first.get("Call-ID"));
    assert_eq!(again.get("CSeq"), Some("2 INVITE"));
    sim.deliver(
        answer(&again, 200, "OK", Some(phone_sdp(40_000))),
        phone(CARRIER),
    );
    assert!(matches!(
        sim.take_events().as_slice(),
        [Event::TransferAnswered { call: 7, leg: l, .. }] if *l == leg
    ));

    // Redirected round and round: three are followed, then it is a refusal.
    let mut sim = Sim::new();
    sim.switch
        .transfer(7, redirectable(), Duration::from_secs(20), sim.now);
    sim.pump();
    for _ in 0..5 {
        let last = sim
            .sent(phone(CARRIER), "INVITE")
            .last()
            .map(|m| (*m).clone());
        if let Some(last) = last {
            sim.deliver(moved(&last, &["tel:+34600999888"]), phone(CARRIER));
        }
    }
    assert_eq!(sim.sent(phone(CARRIER), "INVITE").len(), 4);
    assert!(sim.switch.is_empty());
}

// ---------------------------------------------------------------------------------------
// Registering to a carrier.

use hotline::switch::{Account, Registration};

fn account() -> Account {
    Account {
        trunk: "carrier".into(),
        registrar: "sip:carrier.test".into(),
        aor: "sip:line1@carrier.test".into(),
        contact_user: "line1".into(),
        link: Link::Udp,
        peer: phone(CARRIER),
        auth: Some(Secret {
            username: "line1".into(),
            password: "s3cret".into(),
        }),
        expires: 600,
    }
}

fn registers(sim: &Sim) -> Vec<Message> {
    sim.sent(phone(CARRIER), "REGISTER")
        .into_iter()
        .cloned()
        .collect()
}

fn registration_events(sim: &mut Sim) -> Vec<Registration> {
    sim.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Registration { trunk, state } if trunk == "carrier" => Some(state),
            _ => None,
        })
        .collect()
}

fn granted(req: &Message, expires: u32) -> Message {
    let contact = format!(
        "{};expires={expires}",
        req.get("Contact").unwrap_or_default()
    );
    wire::response_to(
        req,
        200,
        "OK",
        Some("reg"),
        &[("Contact".into(), contact)],
        Vec::new(),
    )
}

#[test]
fn hotline_registers_answers_the_challenge_and_refreshes_before_expiry() {
    let mut sim = Sim::new();
    sim.switch.register(account(), sim.now);
    sim.pump();
    let first = registers(&sim)[0].clone();
    assert_eq!(first.get("To"), Some("<sip:line1@carrier.test>"));
    assert!(
        first
            .get("From")
            .unwrap_or_default()
            .starts_with("<sip:line1@carrier.test>;tag=")
    );
    assert_eq!(first.get("Expires"), Some("600"));
    assert!(
        first
            .get("Contact")
            .unwrap_or_default()
            .starts_with("<sip:line1@"),
        "calls for the account come to us"
    );
    sim.deliver(challenge(&first, 401, "r-1", ""), phone(CARRIER));
    let second = registers(&sim)[1].clone();
    assert_eq!(second.get("CSeq"), Some("2 REGISTER"));
    assert_eq!(second.get("Call-ID"), first.get("Call-ID"));
    assert!(carrier_accepts(&second, "Authorization", "s3cret"));
    assert!(registration_events(&mut sim).is_empty());
    // The carrier grants 300 s: refreshed at 240 s, in the same Call-ID.
    sim.deliver(granted(&second, 300), phone(CARRIER));
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Registered { expires: 300 }]
    );
    sim.advance(239_000);
    assert_eq!(registers(&sim).len(), 2);
    sim.advance(1_000);
    let refresh = registers(&sim)[2].clone();
    assert_eq!(refresh.get("CSeq"), Some("3 REGISTER"));
    assert_eq!(refresh.get("Call-ID"), first.get("Call-ID"));
    // Challenged again with a fresh nonce, as carriers do: answered again.
    sim.deliver(challenge(&refresh, 401, "r-2", ""), phone(CARRIER));
    let answered = registers(&sim)[3].clone();
    assert!(carrier_accepts(&answered, "Authorization", "s3cret"));
    sim.deliver(granted(&answered, 300), phone(CARRIER));
    assert_eq!(
        sim.switch.registrations(),
        [(
            "carrier".to_string(),
            Registration::Registered { expires: 300 }
        )]
    );
    // Stopping: the binding is taken down.
    sim.switch.unregister_all(sim.now);
    sim.pump();
    let bye = registers(&sim).last().cloned().unwrap();
    assert_eq!(bye.get("Expires"), Some("0"));
    // The carrier asks who takes it down: answered, still with expiry 0.
    sim.deliver(challenge(&bye, 401, "r-3", ""), phone(CARRIER));
    let bye = registers(&sim).last().cloned().unwrap();
    assert_eq!(bye.get("Expires"), Some("0"));
    assert!(carrier_accepts(&bye, "Authorization", "s3cret"));
    sim.deliver(granted(&bye, 0), phone(CARRIER));
    sim.advance(3_600_000);
    assert_eq!(registers(&sim).len(), 6, "no refresh after leaving");
    assert_eq!(
        sim.switch.registrations(),
        [("carrier".to_string(), Registration::Unregistered)]
    );
}

#[test]
fn a_refusing_or_silent_carrier_is_retried_ever_later_and_a_wrong_password_never_loops() {
    let mut sim = Sim::new();
    sim.switch.register(account(), sim.now);
    sim.pump();
    let first = registers(&sim)[0].clone();
    sim.deliver(challenge(&first, 401, "r-1", ""), phone(CARRIER));
    let second = registers(&sim)[1].clone();
    // Challenged again for the realm we answered: the password is wrong.
    sim.deliver(challenge(&second, 401, "r-2", ""), phone(CARRIER));
    assert_eq!(registers(&sim).len(), 2, "no loop");
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Failed {
            code: Some(401),
            retry_in: Duration::from_secs(30)
        }]
    );
    // 30 s on, again; this time the carrier says nothing (Timer F, 32 s): 60 s next.
    sim.advance(30_000);
    assert_eq!(registers(&sim).len(), 3);
    sim.advance(32_000);
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Failed {
            code: None,
            retry_in: Duration::from_secs(60)
        }]
    );
    // Every wait doubles, up to ten minutes.
    for _ in 0..6 {
        sim.advance(700_000);
    }
    let waits: Vec<Duration> = registration_events(&mut sim)
        .into_iter()
        .filter_map(|s| match s {
            Registration::Failed { retry_in, .. } => Some(retry_in),
            _ => None,
        })
        .collect();
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(600)),
        "{waits:?}"
    );
    assert_eq!(waits.last(), Some(&Duration::from_secs(600)), "{waits:?}");
    // It comes back: registered, and the next failure waits 30 s again.
    let last = registers(&sim).last().cloned().unwrap();
    sim.advance(600_000);
    let retry = registers(&sim).last().cloned().unwrap();
    assert_ne!(retry.get("CSeq"), last.get("CSeq"));
    sim.deliver(granted(&retry, 600), phone(CARRIER));
    assert_eq!(
        registration_events(&mut sim).last(),
        Some(&Registration::Registered { expires: 600 })
    );
}

#[test]
fn a_registration_whose_connection_was_made_again_registers_at_once_over_it() {
    let mut sim = Sim::new();
    sim.switch.register(account(), sim.now);
    sim.pump();
    let first = registers(&sim)[0].clone();
    sim.deliver(granted(&first, 600), phone(CARRIER));
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Registered { expires: 600 }]
    );
    // The refresh goes out on a connection that has since closed: nothing comes back.
    sim.advance(480_000);
    assert_eq!(registers(&sim).len(), 2);
    // The driver connects again (here: to another address): a REGISTER goes there at once.
    assert!(
        sim.switch
            .reconnected("carrier", Link::Udp, phone(MOBILE), sim.now)
    );
    sim.pump();
    let again = sim.sent(phone(MOBILE), "REGISTER")[0].clone();
    assert_eq!(again.get("CSeq"), Some("3 REGISTER"));
    sim.deliver(granted(&again, 600), phone(MOBILE));
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Registered { expires: 600 }]
    );
    // The lost refresh's transaction times out later: stale, it changes nothing.
    sim.advance(40_000);
    assert!(registration_events(&mut sim).is_empty());
    assert_eq!(
        sim.switch.registrations(),
        [(
            "carrier".to_string(),
            Registration::Registered { expires: 600 }
        )]
    );
    assert!(
        !sim.switch
            .reconnected("elsewhere", Link::Udp, phone(MOBILE), sim.now)
    );
}

#[test]
fn an_interval_too_brief_takes_the_carriers_minimum() {
    let mut sim = Sim::new();
    sim.switch.register(account(), sim.now);
    sim.pump();
    let first = registers(&sim)[0].clone();
    sim.deliver(
        wire::response_to(
            &first,
            423,
            "Interval Too Brief",
            Some("reg"),
            &[("Min-Expires".into(), "3600".into())],
            Vec::new(),
        ),
        phone(CARRIER),
    );
    let again = registers(&sim)[1].clone();
    assert_eq!(again.get("Expires"), Some("3600"));
    sim.deliver(granted(&again, 3600), phone(CARRIER));
    assert_eq!(
        registration_events(&mut sim),
        [Registration::Registered { expires: 3600 }]
    );
}

// ---------------------------------------------------------------------------------------
// Asking phones whether they are there.

#[test]
fn a_phone_that_answers_options_is_there_and_one_that_never_does_is_not() {
    let mut sim = Sim::new();
    sim.switch.ping(
        "0 sip:alice@127.0.0.1:5070",
        "sip:alice@127.0.0.1:5070",
        Link::Udp,
        phone(DESK),
        sim.now,
    );
    sim.pump();
    let options = sim.sent(phone(DESK), "OPTIONS")[0].clone();
    assert!(
        matches!(&options.start, Start::Request { uri, .. } if uri == "sip:alice@127.0.0.1:5070")
    );
    // Any answer will do: a phone that does not implement OPTIONS is still there.
    sim.deliver(
        answer(&options, 405, "Method Not Allowed", None),
        phone(DESK),
    );
    assert_eq!(
        sim.take_events(),
        [Event::Pong {
            phone: "0 sip:alice@127.0.0.1:5070".into(),
            reached: true
        }]
    );
    // Silence: retransmitted over UDP, then given up at Timer F (64 × T1).
    sim.switch.ping(
        "1 sip:bob@127.0.0.1:5072",
        "sip:bob@127.0.0.1:5072",
        Link::Udp,
        phone(MOBILE),
        sim.now,
    );
    sim.pump();
    sim.advance(31_000);
    assert!(sim.take_events().is_empty());
    assert!(
        sim.wire
            .iter()
            .filter(|s| s.peer == phone(MOBILE) && s.resend)
            .count()
            >= 5,
        "retransmitted while waiting"
    );
    sim.advance(1_500);
    assert_eq!(
        sim.take_events(),
        [Event::Pong {
            phone: "1 sip:bob@127.0.0.1:5072".into(),
            reached: false
        }]
    );
}

#[test]
fn the_switch_reads_no_clock_opens_no_socket_and_imports_nothing_above_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/switch");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("src/switch") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a source file");
        files += 1;
        for banned in [
            "tokio",
            "std::net",
            "UdpSocket",
            "TcpStream",
            "Instant::now",
            "SystemTime",
            "crate::server",
            "crate::api",
            "crate::web",
            "sip::transport",
        ] {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                path.display()
            );
        }
    }
    assert!(files >= 5, "{files} files read");
}

/// Every `.rs` file under `src/<dir>`, with its text.
fn sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir),
    ];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                out.push((path, text));
            }
        }
    }
    out
}

/// The layers point down: api → server → switch → sip, routing, engine, media → flow. The
/// cores below the switch open no socket and start no task: the per-call session
/// (`engine/session.rs`) and the media leg (`media/leg.rs`) included.
#[test]
fn the_cores_import_nothing_above_them_and_open_no_socket() {
    let above_cores = ["crate::api", "crate::web", "crate::server", "crate::switch"];
    let io = ["tokio", "UdpSocket", "TcpStream", "TcpListener"];
    let mut files = 0;
    for dir in ["sip", "routing", "engine", "media"] {
        for (path, text) in sources(dir) {
            files += 1;
            for banned in above_cores
                .iter()
                .chain(if dir == "sip" { &[][..] } else { &io[..] })
            {
                assert!(
                    !text.contains(banned),
                    "{} mentions {banned}",
                    path.display()
                );
            }
        }
    }
    // The flow language is the bottom layer: the validator asks the dial policy through a
    // trait of its own (`flow::check::Dialable`).
    for (path, text) in sources("flow") {
        files += 1;
        for banned in above_cores.iter().chain(&[
            "crate::sip",
            "crate::engine",
            "crate::media",
            "crate::routing",
        ]) {
            assert!(
                !text.contains(banned),
                "{} mentions {banned}",
                path.display()
            );
        }
    }
    assert!(files >= 40, "{files} files read");
}

/// What the phone at the far end of a leg does, at one step of a script.
#[derive(Debug, Clone)]
enum PeerStep {
    /// Time passes (ms).
    Wait(u64),
    Trying,
    Ringing,
    /// 200 with its SDP (again, when it missed our ACK).
    Answer,
    /// A final refusal.
    Refuse(u16),
    /// The phone hangs up (BYE in the dialog, if there is one).
    Bye,
    /// Our side stops it ringing (the ring timed out, another phone answered).
    Cancel,
    /// Our side hangs up, whatever state the leg is in.
    HangUp,
}

fn peer_step() -> impl proptest::strategy::Strategy<Value = PeerStep> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0u64..40_000).prop_map(PeerStep::Wait),
        1 => Just(PeerStep::Trying),
        2 => Just(PeerStep::Ringing),
        2 => Just(PeerStep::Answer),
        1 => prop::sample::select(vec![404u16, 480, 486, 500, 503, 603]).prop_map(PeerStep::Refuse),
        1 => Just(PeerStep::Bye),
        1 => Just(PeerStep::Cancel),
        1 => Just(PeerStep::HangUp),
    ]
}

/// The phone answers what the switch sent it since `seen` (when it answers at all): 200 to a
/// CANCEL with 487 to the INVITE when no final answer went yet, 200 to a BYE.
fn phone_reacts(
    sim: &mut Sim,
    seen: &mut usize,
    answers_cancel: bool,
    answers_bye: bool,
    final_sent: &mut bool,
) {
    let invite = sim.invite_to(phone(DESK));
    while *seen < sim.wire.len() {
        let sent = &sim.wire[*seen];
        *seen += 1;
        if sent.peer != phone(DESK) || sent.resend {
            continue;
        }
        let msg = sent.msg.clone();
        match msg.method() {
            Some("CANCEL") if answers_cancel => {
                sim.offer(answer(&msg, 200, "OK", None), phone(DESK));
                if !*final_sent {
                    *final_sent = true;
                    sim.offer(
                        answer(&invite, 487, "Request Terminated", None),
                        phone(DESK),
                    );
                }
            }
            Some("BYE") if answers_bye => sim.offer(answer(&msg, 200, "OK", None), phone(DESK)),
            _ => {}
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Every leg hotline places is freed, with its timers, within its deadline, whatever the
    /// phone does: silence, ringing forever, answers crossing our CANCEL, a 200 again after
    /// our ACK, refusals after an answer, BYE at any time, a CANCEL or BYE of ours never
    /// answered. And its user hears of its end exactly once.
    #[test]
    fn every_placed_leg_is_freed_within_its_deadline_whatever_the_phone_does(
        script in proptest::collection::vec(peer_step(), 0..10),
        answers_cancel in proptest::bool::ANY,
        answers_bye in proptest::bool::ANY,
    ) {
        let mut sim = Sim::new();
        let leg = sim.place(DESK, None);
        let invite = sim.invite_to(phone(DESK));
        let mut seen = 0;
        let mut final_sent = false;
        for step in &script {
            match step {
                PeerStep::Wait(ms) => sim.advance(*ms),
                PeerStep::Trying => sim.offer(answer(&invite, 100, "Trying", None), phone(DESK)),
                PeerStep::Ringing => sim.offer(answer(&invite, 180, "Ringing", None), phone(DESK)),
                PeerStep::Answer => {
                    final_sent = true;
                    sim.offer(answer(&invite, 200, "OK", Some(phone_sdp(40_000))), phone(DESK));
                }
                PeerStep::Refuse(code) => {
                    final_sent = true;
                    sim.offer(answer(&invite, *code, "No", None), phone(DESK));
                }
                PeerStep::Bye => {
                    let bye = from_phone(&sim, phone(DESK), "BYE", 7, "");
                    sim.offer(bye, phone(DESK));
                }
                PeerStep::Cancel => {
                    sim.switch.cancel(&leg, false, sim.now);
                    sim.pump();
                }
                PeerStep::HangUp => {
                    sim.switch.hang_up(&leg, sim.now);
                    sim.pump();
                }
            }
            phone_reacts(&mut sim, &mut seen, answers_cancel, answers_bye, &mut final_sent);
        }
        // The call ends: our side lets go of the leg, whatever it is doing.
        sim.switch.hang_up(&leg, sim.now);
        sim.pump();
        phone_reacts(&mut sim, &mut seen, answers_cancel, answers_bye, &mut final_sent);
        // Every deadline of RFC 3261 is within 64·T1 (32 s) of the last request: two minutes
        // covers them all.
        sim.advance(120_000);
        let events = sim.take_events();
        let ends = events
            .iter()
            .filter(|e| matches!(e, Event::Closed { leg: l, .. } if *l == leg))
            .count();
        proptest::prop_assert_eq!(ends, 1, "{:?}", events);
        proptest::prop_assert!(sim.switch.is_empty(), "left: {:?}", sim.switch.leg_ids());
        proptest::prop_assert!(!sim.switch.requests_pending());
        proptest::prop_assert_eq!(sim.switch.poll_timeout(), None, "a timer left");
    }
}

/// A phone that rang, then answers neither our CANCEL nor the INVITE: the leg is given up
/// 64·T1 after the CANCEL (RFC 3261 §9.1), not kept for ever.
#[test]
fn a_ringing_phone_that_ignores_our_cancel_is_given_up_after_64_t1() {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(answer(&invite, 180, "Ringing", None), phone(DESK));
    sim.advance(5_000);
    sim.switch.cancel(&leg, false, sim.now);
    sim.pump();
    sim.advance(31_000);
    assert!(
        !sim.switch.is_empty(),
        "still waiting for the INVITE's answer"
    );
    sim.advance(2_000);
    assert!(sim.switch.is_empty(), "given up at 32 s");
    assert_eq!(closed(&sim.take_events(), &leg), Some(false));
    assert_eq!(sim.switch.poll_timeout(), None);
}

/// Timer B is for a phone that says nothing: one that rings may ring as long as its user
/// lets it (a transfer's `ring_timeout_s` of 60), then answer.
#[test]
fn a_phone_that_rings_may_ring_past_timer_b_then_answer() {
    let mut sim = Sim::new();
    let leg = sim.place(DESK, None);
    let invite = sim.invite_to(phone(DESK));
    sim.deliver(answer(&invite, 180, "Ringing", None), phone(DESK));
    sim.advance(50_000);
    assert!(sim.take_events().is_empty(), "still ringing at 50 s");
    sim.deliver(
        answer(&invite, 200, "OK", Some(phone_sdp(40_000))),
        phone(DESK),
    );
    assert!(answered(&sim.take_events(), &leg).is_some());
    assert_eq!(sim.switch.phase(&leg), Some(Phase::Up));
}

/// Admission: a burst of new calls up to the rate, then one per refill.
#[test]
fn a_burst_up_to_the_rate_then_one_per_refill() {
    let t0 = origin();
    let mut a = admission::Admission::new(0, 10, t0);
    for _ in 0..10 {
        assert_eq!(a.admit(0, t0), Ok(()));
    }
    assert_eq!(a.admit(0, t0), Err(admission::Refusal::TooManyNewCalls));
    // A tenth of a second refills one.
    let t1 = t0 + Duration::from_millis(100);
    assert_eq!(a.admit(0, t1), Ok(()));
    assert_eq!(a.admit(0, t1), Err(admission::Refusal::TooManyNewCalls));
    // A quiet minute refills the burst, never more.
    let t2 = t1 + Duration::from_secs(60);
    for _ in 0..10 {
        assert_eq!(a.admit(0, t2), Ok(()));
    }
    assert_eq!(a.admit(0, t2), Err(admission::Refusal::TooManyNewCalls));
}

/// Admission: a full line turns calls away before any token is taken.
#[test]
fn a_full_line_turns_calls_away_without_taking_a_token() {
    let t0 = origin();
    let mut a = admission::Admission::new(2, 1, t0);
    assert!(!a.full(1) && a.full(2));
    assert_eq!(a.admit(2, t0), Err(admission::Refusal::TooManyCalls));
    assert_eq!(a.admit(1, t0), Ok(()), "the token was still there");
    assert_eq!(a.admit(1, t0), Err(admission::Refusal::TooManyNewCalls));
    assert_eq!(admission::Refusal::TooManyCalls.reason(), "Too Many Calls");
    // No limits: everyone in.
    let mut open = admission::Admission::new(0, 0, t0);
    assert!((0..10_000).all(|_| open.admit(5_000, t0).is_ok()));
}

/// The origin of a virtual clock: any instant will do, the cores are given every time.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

/// Agents' phones (`switch::phones`): rung while registered and answering their OPTIONS.
mod phones {
    use hotline::sip::link::Link;
    use hotline::sip::qualify::Mode;
    use hotline::sip::registrar::{Binding, Registrar, User};
    use hotline::switch::phones::{Phones, Reach};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn phones(mode: Mode) -> Phones {
        let users = ["alice", "bob"]
            .iter()
            .map(|id| User {
                id: id.to_string(),
                password: "secret".into(),
            })
            .collect();
        Phones::new(
            Registrar::new("example.com", &[], users, [3; 16]),
            s(30),
            mode,
        )
    }

    /// A phone registered until `t + 3600 s`: behind a NAT when its Contact is not where its
    /// REGISTER came from.
    fn binding(uri: &str, from: &str, t: Instant) -> Binding {
        let from: SocketAddr = from.parse().expect("an address");
        Binding {
            uri: uri.into(),
            source: from,
            target: from,
            link: Link::Udp,
            expires: t + s(3600),
            since: t,
        }
    }

    fn register(p: &mut Phones, agent: usize, b: Binding, now: Instant) -> Option<Reach> {
        let change = p.registrar.restore(agent, b);
        let reach = change.and_then(|c| p.registration(c, now));
        reach.or_else(|| p.changed(agent, now))
    }

    #[test]
    fn a_phone_behind_a_nat_is_asked_and_its_agent_is_not_rung_while_it_is_silent() {
        let t = super::origin();
        let mut p = phones(Mode::Nat);
        let nat = binding("sip:alice@192.168.1.20:5060", "203.0.113.9:40000", t);
        assert_eq!(register(&mut p, 0, nat, t), Some(Reach::Gained(0)));
        assert!(p.is_reachable(0), "reachable until asked");
        assert_eq!(p.poll_timeout(), Some(t + s(30)));
        assert!(p.tick(t + s(29)).pings.is_empty());

        let tick = p.tick(t + s(30));
        assert_eq!(tick.pings.len(), 1);
        let ping = tick.pings[0].clone();
        assert_eq!(ping.uri, "sip:alice@192.168.1.20:5060");
        assert_eq!(
            ping.target,
            "203.0.113.9:40000".parse().expect("an address")
        );
        // It answers: nothing changes.
        assert_eq!(p.answered(&ping.phone, true, t + s(31)), None);
        // Next time it is silent: Alice is not rung.
        let ping = p.tick(t + s(61)).pings.remove(0);
        let silent = p.answered(&ping.phone, false, t + s(93)).expect("a change");
        assert_eq!((silent.agent, silent.reachable), (0, false));
        assert_eq!(silent.reach, Some(Reach::Lost(0)));
        assert!(!p.is_reachable(0));
        assert!(p.ringable(0).is_empty());
        // It answers again: she is rung again.
        let ping = p.tick(t + s(123)).pings.remove(0);
        let back = p.answered(&ping.phone, true, t + s(124)).expect("a change");
        assert_eq!(back.reach, Some(Reach::Gained(0)));
        assert_eq!(p.ringable(0).len(), 1);
        // A name we never gave is ignored.
        assert_eq!(p.answered("7 sip:x@y", false, t + s(125)), None);
        assert_eq!(p.answered("nonsense", false, t + s(125)), None);
    }

    #[test]
    fn only_the_silent_phone_of_two_is_left_out_and_the_agent_stays_reachable() {
        let t = super::origin();
        let mut p = phones(Mode::All);
        register(
            &mut p,
            1,
            binding("sip:bob@10.0.0.5:5060", "10.0.0.5:5060", t),
            t,
        );
        register(
            &mut p,
            1,
            binding("sip:bob@10.0.0.6:5060", "10.0.0.6:5060", t),
            t,
        );
        let pings = p.tick(t + s(30)).pings;
        assert_eq!(pings.len(), 2, "every phone is asked in mode all");
        let desk = pings
            .iter()
            .find(|g| g.uri.contains("10.0.0.5"))
            .expect("the desk phone");
        let gone = p.answered(&desk.phone, false, t + s(62)).expect("a change");
        assert_eq!(gone.reach, None, "the other phone still answers");
        assert!(p.is_reachable(1));
        let ring: Vec<String> = p.ringable(1).into_iter().map(|b| b.uri).collect();
        assert_eq!(ring, ["sip:bob@10.0.0.6:5060"]);
    }

    #[test]
    fn phones_on_their_contact_are_not_asked_unless_told_and_expiry_loses_the_agent() {
        let t = super::origin();
        for (mode, asked) in [(Mode::Nat, 0), (Mode::All, 1), (Mode::Off, 0)] {
            let mut p = phones(mode);
            let direct = binding("sip:alice@10.0.0.5:5060", "10.0.0.5:5060", t);
            assert_eq!(register(&mut p, 0, direct, t), Some(Reach::Gained(0)));
            assert_eq!(p.tick(t + s(30)).pings.len(), asked, "{mode:?}");
            let tick = p.tick(t + s(3601));
            assert_eq!(tick.expired, [0]);
            assert_eq!(tick.reach, [Reach::Lost(0)]);
            assert!(!p.is_reachable(0));
            assert!(
                p.tick(t + s(4000)).pings.is_empty(),
                "a gone phone is not asked"
            );
        }
        // A qualify interval of 0 asks nobody.
        let mut p = Phones::new(phones(Mode::All).registrar, Duration::ZERO, Mode::All);
        let nat = binding("sip:alice@192.168.1.20:5060", "203.0.113.9:40000", t);
        register(&mut p, 0, nat, t);
        assert!(p.tick(t + s(60)).pings.is_empty());
    }
}

/// What the desk and the wall show (`switch::status`), from the routing core as it stands.
mod status {
    use hotline::routing::{AgentConfig, QueueConfig, Router, RouterEvent, Strategy};
    use hotline::sip::registrar::{Registrar, User};
    use hotline::status::ConsultRow;
    use hotline::switch::status::{Caller, Callers, ServiceLevels, View};
    use std::collections::{HashMap, HashSet};
    use std::time::{Duration, Instant};

    /// `s` seconds after `t`.
    fn after(t: Instant, s: u64) -> Instant {
        t + Duration::from_secs(s)
    }

    struct Held {
        call_id: String,
        entered: Instant,
        from: String,
        path: Vec<String>,
        variables: Vec<(String, String)>,
        callback: bool,
    }

    struct Fake(HashMap<u64, Held>);

    impl Callers for &Fake {
        fn caller(&self, call: u64) -> Option<Caller<'_>> {
            let h = self.0.get(&call)?;
            Some(Caller {
                call_id: &h.call_id,
                queue: "support",
                entered: h.entered,
                number: "sip:anonymous@anonymous.invalid",
                from: Some(&h.from),
                path: &h.path,
                variables: &h.variables,
                callback: h.callback,
                transferred_by: None,
                note: None,
            })
        }

        fn live(&self) -> Vec<u64> {
            let mut ids: Vec<u64> = self
                .0
                .iter()
                .filter(|(_, h)| !h.callback)
                .map(|(&id, _)| id)
                .collect();
            ids.sort_unstable();
            ids
        }
    }

    fn held(call_id: &str, entered: Instant, from: &str, callback: bool) -> Held {
        Held {
            call_id: call_id.into(),
            entered,
            from: from.into(),
            path: vec!["main.menu: pressed 2".into()],
            variables: vec![("account".into(), "12345".into())],
            callback,
        }
    }

    /// Ann, who has waited since t=5 s.
    fn ann(t: Instant) -> Held {
        held(
            "first@x",
            after(t, 5),
            "\"Ann Smith\" <sip:+34600111222@example.com>",
            false,
        )
    }

    struct Line {
        router: Router,
        registrar: Registrar,
        reachable: HashSet<usize>,
        ids: Vec<String>,
        names: Vec<String>,
        queue_names: Vec<String>,
        queue_ids: HashMap<String, usize>,
        levels: ServiceLevels,
        callers: Fake,
    }

    impl Line {
        fn view(&self) -> View<'_, &Fake> {
            View {
                router: &self.router,
                registrar: &self.registrar,
                reachable: &self.reachable,
                ids: &self.ids,
                names: &self.names,
                queue_names: &self.queue_names,
                queue_ids: &self.queue_ids,
                levels: &self.levels,
                callers: &self.callers,
            }
        }
    }

    /// Alice and Bob serve "support"; Alice's phone is registered at t=1, Bob is offline.
    fn line(t: Instant) -> Line {
        let agents: Vec<AgentConfig> = ["alice", "bob"]
            .iter()
            .map(|id| AgentConfig {
                id: id.to_string(),
                skills: [("support".into(), 1)].into(),
            })
            .collect();
        let queues = [QueueConfig {
            name: "support".into(),
            skills: vec!["support".into()],
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
            retry: Duration::from_secs(5),
        }];
        let mut router = Router::new(&agents, &queues, true, after(t, 0));
        router.handle(RouterEvent::Registered { agent: 0 }, after(t, 1));
        let users = ["alice", "bob"]
            .iter()
            .map(|id| User {
                id: id.to_string(),
                password: "right".into(),
            })
            .collect();
        Line {
            router,
            registrar: Registrar::new("example.com", &[], users, [7; 16]),
            reachable: HashSet::from([0]),
            ids: vec!["alice".into(), "bob".into()],
            names: vec!["Alice".into(), "Bob".into()],
            queue_names: vec!["support".into()],
            queue_ids: HashMap::from([("support".into(), 0)]),
            levels: ServiceLevels::new(vec![Duration::from_secs(30)]),
            callers: Fake(HashMap::new()),
        }
    }

    #[test]
    fn the_service_level_counts_the_last_hour_only() {
        let t = super::origin();
        let mut levels = ServiceLevels::new(vec![Duration::from_secs(30)]);
        assert_eq!(levels.level(0, after(t, 0)), None, "nobody has left yet");
        levels.served(0, true, after(t, 0));
        levels.served(0, false, after(t, 600));
        levels.served(0, true, after(t, 1200));
        assert_eq!(levels.level(0, after(t, 1200)), Some(2.0 / 3.0));
        // An hour on, the first caller no longer counts.
        assert_eq!(levels.level(0, after(t, 3601)), Some(0.5));
        levels.served(0, true, after(t, 4000));
        assert_eq!(levels.level(0, after(t, 4000)), Some(2.0 / 3.0));
        assert_eq!(
            levels.level(0, after(t, 4201)),
            Some(1.0),
            "the late answer aged out"
        );
        assert_eq!(levels.level(0, after(t, 9000)), None, "the hour is empty");
        assert_eq!(levels.threshold_s(0), 30);
        // A queue the levels do not know of: nothing counted, the default threshold.
        levels.served(3, true, after(t, 0));
        assert_eq!(levels.level(3, after(t, 0)), None);
        assert_eq!(levels.threshold_s(3), 20);
        assert!(levels.in_time(0, Duration::from_secs(30)));
        assert!(!levels.in_time(0, Duration::from_secs(31)));
        // A queue added by a reload.
        levels.set(2, Duration::from_secs(60));
        assert!(levels.in_time(2, Duration::from_secs(60)));
        levels.served(2, false, after(t, 0));
        assert_eq!(levels.level(2, after(t, 0)), Some(0.0));
        assert_eq!(levels.threshold_s(1), 0);
    }

    #[test]
    fn the_wall_shows_each_queue_by_agent_state_and_its_callers_longest_waiting_first() {
        let t = super::origin();
        let mut l = line(t);
        l.callers.0.insert(1, ann(t));
        l.callers.0.insert(
            2,
            held("second@x", after(t, 8), "<sip:+34911@example.com>", false),
        );
        l.callers.0.insert(
            3,
            held("callback@x", after(t, 1), "<sip:+1@example.com>", true),
        );
        for (call, at) in [(1, 5), (2, 8)] {
            l.router.handle(
                RouterEvent::Enqueue {
                    call,
                    queue: 0,
                    priority: 0,
                },
                after(t, at),
            );
        }
        let rows = l.view().queue_rows(after(t, 10));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "support");
        assert_eq!(rows[0].waiting, 1, "the first caller's agent rings");
        assert_eq!(rows[0].agents.ringing, 1);
        assert_eq!(rows[0].agents.available, 0);
        assert_eq!(rows[0].service_level_s, 30);

        let live = l.view().live_calls(after(t, 10));
        let shown: Vec<(&str, &str)> = live.iter().map(|c| (c.call.as_str(), c.state)).collect();
        assert_eq!(
            shown,
            [("first@x", "ringing"), ("second@x", "waiting")],
            "a callback is not a live call"
        );
        assert_eq!(live[0].name, "Ann Smith");
        assert_eq!(live[0].number, "+34600111222");
        assert_eq!(live[1].waited_s, 2);

        l.router
            .handle(RouterEvent::Answered { call: 1, agent: 0 }, after(t, 20));
        let live = l.view().live_calls(after(t, 100));
        assert_eq!(live[0].state, "talking");
        assert_eq!(live[0].agent.as_deref(), Some("Alice"));
        assert_eq!(live[0].waited_s, 15, "the wait stops when an agent answers");
        let rows = l.view().queue_rows(after(t, 100));
        assert_eq!(rows[0].agents.busy, 1);

        // A queue taken out of the config is no longer listed.
        l.queue_ids.clear();
        assert!(l.view().queue_rows(after(t, 100)).is_empty());
    }

    #[test]
    fn an_agents_row_shows_her_caller_her_wrong_passwords_and_since_when() {
        let t = super::origin();
        let mut l = line(t);
        l.callers.0.insert(1, ann(t));
        l.router.handle(
            RouterEvent::Enqueue {
                call: 1,
                queue: 0,
                priority: 0,
            },
            after(t, 5),
        );
        l.router
            .handle(RouterEvent::Answered { call: 1, agent: 0 }, after(t, 20));
        let source = "192.0.2.7".parse().expect("an address");
        for _ in 0..2 {
            assert!(
                l.registrar
                    .login("alice", "wrong", source, after(t, 21))
                    .is_err()
            );
        }
        let wall: jiff::Timestamp = "2026-12-08T10:00:00Z".parse().expect("a time");
        let consulting = Some(ConsultRow {
            to: "agent:bob".into(),
            answered: false,
        });
        let row = l
            .view()
            .agent_row(0, after(t, 50), wall, consulting)
            .expect("alice's row");
        assert_eq!(row.state, "busy");
        assert_eq!(row.since_s, 30);
        assert_eq!(row.since, "2026-12-08T09:59:30Z");
        assert_eq!(row.call.as_deref(), Some("first@x"));
        assert_eq!(row.auth_failures, 2);
        let card = row.caller.expect("her caller's card");
        assert_eq!(card.name, "Ann Smith");
        assert_eq!(card.waited_s, 15);
        assert_eq!(card.steps.len(), 1);
        assert_eq!(card.variables[0].value, "12345");
        assert_eq!(row.consulting.map(|c| c.to).as_deref(), Some("agent:bob"));

        let bob = l
            .view()
            .agent_row(1, after(t, 50), wall, None)
            .expect("bob's row");
        assert_eq!(
            (bob.state, bob.call, bob.caller.is_none()),
            ("offline", None, true)
        );
        assert_eq!(l.view().listed_agents().count(), 2);
        let mut by_state = l.view().agents_by_state();
        by_state.sort_unstable();
        assert_eq!(by_state, [("busy", 1), ("offline", 1)]);
        assert!(
            l.view().agent_row(2, after(t, 50), wall, None).is_none(),
            "no third agent"
        );
    }
}

/// A caller joining a queue (`switch::queueing`): which queue, whether anyone serves it, and
/// what the routing core is told.
mod queueing {
    use hotline::engine::First;
    use hotline::routing::{AgentConfig, QueueConfig, Router, RouterEvent, Strategy};
    use hotline::switch::queueing::{Joining, join};
    use std::collections::HashMap;
    use std::time::Duration;

    fn queue(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.into(),
            skills: vec![name.into()],
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
            retry: Duration::from_secs(5),
        }
    }

    /// Alice serves support and is logged in; Bob serves sales and is not.
    fn centre() -> (
        Router,
        HashMap<String, usize>,
        Vec<String>,
        std::time::Instant,
    ) {
        let t = super::origin();
        let agents: Vec<AgentConfig> = [("alice", "support"), ("bob", "sales")]
            .iter()
            .map(|(id, skill)| AgentConfig {
                id: id.to_string(),
                skills: [(skill.to_string(), 1)].into(),
            })
            .collect();
        let mut router = Router::new(&agents, &[queue("support"), queue("sales")], true, t);
        router.handle(RouterEvent::Registered { agent: 0 }, t);
        let ids = HashMap::from([("support".into(), 0), ("sales".into(), 1)]);
        (router, ids, vec!["alice".into(), "bob".into()], t)
    }

    fn first(queue: &str, owner: Option<&str>) -> First {
        First {
            follow_up: 7,
            owner: owner.map(str::to_string),
            queue: queue.into(),
        }
    }

    #[test]
    fn a_caller_waits_in_a_served_queue_and_moves_on_at_once_from_an_empty_one() {
        let (router, ids, agents, t) = centre();
        let j = |queue: &str, probe: bool| {
            join(&router, &ids, &agents, 9, queue.into(), 3, None, probe, t)
        };
        assert_eq!(
            j("support", false),
            Joining::Join {
                queue: "support".into(),
                event: RouterEvent::Enqueue {
                    call: 9,
                    queue: 0,
                    priority: 3
                },
                owner_gone: None
            }
        );
        assert_eq!(j("sales", false), Joining::NoAgents, "nobody logged in");
        assert_eq!(j("billing", false), Joining::NoAgents, "no such queue");
        assert_eq!(
            j("support", true),
            Joining::Probe {
                queue: "support".into()
            },
            "a probe hears the hold music, nobody is rung"
        );
        assert_eq!(
            j("sales", true),
            Joining::NoAgents,
            "a probe finds the queue empty too"
        );
    }

    #[test]
    fn a_returning_caller_waits_at_the_head_of_their_follow_ups_queue_for_its_owner() {
        let (router, ids, agents, t) = centre();
        let j = |node_queue: &str, f: First| {
            join(
                &router,
                &ids,
                &agents,
                9,
                node_queue.into(),
                0,
                Some(&f),
                false,
                t,
            )
        };
        // Their voicemail was left for support: they wait there, whatever the node's queue.
        assert_eq!(
            j("sales", first("support", Some("alice"))),
            Joining::Join {
                queue: "support".into(),
                event: RouterEvent::EnqueueReturning {
                    call: 9,
                    queue: 0,
                    owner: Some(0)
                },
                owner_gone: None
            }
        );
        // A mailbox no queue is named after: the node's own queue.
        let Joining::Join { queue, event, .. } = j("support", first("front-desk", None)) else {
            panic!("support is served");
        };
        assert_eq!(queue, "support");
        assert_eq!(
            event,
            RouterEvent::EnqueueReturning {
                call: 9,
                queue: 0,
                owner: None
            }
        );
        // Its owner has left the config: the queue takes them, and it is said.
        let Joining::Join {
            event, owner_gone, ..
        } = j("support", first("support", Some("carol")))
        else {
            panic!("support is served");
        };
        assert_eq!(owner_gone.as_deref(), Some("carol"));
        assert!(matches!(
            event,
            RouterEvent::EnqueueReturning { owner: None, .. }
        ));
    }
}

/// What an agent's ring carries (`switch::agents::Ringing`): who her phone shows, and the
/// caller's context.
mod ringing {
    use hotline::switch::agents::Ringing;
    use hotline::switch::status::Caller;
    use std::time::Duration;

    #[test]
    fn an_agents_phone_shows_the_caller_or_the_colleague_calling_about_them() {
        let t = super::origin();
        let path = vec!["main.menu: pressed 2".to_string()];
        let variables = vec![("account".to_string(), "12345".to_string())];
        let ann = Caller {
            call_id: "c1@x",
            queue: "support",
            entered: t,
            number: "sip:+34600111222@carrier.example",
            from: Some("\"Ann Smith\" <sip:+34600111222@carrier.example>;tag=9"),
            path: &path,
            variables: &variables,
            callback: false,
            transferred_by: Some("bob"),
            note: Some("wants a refund"),
        };
        let ring = Ringing {
            caller: &ann,
            callback_attempt: None,
            colleague: None,
            agent: "alice",
            domain: "example.com",
        };
        let d = ring.dial(t + Duration::from_secs(42));
        assert_eq!(d.to, "sip:alice@example.com");
        assert_eq!(
            (d.from.display.as_str(), d.from.uri.as_str()),
            ("Ann Smith", "sip:+34600111222@carrier.example")
        );
        assert!(d.assert_identity, "our own agents' phones trust us");
        let c = d.context.expect("the caller's context");
        assert_eq!(c.caller, "sip:+34600111222@carrier.example");
        assert_eq!(c.queue.as_deref(), Some("support"));
        assert_eq!(c.waited, Some(Duration::from_secs(42)));
        assert_eq!(c.path, path);
        assert_eq!(c.variables, variables);
        assert_eq!(c.transferred_by.as_deref(), Some("bob"));
        assert_eq!(c.transfer_note.as_deref(), Some("wants a refund"));
        assert_eq!(c.callback_attempt, None);

        // A colleague calls about Ann: his phone shows her, the context stays Ann's.
        let d = Ringing {
            colleague: Some(("Alice Adams", "alice")),
            agent: "carol",
            ..ring
        }
        .dial(t);
        assert_eq!(
            (d.from.display.as_str(), d.from.uri.as_str()),
            ("Alice Adams", "sip:alice@example.com")
        );
        assert_eq!(d.to, "sip:carol@example.com");
        let c = d.context.expect("the caller's context");
        assert_eq!(c.caller, "sip:+34600111222@carrier.example");

        // A callback: Ann has hung up, so her stored number is shown, with the attempt.
        let gone = Caller { from: None, ..ann };
        let d = Ringing {
            caller: &gone,
            callback_attempt: Some(2),
            ..ring
        }
        .dial(t);
        assert_eq!(
            (d.from.display.as_str(), d.from.uri.as_str()),
            ("+34600111222", "sip:+34600111222@carrier.example")
        );
        assert_eq!(d.context.and_then(|c| c.callback_attempt), Some(2));

        // A From header no phone should show is not passed on.
        let forged = Caller {
            from: Some("\"x\" <javascript:alert(1)>"),
            ..ann
        };
        let d = Ringing {
            caller: &forged,
            ..ring
        }
        .dial(t);
        assert_eq!(d.from.uri, "sip:anonymous@anonymous.invalid");
    }
}

//! The probe's caller: one SIP call over UDP or TCP (INVITE, ACK, BYE; RFC 4733 keys), its
//! RTP sent every 20 ms (silence, so the line sees a live caller) and received through the
//! `Recogniser`. Blocking and single-threaded: a probe places one call at a time. This is an
//! edge like `server/`: it reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use super::{Heard, Recogniser};
use crate::media::dtmf;
use crate::media::g711::Law;
use crate::media::rtp::{self, SAMPLES_PER_PACKET, Stream};
use crate::sip::sdp;
use crate::sip::wire::{self, Framed, Message, Start};

/// The payload type we offer for RFC 4733 events.
const EVENT_PT: u8 = 101;
/// How long an INVITE may go unanswered (Timer B).
const INVITE_TIMEOUT: Duration = Duration::from_secs(32);
/// Bound on what one TCP read may leave unframed.
const MAX_STREAM: usize = 256 * 1024;

/// Where to call: `sip:user@host[:port][;transport=tcp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub uri: String,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub tcp: bool,
}

pub fn parse_uri(s: &str) -> Result<Dest, String> {
    let bad = || format!("{s}: not a SIP URI like sip:main@127.0.0.1:5060");
    let rest = s.strip_prefix("sip:").ok_or_else(bad)?;
    let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
    let (user, hostport) = addr.split_once('@').ok_or_else(bad)?;
    if user.is_empty()
        || !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
    {
        return Err(bad());
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
            (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (hostport.to_string(), 5060),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let tcp = params
        .split(';')
        .any(|p| p.eq_ignore_ascii_case("transport=tcp"));
    Ok(Dest {
        uri: s.to_string(),
        user: user.to_string(),
        host,
        port,
        tcp,
    })
}

enum Link {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream, Vec<u8>),
}

impl Link {
    fn send(&mut self, m: &Message) -> Result<(), String> {
        let bytes = m.to_bytes();
        match self {
            Link::Udp(s, to) => s.send_to(&bytes, *to).map(|_| ()),
            Link::Tcp(s, _) => s.write_all(&bytes),
        }
        .map_err(|e| format!("sending SIP: {e}"))
    }

    /// The next message, waiting at most a few milliseconds.
    fn recv(&mut self) -> Option<Message> {
        match self {
            Link::Udp(s, _) => {
                let mut buf = [0u8; 65_535];
                let (n, _) = s.recv_from(&mut buf).ok()?;
                wire::parse_datagram(&buf[..n]).ok()
            }
            Link::Tcp(s, pending) => loop {
                match wire::parse_stream(pending) {
                    Ok(Framed::Complete(m, used)) => {
                        pending.drain(..used.min(pending.len()));
                        return Some(m);
                    }
                    Ok(Framed::Incomplete) => {}
                    Err(_) => {
                        pending.clear();
                        return None;
                    }
                }
                let mut buf = [0u8; 8192];
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => {
                        if pending.len() + n > MAX_STREAM {
                            pending.clear();
                            return None;
                        }
                        pending.extend_from_slice(&buf[..n]);
                    }
                }
            },
        }
    }
}

/// A call in progress.
pub struct Call<'r> {
    link: Link,
    rtp: UdpSocket,
    remote_rtp: SocketAddr,
    stream: Stream,
    recogniser: &'r Recogniser,
    /// Prompt starts and frames heard, with when.
    pub heard: VecDeque<(Heard, Instant)>,
    pub answered: Instant,
    next_send: Instant,
    keys: VecDeque<char>,
    /// The key being sent: its RTP timestamp and packets sent so far.
    sending: Option<(u8, u32, u32)>,
    local: IpAddr,
    local_sip: u16,
    call_id: String,
    from_tag: String,
    to: String,
    remote_target: String,
    route: Vec<String>,
    cseq: u32,
    dest: Dest,
    pub ended_by_line: bool,
}

fn random_hex() -> String {
    format!("{:016x}", crate::server::random())
}

fn header(name: &str, value: impl Into<String>) -> wire::Header {
    wire::Header {
        name: name.into(),
        value: value.into(),
    }
}

impl<'r> Call<'r> {
    /// Dials and waits for the answer; `Err` says why there is no call.
    pub fn dial(
        dest: &Dest,
        token: Option<&str>,
        recogniser: &'r Recogniser,
    ) -> Result<Self, String> {
        let to_addr = (dest.host.as_str(), dest.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", dest.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", dest.host))?;
        let (link, local) = if dest.tcp {
            let s = TcpStream::connect_timeout(&to_addr, Duration::from_secs(5))
                .map_err(|e| format!("connecting to {to_addr}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_millis(2))).ok();
            let local = s.local_addr().map_err(|e| e.to_string())?;
            (Link::Tcp(s, Vec::new()), local)
        } else {
            let any: SocketAddr = if to_addr.is_ipv4() {
                "0.0.0.0:0".parse().unwrap_or(to_addr)
            } else {
                "[::]:0".parse().unwrap_or(to_addr)
            };
            // The address the line will see us at: the one routed towards it.
            let probe = UdpSocket::bind(any).map_err(|e| e.to_string())?;
            probe.connect(to_addr).map_err(|e| e.to_string())?;
            let ip = probe.local_addr().map_err(|e| e.to_string())?.ip();
            let s = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
            let local = s.local_addr().map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_millis(2))).ok();
            (Link::Udp(s, to_addr), local)
        };
        let rtp = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).map_err(|e| e.to_string())?;
        rtp.set_read_timeout(Some(Duration::from_millis(2))).ok();
        let rtp_port = rtp.local_addr().map_err(|e| e.to_string())?.port();
        let offer = sdp::describe(1, 1, local.ip(), rtp_port, None, sdp::OfferSrtp::No);
        let transport = if dest.tcp { "TCP" } else { "UDP" };
        let host = match local.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let mut call = Call {
            link,
            rtp,
            remote_rtp: to_addr,
            stream: Stream::new(
                rand_u32(),
                Law::Pcmu.payload_type(),
                rand_u32() as u16,
                rand_u32(),
            ),
            recogniser,
            heard: VecDeque::new(),
            answered: Instant::now(),
            next_send: Instant::now(),
            keys: VecDeque::new(),
            sending: None,
            local: local.ip(),
            local_sip: local.port(),
            call_id: format!("{}@hotline-probe", random_hex()),
            from_tag: random_hex(),
            to: format!("<{}>", dest.uri.split(';').next().unwrap_or(&dest.uri)),
            remote_target: dest.uri.clone(),
            route: Vec::new(),
            cseq: 1,
            dest: dest.clone(),
            ended_by_line: false,
        };
        let branch = format!("z9hG4bK{}", random_hex());
        let mut headers = vec![
            header(
                "Via",
                format!(
                    "SIP/2.0/{transport} {host}:{};branch={branch};rport",
                    local.port()
                ),
            ),
            header("Max-Forwards", "70"),
            header("From", format!("<sip:probe@{host}>;tag={}", call.from_tag)),
            header("To", call.to.clone()),
            header("Call-ID", call.call_id.clone()),
            header("CSeq", "1 INVITE"),
            header(
                "Contact",
                format!(
                    "<sip:probe@{host}:{};transport={}>",
                    local.port(),
                    transport.to_lowercase()
                ),
            ),
            header("User-Agent", "hotline-probe"),
            header("Content-Type", "application/sdp"),
        ];
        if let Some(t) = token {
            headers.push(header("X-Hotline-Probe", t));
        }
        let invite = Message {
            start: Start::Request {
                method: "INVITE".into(),
                uri: dest.uri.split(';').next().unwrap_or(&dest.uri).to_string(),
            },
            headers,
            body: offer.clone().into_bytes(),
        };
        call.link.send(&invite)?;
        let started = Instant::now();
        let mut resend = started + Duration::from_millis(500);
        let mut provisional = false;
        loop {
            if started.elapsed() > INVITE_TIMEOUT {
                return Err(format!(
                    "no answer to the INVITE within {} s",
                    INVITE_TIMEOUT.as_secs()
                ));
            }
            if !dest.tcp && !provisional && Instant::now() >= resend {
                call.link.send(&invite)?;
                resend = Instant::now() + Duration::from_millis(500);
            }
            let Some(m) = call.link.recv() else { continue };
            let Start::Response { code, reason } = &m.start else {
                continue;
            };
            if m.get("Call-ID") != Some(call.call_id.as_str()) {
                continue;
            }
            match code {
                100..=199 => provisional = true,
                200..=299 => {
                    let body = String::from_utf8_lossy(&m.body).to_string();
                    let agreed = sdp::read_answer(&offer, &body)
                        .map_err(|e| format!("the line's SDP answer: {e}"))?;
                    if agreed.law != Law::Pcmu {
                        return Err("the line did not answer with PCMU".into());
                    }
                    call.remote_rtp = SocketAddr::new(agreed.remote.0, agreed.remote.1);
                    if let Some(to) = m.get("To") {
                        call.to = to.to_string();
                    }
                    if let Some(c) = m.get("Contact").and_then(wire::parse_name_addr) {
                        call.remote_target = c.uri.clone();
                    }
                    call.route = m
                        .all("Record-Route")
                        .flat_map(wire::split_list)
                        .map(str::to_string)
                        .collect();
                    call.route.reverse();
                    call.ack()?;
                    call.answered = Instant::now();
                    call.next_send = call.answered;
                    return Ok(call);
                }
                _ => {
                    // A final refusal: ACK it (same branch) and say why.
                    let ack = Message {
                        start: Start::Request {
                            method: "ACK".into(),
                            uri: invite_uri(&invite),
                        },
                        headers: vec![
                            invite.headers[0].clone(),
                            header("Max-Forwards", "70"),
                            invite.headers[2].clone(),
                            header("To", m.get("To").unwrap_or_default().to_string()),
                            header("Call-ID", call.call_id.clone()),
                            header("CSeq", "1 ACK"),
                        ],
                        body: Vec::new(),
                    };
                    let _ = call.link.send(&ack);
                    return Err(format!("the line refused the call: {code} {reason}"));
                }
            }
        }
    }

    fn in_dialog(&mut self, method: &str, cseq: u32) -> Message {
        let transport = if self.dest.tcp { "TCP" } else { "UDP" };
        let host = match self.local {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let mut headers = vec![
            header(
                "Via",
                format!(
                    "SIP/2.0/{transport} {host}:{};branch=z9hG4bK{};rport",
                    self.local_sip,
                    random_hex()
                ),
            ),
            header("Max-Forwards", "70"),
            header("From", format!("<sip:probe@{host}>;tag={}", self.from_tag)),
            header("To", self.to.clone()),
            header("Call-ID", self.call_id.clone()),
            header("CSeq", format!("{cseq} {method}")),
        ];
        for r in &self.route {
            headers.push(header("Route", r.clone()));
        }
        Message {
            start: Start::Request {
                method: method.into(),
                uri: self.remote_target.clone(),
            },
            headers,
            body: Vec::new(),
        }
    }

    fn ack(&mut self) -> Result<(), String> {
        let ack = self.in_dialog("ACK", 1);
        self.link.send(&ack)
    }

    /// Presses keys (RFC 4733), one after the other.
    pub fn press(&mut self, keys: &str) {
        self.keys.extend(keys.chars());
    }

    pub fn pressing(&self) -> bool {
        self.sending.is_some() || !self.keys.is_empty()
    }

    /// Runs the call until `until`: sends a packet every 20 ms, reads what comes.
    pub fn run_until(&mut self, until: Instant) {
        while Instant::now() < until && !self.ended_by_line {
            self.tick();
        }
    }

    /// Runs until `f` finds what it looks for in what was heard, or `until`.
    pub fn wait_for<T>(
        &mut self,
        until: Instant,
        mut f: impl FnMut(&Heard, Instant) -> Option<T>,
    ) -> Option<T> {
        loop {
            while let Some((h, t)) = self.heard.pop_front() {
                if let Some(x) = f(&h, t) {
                    return Some(x);
                }
            }
            if Instant::now() >= until || self.ended_by_line {
                return None;
            }
            self.tick();
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if now >= self.next_send {
            self.send_frame();
            self.next_send += Duration::from_millis(20);
            if self.next_send + Duration::from_millis(200) < now {
                self.next_send = now; // we fell far behind: do not burst
            }
        }
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = self.rtp.recv_from(&mut buf)
            && let Some(p) = rtp::parse(&buf[..n])
            && p.payload_type == Law::Pcmu.payload_type()
            && let Some(h) = self.recogniser.hear(p.payload)
        {
            self.heard.push_back((h, Instant::now()));
        }
        if let Some(m) = self.link.recv() {
            self.on_sip(m);
        }
    }

    fn send_frame(&mut self) {
        let mut out = [0u8; 256];
        if self.sending.is_none()
            && let Some(k) = self.keys.pop_front()
            && let Some(code) = dtmf::digit_event(k)
        {
            self.sending = Some((code, self.stream.timestamp(), 0));
        }
        if let Some((code, _, sent)) = self.sending {
            // Eight packets of the event (160 ms), three end packets, then 60 ms of gap.
            let end = sent >= 8;
            let duration = ((sent.min(8) + 1) * SAMPLES_PER_PACKET as u32) as u16;
            let ev = dtmf::Event {
                code,
                end,
                volume: 10,
                duration,
            };
            if sent < 11 {
                if let Some(n) =
                    self.stream
                        .event_into(EVENT_PT, &ev.to_bytes(), sent == 0, &mut out)
                {
                    let _ = self.rtp.send_to(&out[..n], self.remote_rtp);
                }
                self.sending = Some((code, 0, sent + 1));
                return;
            }
            if sent < 14 {
                self.sending = Some((code, 0, sent + 1));
            } else {
                self.sending = None;
                self.stream.skip(SAMPLES_PER_PACKET as u32 * 11);
            }
        }
        let silence = [Law::Pcmu.encode(0); SAMPLES_PER_PACKET];
        if let Some(n) = self
            .stream
            .next_into(&silence, SAMPLES_PER_PACKET as u32, &mut out)
        {
            let _ = self.rtp.send_to(&out[..n], self.remote_rtp);
        }
    }

    fn on_sip(&mut self, m: Message) {
        match &m.start {
            Start::Request { method, .. } => {
                if m.get("Call-ID") != Some(self.call_id.as_str()) {
                    return;
                }
                if method == "ACK" {
                    return;
                }
                let ok = wire::response_to(&m, 200, "OK", None, &[], Vec::new());
                let _ = self.link.send(&ok);
                if method == "BYE" {
                    self.ended_by_line = true;
                }
            }
            Start::Response { code, .. } => {
                // A retransmitted 2xx to the INVITE: its ACK was lost.
                if (200..300).contains(code) && m.get("CSeq").is_some_and(|c| c.ends_with("INVITE"))
                {
                    let _ = self.ack();
                }
            }
        }
    }

    /// Hangs up (unless the line already did) and waits briefly for the 200.
    pub fn hang_up(mut self) {
        if self.ended_by_line {
            return;
        }
        self.cseq += 1;
        let bye = self.in_dialog("BYE", self.cseq);
        let _ = self.link.send(&bye);
        let until = Instant::now() + Duration::from_secs(4);
        let mut resend = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if !self.dest.tcp && Instant::now() >= resend {
                let _ = self.link.send(&bye);
                resend = Instant::now() + Duration::from_millis(500);
            }
            if let Some(m) = self.link.recv()
                && let Start::Response { code, .. } = m.start
                && m.get("CSeq").is_some_and(|c| c.ends_with("BYE"))
                && code >= 200
            {
                return;
            }
        }
    }
}

fn invite_uri(m: &Message) -> String {
    match &m.start {
        Start::Request { uri, .. } => uri.clone(),
        Start::Response { .. } => String::new(),
    }
}

fn rand_u32() -> u32 {
    crate::server::random() as u32
}

/// Slack on top of a flow's `max_seconds_to_human` before a probe call gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15);
/// How late a node's prompt may start after it is due (the answer, keys, the network).
const PROMPT_SLACK: Duration = Duration::from_secs(8);
/// Probe calls placed at once.
const AT_ONCE: usize = 8;

fn human(h: &Heard) -> bool {
    let p = match h {
        Heard::Start { prompt, .. } | Heard::Within { prompt } => prompt,
    };
    p == super::HOLD || p == crate::engine::announce::RINGBACK
}

/// Waits for the human node: `Ok(when)`, or `Err(the prompt heard instead)` when the call
/// reached a voicemail, callback or hangup — or, where a transfer's ringback is due
/// (`ringback`), a queue's hold music: the transfer failed and its fallback took the call.
/// `Ok(None)` when nothing came by `until`.
fn wait_human(
    call: &mut Call,
    not_human: &[String],
    ringback: bool,
    until: Instant,
) -> Result<Option<Instant>, String> {
    let got = call.wait_for(until, |h, t| {
        let prompt = match h {
            Heard::Start { prompt, .. } | Heard::Within { prompt } => prompt,
        };
        if ringback && prompt == super::HOLD {
            return Some(Err(prompt.clone()));
        }
        if human(h) {
            return Some(Ok(t));
        }
        match h {
            Heard::Start { prompt, .. } if not_human.contains(prompt) => Some(Err(prompt.clone())),
            _ => None,
        }
    });
    got.transpose()
}

/// Waits for the start of `prompt`; when it was heard. `None`: not before `until`.
fn wait_start(call: &mut Call, prompt: &str, until: Instant) -> Option<Instant> {
    call.wait_for(until, |h, t| match h {
        Heard::Start { prompt: p, offset } if p == prompt => {
            Some(t - Duration::from_millis(20 * *offset as u64))
        }
        _ => None,
    })
}

/// One round: the silent caller, then the escape at every node of the plan, one call each.
pub fn run_round(
    plan: &super::Plan,
    dest: &Dest,
    token: Option<&str>,
    recogniser: &Recogniser,
    prompt_seconds: &(dyn Fn(&str) -> f64 + Sync),
    at: String,
) -> super::Results {
    let mut nodes = Vec::new();
    let silent = std::thread::scope(|s| {
        let silent = s.spawn(|| probe_silent(plan, dest, token, recogniser));
        // The nodes' calls a few at a time, each on its own thread (a probe of a big line takes
        // as long as its slowest node, not their sum).
        for chunk in plan.targets.chunks(AT_ONCE) {
            let results: Vec<super::NodeResult> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|t| {
                        s.spawn(move || {
                            probe_node(t, dest, token, recogniser, prompt_seconds, &plan.not_human)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(chunk)
                    .map(|(h, t)| {
                        h.join().unwrap_or_else(|_| super::NodeResult {
                            node: t.node.clone(),
                            escape: Some(t.escape),
                            reached: false,
                            seconds: None,
                            seconds_after_escape: None,
                            steps: 0,
                            bound_s: t.bound_s,
                            ok: false,
                            error: Some("the probe failed".into()),
                        })
                    })
                    .collect()
            });
            nodes.extend(results);
        }
        silent.join().ok()
    });
    nodes.insert(
        0,
        silent.unwrap_or_else(|| super::NodeResult {
            node: plan.flow.clone(),
            escape: None,
            reached: false,
            seconds: None,
            seconds_after_escape: None,
            steps: 0,
            bound_s: plan.bound_s,
            ok: false,
            error: Some("the probe failed".into()),
        }),
    );
    super::Results {
        target: dest.uri.clone(),
        flow: plan.flow.clone(),
        at,
        nodes,
    }
}

fn probe_silent(
    plan: &super::Plan,
    dest: &Dest,
    token: Option<&str>,
    recogniser: &Recogniser,
) -> super::NodeResult {
    // The silent caller: no key at all reaches a human within the proven steps and seconds.
    let expected = plan.silent_seconds;
    let bound = plan.bound_s;
    let mut r = super::NodeResult {
        node: plan.flow.clone(),
        escape: None,
        reached: false,
        seconds: None,
        seconds_after_escape: None,
        steps: plan.silent_steps,
        bound_s: bound,
        ok: false,
        error: None,
    };
    match Call::dial(dest, token, recogniser) {
        Err(e) => r.error = Some(e),
        Ok(mut call) => {
            let until = call.answered + Duration::from_secs(u64::from(bound)) + GIVE_UP_AFTER;
            match wait_human(
                &mut call,
                &plan.not_human,
                plan.silent_transfer.is_some(),
                until,
            ) {
                Err(p) if plan.silent_transfer.is_some() => {
                    r.error = Some(format!(
                        "the silent caller's transfer ({}) failed: the line played {p} (its on_failure's way), not the ringback",
                        plan.silent_transfer.as_deref().unwrap_or("?")
                    ))
                }
                Err(p) if !plan.silent_follow_up => {
                    r.error = Some(format!(
                        "the silent caller reached no human: the line played {p} (a voicemail, callback or hangup) instead; is anybody logged in to its queue?"
                    ))
                }
                // Closed now: the follow-up the flow gives is the silent caller's help (as the
                // validator has it); it is timed like a human.
                Err(_) => {
                    let secs = call.answered.elapsed().as_secs_f64();
                    r.reached = true;
                    r.seconds = Some(secs);
                    r.ok = secs <= f64::from(bound);
                    if !r.ok {
                        r.error = Some(format!(
                            "the line's follow-up after {secs:.1} s; the bound is {bound} s"
                        ));
                    }
                }
                Ok(Some(t)) => {
                    let secs = (t - call.answered).as_secs_f64();
                    r.reached = true;
                    r.seconds = Some(secs);
                    // Within the bound, and within what the proof says (a second of slack for
                    // the network and the answer).
                    let proven = expected + 1.0 + expected * 0.05;
                    r.ok = secs <= f64::from(bound) && secs <= proven;
                    if !r.ok {
                        r.error = Some(format!(
                            "a human after {secs:.1} s: the proof says {expected:.1} s and the bound is {bound} s"
                        ));
                    }
                }
                Ok(None) => {
                    r.error = Some(if call.ended_by_line {
                        "the line hung up before a human".into()
                    } else {
                        format!(
                            "no hold music or ringback within {} s",
                            until.duration_since(call.answered).as_secs()
                        )
                    })
                }
            }
            call.hang_up();
        }
    }
    r
}

fn probe_node(
    target: &super::Target,
    dest: &Dest,
    token: Option<&str>,
    recogniser: &Recogniser,
    prompt_seconds: &(dyn Fn(&str) -> f64 + Sync),
    not_human: &[String],
) -> super::NodeResult {
    let mut r = super::NodeResult {
        node: target.node.clone(),
        escape: Some(target.escape),
        reached: false,
        seconds: None,
        seconds_after_escape: None,
        steps: target.before.len() as u32 + 1,
        bound_s: target.bound_s,
        ok: false,
        error: None,
    };
    let Some(prompt) = target.prompt.as_deref().filter(|p| recogniser.knows(p)) else {
        r.error = Some("its prompt cannot be recognised (no frame of its own)".into());
        return r;
    };
    let mut call = match Call::dial(dest, token, recogniser) {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(e);
            return r;
        }
    };
    let until = call.answered + Duration::from_secs(u64::from(target.bound_s)) + GIVE_UP_AFTER;
    // The way there: each node's prompt heard when it is due, then the key pressed once it
    // has ended. A prompt not heard by then means the line is not the flow we walk.
    let mut due = call.answered + PROMPT_SLACK;
    for step in &target.before {
        let Some(p) = step.prompt.as_deref().filter(|p| recogniser.knows(p)) else {
            due += Duration::from_secs_f64(step.takes_s);
            continue;
        };
        let Some(start) = wait_start(&mut call, p, due.min(until)) else {
            r.error = Some(format!(
                "on the way, {}'s prompt ({p}) was never heard",
                step.node
            ));
            call.hang_up();
            return r;
        };
        due = start + Duration::from_secs_f64(step.takes_s) + PROMPT_SLACK;
        if !step.keys.is_empty() {
            let ends = start + Duration::from_secs_f64(prompt_seconds(p));
            call.run_until(ends);
            call.press(&step.keys);
        }
    }
    let Some(_) = wait_start(&mut call, prompt, due.min(until)) else {
        r.error = Some(format!("its prompt ({prompt}) was never heard"));
        call.hang_up();
        return r;
    };
    call.heard.clear();
    call.press(&target.escape.to_string());
    let pressed = Instant::now();
    match wait_human(&mut call, not_human, target.transfer.is_some(), until) {
        Err(p) if target.transfer.is_some() => {
            r.error = Some(format!(
                "the escape digit {}'s transfer ({}) failed: the line played {p} (its on_failure's way), not the ringback",
                target.escape,
                target.transfer.as_deref().unwrap_or("?")
            ))
        }
        Err(p) => {
            r.error = Some(format!(
                "the escape digit {} reached no human: the line played {p} (a voicemail, callback or hangup) instead; is anybody logged in to its queue?",
                target.escape
            ))
        }
        Ok(Some(t)) => {
            let secs = (t - call.answered).as_secs_f64();
            r.reached = true;
            r.seconds = Some(secs);
            r.seconds_after_escape = Some((t - pressed).as_secs_f64());
            r.ok = secs <= f64::from(target.bound_s);
            if !r.ok {
                r.error = Some(format!(
                    "a human only after {secs:.1} s; the bound is {} s",
                    target.bound_s
                ));
            }
        }
        Ok(None) => {
            r.error = Some(if call.ended_by_line {
                format!("the line hung up after the escape digit {}", target.escape)
            } else {
                format!(
                    "the escape digit {} reached no human (no hold music or ringback) within {} s of the answer",
                    target.escape,
                    until.duration_since(call.answered).as_secs()
                )
            })
        }
    }
    call.hang_up();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_read_and_bad_ones_refused() {
        let d = parse_uri("sip:main@127.0.0.1:5070").unwrap();
        assert_eq!(
            (d.user.as_str(), d.host.as_str(), d.port, d.tcp),
            ("main", "127.0.0.1", 5070, false)
        );
        let d = parse_uri("sip:support@pbx.example.com;transport=tcp").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.tcp),
            ("pbx.example.com", 5060, true)
        );
        for bad in [
            "main@127.0.0.1",
            "sip:127.0.0.1",
            "sip:@host",
            "sip:a b@host",
            "sip:main@host:port",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }
}

//! Calls we answer, without IO: every server transaction (INVITE, CANCEL, ACK, BYE, INFO,
//! re-INVITE, OPTIONS, REGISTER's), each caller's dialog from the INVITE to its end,
//! admission (the 503 limits), Timer H and the drain on shutdown. The same sans-IO shape as
//! the legs we place (`Switch`): `handle(Input, now)`, then `poll_output()` and
//! `poll_timeout()`.
//!
//! What needs the line's config is its driver's to decide, from outputs: a new INVITE
//! ([`Output::Invite`]) is answered with [`Uas::respond`] (404, a digest challenge...) or taken
//! with [`Uas::offer`] then [`Uas::ring`]; a REGISTER with [`Uas::respond`]. Once a call's
//! media is agreed, [`Output::Start`] starts its session, and what its caller does reaches the
//! session as [`Output::Session`]; a call that never started leaves as [`Output::Gone`].

use core::net::SocketAddr;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::{Entropy, Local};
use crate::media::dtmf;
use crate::sip::dialog::{ACCEPT, ALLOW, Dialog};
use crate::sip::link::Link;
use crate::sip::sdp::{self, Agreed, Offer, SdpError};
use crate::sip::transaction::{self, Key, Transaction};
use crate::sip::wire::{self, Message, Reject, Start};

/// Server transactions at most: beyond this a new INVITE or REGISTER gets a stateless 503
/// (each costs about a kilobyte for Timer J's 32 s, so this bounds a flood to tens of MB).
pub const MAX_TRANSACTIONS: usize = 40_000;
/// How long a 200 may go unacknowledged before the call gives way to a new one on a full line.
const UNCONFIRMED_GRACE: Duration = Duration::from_secs(4);

/// What the calls we answer are told.
#[derive(Debug)]
pub enum Input {
    /// A request, or an answer to a BYE of ours, read (and validated) from `peer`.
    Message {
        msg: Message,
        link: Link,
        peer: SocketAddr,
    },
    /// `poll_timeout()`'s time has come.
    Timeout,
}

/// What a started call's session is told about its caller's SIP.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The caller hung up (BYE), or never acknowledged our 200 (Timer H).
    Hangup,
    /// A key sent as SIP INFO.
    Digit(char),
    /// A re-INVITE moved, held or rekeyed the media.
    Media {
        remote: SocketAddr,
        direction: sdp::Direction,
        srtp: Option<sdp::Sdes>,
    },
    /// The drain's grace period is over.
    Shutdown,
}

/// What the calls we answer ask of their driver, or tell it.
#[derive(Debug)]
pub enum Output {
    /// Send these bytes; `resend` marks a retransmission.
    Transmit {
        link: Link,
        peer: SocketAddr,
        bytes: Arc<[u8]>,
        resend: bool,
    },
    /// A new call: its line decides. Answer it with [`Uas::respond`], or take it with
    /// [`Uas::offer`] and [`Uas::ring`].
    Invite {
        key: Key,
        req: Box<Message>,
        link: Link,
        peer: SocketAddr,
    },
    /// A REGISTER: the registrar answers with [`Uas::respond`].
    Register {
        key: Key,
        req: Box<Message>,
        link: Link,
        peer: SocketAddr,
    },
    /// The call's media is agreed: its session starts. `invite` says who calls.
    Start {
        call_id: String,
        agreed: Agreed,
        invite: Box<Message>,
        peer: SocketAddr,
    },
    /// For a started call's session.
    Session { call_id: String, signal: Signal },
    /// A call that never started is gone (its RTP port may be freed); `cancelled` when its
    /// caller cancelled it.
    Gone { call_id: String, cancelled: bool },
}

/// How a call taken is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 at once.
    Now,
    /// 180, then 200 after this long (`[sip] answer_after_ms`), unless cancelled first.
    After(Duration),
    /// 180, and 200 when the driver calls [`Uas::answer`] (a colleague picks up).
    Held,
}

/// An INVITE whose SDP and dialog are acceptable: [`Uas::ring`] takes it.
#[derive(Debug)]
pub struct Offered {
    key: Key,
    req: Box<Message>,
    link: Link,
    peer: SocketAddr,
    dialog: Dialog,
    /// `None` for a delayed offer: our 200 carries the offer, the ACK the answer.
    offer: Option<Box<(Offer, Agreed)>>,
}

struct Tx {
    tx: Transaction,
    link: Link,
    peer: SocketAddr,
    /// The call an INVITE transaction belongs to, to end it if the ACK never comes.
    call_id: Option<String>,
}

#[derive(Debug)]
enum Phase {
    /// Answered by a timer or the driver, unless cancelled first.
    Ringing { offer: Option<Box<(Offer, Agreed)>> },
    /// A delayed offer was answered with ours; the call starts when the ACK's answer comes.
    AwaitingAnswer,
    /// Its session runs.
    Started,
}

struct Call {
    dialog: Dialog,
    invite: Key,
    invite_request: Box<Message>,
    link: Link,
    peer: SocketAddr,
    phase: Phase,
    rtp_port: u16,
    session: u64,
    sdp_version: u64,
    /// Our last SDP, sent again on a re-INVITE without an offer.
    last_sdp: String,
    /// The codec the call runs on, once it has started; a re-INVITE keeps it.
    law: Option<crate::media::g711::Law>,
    /// The call's SRTP keys, once it has started; a re-INVITE keeps ours.
    srtp: Option<sdp::Sdes>,
    /// When our 200 went out, until its ACK came: a call never confirmed is the first to
    /// give way when the line is full.
    unconfirmed_since: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Transaction(Key),
    Answer(String),
}

/// The calls hotline answers, and every server transaction.
pub struct Uas {
    local: Local,
    entropy: Box<dyn Entropy>,
    /// `[rtp] srtp = "all"`: every caller's media must be SRTP, re-INVITEs included.
    srtp_all: bool,
    transactions: HashMap<Key, Tx>,
    timers: BTreeMap<(Instant, u64), Timer>,
    seq: u64,
    calls: HashMap<String, Call>,
    out: VecDeque<Output>,
    draining: bool,
    admission: Admission,
    /// When unconfirmed calls were last swept out of a full line.
    last_eviction: Option<Instant>,
    refusals: RefusalLog,
    /// The most transactions held since memory was last given back.
    tx_peak: usize,
    started: u64,
    refused: u64,
}

impl Offered {
    /// The call's id, once rung (its Call-ID).
    pub fn call_id(&self) -> &str {
        &self.dialog.call_id
    }
}

impl Uas {
    pub fn new(
        local: Local,
        entropy: Box<dyn Entropy>,
        admission: Admission,
        srtp_all: bool,
    ) -> Uas {
        Uas {
            local,
            entropy,
            srtp_all,
            transactions: HashMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            calls: HashMap::new(),
            out: VecDeque::new(),
            draining: false,
            admission,
            last_eviction: None,
            refusals: RefusalLog::default(),
            tx_peak: 0,
            started: 0,
            refused: 0,
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Message { msg, link, peer } => match &msg.start {
                Start::Response { .. } => self.on_response(msg, now),
                Start::Request { method, .. } => {
                    let method = method.clone();
                    self.on_request(msg, &method, link, peer, now)
                }
            },
            Input::Timeout => self.on_timeout(now),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `handle(Input::Timeout, ..)` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|(k, _)| k.0)
    }

    /// Calls now: ringing, waiting for their ACK's answer, or started.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Transactions held (server ones, and our BYEs to callers).
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Transactions started and new calls refused since last asked (for the metrics).
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.started),
            std::mem::take(&mut self.refused),
        )
    }

    /// After a flood has passed (the transactions down to a quarter of their peak), the table
    /// shrinks; `true` when the driver should give the freed memory back to the system.
    pub fn shrink(&mut self) -> bool {
        if self.tx_peak < 4096 || self.transactions.len() > self.tx_peak / 4 {
            return false;
        }
        self.transactions.shrink_to_fit();
        self.tx_peak = self.transactions.len();
        true
    }

    /// Whether one of our BYEs to a caller still waits for its answer (a drain lets them
    /// finish).
    pub fn requests_pending(&self) -> bool {
        self.transactions.values().any(|t| {
            t.call_id.is_none()
                && !t.tx.is_terminated()
                && t.tx.kind() == transaction::Kind::ClientNonInvite
        })
    }

    /// Whether the call rings still (not yet answered, nor cancelled).
    pub fn is_ringing(&self, call_id: &str) -> bool {
        self.calls
            .get(call_id)
            .is_some_and(|c| matches!(c.phase, Phase::Ringing { .. }))
    }

    /// Whether the call's session runs.
    pub fn is_started(&self, call_id: &str) -> bool {
        self.calls
            .get(call_id)
            .is_some_and(|c| matches!(c.phase, Phase::Started))
    }

    pub fn contains(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    /// The call's dialog (for a Replaces header naming it).
    pub fn dialog(&self, call_id: &str) -> Option<&Dialog> {
        self.calls.get(call_id).map(|c| &c.dialog)
    }

    /// The INVITE that opened the call.
    pub fn invite(&self, call_id: &str) -> Option<&Message> {
        self.calls.get(call_id).map(|c| &*c.invite_request)
    }

    /// From now on new calls get 503 (Retry-After 60); live calls may finish.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Answers a malformed request statelessly (RFC 3261 §8.2), if it can be answered.
    pub fn reject(&mut self, r: Reject, link: Link, source: SocketAddr) {
        let start = r.message.as_ref().map(|m| match &m.start {
            Start::Request { method, uri } => format!("{method} {uri}"),
            Start::Response { code, .. } => code.to_string(),
        });
        tracing::info!(%source, status = r.status, reason = r.reason, start, "malformed SIP message");
        let Some(mut req) = r.message else { return };
        if r.status == 0 || req.method() == Some("ACK") {
            return;
        }
        wire::stamp_via(&mut req, source);
        let tag = self.tag();
        let resp = wire::response_to(&req, r.status, &r.reason, Some(&tag), &r.extra, Vec::new());
        self.transmit(link, source, resp.to_bytes().into(), false);
    }

    /// Answers a request through its server transaction (a refusal, a challenge, a
    /// REGISTER's answer).
    pub fn respond(
        &mut self,
        key: &Key,
        req: &Message,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
        now: Instant,
    ) {
        self.reply(key, req, code, reason, None, extra, Vec::new(), now);
    }

    /// Takes a new call's INVITE (see [`Output::Invite`]) as far as its SDP and dialog allow:
    /// `None` when it was refused (406, 415, 400, 488...). `srtp_required`: the caller's
    /// media must be SRTP.
    pub fn offer(
        &mut self,
        key: &Key,
        req: &Message,
        link: Link,
        peer: SocketAddr,
        srtp_required: bool,
        now: Instant,
    ) -> Option<Offered> {
        // Our answer carries SDP: a caller that accepts none gets 406 (RFC 3261 §8.2.3).
        if let Some(accept) = req.get("Accept")
            && !accept.split(',').any(|t| {
                let t = t
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                t.is_empty() || t == "application/sdp" || t == "application/*" || t == "*/*"
            })
        {
            let accept = [("Accept".to_string(), "application/sdp".to_string())];
            self.respond(key, req, 406, "Not Acceptable", &accept, now);
            return None;
        }
        let is_sdp = req
            .get("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"));
        if !req.body.is_empty() && !is_sdp {
            let accept = [("Accept".to_string(), "application/sdp".to_string())];
            self.respond(key, req, 415, "Unsupported Media Type", &accept, now);
            return None;
        }
        let keying = sdp::Keying {
            local: self.entropy.key(),
            required: srtp_required,
        };
        let offer = if req.body.is_empty() {
            None // a delayed offer (RFC 3261 §13.2.1): ours goes in the 200
        } else {
            match negotiate(&req.body, &keying) {
                Ok(o) => Some(Box::new(o)),
                Err((code, reason)) => {
                    self.respond(key, req, code, reason, &[], now);
                    return None;
                }
            }
        };
        let local_tag = self.tag();
        match Dialog::from_invite(req, &local_tag) {
            Ok(dialog) => Some(Offered {
                key: key.clone(),
                req: Box::new(req.clone()),
                link,
                peer,
                dialog,
                offer,
            }),
            Err(r) => {
                self.respond(key, req, r.status, r.reason, &[], now);
                None
            }
        }
    }

    /// Rings a call taken with [`Uas::offer`], its media on `rtp_port`; returns its id (the
    /// Call-ID).
    pub fn ring(
        &mut self,
        offered: Offered,
        rtp_port: u16,
        answer: Answer,
        now: Instant,
    ) -> String {
        let Offered {
            key,
            req,
            link,
            peer,
            dialog,
            offer,
        } = offered;
        let call_id = dialog.call_id.clone();
        let local_tag = dialog.local_tag.clone();
        if let Some(t) = self.transactions.get_mut(&key) {
            t.call_id = Some(call_id.clone());
        }
        let session = self.entropy.next() & 0xFFFF_FFFF;
        self.calls.insert(
            call_id.clone(),
            Call {
                dialog,
                invite: key.clone(),
                invite_request: req.clone(),
                link,
                peer,
                phase: Phase::Ringing { offer },
                rtp_port,
                session,
                sdp_version: 1,
                last_sdp: String::new(),
                law: None,
                srtp: None,
                unconfirmed_since: None,
            },
        );
        if answer == Answer::Now {
            self.answer(&call_id, now);
            return call_id;
        }
        let contact = [("Contact".to_string(), self.local.contact(link))];
        self.reply(
            &key,
            &req,
            180,
            "Ringing",
            Some(&local_tag),
            &contact,
            Vec::new(),
            now,
        );
        if let Answer::After(delay) = answer {
            self.at(now + delay, Timer::Answer(call_id.clone()));
        }
        call_id
    }

    /// Answers a ringing call: 200 with our SDP, and its session starts (or, for a delayed
    /// offer, the 200 carries our offer and the session starts on the ACK's answer).
    pub fn answer(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if !matches!(call.phase, Phase::Ringing { .. }) {
            return; // cancelled or answered already
        }
        let Phase::Ringing { offer } = std::mem::replace(&mut call.phase, Phase::AwaitingAnswer)
        else {
            return;
        };
        let sdp = sdp::describe(
            call.session,
            call.sdp_version,
            self.local.media_ip,
            call.rtp_port,
            offer.as_deref().map(|(o, a)| (o, a)),
            sdp::OfferSrtp::No,
        );
        call.last_sdp = sdp.clone();
        call.unconfirmed_since = Some(now);
        let key = call.invite.clone();
        let req = call.invite_request.clone();
        let local_tag = call.dialog.local_tag.clone();
        let extra = [
            ("Contact".to_string(), self.local.contact(call.link)),
            ("Allow".to_string(), ALLOW.to_string()),
        ];
        if let Some(o) = offer {
            self.start(call_id, o.1);
        }
        self.ok_with_sdp(&key, &req, &local_tag, &extra, sdp, now);
    }

    /// 200 OK in the call's dialog, with our SDP.
    fn ok_with_sdp(
        &mut self,
        key: &Key,
        req: &Message,
        local_tag: &str,
        extra: &[(String, String)],
        sdp: String,
        now: Instant,
    ) {
        let body = sdp.into_bytes();
        self.reply(key, req, 200, "OK", Some(local_tag), extra, body, now);
    }

    /// Refuses a call that still rings (a colleague who did not take it): `false` when it
    /// no longer rang.
    pub fn refuse(&mut self, call_id: &str, code: u16, reason: &str, now: Instant) -> bool {
        if !self.is_ringing(call_id) {
            return false;
        }
        let Some(call) = self.calls.remove(call_id) else {
            return false;
        };
        let tag = call.dialog.local_tag.clone();
        self.reply(
            &call.invite,
            &call.invite_request,
            code,
            reason,
            Some(&tag),
            &[],
            Vec::new(),
            now,
        );
        true
    }

    /// The call's session has ended: the call is forgotten (its BYE, if any, was sent).
    pub fn ended(&mut self, call_id: &str) {
        self.calls.remove(call_id);
    }

    /// Sends BYE in a call's dialog (the flow hung up). A call whose session has not started
    /// is forgotten with it.
    pub fn hang_up(&mut self, call_id: &str, now: Instant) {
        self.bye(call_id, now);
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| !matches!(c.phase, Phase::Started))
        {
            self.gone(call_id, now);
        }
    }

    /// The drain's grace period is over: every started call's session is told to end, a call
    /// waiting for its ACK's answer gets a BYE, a ringing one a 503.
    pub fn shut_down(&mut self, now: Instant) {
        let mut ids: Vec<String> = self.calls.keys().cloned().collect();
        ids.sort();
        tracing::info!(calls = ids.len(), "grace period over: ending live calls");
        for id in ids {
            match self.calls.get(&id).map(|c| &c.phase) {
                Some(Phase::Started) => self.tell_session(&id, Signal::Shutdown),
                Some(Phase::AwaitingAnswer) => {
                    self.bye(&id, now);
                    self.gone(&id, now);
                }
                Some(Phase::Ringing { .. }) => {
                    self.refuse(&id, 503, "Service Unavailable", now);
                    self.out.push_back(Output::Gone {
                        call_id: id,
                        cancelled: false,
                    });
                }
                None => {}
            }
        }
    }

    fn tag(&mut self) -> String {
        format!("{:x}", self.entropy.next())
    }

    fn at(&mut self, when: Instant, what: Timer) {
        self.seq += 1;
        self.timers.insert((when, self.seq), what);
    }

    fn transmit(&mut self, link: Link, peer: SocketAddr, bytes: Arc<[u8]>, resend: bool) {
        self.out.push_back(Output::Transmit {
            link,
            peer,
            bytes,
            resend,
        });
    }

    fn tell_session(&mut self, call_id: &str, signal: Signal) {
        self.out.push_back(Output::Session {
            call_id: call_id.to_string(),
            signal,
        });
    }

    /// A call that never started is forgotten; one that still rang is refused first with
    /// 487, so its INVITE transaction ends too (RFC 3261 §15.1.2).
    fn gone(&mut self, call_id: &str, now: Instant) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if matches!(call.phase, Phase::Ringing { .. }) {
            let tag = call.dialog.local_tag.clone();
            let req = &call.invite_request;
            let (code, reason) = (487, "Request Terminated");
            self.reply(
                &call.invite,
                req,
                code,
                reason,
                Some(&tag),
                &[],
                Vec::new(),
                now,
            );
        }
        self.out.push_back(Output::Gone {
            call_id: call_id.to_string(),
            cancelled: false,
        });
    }

    fn tx_config(&self, link: Link) -> transaction::Config {
        let mut c = self.local.timers;
        c.reliable = link.is_reliable();
        c
    }

    /// Sends a transaction's outputs; returns whether it timed out.
    fn emit(&mut self, link: Link, peer: SocketAddr, outputs: Vec<transaction::Output>) -> bool {
        let mut timed_out = false;
        for o in outputs {
            match o {
                transaction::Output::Send(b) => self.transmit(link, peer, b, false),
                transaction::Output::Resend(b) => self.transmit(link, peer, b, true),
                transaction::Output::TimedOut => timed_out = true,
                transaction::Output::Response(_) => {}
            }
        }
        timed_out
    }

    /// After a transaction moved: forgotten when over, else its next timer set.
    fn settle(&mut self, key: &Key) {
        let Some(e) = self.transactions.get(key) else {
            return;
        };
        if e.tx.is_terminated() {
            self.transactions.remove(key);
            return;
        }
        if let Some(t) = e.tx.poll_timeout() {
            self.at(t, Timer::Transaction(key.clone()));
        }
    }

    fn on_response(&mut self, msg: Message, now: Instant) {
        let Some(method) = msg.get("CSeq").and_then(wire::parse_cseq).map(|c| c.1) else {
            return;
        };
        let Some(key) = Key::of(&msg, &method) else {
            return;
        };
        // Only our BYEs to callers are answered here (the legs' answers are the switch's).
        let Some(entry) = self.transactions.get_mut(&key) else {
            return;
        };
        let (link, peer) = (entry.link, entry.peer);
        let out = entry.tx.on_response(msg, |_| Vec::new(), now);
        self.emit(link, peer, out);
        self.settle(&key);
    }

    fn on_request(
        &mut self,
        req: Message,
        method: &str,
        link: Link,
        peer: SocketAddr,
        now: Instant,
    ) {
        if method == "ACK" {
            return self.on_ack(&req, now);
        }
        let Some(key) = Key::of(&req, method) else {
            return self.stateless(&req, link, peer, 400, "Malformed Via Header", &[]);
        };
        // A retransmission: the transaction answers it.
        if let Some(entry) = self.transactions.get_mut(&key) {
            let (l, p) = (entry.link, entry.peer);
            let out = entry.tx.on_request(false, now);
            self.emit(l, p, out);
            return;
        }
        let to_tag = req
            .get("To")
            .and_then(wire::parse_name_addr)
            .and_then(|n| n.param("tag").map(str::to_string));
        // What is answered at once keeps no state (RFC 3261 §8.2.7): a retransmission is
        // simply answered again, and a flood of them costs no memory.
        if let Some((code, reason, extra)) = immediate_answer(&req, method, to_tag.is_some()) {
            return self.stateless(&req, link, peer, code, reason, &extra);
        }
        // Admission control, before any state is kept: a refused INVITE costs one answer.
        if method == "INVITE"
            && to_tag.is_none()
            && !req
                .get("Call-ID")
                .is_some_and(|c| self.calls.contains_key(c))
            && let Some(reason) = self.admit(now)
        {
            self.refused += 1;
            self.refusals.note(reason, self.calls.len(), now);
            let retry = [("Retry-After".to_string(), "5".to_string())];
            return self.stateless(&req, link, peer, 503, reason, &retry);
        }
        // A new dialog or registration while the table is full is turned away at once (the
        // sender retries, or goes elsewhere); requests in a dialog always get through.
        if to_tag.is_none() && self.transactions.len() >= MAX_TRANSACTIONS {
            self.refused += u64::from(method == "INVITE");
            let retry = [("Retry-After".to_string(), "5".to_string())];
            return self.stateless(&req, link, peer, 503, "Service Unavailable", &retry);
        }
        self.tx_peak = self.tx_peak.max(self.transactions.len() + 1);
        let (tx, out) = Transaction::server(&req, self.tx_config(link), now);
        self.track(key.clone(), tx, (link, peer), out);

        if to_tag.is_some() {
            return self.in_dialog(key, req, method, now);
        }
        let req = Box::new(req);
        match method {
            "INVITE" => self.on_invite(key, req, link, peer, now),
            "REGISTER" => self.out.push_back(Output::Register {
                key,
                req,
                link,
                peer,
            }),
            "CANCEL" => self.on_cancel(key, &req, now),
            // `immediate_answer` took every other method.
            _ => {}
        }
    }

    fn stateless(
        &mut self,
        req: &Message,
        link: Link,
        peer: SocketAddr,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
    ) {
        let mut headers = extra.to_vec();
        headers.push(("Server".into(), "hotline".into()));
        let tag = self.tag();
        let resp = wire::response_to(req, code, reason, Some(&tag), &headers, Vec::new());
        self.transmit(link, peer, resp.to_bytes().into(), false);
    }

    /// Sends a response through the request's server transaction.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        key: &Key,
        req: &Message,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(String, String)],
        body: Vec<u8>,
        now: Instant,
    ) {
        let fresh;
        let to_tag = match to_tag {
            Some(t) => Some(t),
            None if code > 100 => {
                fresh = self.tag();
                Some(fresh.as_str())
            }
            None => None,
        };
        let resp = wire::our_response(req, code, reason, to_tag, extra, body);
        let Some(entry) = self.transactions.get_mut(key) else {
            return;
        };
        let (link, peer) = (entry.link, entry.peer);
        let out = entry.tx.respond(code, resp.to_bytes(), now);
        self.emit(link, peer, out);
        self.settle(key);
    }

    fn on_invite(
        &mut self,
        key: Key,
        req: Box<Message>,
        link: Link,
        peer: SocketAddr,
        now: Instant,
    ) {
        if self.draining {
            let extra = [("Retry-After".to_string(), "60".to_string())];
            return self.respond(&key, &req, 503, "Service Unavailable", &extra, now);
        }
        if req
            .get("Call-ID")
            .is_some_and(|c| self.calls.contains_key(c))
        {
            // A second INVITE of a dialog we know, without the tag: a loop or a fork.
            return self.respond(&key, &req, 482, "Loop Detected", &[], now);
        }
        self.out.push_back(Output::Invite {
            key,
            req,
            link,
            peer,
        });
    }

    /// The line is full: calls whose 200 has gone unacknowledged for `UNCONFIRMED_GRACE`
    /// (a real phone ACKs within a round trip or two; a flood never does) are ended now
    /// rather than at Timer H, 32 s on, so a flood that stops leaves room at once. Swept at
    /// most once a second.
    fn evict_unconfirmed(&mut self, now: Instant) {
        if self
            .last_eviction
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_eviction = Some(now);
        let mut stale: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.unconfirmed_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= UNCONFIRMED_GRACE)
            })
            .map(|(id, _)| id.clone())
            .collect();
        stale.sort();
        if !stale.is_empty() {
            tracing::warn!(
                calls = stale.len(),
                "the line is full: ending calls whose 200 OK was never acknowledged"
            );
        }
        for id in stale {
            self.invite_timed_out(&id, now);
        }
    }

    /// Admission control: why a new call is refused now (`None`: it may come in).
    fn admit(&mut self, now: Instant) -> Option<&'static str> {
        if self.admission.full(self.calls.len()) {
            self.evict_unconfirmed(now);
        }
        self.admission
            .admit(self.calls.len(), now)
            .err()
            .map(|r| r.reason())
    }

    /// The call's media is agreed: its session starts.
    fn start(&mut self, call_id: &str, agreed: Agreed) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.law = Some(agreed.law);
        call.srtp = agreed.srtp;
        call.phase = Phase::Started;
        self.out.push_back(Output::Start {
            call_id: call_id.to_string(),
            agreed,
            invite: call.invite_request.clone(),
            peer: call.peer,
        });
    }

    fn on_cancel(&mut self, key: Key, req: &Message, now: Instant) {
        let call_id = Key::of(req, "INVITE")
            .as_ref()
            .and_then(|k| self.transactions.get(k))
            .and_then(|e| e.call_id.clone());
        let Some(call_id) = call_id else {
            return self.respond(&key, req, 481, "Call/Transaction Does Not Exist", &[], now);
        };
        self.respond(&key, req, 200, "OK", &[], now);
        if self.refuse(&call_id, 487, "Request Terminated", now) {
            tracing::info!(call_id, "caller cancelled before answer");
            self.out.push_back(Output::Gone {
                call_id,
                cancelled: true,
            });
        }
    }

    fn on_ack(&mut self, req: &Message, now: Instant) {
        // The ACK of a failure shares the INVITE's branch; the ACK of a 2xx is its own
        // transaction and finds the INVITE through the dialog.
        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        let dialog_invite = match self.calls.get_mut(&call_id) {
            Some(c) if c.dialog.matches(req) => {
                c.unconfirmed_since = None;
                Some(c.invite.clone())
            }
            _ => None,
        };
        let key = Key::of(req, "INVITE")
            .filter(|k| self.transactions.contains_key(k))
            .or(dialog_invite);
        let Some(key) = key else { return };
        if let Some(e) = self.transactions.get_mut(&key) {
            e.tx.on_request(true, now);
        }
        self.settle(&key);
        self.delayed_answer(req, now);
    }

    /// The ACK of a delayed offer carries the caller's answer: the call starts, or, with no
    /// usable answer, ends (RFC 3261 §13.2.1 leaves no other way out).
    fn delayed_answer(&mut self, ack: &Message, now: Instant) {
        let Some(call_id) = ack.get("Call-ID").map(str::to_string) else {
            return;
        };
        let waiting = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.dialog.matches(ack) && matches!(c.phase, Phase::AwaitingAnswer));
        if !waiting {
            return;
        }
        // The answer to our offer in the 200, which was plain RTP.
        let keying = sdp::Keying {
            local: [0; crate::media::srtp::MASTER_LEN],
            required: false,
        };
        match negotiate(&ack.body, &keying) {
            Ok((_, mut agreed)) => {
                agreed.srtp = None;
                self.start(&call_id, agreed)
            }
            Err((_, reason)) => {
                tracing::info!(
                    call_id,
                    reason,
                    "the ACK carried no usable SDP answer: ending the call"
                );
                self.bye(&call_id, now);
                self.gone(&call_id, now);
            }
        }
    }

    fn in_dialog(&mut self, key: Key, req: Message, method: &str, now: Instant) {
        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        let known = self
            .calls
            .get_mut(&call_id)
            .filter(|c| c.dialog.matches(&req));
        let Some(call) = known else {
            return self.respond(&key, &req, 481, "Call/Transaction Does Not Exist", &[], now);
        };
        if let Err(r) = call.dialog.accept_cseq(&req) {
            return self.respond(&key, &req, r.status, r.reason, &[], now);
        }
        let local_tag = call.dialog.local_tag.clone();
        let started = matches!(call.phase, Phase::Started);
        let ok = |s: &mut Self| {
            s.reply(
                &key,
                &req,
                200,
                "OK",
                Some(&local_tag),
                &[],
                Vec::new(),
                now,
            )
        };
        match method {
            "BYE" => {
                ok(self);
                if started {
                    self.tell_session(&call_id, Signal::Hangup);
                } else {
                    self.gone(&call_id, now);
                }
            }
            "INFO" => {
                let ct = req.get("Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&req.body);
                if let Some(d) = dtmf::from_info(ct, &body)
                    && started
                {
                    self.tell_session(&call_id, Signal::Digit(d));
                }
                ok(self);
            }
            "OPTIONS" => {
                if let Some((code, reason, extra)) = immediate_answer(&req, "OPTIONS", false) {
                    self.reply(&key, &req, code, reason, None, &extra, Vec::new(), now);
                }
            }
            "INVITE" if started => self.reinvite(key, req, &call_id, now),
            // Not while our answer to the first is still to come (RFC 3261 §14.2): 500 and
            // a retry; nor while our 200's offer waits for its answer in the ACK: glare.
            "INVITE" if self.is_ringing(&call_id) => {
                let retry = [("Retry-After".to_string(), "2".to_string())];
                let reason = "Not Yet Answered";
                self.reply(
                    &key,
                    &req,
                    500,
                    reason,
                    Some(&local_tag),
                    &retry,
                    Vec::new(),
                    now,
                )
            }
            "INVITE" => {
                let reason = "Request Pending";
                self.reply(
                    &key,
                    &req,
                    491,
                    reason,
                    Some(&local_tag),
                    &[],
                    Vec::new(),
                    now,
                )
            }
            "CANCEL" => self.on_cancel(key, &req, now),
            _ => self.reply(
                &key,
                &req,
                501,
                "Not Implemented",
                Some(&local_tag),
                &[("Allow".into(), ALLOW.into())],
                Vec::new(),
                now,
            ),
        }
    }

    /// Hold, unhold or a media move (RFC 3264 §8).
    fn reinvite(&mut self, key: Key, req: Message, call_id: &str, now: Instant) {
        let media_ip = self.local.media_ip;
        let keying = sdp::Keying {
            local: self.entropy.key(),
            required: self.srtp_all,
        };
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let local_tag = call.dialog.local_tag.clone();
        let body = String::from_utf8_lossy(&req.body).to_string();
        let mut moved = None;
        let sdp = if body.trim().is_empty() {
            // An offerless re-INVITE: our SDP is the offer, the answer comes in the ACK.
            call.last_sdp.clone()
        } else {
            match sdp::renegotiate(&body, call.law, &keying, call.srtp) {
                Ok((offer, agreed)) => {
                    call.sdp_version += 1;
                    let s = sdp::describe(
                        call.session,
                        call.sdp_version,
                        media_ip,
                        call.rtp_port,
                        Some((&offer, &agreed)),
                        sdp::OfferSrtp::No,
                    );
                    call.last_sdp = s.clone();
                    if call.law.is_some() {
                        call.srtp = agreed.srtp;
                    }
                    if matches!(call.phase, Phase::Started) {
                        moved = Some(Signal::Media {
                            remote: SocketAddr::new(agreed.remote.0, agreed.remote.1),
                            direction: agreed.direction,
                            srtp: agreed.srtp,
                        });
                    }
                    s
                }
                Err(e) => {
                    tracing::info!("re-INVITE refused: {e}");
                    return self.reply(
                        &key,
                        &req,
                        488,
                        "Not Acceptable Here",
                        Some(&local_tag),
                        &[],
                        Vec::new(),
                        now,
                    );
                }
            }
        };
        // The ACK for this 200 comes on its own branch and finds it through the dialog.
        call.invite = key.clone();
        let link = call.link;
        if let Some(t) = self.transactions.get_mut(&key) {
            t.call_id = Some(call_id.to_string());
        }
        if let Some(signal) = moved {
            self.tell_session(call_id, signal);
        }
        let extra = [("Contact".to_string(), self.local.contact(link))];
        self.ok_with_sdp(&key, &req, &local_tag, &extra, sdp, now);
    }

    /// Sends BYE in a call's dialog, through a new client transaction.
    fn bye(&mut self, call_id: &str, now: Instant) {
        let branch = self.entropy.next();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let (link, peer) = (call.link, call.peer);
        let via = self.local.via(link, branch);
        let bye = call.dialog.request("BYE", &via, &self.local.contact(link));
        let Some(key) = Key::of(&bye, "BYE") else {
            return;
        };
        let (tx, out) = Transaction::client(false, bye.to_bytes(), self.tx_config(link), now);
        self.track(key, tx, (link, peer), out);
    }

    /// Keeps a new transaction, sends its first message and sets its timer.
    fn track(
        &mut self,
        key: Key,
        tx: Transaction,
        (link, peer): (Link, SocketAddr),
        out: Vec<transaction::Output>,
    ) {
        self.started += 1;
        let call_id = None;
        let entry = Tx {
            tx,
            link,
            peer,
            call_id,
        };
        self.transactions.insert(key.clone(), entry);
        self.emit(link, peer, out);
        self.settle(&key);
    }

    fn on_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Timer::Answer(call_id) => self.answer(&call_id, now),
                Timer::Transaction(key) => {
                    let Some(e) = self.transactions.get_mut(&key) else {
                        continue;
                    };
                    if e.tx.poll_timeout().is_none_or(|t| t > now) {
                        continue; // superseded
                    }
                    let (link, peer, call_id) = (e.link, e.peer, e.call_id.clone());
                    let out = e.tx.on_timer(now);
                    let timed_out = self.emit(link, peer, out);
                    if timed_out && let Some(call_id) = call_id {
                        self.invite_timed_out(&call_id, now);
                    }
                    self.settle(&key);
                }
            }
        }
    }

    /// No ACK for our 200 (RFC 3261 §13.3.1.4): the call is over; tell the caller with a BYE.
    /// A call whose session has not started (a delayed offer still waiting for the ACK that
    /// carries its answer) is forgotten here, its RTP port with it: nothing else would ever
    /// free them.
    fn invite_timed_out(&mut self, call_id: &str, now: Instant) {
        tracing::info!(call_id, "no ACK for the 200 OK: ending the call");
        self.bye(call_id, now);
        match self.calls.get(call_id).map(|c| &c.phase) {
            Some(Phase::Started) => self.tell_session(call_id, Signal::Hangup),
            Some(_) => self.gone(call_id, now),
            None => {}
        }
    }
}

/// Reads an SDP offer (or a delayed offer's answer) and agrees on the media; the status and
/// reason to refuse it with otherwise.
fn negotiate(body: &[u8], keying: &sdp::Keying) -> Result<(Offer, Agreed), (u16, &'static str)> {
    let text = String::from_utf8_lossy(body);
    let offer = match sdp::parse_offer(&text) {
        Ok(o) => o,
        Err(SdpError::Malformed(why)) => {
            tracing::info!("malformed SDP: {why}");
            return Err((400, "Malformed SDP"));
        }
        Err(e) => {
            tracing::info!("{e}");
            return Err((488, "Not Acceptable Here"));
        }
    };
    match offer.negotiate(keying) {
        Ok(a) => Ok((offer, a)),
        Err(e) => {
            tracing::info!("{e}");
            Err((488, "Not Acceptable Here"))
        }
    }
}

/// A status code, its reason phrase and extra headers.
type ImmediateAnswer = (u16, &'static str, Vec<(String, String)>);

/// The answer to a request that needs no state: the final answer to an out-of-dialog OPTIONS,
/// BYE, INFO or unknown method, and a 420 to anything requiring an extension.
fn immediate_answer(req: &Message, method: &str, in_dialog: bool) -> Option<ImmediateAnswer> {
    if method != "CANCEL"
        && let Some(required) = req.get("Require")
    {
        // We support no extensions (RFC 3261 §8.2.2.3).
        let unsupported = vec![("Unsupported".to_string(), required.to_string())];
        return Some((420, "Bad Extension", unsupported));
    }
    if in_dialog {
        return None;
    }
    match method {
        "INVITE" | "REGISTER" | "CANCEL" => None,
        "OPTIONS" => Some((
            200,
            "OK",
            vec![
                ("Allow".to_string(), ALLOW.to_string()),
                ("Accept".to_string(), ACCEPT.to_string()),
            ],
        )),
        "BYE" | "INFO" | "PRACK" | "UPDATE" => {
            Some((481, "Call/Transaction Does Not Exist", Vec::new()))
        }
        _ => Some((501, "Not Implemented", vec![("Allow".into(), ALLOW.into())])),
    }
}

/// Refused calls, summed into one log line a second: a flood must not become a log flood.
#[derive(Default)]
struct RefusalLog {
    since: Option<Instant>,
    count: u64,
}

impl RefusalLog {
    fn note(&mut self, reason: &str, calls: usize, now: Instant) {
        self.count += 1;
        match self.since {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(1) => {}
            _ => {
                tracing::warn!(
                    reason,
                    calls,
                    refused = self.count,
                    "new calls refused: 503 (counted over the last second)"
                );
                self.since = Some(now);
                self.count = 0;
            }
        }
    }
}

//! The signalling task: one task owns every SIP transaction and dialog. It answers INVITEs
//! (ringing, then 200 with our SDP), starts a call task per answered call, handles CANCEL,
//! BYE, re-INVITE, OPTIONS and INFO, retransmits on the transaction timers, and drains calls
//! on shutdown. Agent phones register here too, and the routing core runs inside this task
//! (`agents.rs`), so one owner sees every SIP event and routing decision in order.

mod agents;
mod callbacks;
mod consults;
mod refers;
mod transfers;
mod trunks;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Shared;
use super::call::{self, CallInput, CallSetup};
use crate::media::dtmf;
use crate::sip::dialog::{self, ACCEPT, ALLOW, Dialog};
use crate::sip::sdp::{self, Agreed, Offer, SdpError};
use crate::sip::transaction::{self, Key, Output, Transaction};
use crate::sip::transport::{Inbound, InboxRx, Link, Transport};
use crate::sip::wire::{self, Message, Reject, Start};
use crate::switch::Switch;

/// Where a waiting caller stands in their queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Callers ahead (0 = next).
    pub ahead: usize,
    /// The router's expected wait, once the queue has a handle time.
    pub wait: Option<Duration>,
    /// What the queue's recent average wait says (for the estimate audit).
    pub baseline: Option<Duration>,
}

/// What call tasks tell the signalling task.
#[derive(Debug)]
pub enum SipCommand {
    /// Send BYE: the flow hung up, or the server is shutting down.
    Hangup { call_id: String },
    /// A reloaded `hotline.toml` (validated whole): its agents and queues go live.
    Reconfigure(Box<crate::config::Config>),
    /// The TLS certificate read again (SIGHUP): new connections get it.
    Certificate(Arc<rustls::ServerConfig>),
    /// The call task has finished.
    Ended { call_id: String, id: u64 },
    /// The caller waits for an agent of `queue`.
    Enqueue {
        id: u64,
        call_id: String,
        queue: String,
        priority: u32,
        /// The line's recording rule (its queue node's `record`), over the queue's.
        record: Option<crate::config::RecordMode>,
        /// A returning caller asking for whoever has their follow-up (an `owner` node).
        first: Option<crate::engine::First>,
        context: CallerContext,
    },
    /// The caller's wait ran out: the flow takes them on.
    LeaveQueue { id: u64 },
    /// Where the waiting caller stands: callers ahead and the expected wait; `None` while an
    /// agent's phone rings for them (or they have left).
    QueueStatus {
        id: u64,
        reply: tokio::sync::oneshot::Sender<Option<Standing>>,
    },
    /// The waiting caller was just told they would wait about `wait` (as spoken).
    WaitTold { id: u64, wait: Duration },
    /// The waiting caller took the callback offer, stored as `row`: their place in line
    /// becomes a callback. The reply says whether it did (not when an agent already rings).
    ToCallback {
        id: u64,
        row: i64,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// A flow's callback node stored this request: it joins its queue.
    NewCallback {
        row: i64,
        request: crate::store::CallbackRequest,
    },
    /// The caller reached a transfer node: dial its target, bridge on answer.
    Transfer {
        id: u64,
        call_id: String,
        to: String,
        ring_timeout_s: u32,
        context: CallerContext,
    },
    /// The transfer target's host resolved (or not): dial it.
    TransferResolved {
        id: u64,
        target: Option<(SocketAddr, Link)>,
    },
    /// The callback's number resolved (or not): dial it.
    CallbackResolved {
        id: u64,
        target: Option<(SocketAddr, Link)>,
    },
    /// A leg's TCP connection for an INVITE too big for UDP was made (or not).
    LegConnected { leg: String, link: Option<Link> },
    /// A registering trunk's proxy resolved (or not), with the link to it.
    TrunkResolved {
        name: String,
        target: Option<(SocketAddr, Link)>,
    },
}

/// What the caller already told the line, handed to the agent with the call.
#[derive(Debug, Clone, Default)]
pub struct CallerContext {
    pub caller: String,
    pub path: Vec<String>,
    pub variables: Vec<(String, String)>,
    /// A `hotline probe` call: it waits with the hold music but no agent is rung for it.
    pub probe: bool,
}

struct TxEntry {
    tx: Transaction,
    link: Link,
    peer: SocketAddr,
    /// The call an INVITE transaction belongs to, to end it if the ACK never comes.
    call_id: Option<String>,
}

enum Phase {
    /// Answered after `answer_after_ms`, unless cancelled first.
    Ringing {
        socket: Arc<std::net::UdpSocket>,
        /// `None` for a delayed offer: our 200 carries the offer, the ACK the answer.
        offer: Option<Box<(Offer, Agreed)>>,
        line: super::Line,
    },
    /// A delayed offer was answered with ours; the call starts when the ACK's answer comes.
    AwaitingAnswer {
        socket: Arc<std::net::UdpSocket>,
        line: super::Line,
    },
    Answered {
        to_call: mpsc::UnboundedSender<CallInput>,
    },
}

struct CallEntry {
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

enum TimerRef {
    Transaction(Key),
    Answer(String),
    Router,
    /// The wall's queue figures are due (see `publish_changes`).
    Queues,
    Registrar,
    /// OPTIONS to agents' phones are due (`sip::qualify`).
    Qualify,
    /// Registered TCP trunks' connections are checked.
    Trunks,
    /// The switch's `poll_timeout()`.
    Switch,
}

pub struct Signalling {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    transactions: HashMap<Key, TxEntry>,
    timers: BTreeMap<(Instant, u64), TimerRef>,
    timer_seq: u64,
    calls: HashMap<String, CallEntry>,
    next_call: u64,
    draining: bool,
    /// The most transactions held since memory was last given back.
    tx_peak: usize,
    /// When unconfirmed calls were last swept out of a full line.
    last_eviction: Option<Instant>,
    /// Refused calls, logged once a second rather than once each.
    refusals: RefusalLog,
    agents: agents::Agents,
    /// The calls we place: their SIP, decided without IO (`crate::switch`).
    switch: Switch,
    /// When the switch's next timeout is scheduled for.
    switch_due: Option<Instant>,
    /// The connection to each TCP or TLS trunk (and where it goes), shared by its
    /// registration and its calls.
    trunk_links: HashMap<String, (SocketAddr, Link)>,
    /// Looks up carriers' proxies (DNS SRV, then addresses).
    dns: Arc<super::dns::Dns>,
    /// Trunks whose connection is being made again.
    connecting: std::collections::HashSet<String>,
    /// `[sip] trace` or `HOTLINE_SIP_TRACE=1`: every message in and out is logged.
    trace: bool,
    /// New calls admitted by the rate limit: tokens left, and when they were counted.
    admission: crate::switch::admission::Admission,
}

/// One SIP message as the trace shows it: direction, transport, peer, then the message.
fn trace_message(dir: &str, link: Link, peer: SocketAddr, bytes: &[u8]) {
    let transport = link.name().to_ascii_lowercase();
    tracing::info!(
        target: "hotline::sip_trace",
        dir,
        transport,
        %peer,
        "\n{}",
        String::from_utf8_lossy(bytes).trim_end()
    );
}

impl Signalling {
    pub fn new(shared: Arc<Shared>, transport: Arc<Transport>) -> Signalling {
        let local = crate::switch::Local {
            advertise: shared.config.sip.advertise.clone(),
            port: transport.local_addr().port(),
            tls_port: transport.tls_addr().map(|a| a.port()),
            media_ip: shared.media_ip,
            timers: shared.tx_config,
        };
        Signalling {
            switch: Switch::new(local, Box::new(OsEntropy)),
            trunk_links: HashMap::new(),
            dns: Arc::new(super::dns::Dns::new(
                &shared.config.sip.resolver_addresses(),
            )),
            connecting: std::collections::HashSet::new(),
            switch_due: None,
            transport,
            transactions: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            calls: HashMap::new(),
            next_call: 1,
            draining: false,
            tx_peak: 0,
            last_eviction: None,
            refusals: RefusalLog::default(),
            agents: agents::Agents::new(&shared.config, Instant::now()),
            trace: shared.config.sip.trace
                || std::env::var("HOTLINE_SIP_TRACE").is_ok_and(|v| v == "1"),
            admission: crate::switch::admission::Admission::new(
                shared.config.sip.max_calls,
                shared.config.sip.max_new_calls_per_s,
                Instant::now(),
            ),
            shared,
        }
    }

    /// Runs until shutdown has been asked for and every call has ended.
    pub async fn run(
        mut self,
        mut inbound: InboxRx,
        mut commands: mpsc::UnboundedReceiver<SipCommand>,
        mut queries: mpsc::UnboundedReceiver<crate::status::ApiQuery>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        self.load_registrations(Instant::now());
        self.load_callbacks(Instant::now());
        self.start_trunks(Instant::now());
        let grace = Duration::from_secs(u64::from(self.shared.config.sip.shutdown_grace_s));
        let mut grace_end: Option<Instant> = None;
        let mut hard_end: Option<Instant> = None;
        loop {
            let next_timer = self.timers.first_key_value().map(|(k, _)| k.0);
            let sleep = async {
                match next_timer {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let grace_sleep = async {
                match grace_end {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            // In this order: what keeps calls going comes before new requests, so a flood
            // of INVITEs or REGISTERs delays no BYE, ACK or call task.
            tokio::select! {
                biased;
                Some(m) = inbound.urgent.recv() => self.on_inbound(m, Instant::now()),
                Some(c) = commands.recv() => self.on_command(c, Instant::now()),
                Some(q) = queries.recv() => self.api(q, Instant::now()),
                _ = sleep => self.on_timers(Instant::now()),
                _ = &mut shutdown, if !self.draining => {
                    self.draining = true;
                    self.shared.stats.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                    let now = Instant::now();
                    tracing::info!(
                        calls = self.calls.len(),
                        grace_s = grace.as_secs(),
                        "shutting down: new calls get 503, live calls may finish"
                    );
                    grace_end = Some(now + grace);
                    // Calls for our carrier accounts go elsewhere from now on.
                    self.switch.unregister_all(now);
                }
                _ = grace_sleep => {
                    grace_end = None;
                    hard_end = Some(Instant::now() + Duration::from_secs(5));
                    self.end_all(Instant::now());
                }
                Some(m) = inbound.fresh.recv() => self.on_inbound(m, Instant::now()),
            }
            // Whatever the switch was asked above: send it, and tell the legs' users.
            self.drive(Instant::now());
            // Done when no call is left: neither a caller's nor one we placed (a callback's
            // legs live without a caller's call).
            if self.draining && self.calls.is_empty() && self.switch.is_empty() {
                // Let our BYEs finish, within reason.
                let byes_pending = self.switch.requests_pending()
                    || self.transactions.values().any(|t| {
                        t.call_id.is_none()
                            && !t.tx.is_terminated()
                            && t.tx.kind() == transaction::Kind::ClientNonInvite
                    });
                if !byes_pending || hard_end.is_some_and(|t| Instant::now() >= t) {
                    break;
                }
                hard_end.get_or_insert(Instant::now() + Duration::from_secs(5));
            }
            if let Some(t) = hard_end
                && Instant::now() >= t
            {
                break;
            }
        }
        self.transport.close();
    }

    fn tx_config(&self, link: Link) -> transaction::Config {
        let mut c = self.shared.tx_config;
        c.reliable = link.is_reliable();
        c
    }

    fn schedule(&mut self, at: Instant, what: TimerRef) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), what);
    }

    fn schedule_tx(&mut self, key: &Key) {
        if let Some(t) = self.transactions.get(key).and_then(|e| e.tx.poll_timeout()) {
            self.schedule(t, TimerRef::Transaction(key.clone()));
        }
    }

    fn send(&self, link: Link, peer: SocketAddr, bytes: Arc<[u8]>) {
        if self.trace {
            trace_message("out", link, peer, &bytes);
        }
        self.transport.send(link, peer, bytes);
    }

    /// Sends a transaction's outputs; returns whether it timed out.
    fn emit(&self, link: Link, peer: SocketAddr, outputs: Vec<Output>) -> bool {
        let mut timed_out = false;
        for o in outputs {
            match o {
                Output::Send(b) => self.send(link, peer, b),
                Output::Resend(b) => {
                    self.shared
                        .stats
                        .retransmissions
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.send(link, peer, b)
                }
                Output::TimedOut => timed_out = true,
                Output::Response(_) => {}
            }
        }
        timed_out
    }

    fn on_inbound(&mut self, m: Inbound, now: Instant) {
        let Inbound {
            message,
            source,
            link,
        } = m;
        if self.trace {
            match &message {
                Ok(m) => trace_message("in", link, source, &m.to_bytes()),
                Err(_) => trace_message("in", link, source, b"(unreadable)"),
            }
        }
        let mut msg = match message.and_then(|m| wire::validate(&m).map(|()| m)) {
            Ok(m) => m,
            Err(reject) => return self.reject(reject, link, source),
        };
        if msg.method().is_some() {
            wire::stamp_via(&mut msg, source);
        }
        if self.switch.owns(&msg) {
            let input = crate::switch::Input::Message {
                msg,
                link,
                peer: source,
            };
            self.switch.handle(input, now);
            return self.drive(now);
        }
        match &msg.start {
            Start::Response { .. } => self.on_response(msg, now),
            Start::Request { method, .. } => {
                let method = method.clone();
                self.on_request(msg, &method, link, source, now)
            }
        }
    }

    /// Answers a malformed request statelessly (RFC 3261 §8.2) and keeps serving.
    fn reject(&self, r: Reject, link: Link, source: SocketAddr) {
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
        let resp = wire::response_to(
            &req,
            r.status,
            &r.reason,
            Some(&tag()),
            &r.extra,
            Vec::new(),
        );
        self.send(link, source, resp.to_bytes().into());
    }

    fn on_response(&mut self, msg: Message, now: Instant) {
        let Some(method) = msg.get("CSeq").and_then(wire::parse_cseq).map(|c| c.1) else {
            return;
        };
        let Some(key) = Key::of(&msg, &method) else {
            return;
        };
        // Only our BYEs to callers are left here (the switch takes its legs' answers).
        let Some(entry) = self.transactions.get_mut(&key) else {
            return;
        };
        let (link, peer) = (entry.link, entry.peer);
        let out = entry.tx.on_response(msg, |_| Vec::new(), now);
        self.emit(link, peer, out);
        self.cleanup(&key);
        self.schedule_tx(&key);
    }

    fn cleanup(&mut self, key: &Key) {
        if self
            .transactions
            .get(key)
            .is_some_and(|e| e.tx.is_terminated())
        {
            self.transactions.remove(key);
        }
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
            self.shared
                .metrics
                .refused_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.refusals.note(reason, self.calls.len(), now);
            let retry = [("Retry-After".to_string(), "5".to_string())];
            return self.stateless(&req, link, peer, 503, reason, &retry);
        }
        // A new dialog or registration while the table is full is turned away at once (the
        // sender retries, or goes elsewhere); requests in a dialog always get through.
        if to_tag.is_none() && self.transactions.len() >= MAX_TRANSACTIONS {
            self.shared.metrics.refused_calls.fetch_add(
                u64::from(method == "INVITE"),
                std::sync::atomic::Ordering::Relaxed,
            );
            let retry = [("Retry-After".to_string(), "5".to_string())];
            return self.stateless(&req, link, peer, 503, "Service Unavailable", &retry);
        }
        self.tx_peak = self.tx_peak.max(self.transactions.len() + 1);
        let (tx, out) = Transaction::server(&req, self.tx_config(link), now);
        self.shared
            .metrics
            .sip_transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.transactions.insert(
            key.clone(),
            TxEntry {
                tx,
                link,
                peer,
                call_id: None,
            },
        );
        self.emit(link, peer, out);

        if to_tag.is_some() {
            return self.in_dialog(key, req, method, now);
        }
        match method {
            "INVITE" => self.on_invite(key, req, link, peer, now),
            "REGISTER" => self.on_register(key, req, link, peer, now),
            "CANCEL" => self.on_cancel(key, req, now),
            // `immediate_answer` took every other method.
            _ => {}
        }
    }

    fn stateless(
        &self,
        req: &Message,
        link: Link,
        peer: SocketAddr,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
    ) {
        let mut headers = extra.to_vec();
        headers.push(("Server".into(), "hotline".into()));
        let resp = wire::response_to(req, code, reason, Some(&tag()), &headers, Vec::new());
        self.send(link, peer, resp.to_bytes().into());
    }

    /// An OPTIONS inside a dialog (a keep-alive): 200 with what we support.
    fn options(&mut self, key: &Key, req: &Message, now: Instant) {
        let Some((code, reason, extra)) = immediate_answer(req, "OPTIONS", false) else {
            return;
        };
        self.respond(key, req, code, reason, None, &extra, Vec::new(), now);
    }

    /// Sends a response through the request's server transaction.
    #[allow(clippy::too_many_arguments)]
    fn respond(
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
                fresh = tag();
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
        self.cleanup(key);
        self.schedule_tx(key);
    }

    fn on_invite(&mut self, key: Key, req: Message, link: Link, peer: SocketAddr, now: Instant) {
        let fail = |s: &mut Self, code, reason: &str| {
            s.respond(&key, &req, code, reason, None, &[], Vec::new(), now)
        };
        if self.draining {
            let extra = [("Retry-After".to_string(), "60".to_string())];
            return self.respond(
                &key,
                &req,
                503,
                "Service Unavailable",
                None,
                &extra,
                Vec::new(),
                now,
            );
        }
        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        if self.calls.contains_key(&call_id) {
            // A second INVITE of a dialog we know, without the tag: a loop or a fork.
            return fail(self, 482, "Loop Detected");
        }
        let uri = match &req.start {
            Start::Request { uri, .. } => uri.clone(),
            Start::Response { .. } => String::new(),
        };
        let user = dialog::uri_user(&uri);
        let code = &self.shared.config.routing.ready_toggle_code;
        // An agent's feature code: authenticated first, carried out once the call is sure to
        // be answered (below).
        let toggle = if !code.is_empty() && user == code {
            match self.authenticate_agent(&key, &req, peer, now) {
                Some(agent) => Some(agent),
                None => return, // challenged or refused
            }
        } else {
            None
        };
        // An agent calling a colleague, a queue or a number about her caller: authenticated
        // too.
        let consult_to = match toggle {
            None => self.consult_target(&req, user),
            Some(_) => None,
        };
        let consult = match consult_to {
            Some(to) => match self.authenticate_agent(&key, &req, peer, now) {
                Some(agent) => match self.consult_request(agent, to) {
                    Ok(consulting) => Some(consulting),
                    Err(e) => {
                        tracing::info!(why = e.why, "an agent's call about her caller refused");
                        return fail(self, e.code, e.reason());
                    }
                },
                None => return, // challenged or refused
            },
            None => None,
        };
        let mut line = if toggle.is_some() {
            self.shared.announcement(user, Vec::new())
        } else if consult.is_some() {
            self.shared.consultation(user)
        } else {
            let to_user = req
                .get("To")
                .and_then(wire::parse_name_addr)
                .map(|n| dialog::uri_user(&n.uri).to_string())
                .unwrap_or_default();
            let Some(mut line) = self.shared.line_for(user, &to_user) else {
                tracing::info!(user, "INVITE for a line that does not exist");
                return fail(self, 404, "No Such Line");
            };
            line.probe = self.shared.probe_token.as_deref().is_some_and(|t| {
                req.get("X-Hotline-Probe").is_some_and(|v| {
                    crate::sip::registrar::constant_time_eq(v.trim().as_bytes(), t.as_bytes())
                })
            });
            if line.probe {
                tracing::info!(user, "a probe call (X-Hotline-Probe)");
            }
            line
        };
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
            return self.respond(
                &key,
                &req,
                406,
                "Not Acceptable",
                None,
                &accept,
                Vec::new(),
                now,
            );
        }
        let is_sdp = req
            .get("Content-Type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"));
        if !req.body.is_empty() && !is_sdp {
            let accept = [("Accept".to_string(), "application/sdp".to_string())];
            return self.respond(
                &key,
                &req,
                415,
                "Unsupported Media Type",
                None,
                &accept,
                Vec::new(),
                now,
            );
        }
        let keying = self.keying(toggle.is_some() || consult.is_some());
        let offer = if req.body.is_empty() {
            None // a delayed offer (RFC 3261 §13.2.1): ours goes in the 200
        } else {
            match negotiate(&req.body, &keying) {
                Ok(o) => Some(Box::new(o)),
                Err((code, reason)) => return fail(self, code, reason),
            }
        };
        let local_tag = tag();
        let dialog = match Dialog::from_invite(&req, &local_tag) {
            Ok(d) => d,
            Err(r) => return fail(self, r.status, r.reason),
        };
        let Some(socket) = self.shared.ports.open() else {
            tracing::warn!("no free RTP port");
            return fail(self, 503, "Out Of Media Ports");
        };
        let rtp_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        if let Some(agent) = toggle {
            line.announce = Some(self.toggle_ready(agent, now));
        }
        if let Some(e) = self.transactions.get_mut(&key) {
            e.call_id = Some(call_id.clone());
        }
        let session = random() & 0xFFFF_FFFF;
        self.calls.insert(
            call_id.clone(),
            CallEntry {
                dialog,
                invite: key.clone(),
                invite_request: Box::new(req.clone()),
                link,
                peer,
                phase: Phase::Ringing {
                    socket,
                    offer,
                    line,
                },
                rtp_port,
                session,
                sdp_version: 1,
                last_sdp: String::new(),
                law: None,
                srtp: None,
                unconfirmed_since: None,
            },
        );
        let delay = Duration::from_millis(u64::from(self.shared.config.sip.answer_after_ms));
        if let Some(consulting) = consult {
            // Ringing while he does; answered when he answers.
            let contact = self.contact(link);
            self.respond(
                &key,
                &req,
                180,
                "Ringing",
                Some(&local_tag),
                &[("Contact".into(), contact)],
                Vec::new(),
                now,
            );
            if let Err(e) = self.start_consult(consulting, Some(&call_id), now) {
                tracing::info!(
                    why = e.why,
                    "an agent's call to a colleague not put through"
                );
                self.calls.remove(&call_id);
                let reason = e.reason();
                self.respond(
                    &key,
                    &req,
                    e.code,
                    reason,
                    Some(&local_tag),
                    &[],
                    Vec::new(),
                    now,
                );
            }
        } else if delay.is_zero() {
            self.answer(&call_id, now);
        } else {
            let contact = self.contact(link);
            self.respond(
                &key,
                &req,
                180,
                "Ringing",
                Some(&local_tag),
                &[("Contact".into(), contact)],
                Vec::new(),
                now,
            );
            self.schedule(now + delay, TimerRef::Answer(call_id));
        }
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
        let stale: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.unconfirmed_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= UNCONFIRMED_GRACE)
            })
            .map(|(id, _)| id.clone())
            .collect();
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

    fn contact(&self, link: Link) -> String {
        let port = self.transport.port_for(link);
        let adv = &self.shared.config.sip.advertise;
        match link {
            Link::Udp => format!("<sip:hotline@{adv}:{port}>"),
            Link::Tcp(_) => format!("<sip:hotline@{adv}:{port};transport=tcp>"),
            Link::Tls(_) => format!("<sip:hotline@{adv}:{port};transport=tls>"),
        }
    }

    /// What a call we answer brings to the SDP negotiation: a fresh SRTP key of ours, and
    /// whether the far end must use SRTP (`[rtp] srtp`; `agent`: an agent's own call).
    fn keying(&self, agent: bool) -> sdp::Keying {
        use crate::config::SrtpMode;
        let required = match self.shared.config.rtp.srtp {
            SrtpMode::Optional => false,
            SrtpMode::Agents => agent,
            SrtpMode::All => true,
        };
        sdp::Keying {
            local: srtp_key(),
            required,
        }
    }

    /// Answers a ringing call: 200 with our SDP, and its call task starts (or, for a delayed
    /// offer, the 200 carries our offer and the call starts on the ACK's answer).
    fn answer(&mut self, call_id: &str, now: Instant) {
        // Out of the map while its phase changes hands; back in before anything else runs.
        let Some(mut entry) = self.calls.remove(call_id) else {
            return;
        };
        let Phase::Ringing {
            socket,
            offer,
            line,
        } = entry.phase
        else {
            return; // cancelled or answered already: dropped as it was
        };
        let sdp = sdp::describe(
            entry.session,
            entry.sdp_version,
            self.shared.media_ip,
            entry.rtp_port,
            offer.as_deref().map(|(o, a)| (o, a)),
            sdp::OfferSrtp::No,
        );
        entry.last_sdp = sdp.clone();
        entry.phase = Phase::AwaitingAnswer {
            socket: Arc::clone(&socket),
            line: line.clone(),
        };
        entry.unconfirmed_since = Some(now);
        let key = entry.invite.clone();
        let req = entry.invite_request.clone();
        let local_tag = entry.dialog.local_tag.clone();
        let extra = [
            ("Contact".to_string(), self.contact(entry.link)),
            ("Allow".to_string(), ALLOW.to_string()),
        ];
        self.calls.insert(call_id.to_string(), entry);
        if let Some(o) = offer {
            self.start_call(call_id, socket, o.1, line);
        }
        self.respond(
            &key,
            &req,
            200,
            "OK",
            Some(&local_tag),
            &extra,
            sdp.into_bytes(),
            now,
        );
    }

    /// The call is up: its task starts driving the flow.
    fn start_call(
        &mut self,
        call_id: &str,
        socket: Arc<std::net::UdpSocket>,
        agreed: Agreed,
        line: super::Line,
    ) {
        let Some(entry) = self.calls.get_mut(call_id) else {
            return;
        };
        entry.law = Some(agreed.law);
        entry.srtp = agreed.srtp;
        let (tx_in, rx_in) = mpsc::unbounded_channel();
        entry.phase = Phase::Answered {
            to_call: tx_in.clone(),
        };
        let from_trunk = self.shared.config.trunks.iter().any(|t| {
            t.addresses
                .iter()
                .any(|a| a.parse::<std::net::IpAddr>().ok() == Some(entry.peer.ip()))
        });
        let caller = crate::sip::identity::caller(
            &entry.invite_request,
            from_trunk,
            &line.flows.callbacks.numbering,
        )
        .uri;
        let id = self.next_call;
        self.next_call += 1;
        let span = tracing::info_span!("call", id, call_id, caller);
        let sip_host = entry.peer.ip();
        let setup = CallSetup {
            id,
            call_id: call_id.to_string(),
            caller,
            line,
            socket,
            agreed,
            sip_host,
            inputs: rx_in,
            notify: tx_in,
        };
        let shared = Arc::clone(&self.shared);
        let task = shared.call_tasks.enter();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                call::run(shared, setup).await;
                drop(task);
            },
            span,
        ));
    }

    fn on_cancel(&mut self, key: Key, req: Message, now: Instant) {
        let invite_key = Key::of(&req, "INVITE");
        let call_id = invite_key
            .as_ref()
            .and_then(|k| self.transactions.get(k))
            .and_then(|e| e.call_id.clone());
        let Some(call_id) = call_id else {
            return self.respond(
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
                Vec::new(),
                now,
            );
        };
        self.respond(&key, &req, 200, "OK", None, &[], Vec::new(), now);
        let ringing = self
            .calls
            .get(&call_id)
            .is_some_and(|c| matches!(c.phase, Phase::Ringing { .. }));
        if ringing && let Some(entry) = self.calls.remove(&call_id) {
            tracing::info!(call_id, "caller cancelled before answer");
            self.consult_call_ended(&call_id, now);
            let tag = entry.dialog.local_tag.clone();
            self.respond(
                &entry.invite,
                &entry.invite_request,
                487,
                "Request Terminated",
                Some(&tag),
                &[],
                Vec::new(),
                now,
            );
        }
    }

    fn on_ack(&mut self, req: &Message, now: Instant) {
        // The ACK of a failure shares the INVITE's branch; the ACK of a 2xx is its own
        // transaction and finds the INVITE through the dialog.
        if let Some(c) = req
            .get("Call-ID")
            .and_then(|id| self.calls.get_mut(id))
            .filter(|c| c.dialog.matches(req))
        {
            c.unconfirmed_since = None;
        }
        let key = Key::of(req, "INVITE")
            .filter(|k| self.transactions.contains_key(k))
            .or_else(|| {
                let call_id = req.get("Call-ID")?;
                self.calls
                    .get(call_id)
                    .filter(|c| c.dialog.matches(req))
                    .map(|c| c.invite.clone())
            });
        let Some(key) = key else { return };
        if let Some(e) = self.transactions.get_mut(&key) {
            e.tx.on_request(true, now);
        }
        self.cleanup(&key);
        self.schedule_tx(&key);
        self.delayed_answer(req, now);
    }

    /// The ACK of a delayed offer carries the caller's answer: the call starts, or, with no
    /// usable answer, ends (RFC 3261 §13.2.1 leaves no other way out).
    fn delayed_answer(&mut self, ack: &Message, now: Instant) {
        let Some(call_id) = ack.get("Call-ID").map(str::to_string) else {
            return;
        };
        let waiting = self.calls.get(&call_id).is_some_and(|c| {
            c.dialog.matches(ack) && matches!(c.phase, Phase::AwaitingAnswer { .. })
        });
        if !waiting {
            return;
        }
        let Some(entry) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Phase::AwaitingAnswer { socket, line } = &entry.phase else {
            return;
        };
        let (socket, line) = (Arc::clone(socket), line.clone());
        // The answer to our offer in the 200, which was plain RTP.
        let keying = sdp::Keying {
            local: [0; crate::media::srtp::MASTER_LEN],
            required: false,
        };
        match negotiate(&ack.body, &keying).map(|(o, mut a)| {
            a.srtp = None;
            (o, a)
        }) {
            Ok((_, agreed)) => self.start_call(&call_id, socket, agreed, line),
            Err((_, reason)) => {
                tracing::info!(
                    call_id,
                    reason,
                    "the ACK carried no usable SDP answer: ending the call"
                );
                self.bye(&call_id, now);
                self.calls.remove(&call_id);
            }
        }
    }

    fn in_dialog(&mut self, key: Key, req: Message, method: &str, now: Instant) {
        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        let known = self
            .calls
            .get_mut(&call_id)
            .filter(|c| c.dialog.matches(&req));
        let Some(entry) = known else {
            return self.respond(
                &key,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
                Vec::new(),
                now,
            );
        };
        if let Err(r) = entry.dialog.accept_cseq(&req) {
            return self.respond(&key, &req, r.status, r.reason, None, &[], Vec::new(), now);
        }
        let local_tag = entry.dialog.local_tag.clone();
        let to_call = match &entry.phase {
            Phase::Answered { to_call } => Some(to_call.clone()),
            Phase::Ringing { .. } | Phase::AwaitingAnswer { .. } => None,
        };
        match method {
            "BYE" => {
                self.respond(
                    &key,
                    &req,
                    200,
                    "OK",
                    Some(&local_tag),
                    &[],
                    Vec::new(),
                    now,
                );
                match to_call {
                    Some(c) => {
                        let _ = c.send(CallInput::Hangup);
                    }
                    None => {
                        self.calls.remove(&call_id);
                    }
                }
            }
            "INFO" => {
                let ct = req.get("Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&req.body);
                if let (Some(d), Some(c)) = (dtmf::from_info(ct, &body), &to_call) {
                    let _ = c.send(CallInput::Digit(d));
                }
                self.respond(
                    &key,
                    &req,
                    200,
                    "OK",
                    Some(&local_tag),
                    &[],
                    Vec::new(),
                    now,
                );
            }
            "OPTIONS" => self.options(&key, &req, now),
            "INVITE" => self.reinvite(key, req, &call_id, now),
            "CANCEL" => self.on_cancel(key, req, now),
            _ => self.respond(
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
        let media_ip = self.shared.media_ip;
        let keying = self.keying(false);
        let Some(entry) = self.calls.get_mut(call_id) else {
            return;
        };
        let local_tag = entry.dialog.local_tag.clone();
        let body = String::from_utf8_lossy(&req.body).to_string();
        let sdp = if body.trim().is_empty() {
            // An offerless re-INVITE: our SDP is the offer, the answer comes in the ACK.
            entry.last_sdp.clone()
        } else {
            match sdp::renegotiate(&body, entry.law, &keying, entry.srtp) {
                Ok((offer, agreed)) => {
                    entry.sdp_version += 1;
                    let s = sdp::describe(
                        entry.session,
                        entry.sdp_version,
                        media_ip,
                        entry.rtp_port,
                        Some((&offer, &agreed)),
                        sdp::OfferSrtp::No,
                    );
                    entry.last_sdp = s.clone();
                    if entry.law.is_some() {
                        entry.srtp = agreed.srtp;
                    }
                    if let Phase::Answered { to_call } = &entry.phase {
                        let remote = SocketAddr::new(agreed.remote.0, agreed.remote.1);
                        let _ = to_call.send(CallInput::Media {
                            remote,
                            direction: agreed.direction,
                            srtp: agreed.srtp,
                        });
                    }
                    s
                }
                Err(e) => {
                    tracing::info!("re-INVITE refused: {e}");
                    return self.respond(
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
        entry.invite = key.clone();
        let link = entry.link;
        if let Some(t) = self.transactions.get_mut(&key) {
            t.call_id = Some(call_id.to_string());
        }
        let extra = [("Contact".to_string(), self.contact(link))];
        self.respond(
            &key,
            &req,
            200,
            "OK",
            Some(&local_tag),
            &extra,
            sdp.into_bytes(),
            now,
        );
    }

    fn on_command(&mut self, c: SipCommand, now: Instant) {
        match c {
            SipCommand::Reconfigure(config) => self.reconfigure(&config, now),
            SipCommand::Certificate(c) => self.transport.set_tls_config(c),
            SipCommand::Ended { call_id, id } => {
                self.calls.remove(&call_id);
                self.consult_call_ended(&call_id, now);
                if let Some(held) = self.agents.held_callbacks.remove(&call_id) {
                    self.route(crate::routing::RouterEvent::Release { call: held }, now);
                }
                self.leave(id, now);
            }
            SipCommand::Enqueue {
                id,
                call_id,
                queue,
                priority,
                record,
                first,
                context,
            } => self.enqueue(id, call_id, (queue, priority, record), first, context, now),
            SipCommand::LeaveQueue { id } => self.leave(id, now),
            SipCommand::QueueStatus { id, reply } => {
                let _ = reply.send(self.queue_status(id, now));
            }
            SipCommand::WaitTold { id, wait } => {
                self.route(crate::routing::RouterEvent::Told { call: id, wait }, now);
            }
            SipCommand::ToCallback { id, row, reply } => {
                let _ = reply.send(self.keep_as_callback(id, row, now));
            }
            SipCommand::NewCallback { row, request } => {
                self.add_callback(row, request, 0, now);
            }
            SipCommand::CallbackResolved { id, target } => self.dial_caller(id, target, now),
            SipCommand::Transfer {
                id,
                call_id,
                to,
                ring_timeout_s,
                context,
            } => self.transfer(id, &call_id, to, ring_timeout_s, context),
            SipCommand::TransferResolved { id, target } => {
                self.dial_transfer(id, target, now);
            }
            SipCommand::Hangup { call_id } => self.bye(&call_id, now),
            SipCommand::LegConnected { leg, link } => self.switch.connected(&leg, link, now),
            SipCommand::TrunkResolved { name, target } => self.register_trunk(name, target, now),
        }
    }

    /// Sends BYE in a call's dialog.
    fn bye(&mut self, call_id: &str, now: Instant) {
        let via_host = self.shared.config.sip.advertise.clone();
        let Some(entry) = self.calls.get_mut(call_id) else {
            return;
        };
        let (link, peer) = (entry.link, entry.peer);
        let port = self.transport.port_for(link);
        let via = format!(
            "SIP/2.0/{} {via_host}:{port};branch={}{:x};rport",
            link.name(),
            transaction::MAGIC_COOKIE,
            random()
        );
        let contact = self.contact(link);
        let Some(entry) = self.calls.get_mut(call_id) else {
            return;
        };
        let bye = entry.dialog.request("BYE", &via, &contact);
        self.send_request(&bye, link, peer, now);
    }

    /// Sends a request we originate (a BYE to a caller) through a new client transaction.
    fn send_request(&mut self, req: &Message, link: Link, peer: SocketAddr, now: Instant) {
        let method = req.method().unwrap_or_default().to_string();
        let Some(key) = Key::of(req, &method) else {
            return;
        };
        let invite = method == "INVITE";
        let (tx, out) = Transaction::client(invite, req.to_bytes(), self.tx_config(link), now);
        self.shared
            .metrics
            .sip_transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.transactions.insert(
            key.clone(),
            TxEntry {
                tx,
                link,
                peer,
                call_id: None,
            },
        );
        self.emit(link, peer, out);
        self.schedule_tx(&key);
    }

    /// After a flood has passed (the transactions down to a quarter of their peak), the
    /// tables shrink and the freed memory goes back to the system.
    fn give_memory_back(&mut self) {
        if self.tx_peak < 4096 || self.transactions.len() > self.tx_peak / 4 {
            return;
        }
        self.transactions.shrink_to_fit();
        self.tx_peak = self.transactions.len();
        super::release_free_memory();
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                TimerRef::Answer(call_id) => self.answer(&call_id, now),
                TimerRef::Router => self.on_router_timer(now),
                TimerRef::Queues => self.publish_queues(now),
                TimerRef::Registrar => self.on_registrar_timer(now),
                TimerRef::Qualify => self.on_qualify_timer(now),
                TimerRef::Trunks => self.on_trunks_timer(now),
                TimerRef::Switch => {
                    if self.switch_due.is_some_and(|t| t <= now) {
                        self.switch_due = None;
                        self.switch.handle(crate::switch::Input::Timeout, now);
                        self.drive(now);
                    }
                }
                TimerRef::Transaction(key) => {
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
                    self.cleanup(&key);
                    self.schedule_tx(&key);
                }
            }
        }
        self.give_memory_back();
    }

    /// No ACK for our 200 (RFC 3261 §13.3.1.4): the call is over; tell the caller with a BYE.
    /// A call whose task has not started (a delayed offer still waiting for the ACK that
    /// carries its answer) is forgotten here, its RTP port with it: nothing else would ever
    /// free them.
    fn invite_timed_out(&mut self, call_id: &str, now: Instant) {
        tracing::info!(call_id, "no ACK for the 200 OK: ending the call");
        self.bye(call_id, now);
        match self.calls.get(call_id).map(|c| &c.phase) {
            Some(Phase::Answered { to_call }) => {
                let _ = to_call.send(CallInput::Hangup);
            }
            Some(_) => {
                self.calls.remove(call_id);
            }
            None => {}
        }
    }

    /// The grace period is over: every live call gets a BYE, ringing ones a 503; the calls we
    /// placed get a BYE or a CANCEL.
    fn end_all(&mut self, now: Instant) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        tracing::info!(calls = ids.len(), "grace period over: ending live calls");
        for id in ids {
            let Some(entry) = self.calls.get(&id) else {
                continue;
            };
            match &entry.phase {
                Phase::Answered { to_call } => {
                    let _ = to_call.send(CallInput::Shutdown);
                }
                Phase::AwaitingAnswer { .. } => {
                    self.bye(&id, now);
                    self.calls.remove(&id);
                }
                Phase::Ringing { .. } => {
                    if let Some(e) = self.calls.remove(&id) {
                        let tag = e.dialog.local_tag.clone();
                        self.respond(
                            &e.invite,
                            &e.invite_request,
                            503,
                            "Service Unavailable",
                            Some(&tag),
                            &[],
                            Vec::new(),
                            now,
                        );
                    }
                }
            }
        }
        // Calls we placed that no caller's call holds (a callback's agent and caller legs):
        // hang up the answered ones, stop the ringing ones.
        for id in self.switch.leg_ids() {
            self.switch.hang_up(&id, now);
        }
        self.drive(now);
    }

    /// Carries out what the switch asks: messages to send, and what happened to our legs
    /// (each leg's user decides what that means); then its next timeout is scheduled.
    pub(super) fn drive(&mut self, now: Instant) {
        while let Some(o) = self.switch.poll_output() {
            match o {
                crate::switch::Output::Transmit {
                    link,
                    peer,
                    bytes,
                    resend,
                } => {
                    if resend {
                        self.shared
                            .stats
                            .retransmissions
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.send(link, peer, bytes);
                }
                crate::switch::Output::Event(e) => self.on_leg_event(e, now),
                crate::switch::Output::Connect { leg, peer } => {
                    let (sip, transport) = (self.shared.sip.clone(), Arc::clone(&self.transport));
                    tokio::spawn(async move {
                        let link = match transport.connect(peer).await {
                            Ok(link) => Some(link),
                            Err(e) => {
                                tracing::info!(%peer, "no TCP connection for a big INVITE: {e}");
                                None
                            }
                        };
                        let _ = sip.send(SipCommand::LegConnected { leg, link });
                    });
                }
            }
        }
        let started = self.switch.take_started();
        self.shared
            .metrics
            .sip_transactions
            .fetch_add(started, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.switch.poll_timeout()
            && self.switch_due.is_none_or(|due| t < due)
        {
            self.switch_due = Some(t);
            self.schedule(t, TimerRef::Switch);
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

/// The switch's randomness: the process's hash keys for ids, the secure source for keys.
struct OsEntropy;

impl crate::switch::Entropy for OsEntropy {
    fn next(&mut self) -> u64 {
        random()
    }
    fn key(&mut self) -> [u8; crate::media::srtp::MASTER_LEN] {
        srtp_key()
    }
}

/// A fresh tag for To headers.
fn tag() -> String {
    format!("{:x}", random())
}

fn random() -> u64 {
    super::random()
}

/// A new SRTP master key and salt, from the operating system's secure random source.
pub(super) fn srtp_key() -> [u8; crate::media::srtp::MASTER_LEN] {
    let mut key = [0u8; crate::media::srtp::MASTER_LEN];
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut key)
        .is_err()
    {
        // Never happens on Linux; if it did, a key from the process's hash keys is still
        // unguessable from outside.
        for chunk in key.chunks_mut(8) {
            let r = random().to_be_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    key
}

/// Server transactions at most: beyond this a new INVITE or REGISTER gets a stateless 503
/// (each costs about a kilobyte for Timer J's 32 s, so this bounds a flood to tens of MB).
const MAX_TRANSACTIONS: usize = 40_000;

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

/// How long a 200 may go unacknowledged before the call gives way to a new one on a full line.
const UNCONFIRMED_GRACE: Duration = Duration::from_secs(4);

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

//! The signalling task: one task drives the switch's two sans-IO cores, the calls we answer
//! (`switch::uas`: every server transaction and caller's dialog, admission, Timer H, the
//! drain) and the legs we place (`switch`). It reads the network into them, sends what they
//! ask, runs their timers, decides what needs the config (which line an INVITE is for, an
//! agent's digest, a colleague's call), opens each call's RTP port and starts a call task once
//! its media is agreed. Agent phones register here too, and the routing core runs inside this
//! task (`agents.rs`), so one owner sees every SIP event and routing decision in order.

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
use crate::engine::session::Heard;
use crate::sip::dialog;
use crate::sip::sdp::Agreed;
use crate::sip::transaction::Key;
use crate::sip::transport::{Inbound, InboxRx, Link, Transport};
use crate::sip::wire::{self, Message, Start};
use crate::switch::Switch;
use crate::switch::uas::{self, Answer, Signal, Uas};

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

/// A call taken but not started: its RTP socket and line wait for its media to be agreed.
struct Pending {
    socket: Arc<std::net::UdpSocket>,
    line: super::Line,
}

enum TimerRef {
    Router,
    /// The wall's queue figures are due (see `publish_changes`).
    Queues,
    /// Agents' phones: registrations expire, OPTIONS are due (`switch::phones`).
    Phones,
    /// Registered TCP trunks' connections are checked.
    Trunks,
    /// The switch's `poll_timeout()`.
    Switch,
    /// The calls we answer: their `poll_timeout()`.
    Uas,
}

pub struct Signalling {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    timers: BTreeMap<(Instant, u64), TimerRef>,
    timer_seq: u64,
    /// The calls we answer: their SIP, decided without IO (`crate::switch::uas`).
    uas: Uas,
    /// When the calls' next timeout is scheduled for.
    uas_due: Option<Instant>,
    /// Calls taken whose media is not yet agreed.
    pending: HashMap<String, Pending>,
    /// The started calls' tasks, by Call-ID.
    running: HashMap<String, super::call_inputs::CallTx>,
    next_call: u64,
    draining: bool,
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
        let admission = crate::switch::admission::Admission::new(
            shared.config.sip.max_calls,
            shared.config.sip.max_new_calls_per_s,
            Instant::now(),
        );
        let srtp_all = shared.config.rtp.srtp == crate::config::SrtpMode::All;
        Signalling {
            uas: Uas::new(local.clone(), Box::new(OsEntropy), admission, srtp_all),
            uas_due: None,
            pending: HashMap::new(),
            running: HashMap::new(),
            switch: Switch::new(local, Box::new(OsEntropy)),
            trunk_links: HashMap::new(),
            dns: Arc::new(super::dns::Dns::new(
                &shared.config.sip.resolver_addresses(),
            )),
            connecting: std::collections::HashSet::new(),
            switch_due: None,
            transport,
            timers: BTreeMap::new(),
            timer_seq: 0,
            next_call: 1,
            draining: false,
            agents: agents::Agents::new(&shared.config, Instant::now()),
            trace: shared.config.sip.trace
                || std::env::var("HOTLINE_SIP_TRACE").is_ok_and(|v| v == "1"),
            shared,
        }
    }

    /// Runs until shutdown has been asked for and every call has ended.
    pub async fn run(
        mut self,
        mut inbound: InboxRx,
        mut commands: mpsc::Receiver<SipCommand>,
        mut queries: mpsc::Receiver<crate::status::ApiQuery>,
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
                    self.uas.drain();
                    self.shared.stats.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                    let now = Instant::now();
                    tracing::info!(
                        calls = self.uas.len(),
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
            if self.draining && self.uas.is_empty() && self.switch.is_empty() {
                // Let our BYEs finish, within reason.
                let byes_pending = self.switch.requests_pending() || self.uas.requests_pending();
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

    fn schedule(&mut self, at: Instant, what: TimerRef) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), what);
    }

    fn send(&self, link: Link, peer: SocketAddr, bytes: Arc<[u8]>, resend: bool) {
        if resend {
            self.shared
                .stats
                .retransmissions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.trace {
            trace_message("out", link, peer, &bytes);
        }
        self.transport.send(link, peer, bytes);
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
            Err(reject) => {
                self.uas.reject(reject, link, source);
                return self.drive(now);
            }
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
        } else {
            let input = uas::Input::Message {
                msg,
                link,
                peer: source,
            };
            self.uas.handle(input, now);
        }
        self.drive(now);
    }

    /// A new call: which line it is for (or an agent's feature code, or an agent's call about
    /// her caller), then taken or refused.
    fn on_invite(&mut self, key: Key, req: Message, link: Link, peer: SocketAddr, now: Instant) {
        let fail =
            |s: &mut Self, code, reason: &str| s.uas.respond(&key, &req, code, reason, &[], now);
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
        let srtp_required = self.srtp_required(toggle.is_some() || consult.is_some());
        let Some(offered) = self.uas.offer(&key, &req, link, peer, srtp_required, now) else {
            return; // refused for its SDP or its dialog
        };
        let Some(socket) = self.shared.ports.open() else {
            tracing::warn!("no free RTP port");
            return fail(self, 503, "Out Of Media Ports");
        };
        let rtp_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        if let Some(agent) = toggle {
            line.announce = Some(self.toggle_ready(agent, now));
        }
        let delay = Duration::from_millis(u64::from(self.shared.config.sip.answer_after_ms));
        let answer = if consult.is_some() {
            Answer::Held // ringing while he does; answered when he answers
        } else if delay.is_zero() {
            Answer::Now
        } else {
            Answer::After(delay)
        };
        self.pending
            .insert(offered.call_id().to_string(), Pending { socket, line });
        let call_id = self.uas.ring(offered, rtp_port, answer, now);
        if let Some(consulting) = consult
            && let Err(e) = self.start_consult(consulting, Some(&call_id), now)
        {
            tracing::info!(
                why = e.why,
                "an agent's call to a colleague not put through"
            );
            self.uas.refuse(&call_id, e.code, e.reason(), now);
            self.pending.remove(&call_id);
        }
    }

    /// Whether a call we answer must bring SRTP (`[rtp] srtp`; `agent`: an agent's own call).
    fn srtp_required(&self, agent: bool) -> bool {
        use crate::config::SrtpMode;
        match self.shared.config.rtp.srtp {
            SrtpMode::Optional => false,
            SrtpMode::Agents => agent,
            SrtpMode::All => true,
        }
    }

    /// The call is up: its task starts driving the flow.
    fn start_call(&mut self, call_id: String, agreed: Agreed, invite: &Message, peer: SocketAddr) {
        let Some(Pending { socket, line }) = self.pending.remove(&call_id) else {
            return;
        };
        let (tx_in, rx_in) = super::call_inputs::channel();
        self.running.insert(call_id.clone(), tx_in.clone());
        let from_trunk = self.shared.config.trunks.iter().any(|t| {
            t.addresses
                .iter()
                .any(|a| a.parse::<std::net::IpAddr>().ok() == Some(peer.ip()))
        });
        let caller =
            crate::sip::identity::caller(invite, from_trunk, &line.flows.callbacks.numbering).uri;
        let id = self.next_call;
        self.next_call += 1;
        let span = tracing::info_span!("call", id, call_id, caller);
        let setup = CallSetup {
            id,
            call_id,
            caller,
            line,
            socket,
            agreed,
            sip_host: peer.ip(),
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

    fn on_command(&mut self, c: SipCommand, now: Instant) {
        match c {
            SipCommand::Reconfigure(config) => self.reconfigure(&config, now),
            SipCommand::Certificate(c) => self.transport.set_tls_config(c),
            SipCommand::Ended { call_id, id } => {
                self.uas.ended(&call_id);
                self.running.remove(&call_id);
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
            SipCommand::Hangup { call_id } => self.uas.hang_up(&call_id, now),
            SipCommand::LegConnected { leg, link } => self.switch.connected(&leg, link, now),
            SipCommand::TrunkResolved { name, target } => self.register_trunk(name, target, now),
        }
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                TimerRef::Router => self.on_router_timer(now),
                TimerRef::Queues => self.publish_queues(now),
                TimerRef::Phones => self.on_phones_timer(now),
                TimerRef::Trunks => self.on_trunks_timer(now),
                TimerRef::Switch => {
                    if self.switch_due.is_some_and(|t| t <= now) {
                        self.switch_due = None;
                        self.switch.handle(crate::switch::Input::Timeout, now);
                        self.drive(now);
                    }
                }
                TimerRef::Uas => {
                    if self.uas_due.is_some_and(|t| t <= now) {
                        self.uas_due = None;
                        self.uas.handle(uas::Input::Timeout, now);
                        self.drive(now);
                    }
                }
            }
        }
        // After a flood has passed, the freed memory goes back to the system.
        if self.uas.shrink() {
            super::release_free_memory();
        }
    }

    /// The grace period is over: every live call is ended (`Uas::shut_down`); the calls we
    /// placed get a BYE or a CANCEL.
    fn end_all(&mut self, now: Instant) {
        self.uas.shut_down(now);
        // Calls we placed that no caller's call holds (a callback's agent and caller legs):
        // hang up the answered ones, stop the ringing ones.
        for id in self.switch.leg_ids() {
            self.switch.hang_up(&id, now);
        }
        self.drive(now);
    }

    /// Carries out what the calls we answer and the legs we place ask: messages to send, new
    /// calls and registrations to decide, sessions to start or tell, and what happened to our
    /// legs (each leg's user decides what that means); then their next timeouts are scheduled.
    pub(super) fn drive(&mut self, now: Instant) {
        loop {
            if let Some(o) = self.uas.poll_output() {
                self.on_uas(o, now);
            } else if let Some(o) = self.switch.poll_output() {
                self.on_switch(o, now);
            } else {
                break;
            }
        }
        let (started, refused) = self.uas.take_counts();
        let started = started + self.switch.take_started();
        let metrics = &self.shared.metrics;
        metrics
            .sip_transactions
            .fetch_add(started, std::sync::atomic::Ordering::Relaxed);
        metrics
            .refused_calls
            .fetch_add(refused, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.switch.poll_timeout()
            && self.switch_due.is_none_or(|due| t < due)
        {
            self.switch_due = Some(t);
            self.schedule(t, TimerRef::Switch);
        }
        if let Some(t) = self.uas.poll_timeout()
            && self.uas_due.is_none_or(|due| t < due)
        {
            self.uas_due = Some(t);
            self.schedule(t, TimerRef::Uas);
        }
    }

    fn on_uas(&mut self, o: uas::Output, now: Instant) {
        match o {
            uas::Output::Transmit {
                link,
                peer,
                bytes,
                resend,
            } => self.send(link, peer, bytes, resend),
            uas::Output::Invite {
                key,
                req,
                link,
                peer,
            } => self.on_invite(key, *req, link, peer, now),
            uas::Output::Register {
                key,
                req,
                link,
                peer,
            } => self.on_register(key, *req, link, peer, now),
            uas::Output::Start {
                call_id,
                agreed,
                invite,
                peer,
            } => self.start_call(call_id, agreed, &invite, peer),
            uas::Output::Session { call_id, signal } => {
                let input = match signal {
                    Signal::Hangup => CallInput::Hangup,
                    Signal::Digit(d) => CallInput::Heard(Heard::Digit(d)),
                    Signal::Media {
                        remote,
                        direction,
                        srtp,
                    } => CallInput::Media {
                        remote,
                        direction,
                        srtp,
                    },
                    Signal::Shutdown => CallInput::Shutdown,
                };
                if let Some(to_call) = self.running.get(&call_id) {
                    let _ = to_call.send(input);
                }
            }
            uas::Output::Gone { call_id, cancelled } => {
                self.pending.remove(&call_id);
                if cancelled {
                    self.consult_call_ended(&call_id, now);
                }
            }
        }
    }

    fn on_switch(&mut self, o: crate::switch::Output, now: Instant) {
        match o {
            crate::switch::Output::Transmit {
                link,
                peer,
                bytes,
                resend,
            } => self.send(link, peer, bytes, resend),
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
                    let _ = sip.send(SipCommand::LegConnected { leg, link }).await;
                });
            }
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

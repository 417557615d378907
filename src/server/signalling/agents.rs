//! Agent phones, inside the signalling task: their registrations (digest-authenticated), the
//! routing core deciding who takes which caller, and the legs we place to agents — an INVITE
//! to the agent's registered contact carrying the caller's context, CANCEL when the ring
//! stops, ACK and BYE — bridged to the caller in the media loop once answered.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{CallerContext, Signalling, TimerRef, random};
use crate::config::{Config, RecordMode, Role};
use crate::engine::announce;
use crate::engine::session::Heard;
use crate::routing::{
    AgentConfig, AgentState, QueueConfig, Requested, Router, RouterAction, RouterEvent,
};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::registrar::{Algorithm, Binding, Change, Lockout, Refusal, Registrar, User};
use crate::sip::sdp;
use crate::sip::transaction::Key;
use crate::sip::transport::Link;
use crate::sip::wire::Message;
use crate::status::events::Event;
use crate::status::{AgentRow, ApiQuery, Gauges, LoggedIn, LoginRefused, StateReply};
use crate::store::StoredBinding;
use crate::switch::agents::Ringing;
use crate::switch::phones::{Phones, Reach};
use crate::switch::queueing::Joining;
use crate::switch::status::{Caller, Callers, ServiceLevels, View};
use crate::switch::{Dial, Event as LegEvent, Phone, Ring};

/// A caller in a queue, or connected to an agent through it; or a callback keeping a caller's
/// place.
pub(super) struct Waiting {
    pub(super) call_id: String,
    pub(super) queue: String,
    pub(super) priority: u32,
    /// The caller's call task; none for a callback (the caller has hung up).
    pub(super) to_call: Option<crate::server::call_inputs::CallTx>,
    pub(super) context: CallerContext,
    pub(super) entered: Instant,
    /// The answered agent leg (its Call-ID).
    pub(super) connected: Option<String>,
    /// The agent who passed the caller on to this queue (a transfer), if one did, and what
    /// she wrote for the next one.
    pub(super) transferred_by: Option<String>,
    pub(super) note: Option<String>,
    /// The line's recording rule, over its queue's (for the whole call, transfers too).
    pub(super) record: Option<RecordMode>,
    pub(super) callback: Option<super::callbacks::Callback>,
}

/// Whom a leg we place calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegKind {
    /// An agent's registered phone.
    Agent,
    /// The caller's number, for a callback (the agent already waits).
    CallbackCaller,
    /// A flow's transfer target, for a caller on the line.
    Transfer,
}

/// A call we place, as its user sees it: whom it is for, and its media. Its SIP lives in
/// the switch.
pub(super) struct Leg {
    pub(super) call: u64,
    /// The agent it rings, or who waits on it for a callback (unused for a transfer).
    pub(super) agent: usize,
    pub(super) kind: LegKind,
    pub(super) socket: Arc<UdpSocket>,
    /// The leg's id in the media loop.
    pub(super) media: u64,
    /// Where its SIP goes (its RTP is only taken from that host).
    pub(super) peer: SocketAddr,
}

pub(super) struct Agents {
    pub router: Router,
    /// Their registrations, and whether they answer when asked.
    pub phones: Phones,
    pub ids: Vec<String>,
    pub names: Vec<String>,
    /// Whether each agent is a supervisor (`role = "supervisor"`): opens the wall.
    pub supervisors: Vec<bool>,
    pub queue_ids: HashMap<String, usize>,
    pub queue_names: Vec<String>,
    pub waiting: HashMap<u64, Waiting>,
    /// Callers being transferred (or bridged to a transfer target), by call.
    pub transfers: HashMap<u64, super::transfers::Transfer>,
    /// Callers an agent passes on to another agent, while that one rings, by call.
    pub passes: HashMap<u64, super::refers::Pass>,
    pub legs: HashMap<String, Leg>,
    /// Callbacks held unrung while their caller (by Call-ID) still hears the confirmation.
    pub held_callbacks: HashMap<String, u64>,
    router_timer: Option<Instant>,
    phones_timer: Option<Instant>,
    /// Per queue, the callers who left it in the last hour, answered in time or not.
    levels: ServiceLevels,
    /// A queues event is scheduled.
    queues_due: bool,
    /// How each queue's calls are recorded once an agent answers (`record`).
    pub recorded: HashMap<String, RecordMode>,
}

fn recorded_queues(config: &Config) -> HashMap<String, RecordMode> {
    config
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.record))
        .collect()
}

impl Agents {
    /// How a queue's calls are recorded.
    pub(super) fn record_mode(&self, queue: &str) -> RecordMode {
        self.recorded.get(queue).copied().unwrap_or_default()
    }
}

/// How often at most the wall gets the queues' figures (each costs a pass over the hour's
/// served callers).
const QUEUES_EVENT_EVERY: Duration = Duration::from_millis(250);

/// The router's and the registrar's view of a config's agents and queues.
fn routing_config(config: &Config) -> (Vec<AgentConfig>, Vec<QueueConfig>, Vec<User>) {
    let agents = config
        .agents
        .iter()
        .map(|a| AgentConfig {
            id: a.id.clone(),
            skills: a.skills.clone(),
        })
        .collect();
    let queues = config
        .queues
        .iter()
        .map(|q| QueueConfig {
            name: q.name.clone(),
            skills: q.skills.clone(),
            strategy: q.strategy,
            ring_timeout: Duration::from_secs(u64::from(q.ring_timeout_s.max(1))),
            wrap_up: Duration::from_secs(u64::from(q.wrap_up_s)),
            retry: Duration::from_secs(u64::from(q.retry_s.max(1))),
        })
        .collect();
    let users = config
        .agents
        .iter()
        .map(|a| User {
            id: a.id.clone(),
            password: a.password.clone(),
        })
        .collect();
    (agents, queues, users)
}

impl Agents {
    pub fn new(config: &Config, now: Instant) -> Agents {
        let (agents, queues, users) = routing_config(config);
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&random().to_be_bytes());
        secret[8..].copy_from_slice(&random().to_be_bytes());
        Agents {
            router: Router::new(&agents, &queues, config.routing.ready_on_register, now),
            phones: Phones::new(
                Registrar::new(
                    &config.sip.domain,
                    &config
                        .sip
                        .digest_algorithms
                        .iter()
                        .filter_map(|a| Algorithm::parse(a))
                        .collect::<Vec<_>>(),
                    users,
                    secret,
                )
                .with_lockout(Lockout {
                    max_failures: config.sip.max_auth_failures,
                    max_failures_per_user: config.sip.max_auth_failures_per_user,
                    window: Duration::from_secs(u64::from(config.sip.auth_failure_window_s)),
                })
                .with_nat(config.sip.agents_nat, config.sip.max_expires),
                Duration::from_secs(u64::from(config.sip.qualify_s)),
                config.sip.qualify,
            ),
            ids: config.agents.iter().map(|a| a.id.clone()).collect(),
            names: config.agents.iter().map(|a| a.name.clone()).collect(),
            supervisors: config
                .agents
                .iter()
                .map(|a| a.role == Role::Supervisor)
                .collect(),
            queue_names: queues.iter().map(|q| q.name.clone()).collect(),
            queue_ids: queues
                .iter()
                .enumerate()
                .map(|(i, q)| (q.name.clone(), i))
                .collect(),
            waiting: HashMap::new(),
            transfers: HashMap::new(),
            passes: HashMap::new(),
            legs: HashMap::new(),
            held_callbacks: HashMap::new(),
            router_timer: None,
            phones_timer: None,
            levels: ServiceLevels::new(
                config
                    .queues
                    .iter()
                    .map(|q| Duration::from_secs(u64::from(q.service_level_s)))
                    .collect(),
            ),
            queues_due: false,
            recorded: recorded_queues(config),
        }
    }
}

impl Signalling {
    /// REGISTER: the registrar answers; a phone appearing or leaving tells the router.
    pub(super) fn on_register(
        &mut self,
        key: Key,
        req: Message,
        link: Link,
        peer: SocketAddr,
        now: Instant,
    ) {
        let answer = self.agents.phones.registrar.register(&req, peer, link, now);
        if let Some(agent) = answer.agent {
            tracing::info!(agent = self.agents.ids[agent], %peer, status = answer.status, "REGISTER");
        } else if let Some(r) = &answer.refusal {
            self.log_refusal(r, "SIP auth");
        } else if answer.status != 401 {
            tracing::info!(%peer, status = answer.status, reason = answer.reason, "REGISTER refused");
        }
        self.uas.respond(
            &key,
            &req,
            answer.status,
            answer.reason,
            &answer.headers,
            now,
        );
        if let Some(agent) = answer.agent.filter(|_| answer.status == 200) {
            self.store_registrations(agent, now);
            self.phones_changed(agent, now);
        }
        if let Some(change) = answer.change {
            self.registration_changed(change, now);
        }
        self.schedule_phones();
    }

    /// Keeps the agent's registered phones in the store, so a restart finds them registered
    /// instead of waiting up to an hour for each phone's next refresh.
    fn store_registrations(&self, agent: usize, now: Instant) {
        let wall = jiff::Timestamp::now().as_second();
        let stored: Vec<StoredBinding> = self
            .agents
            .phones
            .registrar
            .bindings(agent)
            .into_iter()
            .filter(|b| b.link == Link::Udp)
            .map(|b| StoredBinding {
                uri: b.uri.clone(),
                source: b.source.to_string(),
                target: b.target.to_string(),
                expires_at: wall + b.expires.saturating_duration_since(now).as_secs() as i64,
            })
            .collect();
        let id = self.agents.ids[agent].clone();
        self.shared
            .saves
            .submit("registrations", move |s| s.set_registrations(&id, &stored));
    }

    /// At start: the phones registered before a restart, still within their expiry, are
    /// registered again, and their agents take calls at once.
    pub(super) fn load_registrations(&mut self, now: Instant) {
        let wall = jiff::Timestamp::now().as_second();
        let stored = match self.shared.store.lock() {
            Ok(store) => store.registrations(wall).map_err(|e| e.to_string()),
            Err(_) => Err("the store lock is poisoned".to_string()),
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => return tracing::error!("stored registrations could not be read: {e}"),
        };
        let mut restored = 0;
        for (id, b) in stored {
            let Some(agent) = self.agents.ids.iter().position(|a| *a == id) else {
                continue; // an agent no longer configured
            };
            let (Ok(source), Ok(target)) = (b.source.parse(), b.target.parse()) else {
                continue;
            };
            let left = Duration::from_secs(u64::try_from(b.expires_at - wall).unwrap_or(0));
            let binding = Binding {
                uri: b.uri,
                source,
                target,
                link: Link::Udp,
                expires: now + left,
                since: now,
            };
            restored += 1;
            if let Some(change) = self.agents.phones.registrar.restore(agent, binding) {
                self.registration_changed(change, now);
            }
        }
        if restored > 0 {
            tracing::info!(
                phones = restored,
                "registrations restored from before the restart"
            );
        }
        self.schedule_phones();
    }

    /// The agent an INVITE of theirs (a feature code) authenticates as, digest like a
    /// REGISTER (a 401 first); `None` when it was answered with a challenge or a refusal.
    pub(super) fn authenticate_agent(
        &mut self,
        key: &Key,
        req: &Message,
        peer: SocketAddr,
        now: Instant,
    ) -> Option<usize> {
        match self.agents.phones.registrar.authenticate(req, peer, now) {
            Ok(agent) => Some(agent),
            Err(answer) => {
                if let Some(r) = &answer.refusal {
                    self.log_refusal(r, "SIP auth");
                }
                self.uas
                    .respond(key, req, answer.status, answer.reason, &answer.headers, now);
                self.schedule_phones();
                None
            }
        }
    }

    /// The ready toggle code: the agent becomes available or not ready; the prompts that
    /// confirm which.
    pub(super) fn toggle_ready(&mut self, agent: usize, now: Instant) -> Vec<String> {
        let available =
            self.agents.router.agent_state(agent).map(|s| s.0) == Some(AgentState::Available);
        let state = if available {
            Requested::NotReady
        } else {
            Requested::Available
        };
        tracing::info!(
            agent = self.agents.ids[agent],
            ?state,
            "agent state set from the phone"
        );
        self.route(
            RouterEvent::SetState {
                agent,
                state,
                reason: None,
            },
            now,
        );
        let now_available =
            self.agents.router.agent_state(agent).map(|s| s.0) == Some(AgentState::Available);
        let prompt = if now_available {
            announce::AGENT_AVAILABLE
        } else {
            announce::AGENT_NOT_READY
        };
        let prompts = if self.shared.flows().prompts.get(prompt).is_some() {
            prompt
        } else {
            crate::media::player::BEEP
        };
        vec![prompts.to_string()]
    }

    /// One log line per refused credential, the same shape every time, for fail2ban; `what`
    /// says where it was given ("SIP auth", "desk login").
    fn log_refusal(&self, r: &Refusal, what: &str) {
        let metrics = &self.shared.metrics;
        if r.locked {
            tracing::warn!(user = ?r.user, source = %r.source, "{what} refused: locked out");
        } else {
            metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(user = ?r.user, source = %r.source, "{what} failed");
        }
        let sip = &self.shared.config.sip;
        for (now_locked, failures, lockout) in [
            (
                r.user_locked_now,
                sip.max_auth_failures_per_user,
                "lockout of the username: only its known phones get in",
            ),
            (r.locked_now, sip.max_auth_failures, "lockout"),
        ] {
            if now_locked {
                metrics.auth_lockouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    user = ?r.user,
                    source = %r.source,
                    failures,
                    window_s = sip.auth_failure_window_s,
                    "{what} {lockout}"
                );
            }
        }
    }

    fn registration_changed(&mut self, change: Change, now: Instant) {
        if let Change::Unregistered(agent) = change {
            tracing::info!(agent = self.agents.ids[agent], "agent phone unregistered");
        }
        let reach = self.agents.phones.registration(change, now);
        self.reach(reach, now);
    }

    /// The agent's phones changed (registered, gone, or answering OPTIONS or not).
    fn phones_changed(&mut self, agent: usize, now: Instant) {
        let reach = self.agents.phones.changed(agent, now);
        self.reach(reach, now);
    }

    /// The router is told when an agent has a phone to ring, or no longer has.
    fn reach(&mut self, reach: Option<Reach>, now: Instant) {
        match reach {
            Some(Reach::Gained(agent)) => self.route(RouterEvent::Registered { agent }, now),
            Some(Reach::Lost(agent)) => self.route(RouterEvent::Unregistered { agent }, now),
            None => {}
        }
        self.schedule_phones();
    }

    fn schedule_phones(&mut self) {
        let next = self.agents.phones.poll_timeout();
        if next.is_some() && next != self.agents.phones_timer {
            self.agents.phones_timer = next;
            if let Some(t) = next {
                self.schedule(t, TimerRef::Phones);
            }
        }
    }

    /// Registrations expire, challenges go unanswered, OPTIONS to the phones due are sent.
    pub(super) fn on_phones_timer(&mut self, now: Instant) {
        self.agents.phones_timer = None;
        let tick = self.agents.phones.tick(now);
        for agent in tick.expired {
            tracing::info!(agent = self.agents.ids[agent], "agent phone unregistered");
        }
        for u in tick.unanswered {
            tracing::warn!(
                user = ?u.user,
                source = %u.source,
                "a phone never answered its digest challenge (wrong realm or algorithm, or no password set?)"
            );
        }
        for p in tick.pings {
            self.switch.ping(&p.phone, &p.uri, p.link, p.target, now);
        }
        for reach in tick.reach {
            self.reach(Some(reach), now);
        }
        self.schedule_phones();
    }

    /// A phone answered its OPTIONS, or never did.
    pub(super) fn pong(&mut self, phone: &str, reached: bool, now: Instant) {
        let Some(a) = self.agents.phones.answered(phone, reached, now) else {
            return;
        };
        let id = self.agents.ids.get(a.agent).cloned().unwrap_or_default();
        if a.reachable {
            tracing::info!(agent = id, uri = a.uri, "agent phone answers again");
        } else {
            tracing::warn!(
                agent = id,
                uri = a.uri,
                "agent phone does not answer OPTIONS: unreachable, not rung until it answers"
            );
        }
        self.reach(a.reach, now);
    }

    fn schedule_router(&mut self) {
        let next = self.agents.router.poll_timeout();
        if next.is_some() && next != self.agents.router_timer {
            self.agents.router_timer = next;
            if let Some(t) = next {
                self.schedule(t, TimerRef::Router);
            }
        }
    }

    pub(super) fn on_router_timer(&mut self, now: Instant) {
        self.agents.router_timer = None;
        self.route(RouterEvent::Timer, now);
    }

    /// A reloaded config's agents and queues (already validated): matched by id and name,
    /// calls in progress undisturbed; a removed agent finishes its call, then is gone.
    pub(super) fn reconfigure(&mut self, config: &Config, now: Instant) {
        let (agents, queues, users) = routing_config(config);
        self.agents.recorded = recorded_queues(config);
        for a in &config.agents {
            let supervisor = a.role == Role::Supervisor;
            match self.agents.ids.iter().position(|id| *id == a.id) {
                Some(i) => {
                    self.agents.names[i] = a.name.clone();
                    self.agents.supervisors[i] = supervisor;
                }
                None => {
                    self.agents.ids.push(a.id.clone());
                    self.agents.names.push(a.name.clone());
                    self.agents.supervisors.push(supervisor);
                }
            }
        }
        self.agents.queue_ids.clear();
        for q in &config.queues {
            let i = match self.agents.queue_names.iter().position(|n| *n == q.name) {
                Some(i) => i,
                None => {
                    self.agents.queue_names.push(q.name.clone());
                    self.agents.queue_names.len() - 1
                }
            };
            self.agents
                .levels
                .set(i, Duration::from_secs(u64::from(q.service_level_s)));
            self.agents.queue_ids.insert(q.name.clone(), i);
        }
        for change in self.agents.phones.registrar.set_users(users) {
            self.registration_changed(change, now);
        }
        let actions = self.agents.router.reconfigure(&agents, &queues, now);
        self.carry_out(actions, now);
        self.publish_changes(now);
        tracing::info!(
            agents = config.agents.len(),
            queues = config.queues.len(),
            "agents and queues reloaded"
        );
    }

    /// Tells the router, and carries out what it decides.
    pub(super) fn route(&mut self, event: RouterEvent, now: Instant) {
        let actions = self.agents.router.handle(event, now);
        self.carry_out(actions, now);
        if !self.agents.passes.is_empty() {
            self.passes_settled(now);
        }
        self.publish_changes(now);
    }

    /// Sends the desk and the wall what the router changed: each changed agent's row at
    /// once, the queues' figures a moment later (many changes make one event).
    pub(super) fn publish_changes(&mut self, now: Instant) {
        let changes = self.agents.router.take_changes();
        for i in changes.agents {
            if let Some(row) = self.agent_row(i, now) {
                self.shared.events.publish(Event::Agent {
                    agent: Box::new(row),
                });
            }
        }
        if changes.queues && !self.agents.queues_due {
            self.agents.queues_due = true;
            self.schedule(now + QUEUES_EVENT_EVERY, TimerRef::Queues);
        }
    }

    /// The queues' figures for the wall, when their timer comes.
    pub(super) fn publish_queues(&mut self, now: Instant) {
        self.agents.queues_due = false;
        let queues = self.view().queue_rows(now);
        self.shared.events.publish(Event::Queues { queues });
        let calls = self.view().live_calls(now);
        self.shared.events.publish(Event::Calls { calls });
    }
}

/// The callers the signalling task holds, as the desk and the wall see them.
pub(super) struct Held<'a> {
    waiting: &'a HashMap<u64, Waiting>,
    uas: &'a crate::switch::uas::Uas,
}

impl Callers for Held<'_> {
    fn caller(&self, call: u64) -> Option<Caller<'_>> {
        let w = self.waiting.get(&call)?;
        Some(Caller {
            call_id: &w.call_id,
            queue: &w.queue,
            entered: w.entered,
            number: &w.context.caller,
            from: self.uas.invite(&w.call_id).and_then(|i| i.get("From")),
            path: &w.context.path,
            variables: &w.context.variables,
            callback: w.callback.is_some(),
            transferred_by: w.transferred_by.as_deref(),
            note: w.note.as_deref(),
        })
    }

    fn live(&self) -> Vec<u64> {
        self.waiting
            .iter()
            .filter(|(_, w)| w.callback.is_none())
            .map(|(&id, _)| id)
            .collect()
    }
}

impl Signalling {
    /// The agents and queues as the desk and the wall see them (`switch::status`).
    pub(super) fn view(&self) -> View<'_, Held<'_>> {
        View {
            router: &self.agents.router,
            registrar: &self.agents.phones.registrar,
            reachable: self.agents.phones.reachable(),
            ids: &self.agents.ids,
            names: &self.agents.names,
            queue_names: &self.agents.queue_names,
            queue_ids: &self.agents.queue_ids,
            levels: &self.agents.levels,
            callers: Held {
                waiting: &self.agents.waiting,
                uas: &self.uas,
            },
        }
    }

    /// Agent `i`'s row for the desk and the wall, with her consultation if she makes one.
    pub(super) fn agent_row(&self, i: usize, now: Instant) -> Option<AgentRow> {
        self.view()
            .agent_row(i, now, jiff::Timestamp::now(), self.consult_row(i))
    }

    fn carry_out(&mut self, actions: Vec<RouterAction>, now: Instant) {
        for a in actions {
            match a {
                RouterAction::Ring { call, agent, .. } => self.ring(call, agent, now),
                RouterAction::CancelRing {
                    call,
                    agent,
                    elsewhere,
                } => {
                    if self.agents.router.agent_state(agent).map(|s| s.0)
                        == Some(AgentState::NotReady)
                    {
                        tracing::info!(
                            agent = self.agents.ids[agent],
                            "the agent did not answer in time: set not-ready, the caller keeps their place"
                        );
                    }
                    tracing::info!(
                        agent = self.agents.ids[agent],
                        elsewhere,
                        "the ring stops: CANCEL"
                    );
                    self.switch
                        .cancel_ring(Ring { call, agent }, elsewhere, now)
                }
            }
        }
        self.schedule_router();
    }

    /// A caller entered a queue node.
    pub(super) fn enqueue(
        &mut self,
        id: u64,
        call_id: String,
        (queue, priority, record): (String, u32, Option<RecordMode>),
        first: Option<crate::engine::First>,
        context: CallerContext,
        now: Instant,
    ) {
        let Some(to_call) = self.running.get(&call_id).cloned() else {
            return; // the caller is already gone
        };
        let joining = crate::switch::queueing::join(
            &self.agents.router,
            &self.agents.queue_ids,
            &self.agents.ids,
            id,
            queue,
            priority,
            first.as_ref(),
            context.probe,
            now,
        );
        let (queue, event) = match joining {
            Joining::NoAgents => {
                let _ = to_call.send(CallInput::Heard(Heard::NoAgents));
                return;
            }
            Joining::Probe { queue } => {
                // A probe proves the caller got this far (the hold music); nobody is rung for it.
                tracing::info!(queue, "a probe call waits: no agent is offered it");
                return;
            }
            Joining::Join {
                queue,
                event,
                owner_gone,
            } => {
                if let Some(owner) = owner_gone {
                    tracing::info!(
                        owner,
                        "the follow-up's owner is no agent any more: its queue takes the caller"
                    );
                }
                (queue, event)
            }
        };
        self.agents.waiting.insert(
            id,
            Waiting {
                call_id,
                queue,
                priority,
                to_call: Some(to_call),
                context,
                entered: now,
                connected: None,
                transferred_by: None,
                note: None,
                record,
                callback: None,
            },
        );
        self.route(event, now);
    }

    /// The caller left the queue (its wait ran out) or the call ended: stop ringing for it,
    /// or hang up its agent.
    pub(super) fn leave(&mut self, id: u64, now: Instant) {
        self.end_transfer(id, now);
        if self
            .agents
            .waiting
            .get(&id)
            .is_some_and(|w| w.callback.is_some())
        {
            // The caller has gone; their place is a callback now, to be rung for.
            return self.route(RouterEvent::Release { call: id }, now);
        }
        let Some(w) = self.agents.waiting.remove(&id) else {
            return;
        };
        match w.connected {
            Some(leg) => {
                self.hang_up_leg(&leg, now);
                self.route(RouterEvent::Ended { call: id }, now);
            }
            None => {
                self.served(&w.queue, false, now);
                self.route(RouterEvent::Abandon { call: id }, now)
            }
        }
    }

    /// Counts a caller leaving a queue for the service level.
    pub(super) fn served(&mut self, queue: &str, in_time: bool, now: Instant) {
        if let Some(&q) = self.agents.queue_ids.get(queue) {
            self.agents.levels.served(q, in_time, now);
        }
    }

    /// Rings the agent: an INVITE to each of their registered contacts at once (a desk phone
    /// and a softphone ring together); the first to answer takes the call, the others are
    /// cancelled.
    fn ring(&mut self, call: u64, agent: usize, now: Instant) {
        let bindings: Vec<Binding> = self.agents.phones.ringable(agent);
        let held = Held {
            waiting: &self.agents.waiting,
            uas: &self.uas,
        };
        let Some(caller) = held.caller(call) else {
            tracing::warn!(agent, call, "cannot ring the agent: the caller is gone");
            return self.route(RouterEvent::Declined { call, agent }, now);
        };
        let caller_call = caller.call_id.to_string();
        let callback_attempt = self
            .agents
            .waiting
            .get(&call)
            .and_then(|w| w.callback.as_ref())
            .map(|cb| cb.attempts + 1);
        // Called by a colleague about the caller: his phone shows her.
        let colleague = self
            .agents
            .passes
            .get(&call)
            .filter(|p| p.to == agent && p.consult.is_some())
            .map(|p| p.by.agent);
        let dial = Ringing {
            caller: &caller,
            callback_attempt,
            colleague: colleague
                .map(|by| (self.agents.names[by].as_str(), self.agents.ids[by].as_str())),
            agent: &self.agents.ids[agent],
            domain: &self.shared.config.sip.domain,
        }
        .dial(now);
        let mut phones = Vec::new();
        let mut sockets = Vec::new();
        let mut gone = Vec::new();
        for b in bindings {
            if !self.transport.is_open(b.link) {
                gone.push(b.link);
                // Its connection closed: the phone cannot be reached until it registers
                // again, and waiting for a ring that never happens would keep the caller.
                tracing::info!(
                    agent = self.agents.ids[agent],
                    contact = b.uri,
                    "not rung: the phone's {} connection is gone",
                    b.link.name()
                );
                continue;
            }
            let Some(socket) = self.shared.ports.open() else {
                break;
            };
            tracing::info!(
                agent = self.agents.ids[agent],
                contact = b.uri,
                caller_call,
                "ringing the agent"
            );
            let media = self.next_call;
            self.next_call += 1;
            phones.push(Phone {
                uri: b.uri.clone(),
                link: b.link,
                peer: b.target,
                rtp_port: socket.local_addr().map(|a| a.port()).unwrap_or(0),
                media,
                srtp: self.agent_srtp(b.link),
            });
            sockets.push(socket);
        }
        let placed = phones.len();
        let ring = Ring { call, agent };
        let legs = self.switch.ring(ring, phones.clone(), &dial, now);
        for ((leg, phone), socket) in legs.into_iter().zip(phones).zip(sockets) {
            let user = Leg {
                call,
                agent,
                kind: LegKind::Agent,
                socket,
                media: phone.media,
                peer: phone.peer,
            };
            self.agents.legs.insert(leg, user);
        }
        if placed == 0 {
            tracing::warn!(agent, call, "cannot ring the agent (no contact or port)");
            self.route(RouterEvent::Declined { call, agent }, now);
        }
        for link in gone {
            if let Some(change) = self.agents.phones.registrar.drop_link(agent, link) {
                self.registration_changed(change, now);
            }
        }
    }

    /// A leg's media id and RTP port, on the socket opened for it.
    pub(super) fn media_for(&mut self, dial: &mut Dial, socket: &UdpSocket) -> u64 {
        dial.rtp_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        dial.media = self.next_call;
        self.next_call += 1;
        dial.media
    }

    /// What our offer to an agent's phone says about SRTP (`[rtp] srtp`): required in
    /// `agents` and `all`; otherwise offered to a phone reached over TLS only, so the key
    /// never crosses the network in the clear.
    fn agent_srtp(&self, link: Link) -> sdp::OfferSrtp {
        use crate::config::SrtpMode;
        match self.shared.config.rtp.srtp {
            SrtpMode::Agents | SrtpMode::All => sdp::OfferSrtp::Required(super::srtp_key()),
            SrtpMode::Optional if matches!(link, Link::Tls(_)) => {
                sdp::OfferSrtp::BestEffort(super::srtp_key())
            }
            SrtpMode::Optional => sdp::OfferSrtp::No,
        }
    }

    /// What happened to one of our legs, for its user: an agent's ring, a callback's call to
    /// the caller, or a transfer.
    pub(super) fn on_leg_event(&mut self, event: LegEvent, now: Instant) {
        let id = event.leg().unwrap_or_default().to_string();
        let user = self.agents.legs.get(&id).map(|l| (l.call, l.agent, l.kind));
        match (event, user) {
            (LegEvent::Closed { media, up, .. }, _) => {
                if up {
                    let _ = self.shared.pacer.send(PacerCommand::Remove { id: media });
                }
                self.forget_leg(&id);
            }
            (
                LegEvent::Media {
                    media,
                    remote,
                    direction,
                    srtp,
                    ..
                },
                _,
            ) => {
                // The caller held by their agent hears their queue's hold music.
                let queue = user
                    .and_then(|u| self.agents.waiting.get(&u.0))
                    .map(|w| w.queue.as_str());
                crate::server::call::sending(&self.shared, media, remote, direction, queue);
                crate::server::call::rekey(&self.shared, media, srtp);
            }
            (LegEvent::AgentAnswered { ring, agreed, .. }, _) => {
                self.agent_answered(&id, ring.call, ring.agent, agreed, now)
            }
            (LegEvent::AgentDeclined { ring, code }, _) => {
                let agent = self.agents.ids.get(ring.agent).cloned().unwrap_or_default();
                tracing::info!(
                    agent,
                    ?code,
                    "the agent's phone declined or was not reached"
                );
                self.route(
                    RouterEvent::Declined {
                        call: ring.call,
                        agent: ring.agent,
                    },
                    now,
                );
            }
            (LegEvent::TransferAnswered { call, agreed, .. }, _) => {
                self.transfer_answered(&id, call, agreed, now)
            }
            (LegEvent::TransferFailed { call, why }, _) => {
                tracing::info!(?why, "the transfer did not connect");
                let code = match why {
                    crate::switch::TransferFailure::Refused(code) => code,
                    _ => 480,
                };
                self.transfer_failed(call, code, now);
            }
            (
                LegEvent::CallbackAnswered {
                    id: call,
                    agreed,
                    attempts,
                    ..
                },
                _,
            ) => self.caller_answered(&id, call, agreed, attempts),
            (
                LegEvent::CallbackLater {
                    id: call,
                    attempts,
                    why,
                    ..
                },
                _,
            ) => self.caller_unreached(call, attempts, why, false, now),
            (
                LegEvent::CallbackFailed {
                    id: call,
                    attempts,
                    why,
                },
                _,
            ) => self.caller_unreached(call, attempts, why, true, now),
            (LegEvent::CallbackDue { id: call }, _) => self.retry_callback(call, now),
            (LegEvent::Registration { trunk, state }, _) => self.trunk_registration(&trunk, &state),
            (LegEvent::Pong { phone, reached }, _) => self.pong(&phone, reached, now),
            // A leg with a user above (a ring, a transfer, a callback) gets its user's event
            // instead; any other answered leg has nobody to talk to.
            (LegEvent::Answered { .. }, _) => self.switch.hang_up(&id, now),
            (LegEvent::Refused { .. } | LegEvent::Unreached { .. }, _) => {}
            (LegEvent::HungUp { .. }, Some(_)) => self.leg_hung_up(&id, now),
            (LegEvent::Referred { to, replaces, .. }, _) => {
                self.referred(&id, &to, replaces.as_ref(), now)
            }
            (LegEvent::HungUp { .. }, None) => {}
        }
    }

    fn agent_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agent: usize,
        agreed: sdp::Agreed,
        now: Instant,
    ) {
        let passed = self.agents.router.passing_to(call) == Some(agent);
        if passed && self.agents.router.pass_kind(call) == Some(crate::routing::PassKind::Consult) {
            return self.consult_answered(leg_id, call, agent, agreed, now);
        }
        self.route(RouterEvent::Answered { call, agent }, now);
        let mine = self.agents.router.connected_agent(call) == Some(agent);
        let (Some(w), true, true) = (
            self.agents.waiting.get_mut(&call),
            self.agents.legs.contains_key(leg_id),
            mine,
        ) else {
            // The caller left, or another agent took the call first.
            return self.hang_up_leg(leg_id, now);
        };
        w.connected = Some(leg_id.to_string());
        if w.callback.is_some() {
            return self.callback_agent_answered(leg_id, call, agent, agreed, now);
        }
        let waited = now.saturating_duration_since(w.entered);
        let in_time = self
            .agents
            .queue_ids
            .get(&w.queue)
            .is_none_or(|&q| self.agents.levels.in_time(q, waited));
        let queue = w.queue.clone();
        if !passed {
            // Passed on by another agent: the caller was served when first answered.
            self.served(&queue, in_time, now);
        }
        let (Some(w), Some(leg)) = (
            self.agents.waiting.get(&call),
            self.agents.legs.get_mut(leg_id),
        ) else {
            return;
        };
        tracing::info!(
            agent = self.agents.ids[agent],
            caller_call = w.call_id,
            waited_ms = now.saturating_duration_since(w.entered).as_millis() as u64,
            "agent answered: bridging"
        );
        add_leg_media(
            &self.shared,
            leg,
            &agreed,
            w.to_call.clone().unwrap_or_else(no_one_listens),
        );
        let _ = self.shared.pacer.send(PacerCommand::Bridge {
            a: call,
            b: leg.media,
        });
        if let Some(to_call) = &w.to_call {
            let _ = to_call.send(CallInput::Heard(Heard::AgentAnswered {
                agent: self.agents.ids[agent].clone(),
                record: w
                    .record
                    .unwrap_or_else(|| self.agents.record_mode(&w.queue)),
            }));
        }
    }
    /// BYE to an answered leg (the caller hung up, or left); the leg is forgotten.
    pub(super) fn hang_up_leg(&mut self, leg_id: &str, now: Instant) {
        self.switch.hang_up(leg_id, now);
    }

    /// Forgets a leg's user record; returns whom it was for.
    fn forget_leg(&mut self, leg_id: &str) -> Option<(u64, LegKind)> {
        let leg = self.agents.legs.remove(leg_id)?;
        Some((leg.call, leg.kind))
    }

    /// The far end of a leg hung up: an agent's BYE ends the caller's call too.
    fn leg_hung_up(&mut self, leg_id: &str, now: Instant) {
        let Some((call, kind)) = self.forget_leg(leg_id) else {
            return;
        };
        if kind == LegKind::Transfer {
            return self.transfer_hung_up(call, now);
        }
        if let Some(by) = self
            .agents
            .transfers
            .get_mut(&call)
            .and_then(|t| t.by.as_mut())
            .map(|by| &mut by.passer)
            .filter(|by| by.leg == leg_id)
        {
            // She hung up while the number she passed the caller on to rings: the caller is
            // theirs or, if nobody answers, first in line again.
            by.gone = true;
            return;
        }
        if self.consult_leg_hung_up(call, leg_id, now) {
            return;
        }
        if let Some(pass) = self.agents.passes.get_mut(&call)
            && pass.by.leg == leg_id
            && pass.consult.is_none()
        {
            // She hung up while her colleague rings: the caller is his or, if he does not
            // answer, first in line again.
            pass.by.gone = true;
            return;
        }
        if kind == LegKind::Agent
            && self
                .agents
                .waiting
                .get(&call)
                .is_some_and(|w| w.connected.as_deref() != Some(leg_id))
        {
            // An agent who passed the caller on hangs up: the caller is elsewhere now.
            return;
        }
        if self
            .agents
            .waiting
            .get(&call)
            .is_some_and(|w| w.callback.is_some())
        {
            return self.callback_leg_hung_up(call, now);
        }
        if let Some(w) = self.agents.waiting.remove(&call)
            && let Some(to_call) = &w.to_call
        {
            let _ = to_call.send(CallInput::AgentHungUp);
        }
        self.route(RouterEvent::Ended { call }, now);
    }

    /// Answers the HTTP API.
    pub(super) fn api(&mut self, q: ApiQuery, now: Instant) {
        match q {
            ApiQuery::Agents(reply) => {
                let listed: Vec<usize> = self.view().listed_agents().collect();
                let rows = listed
                    .into_iter()
                    .filter_map(|i| self.agent_row(i, now))
                    .collect();
                let _ = reply.send(rows);
            }
            ApiQuery::SetState {
                agent,
                state,
                reason,
                reply,
            } => {
                let Some(i) = self
                    .agents
                    .ids
                    .iter()
                    .position(|a| *a == agent)
                    .filter(|&i| !self.agents.router.is_retired(i))
                else {
                    let _ = reply.send(StateReply::NoSuchAgent);
                    return;
                };
                if state == Requested::Available && !self.agents.phones.is_reachable(i) {
                    tracing::info!(agent, "agent state refused: available with no phone");
                    if let Some(row) = self.agent_row(i, now) {
                        let _ = reply.send(StateReply::NoPhone(row));
                    }
                    return;
                }
                tracing::info!(agent, ?state, ?reason, "agent state set through the API");
                self.route(
                    RouterEvent::SetState {
                        agent: i,
                        state,
                        reason,
                    },
                    now,
                );
                if let Some(row) = self.agent_row(i, now) {
                    let _ = reply.send(StateReply::Done(row));
                }
            }
            ApiQuery::Queues(reply) => {
                let _ = reply.send(self.view().queue_rows(now));
            }
            ApiQuery::LiveCalls(reply) => {
                let _ = reply.send(self.view().live_calls(now));
            }
            ApiQuery::CallBackNow {
                agent,
                caller,
                queue,
                call_id,
                reply,
            } => {
                let _ = reply.send(self.call_back_now(&agent, caller, &queue, call_id, now));
            }
            ApiQuery::Consult { agent, to, reply } => {
                let _ = reply.send(
                    self.desk_consult(&agent, &to, now)
                        .map_err(|e| (e.code, e.why)),
                );
            }
            ApiQuery::ConsultEnd {
                agent,
                complete,
                reply,
            } => {
                let done = self.desk_consult_end(&agent, complete, now);
                let _ = reply.send(done.map_err(|e| (e.code, e.why)));
            }
            ApiQuery::Transfer {
                agent,
                to,
                note,
                reply,
            } => {
                let done = match self.desk_transfer(&agent, &to, note, now) {
                    Ok(super::refers::Passed::Queue(q)) => Ok(format!("queue:{q}")),
                    Ok(super::refers::Passed::Ringing(a)) => Ok(format!("agent:{a}")),
                    Ok(super::refers::Passed::Dialling(number)) => Ok(number),
                    Err(e) => Err((e.code, e.why)),
                };
                let _ = reply.send(done);
            }
            ApiQuery::Recording { agent, want, reply } => {
                let a = self.agents.ids.iter().position(|id| *id == agent);
                let to_call = a
                    .and_then(|a| {
                        let call = self.agents.router.agent_state(a)?.2?;
                        (self.agents.router.connected_agent(call) == Some(a)).then_some(call)
                    })
                    .and_then(|call| self.agents.waiting.get(&call))
                    .and_then(|w| w.to_call.clone());
                match to_call {
                    Some(to_call) => {
                        let _ = to_call.send(CallInput::Recording { want, reply });
                    }
                    None => {
                        let _ = reply.send(Err("you are not talking to a caller".into()));
                    }
                }
            }
            ApiQuery::Login {
                user,
                password,
                source,
                reply,
            } => {
                let answer = match self
                    .agents
                    .phones
                    .registrar
                    .login(&user, &password, source, now)
                {
                    Ok(i) => Ok(LoggedIn {
                        id: self.agents.ids[i].clone(),
                        name: self.agents.names[i].clone(),
                        supervisor: self.agents.supervisors[i],
                    }),
                    Err(r) => {
                        self.log_refusal(&r, "desk login");
                        Err(if r.locked {
                            LoginRefused::LockedOut
                        } else {
                            LoginRefused::Wrong
                        })
                    }
                };
                let _ = reply.send(answer);
            }
            ApiQuery::Gauges(reply) => {
                let view = self.view();
                let _ = reply.send(Gauges {
                    active_calls: self.uas.len(),
                    sip_dropped: self.transport.dropped(),
                    sip_banned_messages: self.transport.gate().dropped.load(Ordering::Relaxed),
                    sip_bans: self.transport.gate().bans.load(Ordering::Relaxed),
                    sip_banned_addresses: self.transport.gate().banned(),
                    agents: view.agents_by_state(),
                    queues: view.queue_rows(now),
                    trunks: self.trunk_rows(),
                });
            }
            ApiQuery::Trunks(reply) => {
                let _ = reply.send(self.trunk_rows());
            }
        }
    }
}

/// Hands an answered leg's media to the media loop (keys on it are not listened for).
pub(super) fn add_leg_media(
    shared: &crate::server::Shared,
    leg: &Leg,
    agreed: &sdp::Agreed,
    notify: crate::server::call_inputs::CallTx,
) {
    let keys = if leg.kind == LegKind::Agent {
        crate::server::pacer::Keys::Agent
    } else {
        crate::server::pacer::Keys::None
    };
    let _ = shared.pacer.send(PacerCommand::Add {
        id: leg.media,
        socket: Arc::clone(&leg.socket),
        remote: SocketAddr::new(agreed.remote.0, agreed.remote.1),
        sip_host: leg.peer.ip(),
        law: agreed.law,
        telephone_event: agreed.telephone_event,
        ssrc: random() as u32,
        sequence: random() as u16,
        timestamp: random() as u32,
        notify,
        keys,
        srtp: agreed.srtp,
    });
}

/// The media loop's notifications for a leg no call task follows (a callback's legs).
pub(super) fn no_one_listens() -> crate::server::call_inputs::CallTx {
    crate::server::call_inputs::channel().0
}

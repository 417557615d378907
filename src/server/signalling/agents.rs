//! Agent phones, inside the signalling task: their registrations (digest-authenticated), the
//! routing core deciding who takes which caller, and the legs we place to agents — an INVITE
//! to the agent's registered contact carrying the caller's context, CANCEL when the ring
//! stops, ACK and BYE — bridged to the caller in the media loop once answered.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{CallerContext, Signalling, TimerRef, random, tag};
use crate::api::caller::{CallerCard, LIVE_CALLS_SHOWN, LiveCall, Variable};
use crate::api::events::Event;
use crate::api::{
    AgentCounts, AgentRow, ApiQuery, Gauges, LoggedIn, LoginRefused, NextState, QueueRow,
    StateReply,
};
use crate::config::{Config, Role};
use crate::engine::announce;
use crate::media::g711::Law;
use crate::routing::estimate;
use crate::routing::{
    AgentConfig, AgentState, QueueConfig, Requested, Router, RouterAction, RouterEvent, Strategy,
};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::dialog::{ALLOW, Dialog};
use crate::sip::registrar::{Algorithm, Binding, Change, Lockout, Refusal, Registrar, User};
use crate::sip::sdp;
use crate::sip::transaction::{self, Key};
use crate::sip::transport::Link;
use crate::sip::wire::{self, Header, Message, Start};
use crate::store::StoredBinding;

/// A caller in a queue, or connected to an agent through it; or a callback keeping a caller's
/// place.
pub(super) struct Waiting {
    pub(super) call_id: String,
    pub(super) queue: String,
    pub(super) priority: u32,
    /// The caller's call task; none for a callback (the caller has hung up).
    pub(super) to_call: Option<mpsc::UnboundedSender<CallInput>>,
    pub(super) context: CallerContext,
    pub(super) entered: Instant,
    /// The answered agent leg (its Call-ID).
    pub(super) connected: Option<String>,
    pub(super) callback: Option<super::callbacks::Callback>,
}

pub(super) enum LegState {
    Ringing,
    /// We sent CANCEL; the final answer only needs acknowledging.
    Cancelled,
    Up {
        dialog: Dialog,
        ack: Arc<[u8]>,
    },
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

/// A call we place: to an agent's phone, to a caller (for a callback), or to a transfer target.
pub(super) struct Leg {
    pub(super) call: u64,
    /// The agent it rings, or who waits on it for a callback (unused for a transfer).
    pub(super) agent: usize,
    pub(super) kind: LegKind,
    pub(super) invite: Message,
    pub(super) link: Link,
    pub(super) peer: SocketAddr,
    pub(super) state: LegState,
    pub(super) socket: Arc<UdpSocket>,
    /// The leg's id in the media loop.
    pub(super) media: u64,
    /// The codec it runs on once answered; a re-INVITE from the far end keeps it.
    pub(super) law: Option<Law>,
    /// Our SDP's version, raised with each answer to a re-INVITE.
    pub(super) sdp_version: u64,
    /// The far end's last re-INVITE, whose 2xx its ACK confirms.
    pub(super) reinvite: Option<Key>,
    /// Its SRTP keys once answered, if its audio is encrypted.
    pub(super) srtp: Option<sdp::Sdes>,
}

pub(super) struct Agents {
    pub router: Router,
    pub registrar: Registrar,
    pub ids: Vec<String>,
    pub names: Vec<String>,
    /// Whether each agent is a supervisor (`role = "supervisor"`): opens the wall.
    pub supervisors: Vec<bool>,
    pub queue_ids: HashMap<String, usize>,
    pub queue_names: Vec<String>,
    pub waiting: HashMap<u64, Waiting>,
    /// Callers being transferred (or bridged to a transfer target), by call.
    pub transfers: HashMap<u64, super::transfers::Transfer>,
    pub legs: HashMap<String, Leg>,
    /// Callbacks held unrung while their caller (by Call-ID) still hears the confirmation.
    pub held_callbacks: HashMap<String, u64>,
    /// The legs ringing (or answered by) an agent's phones for a call: one per registered
    /// contact.
    leg_of: HashMap<(u64, usize), Vec<String>>,
    router_timer: Option<Instant>,
    registrar_timer: Option<Instant>,
    /// Per queue, the callers who left it in the last hour: when, and whether an agent
    /// answered within `SERVICE_LEVEL_S`.
    served: Vec<VecDeque<(Instant, bool)>>,
    /// A queues event is scheduled.
    queues_due: bool,
    /// Per queue, the wait within which an answer counts for the service level.
    service_levels: Vec<Duration>,
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
            strategy: Strategy::parse(&q.strategy).unwrap_or(Strategy::LongestIdle),
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

/// The service-level threshold: answered within 20 s.
const SERVICE_WINDOW: Duration = Duration::from_secs(3600);

impl Agents {
    pub fn new(config: &Config, now: Instant) -> Agents {
        let (agents, queues, users) = routing_config(config);
        let mut secret = [0u8; 16];
        secret[..8].copy_from_slice(&random().to_be_bytes());
        secret[8..].copy_from_slice(&random().to_be_bytes());
        Agents {
            router: Router::new(&agents, &queues, config.routing.ready_on_register, now),
            registrar: Registrar::new(
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
            }),
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
            legs: HashMap::new(),
            held_callbacks: HashMap::new(),
            leg_of: HashMap::new(),
            router_timer: None,
            registrar_timer: None,
            served: vec![VecDeque::new(); config.queues.len()],
            service_levels: config
                .queues
                .iter()
                .map(|q| Duration::from_secs(u64::from(q.service_level_s)))
                .collect(),
            queues_due: false,
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
        let answer = self.agents.registrar.register(&req, peer, link, now);
        if let Some(agent) = answer.agent {
            tracing::info!(agent = self.agents.ids[agent], %peer, status = answer.status, "REGISTER");
        } else if let Some(r) = &answer.refusal {
            self.log_refusal(r, "SIP auth");
        } else if answer.status != 401 {
            tracing::info!(%peer, status = answer.status, reason = answer.reason, "REGISTER refused");
        }
        self.respond(
            &key,
            &req,
            answer.status,
            answer.reason,
            None,
            &answer.headers,
            Vec::new(),
            now,
        );
        if let Some(agent) = answer.agent.filter(|_| answer.status == 200) {
            self.store_registrations(agent, now);
        }
        if let Some(change) = answer.change {
            self.registration_changed(change, now);
        }
        self.schedule_registrar();
    }

    /// Keeps the agent's registered phones in the store, so a restart finds them registered
    /// instead of waiting up to an hour for each phone's next refresh.
    fn store_registrations(&self, agent: usize, now: Instant) {
        let wall = jiff::Timestamp::now().as_second();
        let stored: Vec<StoredBinding> = self
            .agents
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
            if let Some(change) = self.agents.registrar.restore(agent, binding) {
                self.registration_changed(change, now);
            }
        }
        if restored > 0 {
            tracing::info!(
                phones = restored,
                "registrations restored from before the restart"
            );
        }
        self.schedule_registrar();
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
        match self.agents.registrar.authenticate(req, peer, now) {
            Ok(agent) => Some(agent),
            Err(answer) => {
                if let Some(r) = &answer.refusal {
                    self.log_refusal(r, "SIP auth");
                }
                self.respond(
                    key,
                    req,
                    answer.status,
                    answer.reason,
                    None,
                    &answer.headers,
                    Vec::new(),
                    now,
                );
                self.schedule_registrar();
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
        let event = match change {
            Change::Registered(agent) => RouterEvent::Registered { agent },
            Change::Unregistered(agent) => {
                tracing::info!(agent = self.agents.ids[agent], "agent phone unregistered");
                RouterEvent::Unregistered { agent }
            }
        };
        self.route(event, now);
    }

    fn schedule_registrar(&mut self) {
        let next = self.agents.registrar.poll_timeout();
        if next.is_some() && next != self.agents.registrar_timer {
            self.agents.registrar_timer = next;
            if let Some(t) = next {
                self.schedule(t, TimerRef::Registrar);
            }
        }
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

    pub(super) fn on_registrar_timer(&mut self, now: Instant) {
        self.agents.registrar_timer = None;
        for change in self.agents.registrar.expire(now) {
            self.registration_changed(change, now);
        }
        for u in self.agents.registrar.unanswered(now) {
            tracing::warn!(
                user = ?u.user,
                source = %u.source,
                "a phone never answered its digest challenge (wrong realm or algorithm, or no password set?)"
            );
        }
        self.schedule_registrar();
    }

    pub(super) fn on_router_timer(&mut self, now: Instant) {
        self.agents.router_timer = None;
        self.route(RouterEvent::Timer, now);
    }

    /// A reloaded config's agents and queues (already validated): matched by id and name,
    /// calls in progress undisturbed; a removed agent finishes its call, then is gone.
    pub(super) fn reconfigure(&mut self, config: &Config, now: Instant) {
        let (agents, queues, users) = routing_config(config);
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
                    self.agents.served.push(VecDeque::new());
                    self.agents.service_levels.push(Duration::ZERO);
                    self.agents.queue_names.len() - 1
                }
            };
            self.agents.service_levels[i] = Duration::from_secs(u64::from(q.service_level_s));
            self.agents.queue_ids.insert(q.name.clone(), i);
        }
        for change in self.agents.registrar.set_users(users) {
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
        let queues = self.queue_rows(now);
        self.shared.events.publish(Event::Queues { queues });
        let calls = self.live_calls(now);
        self.shared.events.publish(Event::Calls { calls });
    }

    /// The callers in a queue or with an agent, longest waiting first (at most
    /// `LIVE_CALLS_SHOWN`).
    fn live_calls(&self, now: Instant) -> Vec<LiveCall> {
        let mut waiting: Vec<(&u64, &Waiting)> = self
            .agents
            .waiting
            .iter()
            .filter(|(_, w)| w.callback.is_none())
            .collect();
        waiting.sort_by_key(|(_, w)| w.entered);
        waiting
            .into_iter()
            .take(LIVE_CALLS_SHOWN)
            .filter_map(|(&id, w)| {
                let card = self.caller_card(id, now)?;
                let router = &self.agents.router;
                let agent = router.connected_agent(id);
                let state = if agent.is_some() {
                    "talking"
                } else if router.is_waiting(id) {
                    "waiting"
                } else {
                    "ringing"
                };
                Some(LiveCall {
                    call: w.call_id.clone(),
                    name: card.name,
                    number: card.number,
                    queue: card.queue,
                    state,
                    agent: agent.and_then(|a| self.agents.names.get(a).cloned()),
                    waited_s: card.waited_s,
                    steps: card.steps,
                })
            })
            .collect()
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
                    self.cancel_ring(call, agent, elsewhere, now)
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
        queue: String,
        priority: u32,
        context: CallerContext,
        now: Instant,
    ) {
        let to_call = match self.calls.get(&call_id).map(|c| &c.phase) {
            Some(super::Phase::Answered { to_call }) => to_call.clone(),
            _ => return, // the caller is already gone
        };
        let staffed = self
            .agents
            .queue_ids
            .get(&queue)
            .and_then(|&q| self.agents.router.queue_figures(q, now))
            .is_some_and(|f| f.staffed > 0);
        let Some(&q) = self.agents.queue_ids.get(&queue).filter(|_| staffed) else {
            let _ = to_call.send(CallInput::NoAgents);
            return;
        };
        if context.probe {
            // A probe proves the caller got this far (the hold music); nobody is rung for it.
            tracing::info!(queue, "a probe call waits: no agent is offered it");
            return;
        }
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
                callback: None,
            },
        );
        self.route(
            RouterEvent::Enqueue {
                call: id,
                queue: q,
                priority,
            },
            now,
        );
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
        let Some(&q) = self.agents.queue_ids.get(queue) else {
            return;
        };
        let list = &mut self.agents.served[q];
        while list
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > SERVICE_WINDOW)
        {
            list.pop_front();
        }
        list.push_back((now, in_time));
    }

    /// Rings the agent: an INVITE to each of their registered contacts at once (a desk phone
    /// and a softphone ring together); the first to answer takes the call, the others are
    /// cancelled.
    fn ring(&mut self, call: u64, agent: usize, now: Instant) {
        let bindings: Vec<Binding> = self
            .agents
            .registrar
            .bindings(agent)
            .into_iter()
            .cloned()
            .collect();
        let Some(w) = self.agents.waiting.get(&call) else {
            tracing::warn!(agent, call, "cannot ring the agent: the caller is gone");
            return self.route(RouterEvent::Declined { call, agent }, now);
        };
        let caller_call = w.call_id.clone();
        // The phone shows who calls: the caller's own From (a callback's caller has no call
        // left, so their stored URI).
        let from = self
            .calls
            .get(&caller_call)
            .and_then(|c| c.invite_request.get("From"));
        let (display, caller_uri) = crate::sip::dialog::caller_identity(from, &w.context.caller);
        let context = context_headers(w, now);
        let domain = self.shared.config.sip.domain.clone();
        let mut placed = 0;
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
            let (leg_id, offer) = self.leg_offer(&socket, self.agent_srtp(b.link));
            let mut headers = vec![
                header("Via", &self.via(b.link)),
                header("Max-Forwards", "70"),
                header(
                    "From",
                    &format!("\"{display}\" <{caller_uri}>;tag={}", tag()),
                ),
                header(
                    "P-Asserted-Identity",
                    &format!("\"{display}\" <{caller_uri}>"),
                ),
                header("To", &format!("<sip:{}@{domain}>", self.agents.ids[agent])),
                header("Call-ID", &leg_id),
                header("CSeq", "1 INVITE"),
                header("Contact", &self.contact(b.link)),
                header("Allow", ALLOW),
                header("User-Agent", "hotline"),
            ];
            headers.extend(context.iter().cloned());
            headers.push(header("Content-Type", "application/sdp"));
            let invite = Message {
                start: Start::Request {
                    method: "INVITE".into(),
                    uri: b.uri.clone(),
                },
                headers,
                body: offer.into_bytes(),
            };
            tracing::info!(
                agent = self.agents.ids[agent],
                contact = b.uri,
                caller_call,
                "ringing the agent"
            );
            self.send_request(&invite, b.link, b.target, Some(leg_id.clone()), now);
            let media = self.next_call;
            self.next_call += 1;
            self.agents
                .leg_of
                .entry((call, agent))
                .or_default()
                .push(leg_id.clone());
            self.agents.legs.insert(
                leg_id,
                Leg {
                    call,
                    agent,
                    kind: LegKind::Agent,
                    invite,
                    link: b.link,
                    peer: b.target,
                    state: LegState::Ringing,
                    socket,
                    media,
                    law: None,
                    srtp: None,
                    sdp_version: 1,
                    reinvite: None,
                },
            );
            placed += 1;
        }
        if placed == 0 {
            tracing::warn!(agent, call, "cannot ring the agent (no contact or port)");
            self.route(RouterEvent::Declined { call, agent }, now);
        }
        for link in gone {
            if let Some(change) = self.agents.registrar.drop_link(agent, link) {
                self.registration_changed(change, now);
            }
        }
    }

    /// A new leg's Call-ID, and our SDP offer for its media socket.
    pub(super) fn leg_offer(&self, socket: &UdpSocket, srtp: sdp::OfferSrtp) -> (String, String) {
        let leg_id = format!("{:016x}{:08x}@hotline", random(), random() as u32);
        let rtp_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let offer = sdp::describe(
            random() & 0xFFFF_FFFF,
            1,
            self.shared.media_ip,
            rtp_port,
            None,
            srtp,
        );
        (leg_id, offer)
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

    /// Whether another of the agent's phones still rings for this call.
    fn still_ringing(&self, call: u64, agent: usize) -> bool {
        self.agents.leg_of.get(&(call, agent)).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.agents
                    .legs
                    .get(id)
                    .is_some_and(|l| matches!(l.state, LegState::Ringing))
            })
        })
    }

    /// Stops a ring: CANCEL for the INVITE (RFC 3261 §9.1).
    fn cancel_ring(&mut self, call: u64, agent: usize, elsewhere: bool, now: Instant) {
        let Some(legs) = self.agents.leg_of.get(&(call, agent)).cloned() else {
            return;
        };
        tracing::info!(
            agent = self.agents.ids[agent],
            elsewhere,
            "the ring stops: CANCEL"
        );
        for leg_id in legs {
            self.cancel_leg(&leg_id, elsewhere, now);
        }
    }

    /// One of the agent's phones answered: the others stop ringing.
    fn cancel_other_phones(&mut self, answered: &str, call: u64, agent: usize, now: Instant) {
        let others: Vec<String> = self
            .agents
            .leg_of
            .get(&(call, agent))
            .into_iter()
            .flatten()
            .filter(|id| *id != answered)
            .cloned()
            .collect();
        for leg_id in others {
            self.cancel_leg(&leg_id, true, now);
        }
    }

    /// CANCEL for a leg still ringing; its final answer then only needs acknowledging. When
    /// another phone answered, it says so (RFC 3326), and phones do not log a missed call.
    pub(super) fn cancel_leg(&mut self, leg_id: &str, elsewhere: bool, now: Instant) {
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        if !matches!(leg.state, LegState::Ringing) {
            return;
        }
        leg.state = LegState::Cancelled;
        let mut cancel = same_transaction(&leg.invite, "CANCEL", None);
        if elsewhere {
            cancel.headers.push(header(
                "Reason",
                "SIP;cause=200;text=\"Call completed elsewhere\"",
            ));
        }
        let (link, peer) = (leg.link, leg.peer);
        self.send_request(&cancel, link, peer, None, now);
    }

    /// The ACK for a failure answer to our INVITE (§17.1.1.3), built by its transaction.
    pub(super) fn failure_ack(&self, leg_id: &str, response: &Message) -> Vec<u8> {
        match self.agents.legs.get(leg_id) {
            Some(leg) => same_transaction(&leg.invite, "ACK", response.get("To")).to_bytes(),
            None => Vec::new(),
        }
    }

    /// An answer to one of our agent INVITEs.
    pub(super) fn on_leg_response(&mut self, leg_id: &str, resp: Message, now: Instant) {
        let Start::Response { code, .. } = resp.start else {
            return;
        };
        let via = self.via_for(leg_id);
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        let (call, agent) = (leg.call, leg.agent);
        match leg.kind {
            LegKind::CallbackCaller => {
                return self.on_caller_leg_response(leg_id, code, resp, via, now);
            }
            LegKind::Transfer => return self.on_transfer_response(leg_id, code, resp, via, now),
            LegKind::Agent => {}
        }
        match (code, &leg.state) {
            (100..=199, _) => {}
            (200..=299, LegState::Up { ack, .. }) => {
                // A retransmitted 2xx: our ACK was lost.
                let (link, peer, ack) = (leg.link, leg.peer, Arc::clone(ack));
                self.send(link, peer, ack);
            }
            (200..=299, _) => {
                let cancelled = matches!(leg.state, LegState::Cancelled);
                let Ok(dialog) = Dialog::from_answer(&leg.invite, &resp) else {
                    tracing::info!("agent's 200 without a usable Contact");
                    return self.leg_failed(leg_id, now);
                };
                let ack: Arc<[u8]> = dialog.ack(&via).to_bytes().into();
                let (link, peer) = (leg.link, leg.peer);
                let ours = String::from_utf8_lossy(&leg.invite.body).into_owned();
                self.send(link, peer, Arc::clone(&ack));
                if let Some(leg) = self.agents.legs.get_mut(leg_id) {
                    leg.state = LegState::Up { dialog, ack };
                }
                let agreed = sdp::read_answer(&ours, &String::from_utf8_lossy(&resp.body));
                match agreed {
                    Ok(agreed) if !cancelled => {
                        self.cancel_other_phones(leg_id, call, agent, now);
                        self.agent_answered(leg_id, call, agent, agreed, now)
                    }
                    Ok(_) => {
                        // Answered as we cancelled: hang up at once.
                        self.hang_up_leg(leg_id, now);
                    }
                    Err(e) => {
                        tracing::info!("agent's answer has no usable media: {e}");
                        self.hang_up_leg(leg_id, now);
                        if !cancelled && !self.still_ringing(call, agent) {
                            self.route(RouterEvent::Declined { call, agent }, now);
                        }
                    }
                }
            }
            (_, LegState::Ringing) => {
                self.remove_leg(leg_id);
                if code < 600 && self.still_ringing(call, agent) {
                    // Busy on one phone; another of the agent's phones still rings.
                    tracing::info!(
                        agent = self.agents.ids[agent],
                        code,
                        "one of the agent's phones declined; the others still ring"
                    );
                    return;
                }
                tracing::info!(
                    agent = self.agents.ids[agent],
                    code,
                    "the agent's phone declined"
                );
                // A 6xx is the agent's answer everywhere (RFC 3261 §16.7): stop the others.
                self.cancel_ring(call, agent, false, now);
                self.route(RouterEvent::Declined { call, agent }, now);
            }
            (_, _) => self.remove_leg(leg_id),
        }
    }

    /// Our INVITE to an agent got no answer at all, or an unusable one.
    pub(super) fn leg_failed(&mut self, leg_id: &str, now: Instant) {
        let Some(leg) = self.agents.legs.get(leg_id) else {
            return;
        };
        let ringing = matches!(leg.state, LegState::Ringing);
        let (call, agent, kind) = (leg.call, leg.agent, leg.kind);
        self.remove_leg(leg_id);
        if kind == LegKind::CallbackCaller {
            if ringing {
                tracing::info!("the callback's call to the caller got no answer at all");
                self.caller_unreached(call, now);
            }
        } else if kind == LegKind::Transfer {
            if ringing {
                tracing::info!("the transfer target never answered our INVITE");
                self.transfer_failed(call);
            }
        } else if ringing && !self.still_ringing(call, agent) {
            self.route(RouterEvent::Declined { call, agent }, now);
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
        let within = self
            .agents
            .queue_ids
            .get(&w.queue)
            .and_then(|&q| self.agents.service_levels.get(q))
            .copied()
            .unwrap_or(Duration::from_secs(20));
        let in_time = now.saturating_duration_since(w.entered) <= within;
        let queue = w.queue.clone();
        self.served(&queue, in_time, now);
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
            let _ = to_call.send(CallInput::AgentAnswered {
                agent: self.agents.ids[agent].clone(),
            });
        }
    }

    /// BYE to an answered agent leg (the caller hung up, or left); the leg is forgotten.
    pub(super) fn hang_up_leg(&mut self, leg_id: &str, now: Instant) {
        let via = self.via_for(leg_id);
        let contact = self
            .agents
            .legs
            .get(leg_id)
            .map(|l| self.contact(l.link))
            .unwrap_or_default();
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        let (link, peer) = (leg.link, leg.peer);
        if let LegState::Up { dialog, .. } = &mut leg.state {
            let bye = dialog.request("BYE", &via, &contact);
            self.send_request(&bye, link, peer, None, now);
        }
        self.remove_leg(leg_id);
    }

    pub(super) fn remove_leg(&mut self, leg_id: &str) {
        if let Some(leg) = self.agents.legs.remove(leg_id) {
            let key = (leg.call, leg.agent);
            if let Some(ids) = self.agents.leg_of.get_mut(&key) {
                ids.retain(|id| id != leg_id);
                if ids.is_empty() {
                    self.agents.leg_of.remove(&key);
                }
            }
            if matches!(leg.state, LegState::Up { .. }) {
                let _ = self
                    .shared
                    .pacer
                    .send(PacerCommand::Remove { id: leg.media });
            }
        }
    }

    /// A request inside an agent leg's dialog: BYE ends the caller's call too.
    pub(super) fn leg_in_dialog(&mut self, key: Key, req: Message, method: &str, now: Instant) {
        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        let ok = self
            .agents
            .legs
            .get_mut(&call_id)
            .and_then(|l| match &mut l.state {
                LegState::Up { dialog, .. } if dialog.matches(&req) => {
                    Some(dialog.accept_cseq(&req).map(|()| dialog.local_tag.clone()))
                }
                _ => None,
            });
        let local_tag = match ok {
            Some(Ok(t)) => t,
            Some(Err(r)) => {
                return self.respond(&key, &req, r.status, r.reason, None, &[], Vec::new(), now);
            }
            None => {
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
            }
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
                let leg = self.agents.legs.get(&call_id).map(|l| (l.call, l.kind));
                self.remove_leg(&call_id);
                let Some((call, kind)) = leg else {
                    return;
                };
                if kind == LegKind::Transfer {
                    return self.transfer_hung_up(call);
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
            "INFO" | "OPTIONS" => self.respond(
                &key,
                &req,
                200,
                "OK",
                Some(&local_tag),
                &[],
                Vec::new(),
                now,
            ),
            "INVITE" => self.leg_reinvite(key, req, &call_id, &local_tag, now),
            _ => self.respond(
                &key,
                &req,
                501,
                "Not Implemented",
                Some(&local_tag),
                &[(
                    "Allow".into(),
                    "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO".into(),
                )],
                Vec::new(),
                now,
            ),
        }
    }

    /// A re-INVITE from the phone we called: hold, resume, its media moved, or a session
    /// refresh (RFC 3264 §8). The leg keeps its codec; an offer without it gets 488 and
    /// changes nothing. Without an offer, our current SDP is the offer (its answer in the ACK
    /// is not needed: nothing changes on our side).
    fn leg_reinvite(
        &mut self,
        key: Key,
        req: Message,
        leg_id: &str,
        local_tag: &str,
        now: Instant,
    ) {
        let media_ip = self.shared.media_ip;
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        let port = leg.socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let session = sdp_session(&leg.invite.body);
        let body = String::from_utf8_lossy(&req.body).to_string();
        let answer = if body.trim().is_empty() {
            Ok(String::from_utf8_lossy(&leg.invite.body).to_string())
        } else {
            let keying = sdp::Keying {
                local: super::srtp_key(),
                required: false,
            };
            sdp::renegotiate(&body, leg.law, &keying, leg.srtp).map(|(offer, agreed)| {
                    leg.sdp_version += 1;
                    let remote = SocketAddr::new(agreed.remote.0, agreed.remote.1);
                    crate::server::call::sending(&self.shared, leg.media, remote, agreed.direction);
                    if leg.law.is_some() {
                        leg.srtp = agreed.srtp;
                        crate::server::call::rekey(&self.shared, leg.media, agreed.srtp);
                    }
                    tracing::info!(%remote, direction = ?agreed.direction, "the far end's re-INVITE: media updated");
                    sdp::describe(
                        session,
                        leg.sdp_version,
                        media_ip,
                        port,
                        Some((&offer, &agreed)),
                        sdp::OfferSrtp::No,
                    )
                })
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::info!("re-INVITE on a leg refused: {e}");
                return self.respond(
                    &key,
                    &req,
                    488,
                    "Not Acceptable Here",
                    Some(local_tag),
                    &[],
                    Vec::new(),
                    now,
                );
            }
        };
        leg.reinvite = Some(key.clone());
        let link = leg.link;
        let extra = [("Contact".to_string(), self.contact(link))];
        self.respond(
            &key,
            &req,
            200,
            "OK",
            Some(local_tag),
            &extra,
            answer.into_bytes(),
            now,
        );
    }

    /// The re-INVITE a 2xx-ACK on one of our legs confirms.
    pub(super) fn leg_reinvite_of(&self, ack: &Message) -> Option<Key> {
        let leg = self.agents.legs.get(ack.get("Call-ID")?)?;
        match &leg.state {
            LegState::Up { dialog, .. } if dialog.matches(ack) => leg.reinvite.clone(),
            _ => None,
        }
    }

    /// Answers the HTTP API.
    pub(super) fn api(&mut self, q: ApiQuery, now: Instant) {
        match q {
            ApiQuery::Agents(reply) => {
                // A removed agent is listed until the call it was on has ended.
                let rows = (0..self.agents.ids.len())
                    .filter(|&i| {
                        !self.agents.router.is_retired(i)
                            || self.agents.router.agent_state(i).map(|s| s.0)
                                != Some(AgentState::Offline)
                    })
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
                if state == Requested::Available && !self.agents.registrar.is_registered(i) {
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
                let _ = reply.send(self.queue_rows(now));
            }
            ApiQuery::LiveCalls(reply) => {
                let _ = reply.send(self.live_calls(now));
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
            ApiQuery::Login {
                user,
                password,
                source,
                reply,
            } => {
                let answer = match self.agents.registrar.login(&user, &password, source, now) {
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
                let mut agents: Vec<(&'static str, usize)> = Vec::new();
                for i in 0..self.agents.ids.len() {
                    if let Some((s, ..)) = self.agents.router.agent_state(i) {
                        match agents.iter_mut().find(|(n, _)| *n == s.as_str()) {
                            Some(e) => e.1 += 1,
                            None => agents.push((s.as_str(), 1)),
                        }
                    }
                }
                let _ = reply.send(Gauges {
                    active_calls: self.calls.len(),
                    sip_dropped: self.transport.dropped(),
                    sip_banned_messages: self.transport.gate().dropped.load(Ordering::Relaxed),
                    sip_bans: self.transport.gate().bans.load(Ordering::Relaxed),
                    sip_banned_addresses: self.transport.gate().banned(),
                    agents,
                    queues: self.queue_rows(now),
                });
            }
        }
    }

    fn agent_row(&self, i: usize, now: Instant) -> Option<AgentRow> {
        let (state, since, call) = self.agents.router.agent_state(i)?;
        let (auth_failures, locked_out) = self.agents.registrar.failures(i, now);
        let ago = now.saturating_duration_since(since);
        let wall = jiff::Timestamp::now();
        let since_wall = wall
            .checked_sub(jiff::SignedDuration::from_millis(ago.as_millis() as i64))
            .unwrap_or(wall);
        Some(AgentRow {
            id: self.agents.ids[i].clone(),
            name: self.agents.names[i].clone(),
            state: state.as_str(),
            since: since_wall.to_string(),
            since_s: ago.as_secs(),
            reason: self.agents.router.agent_reason(i).map(str::to_string),
            registered: self.agents.registrar.is_registered(i),
            auth_failures,
            locked_out: locked_out.iter().map(ToString::to_string).collect(),
            call: call
                .and_then(|c| self.agents.waiting.get(&c))
                .map(|w| w.call_id.clone()),
            next_state: self.agents.router.next_state(i).map(|(r, why)| NextState {
                state: r.as_str(),
                reason: why.map(str::to_string),
            }),
            caller: call.and_then(|c| self.caller_card(c, now)),
            wrap_up_left_s: (state == AgentState::WrapUp)
                .then(|| self.agents.router.wrap_up_left(i, now))
                .flatten()
                .map(|d| d.as_secs_f64().ceil() as u64),
        })
    }

    /// What the desk shows of the caller an agent rings for or talks to.
    fn caller_card(&self, call: u64, now: Instant) -> Option<CallerCard> {
        let w = self.agents.waiting.get(&call)?;
        let from = self
            .calls
            .get(&w.call_id)
            .and_then(|c| c.invite_request.get("From"));
        let (name, uri) = crate::sip::dialog::caller_identity(from, &w.context.caller);
        let until = self.agents.router.answered_at(call).unwrap_or(now);
        Some(CallerCard {
            call: w.call_id.clone(),
            number: crate::sip::dialog::uri_user(&uri).to_string(),
            name,
            uri,
            queue: w.queue.clone(),
            waited_s: until.saturating_duration_since(w.entered).as_secs(),
            steps: crate::api::caller::steps(&w.context.path),
            variables: w
                .context
                .variables
                .iter()
                .map(|(name, value)| Variable {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            callback: w.callback.is_some(),
        })
    }

    fn queue_rows(&self, now: Instant) -> Vec<QueueRow> {
        // Each queue's agents by state: one pass over the agents.
        let mut counts = vec![AgentCounts::default(); self.agents.queue_names.len()];
        for i in 0..self.agents.ids.len() {
            let Some((state, ..)) = self.agents.router.agent_state(i) else {
                continue;
            };
            for &q in self.agents.router.agent_queues(i) {
                let Some(c) = counts.get_mut(q) else { continue };
                match state {
                    AgentState::Available => c.available += 1,
                    AgentState::Ringing => c.ringing += 1,
                    AgentState::Busy => c.busy += 1,
                    AgentState::WrapUp => c.wrap_up += 1,
                    AgentState::NotReady => c.not_ready += 1,
                    AgentState::Offline => {}
                }
            }
        }
        self.agents
            .queue_names
            .iter()
            .enumerate()
            .filter(|(_, name)| self.agents.queue_ids.contains_key(*name))
            .filter_map(|(q, name)| {
                let f = self.agents.router.queue_figures(q, now)?;
                let ewt = f
                    .average_handle
                    .filter(|_| f.staffed > 0)
                    .map(|aht| estimate::position_wait(f.waiting, f.staffed, aht).as_secs_f64());
                let recent: Vec<bool> = self.agents.served[q]
                    .iter()
                    .filter(|(t, _)| now.saturating_duration_since(*t) <= SERVICE_WINDOW)
                    .map(|(_, ok)| *ok)
                    .collect();
                let service_level = (!recent.is_empty())
                    .then(|| recent.iter().filter(|ok| **ok).count() as f64 / recent.len() as f64);
                Some(QueueRow {
                    name: name.clone(),
                    waiting: f.waiting,
                    longest_wait_s: f.longest_wait.as_secs_f64(),
                    agents_available: f.available,
                    agents_logged_in: f.staffed,
                    ewt_s: ewt,
                    service_level,
                    wait_estimates: self
                        .agents
                        .router
                        .wait_audit(q)
                        .map(|f| crate::api::WaitEstimateRow {
                            scored: f.samples,
                            mean_abs_error_s: f.mean_abs_error(),
                            waited_over_1_5x: f.overruns,
                            baseline_better: f.baseline_better(),
                            figures: f.clone(),
                        })
                        .unwrap_or_default(),
                    agents: counts.get(q).cloned().unwrap_or_default(),
                    service_level_s: self
                        .agents
                        .service_levels
                        .get(q)
                        .map_or(20, |d| d.as_secs()),
                })
            })
            .collect()
    }

    fn via_for(&self, leg_id: &str) -> String {
        let link = self.agents.legs.get(leg_id).map_or(Link::Udp, |l| l.link);
        self.via(link)
    }

    /// A Via for a request we originate, with a fresh branch.
    pub(super) fn via(&self, link: Link) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch={}{:x};rport",
            link.name(),
            self.shared.config.sip.advertise,
            self.transport.port_for(link),
            transaction::MAGIC_COOKIE,
            random()
        )
    }
}

/// What a 2xx to one of our INVITEs leaves to do, once `take_answer` has ACKed it.
pub(super) enum Answer {
    /// The leg is up with this media: bridge it.
    Media(sdp::Agreed),
    /// Nothing: a retransmitted 2xx, or an answer to a leg we had cancelled (hung up again).
    Nothing,
    /// Unusable (no Contact, no common codec): the leg is gone; treat it as not answered.
    Unusable,
}

impl Signalling {
    /// ACKs a 2xx to our INVITE on `leg_id` and reads its media.
    pub(super) fn take_answer(
        &mut self,
        leg_id: &str,
        resp: &Message,
        via: &str,
        now: Instant,
    ) -> Answer {
        let Some(leg) = self.agents.legs.get(leg_id) else {
            return Answer::Nothing;
        };
        if let LegState::Up { ack, .. } = &leg.state {
            let (link, peer, ack) = (leg.link, leg.peer, Arc::clone(ack));
            self.send(link, peer, ack);
            return Answer::Nothing;
        }
        let cancelled = matches!(leg.state, LegState::Cancelled);
        let Ok(dialog) = Dialog::from_answer(&leg.invite, resp) else {
            tracing::info!("a 200 to our INVITE has no usable Contact");
            self.remove_leg(leg_id);
            return Answer::Unusable;
        };
        let ack: Arc<[u8]> = dialog.ack(via).to_bytes().into();
        let (link, peer) = (leg.link, leg.peer);
        self.send(link, peer, Arc::clone(&ack));
        if let Some(leg) = self.agents.legs.get_mut(leg_id) {
            leg.state = LegState::Up { dialog, ack };
        }
        if cancelled {
            self.hang_up_leg(leg_id, now);
            return Answer::Nothing;
        }
        let agreed = self.agents.legs.get(leg_id).map(|l| {
            sdp::read_answer(
                &String::from_utf8_lossy(&l.invite.body),
                &String::from_utf8_lossy(&resp.body),
            )
        });
        match agreed.unwrap_or(Err(sdp::SdpError::NoAudio)) {
            Ok(agreed) => Answer::Media(agreed),
            Err(e) => {
                tracing::info!("a 200 to our INVITE has no usable media: {e}");
                self.hang_up_leg(leg_id, now);
                Answer::Unusable
            }
        }
    }
}

/// Hands an answered leg's media to the media loop (keys on it are not listened for).
pub(super) fn add_leg_media(
    shared: &crate::server::Shared,
    leg: &mut Leg,
    agreed: &sdp::Agreed,
    notify: mpsc::UnboundedSender<CallInput>,
) {
    leg.law = Some(agreed.law);
    leg.srtp = agreed.srtp;
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
        listen_keys: false,
        srtp: agreed.srtp,
    });
}

/// The media loop's notifications for a leg no call task follows (a callback's legs).
pub(super) fn no_one_listens() -> mpsc::UnboundedSender<CallInput> {
    mpsc::unbounded_channel().0
}

/// CANCEL or a failure's ACK for our INVITE: its Request-URI, top Via (same branch), From,
/// Call-ID, CSeq number and Route; `to` from the response for an ACK.
fn same_transaction(invite: &Message, method: &str, to: Option<&str>) -> Message {
    let uri = match &invite.start {
        Start::Request { uri, .. } => uri.clone(),
        Start::Response { .. } => String::new(),
    };
    let n = invite
        .get("CSeq")
        .and_then(wire::parse_cseq)
        .map_or(1, |c| c.0);
    let mut headers = Vec::new();
    if let Some(v) = invite.get("Via") {
        headers.push(header("Via", v));
    }
    headers.push(header("Max-Forwards", "70"));
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.get(name) {
            headers.push(header(name, v));
        }
    }
    if let Some(t) = to.or_else(|| invite.get("To")) {
        headers.push(header("To", t));
    }
    headers.push(header("CSeq", &format!("{n} {method}")));
    for r in invite.all("Route") {
        headers.push(header("Route", r));
    }
    Message {
        start: Start::Request {
            method: method.into(),
            uri,
        },
        headers,
        body: Vec::new(),
    }
}

/// The session id of an SDP we sent (`o=hotline <id> <version> ...`).
fn sdp_session(body: &[u8]) -> u64 {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| {
            l.strip_prefix("o=")?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(1)
}

/// What the caller already told the line, on the agent's INVITE: the agent never asks again.
fn context_headers(w: &Waiting, now: Instant) -> Vec<Header> {
    let mut headers = vec![
        header("X-Hotline-Caller", &clean(&w.context.caller)),
        header("X-Hotline-Queue", &clean(&w.queue)),
        header("X-Hotline-Path", &clean(&w.context.path.join(" "))),
        header(
            "X-Hotline-Waited",
            &now.saturating_duration_since(w.entered)
                .as_secs()
                .to_string(),
        ),
    ];
    if let Some(cb) = &w.callback {
        // The agent calls this person back: we dial them once the agent answers.
        headers.push(header("X-Hotline-Callback", &clean(&w.context.caller)));
        headers.push(header(
            "X-Hotline-Callback-Attempt",
            &(cb.attempts + 1).to_string(),
        ));
    }
    for (name, value) in &w.context.variables {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        headers.push(header(&format!("X-Hotline-Var-{name}"), &clean(value)));
    }
    headers
}

pub(super) fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// A header value from what callers typed or flows named: printable, one line, bounded.
pub(super) fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(512).collect()
}

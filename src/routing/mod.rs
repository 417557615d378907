//! The routing core (ACD): agents, queues, strategies, priorities, ring-no-answer, wrap-up,
//! callbacks and wait estimates. Pure: `Router::handle(event, now)` returns what to do, and
//! `poll_timeout()` when to call back with `RouterEvent::Timer`. Every event costs a few
//! ordered-map operations — no scan over all agents or all calls — so it holds 10k agents and
//! 100k waiting calls.

pub mod audit;
pub mod estimate;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use audit::{AuditFigures, Pending, RecentWaits, Told};
use estimate::HandleTimes;

pub type AgentId = usize;
pub type QueueId = usize;
pub type CallId = u64;

/// How a queue picks among its available agents (`strategy` in a `[[queues]]` entry). An
/// unknown name is a config error, never a silent fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Strategy {
    #[default]
    LongestIdle,
    RoundRobin,
    FewestCalls,
    SkillWeighted,
    RingAll,
}

impl TryFrom<String> for Strategy {
    type Error = String;
    fn try_from(s: String) -> Result<Strategy, String> {
        Strategy::parse(&s).ok_or_else(|| {
            format!(
                "unknown strategy \"{s}\" (one of {})",
                Strategy::NAMES.join(", ")
            )
        })
    }
}

impl Strategy {
    pub const NAMES: [&str; 5] = [
        "longest-idle",
        "round-robin",
        "fewest-calls",
        "skill-weighted",
        "ring-all",
    ];

    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "longest-idle" => Strategy::LongestIdle,
            "round-robin" => Strategy::RoundRobin,
            "fewest-calls" => Strategy::FewestCalls,
            "skill-weighted" => Strategy::SkillWeighted,
            "ring-all" => Strategy::RingAll,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub id: String,
    pub skills: BTreeMap<String, u32>,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    /// An agent serves the queue when it has every one of these skills.
    pub skills: Vec<String>,
    pub strategy: Strategy,
    pub ring_timeout: Duration,
    pub wrap_up: Duration,
    /// How long after an agent missed, declined or was busy for a caller before that caller
    /// is offered to them again (at least 1 s, so a busy phone is not rung in a loop).
    pub retry: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Offline,
    Available,
    Ringing,
    Busy,
    WrapUp,
    NotReady,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Offline => "offline",
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::Busy => "busy",
            AgentState::WrapUp => "wrap-up",
            AgentState::NotReady => "not-ready",
        }
    }
}

/// The reasons the router itself gives for an agent not taking calls.
pub mod reason {
    /// No registered phone (never registered, unregistered, or the registration expired).
    pub const NOT_REGISTERED: &str = "no-phone";
    /// The phone registered with `ready_on_register = false`: waiting to be made available.
    pub const REGISTERED: &str = "registered";
    /// The agent let a call ring out.
    pub const RING_NO_ANSWER: &str = "ring-no-answer";
}

/// What an agent (or a supervisor) may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Available,
    NotReady,
    Offline,
}

impl Requested {
    pub fn as_str(self) -> &'static str {
        match self {
            Requested::Available => "available",
            Requested::NotReady => "not-ready",
            Requested::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// The agent's phone registered (digest-authenticated).
    Registered {
        agent: AgentId,
    },
    Unregistered {
        agent: AgentId,
    },
    SetState {
        agent: AgentId,
        state: Requested,
        /// Why, when not ready or offline ("lunch", "training"): shown with the state.
        reason: Option<String>,
    },
    /// A caller waits for an agent of `queue`.
    Enqueue {
        call: CallId,
        queue: QueueId,
        priority: u32,
    },
    /// A caller with an open follow-up (a voicemail or callback request of theirs) asks for
    /// whoever has it: they wait at the head of `queue` (they have waited once already), and
    /// `owner`, when given, free and serving the queue, is rung first, alone, for the queue's
    /// ring time; then (or when the owner cannot take it) the queue's agents as usual.
    EnqueueReturning {
        call: CallId,
        queue: QueueId,
        owner: Option<AgentId>,
    },
    /// An agent calls someone back now (from a follow-up on the desk): ring that agent for
    /// `call`, a callback of `queue`, if they serve it and are available; otherwise nothing
    /// happens. Not answered, it waits first in line for the queue's other agents.
    CallBackNow {
        call: CallId,
        queue: QueueId,
        agent: AgentId,
    },
    /// The waiting caller chose to be called back: the entry keeps its place in line.
    ToCallback {
        call: CallId,
    },
    /// Keep the call's place but ring nobody for it yet (a callback whose caller is still
    /// hearing the confirmation); may come before its `Enqueue`.
    Hold {
        call: CallId,
    },
    /// A held call may be rung for again.
    Release {
        call: CallId,
    },
    /// The caller left the queue: hung up, or `max_wait_s` ran out.
    Abandon {
        call: CallId,
    },
    Answered {
        call: CallId,
        agent: AgentId,
    },
    /// The agent's phone was busy or declined.
    Declined {
        call: CallId,
        agent: AgentId,
    },
    /// The bridged call ended.
    Ended {
        call: CallId,
    },
    /// The agent passed the caller on to another queue (a blind transfer): the agent's call
    /// is over (wrap-up), and the caller waits in `queue` at the place their first arrival
    /// gave them — ahead of everyone who came later.
    Transfer {
        call: CallId,
        queue: QueueId,
    },
    /// The agent passes the caller on to another agent by name (a blind transfer): that
    /// agent is rung if available (a `Ring` comes out; nothing does otherwise). The first
    /// agent stays on the call until the other answers; declined or not answered within the
    /// queue's ring time, the call is the first agent's again.
    PassTo {
        call: CallId,
        agent: AgentId,
    },
    /// The agent calls another agent about her caller first (an attended transfer): he is
    /// rung as for `PassTo`; once he answers, both are busy with the call and she still has
    /// it, until `Complete` gives it to him or `EndConsult` ends their talk.
    Consult {
        call: CallId,
        agent: AgentId,
    },
    /// The consulted agent takes the caller (she completed the transfer): the call is his,
    /// she wraps up.
    Complete {
        call: CallId,
    },
    /// The consultation ended without a transfer (either hung up, or he did not answer):
    /// the call is hers alone again; he is free.
    EndConsult {
        call: CallId,
    },
    /// The call's agent is gone (her phone hung up while she passed the caller on): the
    /// caller waits first in line in their queue, and she wraps up.
    Requeue {
        call: CallId,
    },
    /// The waiting caller was just told they would wait about `wait` (as spoken): scored
    /// against the wait they then have (see `audit`).
    Told {
        call: CallId,
        wait: Duration,
    },
    /// `poll_timeout()` has passed.
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterAction {
    /// Ring the agent's phone for this call. For a callback, the agent is rung first and the
    /// caller's number dialled once the agent answers.
    Ring {
        call: CallId,
        agent: AgentId,
        callback: bool,
    },
    /// Stop ringing: another agent answered (ring-all: `elsewhere`, which the phone is told
    /// so it does not log a missed call), the agent did not answer in time, or the caller left.
    CancelRing {
        call: CallId,
        agent: AgentId,
        elsewhere: bool,
    },
}

/// A waiting call's place in its queue: higher priority first, then first come.
type Place = (Reverse<u32>, u64);

#[derive(Debug, Clone)]
enum CallState {
    Waiting,
    Ringing {
        agents: Vec<AgentId>,
        until: Instant,
    },
    Connected {
        agent: AgentId,
        since: Instant,
    },
    /// Connected to `from`, who passes the caller on to `to`, rung until `until` — or,
    /// for a consultation he answered, talking to him.
    Passing {
        from: AgentId,
        since: Instant,
        to: AgentId,
        until: Instant,
        kind: PassKind,
    },
}

/// How a call is being passed from one agent to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// He rings; answering takes the caller.
    Blind,
    /// He rings for a talk with her first.
    Consult,
    /// He answered her: they talk, the caller waits with her.
    Consulting,
}

#[derive(Debug, Clone)]
struct Call {
    queue: QueueId,
    place: Place,
    state: CallState,
    callback: bool,
    /// Agents that declined or did not answer this call, and until when they are not offered
    /// it again (the queue's `retry`).
    tried: Vec<(AgentId, Instant)>,
    entered: Instant,
    /// The waits this caller was told, until their wait is over.
    told: Pending,
}

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    /// Removed from the config: finishes its call, then stays offline.
    retired: bool,
    state: AgentState,
    since: Instant,
    registered: bool,
    /// What the agent asked for while on a call (and why); applied when it ends.
    after_call: Option<(Requested, Option<String>)>,
    /// Why the agent is not ready or offline: what they gave, or what the router saw.
    reason: Option<String>,
    queues: Vec<QueueId>,
    /// Its place in each queue's available set, while available.
    keys: Vec<(QueueId, (u64, u64))>,
    handled: u64,
    last_rung: u64,
    call: Option<CallId>,
    skills: BTreeMap<String, u32>,
}

#[derive(Debug, Clone)]
struct Queue {
    config: QueueConfig,
    /// Removed from the config: nobody serves it, nobody new joins it.
    retired: bool,
    waiting: BTreeMap<Place, CallId>,
    available: BTreeSet<((u64, u64), AgentId)>,
    /// Agents serving the queue who are logged in (not offline).
    staffed: u32,
    handle_times: HandleTimes,
    /// Answered waits, for the baseline estimate.
    recent_waits: RecentWaits,
    /// What callers were told against what they then waited.
    audit: AuditFigures,
}

/// Live figures for one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub waiting: usize,
    pub longest_wait: Duration,
    pub available: usize,
    pub staffed: u32,
    pub average_handle: Option<Duration>,
}

pub struct Router {
    agents: Vec<Agent>,
    queues: Vec<Queue>,
    calls: HashMap<CallId, Call>,
    ready_on_register: bool,
    seq: u64,
    origin: Instant,
    ring_deadlines: BTreeSet<(Instant, CallId, AgentId)>,
    wrap_deadlines: BTreeSet<(Instant, AgentId)>,
    /// When a call may be offered again to an agent who tried it.
    retry_deadlines: BTreeSet<(Instant, CallId)>,
    /// Calls that keep their place but are rung for by nobody yet.
    held: std::collections::HashSet<CallId>,
    /// Agents whose state or reason changed since `take_changes` last ran (the desk and the
    /// wall follow them), and whether any queue's figures may have.
    changed_agents: Vec<AgentId>,
    queues_changed: bool,
}

/// What changed in the routing core since it was last asked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each agent once, in the order they first changed.
    pub agents: Vec<AgentId>,
    pub queues: bool,
}

impl Router {
    pub fn new(
        agents: &[AgentConfig],
        queues: &[QueueConfig],
        ready_on_register: bool,
        now: Instant,
    ) -> Router {
        let queues: Vec<Queue> = queues.iter().map(new_queue).collect();
        let agents = agents
            .iter()
            .map(|a| {
                let mut agent = new_agent(a, now);
                agent.queues = memberships(&queues, &agent.skills);
                agent
            })
            .collect();
        Router {
            agents,
            queues,
            calls: HashMap::new(),
            ready_on_register,
            seq: 0,
            origin: now,
            ring_deadlines: BTreeSet::new(),
            wrap_deadlines: BTreeSet::new(),
            retry_deadlines: BTreeSet::new(),
            held: std::collections::HashSet::new(),
            changed_agents: Vec::new(),
            queues_changed: false,
        }
    }

    /// The agents whose state, reason or next state changed, and whether the queues' figures
    /// may have, since the last call.
    pub fn take_changes(&mut self) -> Changes {
        let mut agents = std::mem::take(&mut self.changed_agents);
        // Usually one or two after an event: a scan, no set to allocate.
        if agents.len() <= 16 {
            let mut i = 0;
            while i < agents.len() {
                if agents[..i].contains(&agents[i]) {
                    agents.remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(agents.len());
            agents.retain(|a| seen.insert(*a));
        }
        Changes {
            agents,
            queues: std::mem::take(&mut self.queues_changed),
        }
    }

    /// Notes a changed agent for `take_changes`, bounded when nobody asks.
    fn changed(&mut self, agent: AgentId) {
        if self.changed_agents.len() > 2 * self.agents.len() + 16 {
            let mut seen = std::collections::HashSet::new();
            self.changed_agents.retain(|a| seen.insert(*a));
        }
        self.changed_agents.push(agent);
    }

    /// What the agent asked to be once the current call (and its wrap-up) is over.
    pub fn next_state(&self, agent: AgentId) -> Option<(Requested, Option<&str>)> {
        let (r, why) = self.agents.get(agent)?.after_call.as_ref()?;
        Some((*r, why.as_deref()))
    }

    /// How long the agent's wrap-up has left.
    pub fn wrap_up_left(&self, agent: AgentId, now: Instant) -> Option<Duration> {
        self.wrap_deadlines
            .iter()
            .find(|(_, a)| *a == agent)
            .map(|(t, _)| t.saturating_duration_since(now))
    }

    /// Takes a changed config (a reload) without disturbing a call. Agents and queues are
    /// matched by id and name; new ones come after the others (ids stay as they were), removed
    /// ones are retired: a retired agent finishes the call it is on (or its ring is stopped)
    /// and then stays offline; a retired queue takes no new callers, and nobody serves the
    /// ones still waiting in it (their wait runs out to `on_timeout`). Skills, strategies and
    /// timings apply from now; every agent's place among the available is recomputed.
    pub fn reconfigure(
        &mut self,
        agents: &[AgentConfig],
        queues: &[QueueConfig],
        now: Instant,
    ) -> Vec<RouterAction> {
        let mut out = Vec::new();
        for q in &mut self.queues {
            match queues.iter().find(|n| n.name == q.config.name) {
                Some(n) => {
                    q.config = n.clone();
                    q.retired = false;
                }
                None => q.retired = true,
            }
        }
        for n in queues {
            if !self.queues.iter().any(|q| q.config.name == n.name) {
                self.queues.push(new_queue(n));
            }
        }
        for a in &mut self.agents {
            match agents.iter().find(|n| n.id == a.id) {
                Some(n) => {
                    a.skills = n.skills.clone();
                    a.retired = false;
                }
                None => a.retired = true,
            }
        }
        for n in agents {
            if !self.agents.iter().any(|a| a.id == n.id) {
                self.agents.push(new_agent(n, now));
            }
        }
        for agent in 0..self.agents.len() {
            let a = &self.agents[agent];
            let wanted = if a.retired {
                Vec::new()
            } else {
                memberships(&self.queues, &a.skills)
            };
            self.rejoin(agent, wanted, now, &mut out);
            if self.agents[agent].retired {
                self.agents[agent].registered = false;
                if self.agents[agent].state != AgentState::Offline {
                    self.request(
                        agent,
                        Requested::Offline,
                        Some("removed".into()),
                        now,
                        &mut out,
                    );
                }
            }
        }
        out
    }

    /// Moves an agent to the queues it now serves, keeping staffing in step; an available
    /// agent takes its place in each again (by the queue's strategy as it is now).
    fn rejoin(
        &mut self,
        agent: AgentId,
        queues: Vec<QueueId>,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        if self.agents[agent].state != AgentState::Offline {
            for &q in &self.agents[agent].queues {
                let s = &mut self.queues[q].staffed;
                *s = s.saturating_sub(1);
            }
            for &q in &queues {
                self.queues[q].staffed += 1;
            }
        }
        self.agents[agent].queues = queues;
        if self.agents[agent].state == AgentState::Available {
            self.set_state(agent, AgentState::Available, now, out);
        }
    }

    /// Whether the agent was removed from the config (a reload).
    /// The queues the agent serves.
    pub fn agent_queues(&self, agent: AgentId) -> &[QueueId] {
        self.agents.get(agent).map_or(&[], |a| &a.queues)
    }

    pub fn is_retired(&self, agent: AgentId) -> bool {
        self.agents.get(agent).is_some_and(|a| a.retired)
    }

    pub fn agent_state(&self, agent: AgentId) -> Option<(AgentState, Instant, Option<CallId>)> {
        self.agents.get(agent).map(|a| (a.state, a.since, a.call))
    }

    /// Why the agent is not ready or offline (none while available or on a call).
    pub fn agent_reason(&self, agent: AgentId) -> Option<&str> {
        self.agents.get(agent)?.reason.as_deref()
    }

    /// The agent a call is connected to (while she passes it on, still her).
    pub fn connected_agent(&self, call: CallId) -> Option<AgentId> {
        match self.calls.get(&call)?.state {
            CallState::Connected { agent, .. } | CallState::Passing { from: agent, .. } => {
                Some(agent)
            }
            _ => None,
        }
    }

    /// The agent rung for a call its agent passes on (or consulted about it).
    pub fn passing_to(&self, call: CallId) -> Option<AgentId> {
        match self.calls.get(&call)?.state {
            CallState::Passing { to, .. } => Some(to),
            _ => None,
        }
    }

    /// The available agent of `queue` its next caller would go to, other than `not`: the one
    /// an agent consults when she calls the queue about her caller.
    pub fn next_available(&self, queue: QueueId, not: AgentId) -> Option<AgentId> {
        let q = self.queues.get(queue).filter(|q| !q.retired)?;
        q.available.iter().map(|&(_, a)| a).find(|&a| a != not)
    }

    /// How the call is being passed on, while it is.
    pub fn pass_kind(&self, call: CallId) -> Option<PassKind> {
        match self.calls.get(&call)?.state {
            CallState::Passing { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// When the call's agent answered, while connected.
    pub fn answered_at(&self, call: CallId) -> Option<Instant> {
        match self.calls.get(&call)?.state {
            CallState::Connected { since, .. } | CallState::Passing { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Whether the call still waits in its queue (not ringing, not connected).
    pub fn is_waiting(&self, call: CallId) -> bool {
        matches!(
            self.calls.get(&call).map(|c| &c.state),
            Some(CallState::Waiting)
        )
    }

    /// How many callers are ahead of this one (0 = next). Costs the number ahead.
    pub fn position(&self, call: CallId) -> Option<usize> {
        let c = self.calls.get(&call)?;
        let q = &self.queues[c.queue];
        Some(q.waiting.range(..c.place).count())
    }

    /// The caller's estimated wait: Erlang C when staffing and history allow, else the
    /// position times the average handle time.
    pub fn expected_wait(&self, call: CallId) -> Option<Duration> {
        let c = self.calls.get(&call)?;
        let q = &self.queues[c.queue];
        let aht = q.handle_times.average()?;
        Some(estimate::position_wait(
            self.position(call)?,
            q.staffed,
            aht,
        ))
    }

    /// What the recent-average estimator says for this waiting caller now.
    pub fn baseline_wait(&self, call: CallId, now: Instant) -> Option<Duration> {
        let c = self.calls.get(&call)?;
        self.queues[c.queue]
            .recent_waits
            .estimate(now.saturating_duration_since(c.entered))
    }

    /// How the queue's spoken wait estimates compare with the waits callers then had.
    pub fn wait_audit(&self, queue: QueueId) -> Option<&AuditFigures> {
        self.queues.get(queue).map(|q| &q.audit)
    }

    pub fn queue_figures(&self, queue: QueueId, now: Instant) -> Option<QueueFigures> {
        let q = self.queues.get(queue)?;
        let longest = q
            .waiting
            .values()
            .take(64)
            .filter_map(|c| self.calls.get(c))
            .map(|c| now.saturating_duration_since(c.entered))
            .max()
            .unwrap_or_default();
        Some(QueueFigures {
            waiting: q.waiting.len(),
            longest_wait: longest,
            available: q.available.len(),
            staffed: q.staffed,
            average_handle: q.handle_times.average(),
        })
    }

    /// When to call back with `RouterEvent::Timer`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ring_deadlines.first().map(|d| d.0),
            self.wrap_deadlines.first().map(|d| d.0),
            self.retry_deadlines.first().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle(&mut self, event: RouterEvent, now: Instant) -> Vec<RouterAction> {
        let mut out = Vec::new();
        if !matches!(event, RouterEvent::Told { .. }) {
            self.queues_changed = true;
        }
        if let RouterEvent::SetState { agent, .. }
        | RouterEvent::Registered { agent }
        | RouterEvent::Unregistered { agent } = event
        {
            // A wish for after the call, or a phone, changes the agent's row though not
            // always its state.
            self.changed(agent);
        }
        match event {
            RouterEvent::Registered { agent } => {
                let Some(a) = self.agents.get_mut(agent).filter(|a| !a.retired) else {
                    return out;
                };
                a.registered = true;
                if a.state == AgentState::Offline {
                    let next = if self.ready_on_register {
                        AgentState::Available
                    } else {
                        AgentState::NotReady
                    };
                    self.set_state(agent, next, now, &mut out);
                    if next == AgentState::NotReady {
                        self.agents[agent].reason = Some(reason::REGISTERED.into());
                    }
                }
            }
            RouterEvent::Unregistered { agent } => {
                if agent >= self.agents.len() {
                    return out;
                }
                self.agents[agent].registered = false;
                let why = Some(reason::NOT_REGISTERED.into());
                self.request(agent, Requested::Offline, why, now, &mut out);
            }
            RouterEvent::SetState {
                agent,
                state,
                reason,
            } => {
                if agent >= self.agents.len() || self.agents[agent].retired {
                    return out;
                }
                // Available needs a phone to ring.
                if state == Requested::Available && !self.agents[agent].registered {
                    return out;
                }
                self.request(agent, state, reason, now, &mut out);
            }
            RouterEvent::Enqueue {
                call,
                queue,
                priority,
            } => {
                if queue >= self.queues.len()
                    || self.queues[queue].retired
                    || self.calls.contains_key(&call)
                {
                    return out;
                }
                self.seq += 1;
                let place = (Reverse(priority), self.seq);
                self.calls.insert(
                    call,
                    Call {
                        queue,
                        place,
                        state: CallState::Waiting,
                        callback: false,
                        tried: Vec::new(),
                        entered: now,
                        told: Pending::default(),
                    },
                );
                self.queues[queue].waiting.insert(place, call);
                self.dispatch(queue, now, &mut out);
            }
            RouterEvent::EnqueueReturning { call, queue, owner } => {
                if queue >= self.queues.len()
                    || self.queues[queue].retired
                    || self.calls.contains_key(&call)
                {
                    return out;
                }
                self.seq += 1;
                let place = (Reverse(u32::MAX), self.seq);
                let owner = owner.filter(|&agent| {
                    self.agents.get(agent).is_some_and(|a| {
                        a.state == AgentState::Available && !a.retired && a.queues.contains(&queue)
                    })
                });
                let state = match owner {
                    Some(agent) => CallState::Ringing {
                        agents: vec![agent],
                        until: now + self.queues[queue].config.ring_timeout,
                    },
                    None => CallState::Waiting,
                };
                self.calls.insert(
                    call,
                    Call {
                        queue,
                        place,
                        state,
                        callback: false,
                        tried: Vec::new(),
                        entered: now,
                        told: Pending::default(),
                    },
                );
                match owner {
                    Some(agent) => {
                        let until = now + self.queues[queue].config.ring_timeout;
                        self.ring(call, agent, (until, false), now, &mut out);
                    }
                    None => {
                        self.queues[queue].waiting.insert(place, call);
                        self.dispatch(queue, now, &mut out);
                    }
                }
            }
            RouterEvent::CallBackNow { call, queue, agent } => {
                let free = self.agents.get(agent).is_some_and(|a| {
                    a.state == AgentState::Available && !a.retired && a.queues.contains(&queue)
                });
                if !free
                    || queue >= self.queues.len()
                    || self.queues[queue].retired
                    || self.calls.contains_key(&call)
                {
                    return out;
                }
                self.seq += 1;
                let until = now + self.queues[queue].config.ring_timeout;
                self.calls.insert(
                    call,
                    Call {
                        queue,
                        // First in line if it comes back unanswered.
                        place: (Reverse(u32::MAX), self.seq),
                        state: CallState::Ringing {
                            agents: vec![agent],
                            until,
                        },
                        callback: true,
                        tried: Vec::new(),
                        entered: now,
                        told: Pending::default(),
                    },
                );
                self.ring(call, agent, (until, true), now, &mut out);
            }
            RouterEvent::ToCallback { call } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.callback = true;
                    // The live wait is over: the caller hangs up and is called back.
                    c.told.resolve(now, &mut self.queues[c.queue].audit);
                }
            }
            RouterEvent::Told { call, wait } => {
                if let Some(c) = self.calls.get_mut(&call)
                    && !c.callback
                    && !matches!(
                        c.state,
                        CallState::Connected { .. } | CallState::Passing { .. }
                    )
                {
                    let q = &self.queues[c.queue];
                    let baseline = q
                        .recent_waits
                        .estimate(now.saturating_duration_since(c.entered));
                    c.told.push(Told {
                        told: wait,
                        baseline,
                        at: now,
                    });
                }
            }
            RouterEvent::Hold { call } => {
                self.held.insert(call);
            }
            RouterEvent::Release { call } => {
                if self.held.remove(&call)
                    && let Some(c) = self.calls.get(&call)
                {
                    let queue = c.queue;
                    self.dispatch(queue, now, &mut out);
                }
            }
            RouterEvent::Abandon { call } => {
                self.held.remove(&call);
                let Some(mut c) = self.calls.remove(&call) else {
                    return out;
                };
                c.told.resolve(now, &mut self.queues[c.queue].audit);
                match c.state {
                    CallState::Waiting => {
                        self.queues[c.queue].waiting.remove(&c.place);
                    }
                    CallState::Ringing { agents, until } => {
                        for a in agents {
                            self.ring_deadlines.remove(&(until, call, a));
                            self.stop_ringing(call, a, false, &mut out);
                            self.set_state(a, AgentState::Available, now, &mut out);
                        }
                    }
                    CallState::Connected { agent, since } => {
                        self.finish(c.queue, agent, since, now, &mut out);
                    }
                    CallState::Passing {
                        from,
                        since,
                        to,
                        until,
                        kind,
                    } => {
                        self.release_consulted(call, to, until, kind, now, &mut out);
                        self.finish(c.queue, from, since, now, &mut out);
                    }
                }
            }
            RouterEvent::Answered { call, agent } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return out;
                };
                if let CallState::Passing {
                    from,
                    since,
                    to,
                    until,
                    kind,
                } = c.state
                {
                    if to != agent || kind == PassKind::Consulting {
                        return out;
                    }
                    if kind == PassKind::Consult {
                        // They talk first; the caller stays hers.
                        c.state = CallState::Passing {
                            from,
                            since,
                            to,
                            until,
                            kind: PassKind::Consulting,
                        };
                        self.ring_deadlines.remove(&(until, call, to));
                        self.set_state(agent, AgentState::Busy, now, &mut out);
                        self.agents[agent].call = Some(call);
                        return out;
                    }
                    c.state = CallState::Connected { agent, since: now };
                    let queue = c.queue;
                    self.ring_deadlines.remove(&(until, call, to));
                    self.finish(queue, from, since, now, &mut out);
                    self.set_state(agent, AgentState::Busy, now, &mut out);
                    self.agents[agent].call = Some(call);
                    return out;
                }
                let CallState::Ringing { agents, until } = &c.state else {
                    return out;
                };
                if !agents.contains(&agent) {
                    return out;
                }
                let until = *until;
                let others: Vec<AgentId> = agents.iter().copied().filter(|&a| a != agent).collect();
                c.state = CallState::Connected { agent, since: now };
                let q = &mut self.queues[c.queue];
                c.told.resolve(now, &mut q.audit);
                if !c.callback {
                    q.recent_waits
                        .record(now.saturating_duration_since(c.entered));
                }
                self.ring_deadlines.remove(&(until, call, agent));
                for &a in &others {
                    self.ring_deadlines.remove(&(until, call, a));
                }
                self.set_state(agent, AgentState::Busy, now, &mut out);
                self.agents[agent].call = Some(call);
                for a in others {
                    self.stop_ringing(call, a, true, &mut out);
                    self.set_state(a, AgentState::Available, now, &mut out);
                }
            }
            RouterEvent::Declined { call, agent } => {
                if self.ringing(call, agent) {
                    self.unring(call, agent);
                    self.agents[agent].call = None;
                    self.set_state(agent, AgentState::Available, now, &mut out);
                    self.give_back(call, agent, now, &mut out);
                }
            }
            RouterEvent::Ended { call } => {
                self.held.remove(&call);
                let Some(c) = self.calls.remove(&call) else {
                    return out;
                };
                match c.state {
                    CallState::Connected { agent, since } => {
                        self.finish(c.queue, agent, since, now, &mut out);
                    }
                    CallState::Passing {
                        from,
                        since,
                        to,
                        until,
                        kind,
                    } => {
                        self.release_consulted(call, to, until, kind, now, &mut out);
                        self.finish(c.queue, from, since, now, &mut out);
                    }
                    // Ended is for a connected call; anything else stays as it was.
                    _ => {
                        self.calls.insert(call, c);
                    }
                }
            }
            RouterEvent::Transfer { call, queue } => {
                if queue >= self.queues.len() || self.queues[queue].retired {
                    return out;
                }
                let Some(c) = self.calls.get_mut(&call) else {
                    return out;
                };
                let CallState::Connected { agent, since } = c.state else {
                    return out;
                };
                let from = c.queue;
                c.queue = queue;
                c.state = CallState::Waiting;
                c.callback = false;
                c.tried.clear();
                let place = c.place;
                self.queues[queue].waiting.insert(place, call);
                self.finish(from, agent, since, now, &mut out);
                // Not offered straight back to the agent who passed the caller on.
                self.tried(call, agent, now);
                self.dispatch(queue, now, &mut out);
            }
            RouterEvent::PassTo { call, agent } => {
                self.pass(call, agent, PassKind::Blind, now, &mut out)
            }
            RouterEvent::Consult { call, agent } => {
                self.pass(call, agent, PassKind::Consult, now, &mut out)
            }
            RouterEvent::Complete { call } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return out;
                };
                let CallState::Passing {
                    from,
                    since,
                    to,
                    kind: PassKind::Consulting,
                    ..
                } = c.state
                else {
                    return out;
                };
                c.state = CallState::Connected {
                    agent: to,
                    since: now,
                };
                let queue = c.queue;
                self.finish(queue, from, since, now, &mut out);
            }
            RouterEvent::EndConsult { call } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return out;
                };
                let CallState::Passing {
                    from,
                    since,
                    to,
                    until,
                    kind: kind @ (PassKind::Consult | PassKind::Consulting),
                } = c.state
                else {
                    return out;
                };
                c.state = CallState::Connected { agent: from, since };
                self.release_consulted(call, to, until, kind, now, &mut out);
            }
            RouterEvent::Requeue { call } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return out;
                };
                let CallState::Connected { agent, since } = c.state else {
                    return out;
                };
                self.seq += 1;
                c.place = (Reverse(u32::MAX), self.seq);
                c.state = CallState::Waiting;
                let (queue, place) = (c.queue, c.place);
                self.queues[queue].waiting.insert(place, call);
                self.finish(queue, agent, since, now, &mut out);
                self.tried(call, agent, now);
                self.dispatch(queue, now, &mut out);
            }
            RouterEvent::Timer => self.timers(now, &mut out),
        }
        out
    }

    /// Rings `agent`, if available, for the call its agent passes on (`kind`).
    fn pass(
        &mut self,
        call: CallId,
        agent: AgentId,
        kind: PassKind,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        let free = self
            .agents
            .get(agent)
            .is_some_and(|a| a.state == AgentState::Available && !a.retired);
        let Some(c) = self.calls.get_mut(&call).filter(|_| free) else {
            return;
        };
        let CallState::Connected { agent: from, since } = c.state else {
            return;
        };
        if from == agent {
            return;
        }
        let until = now + self.queues[c.queue].config.ring_timeout;
        c.state = CallState::Passing {
            from,
            since,
            to: agent,
            until,
            kind,
        };
        self.ring(call, agent, (until, false), now, out);
    }

    /// The agent a call is passed to no longer is, the call being over or staying with
    /// her: his ring is cancelled, or their talk is over; he is free (or what he asked for
    /// meanwhile).
    fn release_consulted(
        &mut self,
        call: CallId,
        to: AgentId,
        until: Instant,
        kind: PassKind,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        self.agents[to].call = None;
        if kind == PassKind::Consulting {
            return self.after_wrap_up(to, now, out);
        }
        self.ring_deadlines.remove(&(until, call, to));
        out.push(RouterAction::CancelRing {
            call,
            agent: to,
            elsewhere: false,
        });
        self.set_state(to, AgentState::Available, now, out);
    }

    /// The agent a call was passed to did not take it: it is the first agent's again.
    fn pass_back(&mut self, call: CallId) {
        if let Some(c) = self.calls.get_mut(&call)
            && let CallState::Passing { from, since, .. } = c.state
        {
            c.state = CallState::Connected { agent: from, since };
        }
    }

    fn ringing(&self, call: CallId, agent: AgentId) -> bool {
        match self.calls.get(&call).map(|c| &c.state) {
            Some(CallState::Ringing { agents, .. }) => agents.contains(&agent),
            Some(CallState::Passing { to, kind, .. }) => {
                *to == agent && *kind != PassKind::Consulting
            }
            _ => false,
        }
    }

    /// Forgets the ring timer of one agent for a call.
    fn unring(&mut self, call: CallId, agent: AgentId) {
        let until = match self.calls.get(&call).map(|c| &c.state) {
            Some(CallState::Ringing { until, .. }) => *until,
            Some(CallState::Passing { until, kind, .. }) if *kind != PassKind::Consulting => *until,
            _ => return,
        };
        self.ring_deadlines.remove(&(until, call, agent));
    }

    fn stop_ringing(
        &mut self,
        call: CallId,
        agent: AgentId,
        elsewhere: bool,
        out: &mut Vec<RouterAction>,
    ) {
        self.unring(call, agent);
        self.agents[agent].call = None;
        out.push(RouterAction::CancelRing {
            call,
            agent,
            elsewhere,
        });
    }

    /// A ring ended without an answer from `agent`: the call goes back to its own place in
    /// line, unless other agents still ring for it.
    fn give_back(
        &mut self,
        call: CallId,
        agent: AgentId,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        if self.passing_to(call) == Some(agent) {
            return self.pass_back(call);
        }
        self.tried(call, agent, now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let queue = c.queue;
        if let CallState::Ringing { agents, .. } = &mut c.state {
            agents.retain(|&a| a != agent);
            if agents.is_empty() {
                c.state = CallState::Waiting;
                let place = c.place;
                self.queues[queue].waiting.insert(place, call);
            }
        }
        self.dispatch(queue, now, out);
    }

    /// The agent missed, declined or was busy for the call: it is offered to them again after
    /// the queue's retry time, and a timer makes sure it is.
    fn tried(&mut self, call: CallId, agent: AgentId, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let until = now
            + self.queues[c.queue]
                .config
                .retry
                .max(Duration::from_secs(1));
        match c.tried.iter_mut().find(|t| t.0 == agent) {
            Some(t) => t.1 = until,
            None => c.tried.push((agent, until)),
        }
        self.retry_deadlines.insert((until, call));
    }

    /// The agent's wish, now or after the current call.
    fn request(
        &mut self,
        agent: AgentId,
        r: Requested,
        why: Option<String>,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        let a = &mut self.agents[agent];
        match a.state {
            AgentState::Ringing | AgentState::Busy | AgentState::WrapUp => {
                a.after_call = Some((r, why));
                if a.state == AgentState::Ringing && r == Requested::Offline {
                    // The phone is gone: this ring cannot be answered.
                    if let Some(call) = a.call {
                        self.stop_ringing(call, agent, false, out);
                        self.give_back(call, agent, now, out);
                        let (next, why) = self.agents[agent]
                            .after_call
                            .take()
                            .unwrap_or((Requested::Offline, None));
                        self.apply(agent, next, why, now, out);
                    }
                }
            }
            _ => self.apply(agent, r, why, now, out),
        }
    }

    fn apply(
        &mut self,
        agent: AgentId,
        r: Requested,
        why: Option<String>,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        let (state, why) = match r {
            Requested::Available if self.agents[agent].registered => (AgentState::Available, None),
            Requested::Available => (AgentState::NotReady, Some(reason::NOT_REGISTERED.into())),
            Requested::NotReady => (AgentState::NotReady, why),
            Requested::Offline => (AgentState::Offline, why),
        };
        self.set_state(agent, state, now, out);
        if self.agents[agent].state == state {
            self.agents[agent].reason = why;
        }
    }

    /// The one place an agent's state changes: keeps the queues' available sets and staffing
    /// in step, and offers a newly available agent to the waiting calls.
    fn set_state(
        &mut self,
        agent: AgentId,
        state: AgentState,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        let before = self.agents[agent].state;
        if before == AgentState::Available {
            for (q, key) in std::mem::take(&mut self.agents[agent].keys) {
                self.queues[q].available.remove(&(key, agent));
            }
        }
        let was_staffed = before != AgentState::Offline;
        let staffed = state != AgentState::Offline;
        if was_staffed != staffed {
            for &q in &self.agents[agent].queues {
                let s = &mut self.queues[q].staffed;
                *s = if staffed { *s + 1 } else { s.saturating_sub(1) };
            }
        }
        let a = &mut self.agents[agent];
        if before != state {
            a.since = now;
        }
        a.state = state;
        a.reason = None;
        self.changed(agent);
        if state == AgentState::Available {
            let idle = now.saturating_duration_since(self.origin).as_nanos() as u64;
            let queues = self.agents[agent].queues.clone();
            let mut keys = Vec::with_capacity(queues.len());
            for &q in &queues {
                let a = &self.agents[agent];
                let key = match self.queues[q].config.strategy {
                    Strategy::LongestIdle | Strategy::RingAll => (idle, 0),
                    Strategy::RoundRobin => (a.last_rung, 0),
                    Strategy::FewestCalls => (a.handled, idle),
                    Strategy::SkillWeighted => {
                        let level: u64 = self.queues[q]
                            .config
                            .skills
                            .iter()
                            .map(|s| u64::from(a.skills.get(s).copied().unwrap_or(0)))
                            .sum();
                        (u64::MAX - level, idle)
                    }
                };
                self.queues[q].available.insert((key, agent));
                keys.push((q, key));
            }
            self.agents[agent].keys = keys;
            // The queue whose first caller is most urgent is served first.
            let mut order: Vec<(Place, QueueId)> = queues
                .iter()
                .filter_map(|&q| self.queues[q].waiting.keys().next().map(|p| (*p, q)))
                .collect();
            order.sort();
            for (_, q) in order {
                if self.agents[agent].state != AgentState::Available {
                    break;
                }
                self.dispatch(q, now, out);
            }
        }
    }

    /// Hands the queue's first callers to its available agents.
    fn dispatch(&mut self, queue: QueueId, now: Instant, out: &mut Vec<RouterAction>) {
        // A caller every available agent already declined waits; the ones behind are still
        // served. The skip is bounded, so a dispatch never walks a long queue.
        const LOOK_AHEAD: usize = 16;
        let mut skipped = 0;
        let mut cursor: Option<Place> = None;
        while skipped < LOOK_AHEAD {
            let q = &self.queues[queue];
            if q.available.is_empty() {
                return;
            }
            let next = match cursor {
                None => q.waiting.iter().next(),
                Some(p) => q
                    .waiting
                    .range((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
                    .next(),
            };
            let Some((&place, &call)) = next else {
                return;
            };
            let Some(c) = self.calls.get(&call) else {
                self.queues[queue].waiting.remove(&place);
                continue;
            };
            let ring_all = q.config.strategy == Strategy::RingAll;
            let held = self.held.contains(&call);
            let pick: Vec<AgentId> = q
                .available
                .iter()
                .map(|&(_, a)| a)
                .filter(|a| !held && !c.tried.iter().any(|t| t.0 == *a && t.1 > now))
                .take(if ring_all { usize::MAX } else { 1 })
                .collect();
            if pick.is_empty() {
                skipped += 1;
                cursor = Some(place);
                continue;
            }
            let callback = c.callback;
            let until = now + q.config.ring_timeout;
            self.queues[queue].waiting.remove(&place);
            if let Some(c) = self.calls.get_mut(&call) {
                c.state = CallState::Ringing {
                    agents: pick.clone(),
                    until,
                };
            }
            for a in pick {
                self.ring(call, a, (until, callback), now, out);
            }
        }
    }

    /// Rings `agent` for `call` until `until` (for a callback or not): the agent is ringing
    /// for it, its deadline is kept, and the phone is told.
    fn ring(
        &mut self,
        call: CallId,
        agent: AgentId,
        (until, callback): (Instant, bool),
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        self.seq += 1;
        self.agents[agent].last_rung = self.seq;
        self.set_state(agent, AgentState::Ringing, now, out);
        self.agents[agent].call = Some(call);
        self.ring_deadlines.insert((until, call, agent));
        out.push(RouterAction::Ring {
            call,
            agent,
            callback,
        });
    }

    /// A connected call ended: wrap-up, then what the agent asked for meanwhile.
    fn finish(
        &mut self,
        queue: QueueId,
        agent: AgentId,
        since: Instant,
        now: Instant,
        out: &mut Vec<RouterAction>,
    ) {
        self.queues[queue]
            .handle_times
            .record(now.saturating_duration_since(since));
        let a = &mut self.agents[agent];
        a.handled += 1;
        a.call = None;
        let wrap = self.queues[queue].config.wrap_up;
        if wrap.is_zero() {
            self.after_wrap_up(agent, now, out);
        } else {
            self.set_state(agent, AgentState::WrapUp, now, out);
            self.wrap_deadlines.insert((now + wrap, agent));
        }
    }

    fn after_wrap_up(&mut self, agent: AgentId, now: Instant, out: &mut Vec<RouterAction>) {
        let (next, why) = self.agents[agent]
            .after_call
            .take()
            .unwrap_or((Requested::Available, None));
        self.apply(agent, next, why, now, out);
    }

    fn timers(&mut self, now: Instant, out: &mut Vec<RouterAction>) {
        while let Some(&(at, call, agent)) = self.ring_deadlines.first() {
            if at > now {
                break;
            }
            self.ring_deadlines.pop_first();
            // Ring-no-answer: the agent is set not-ready (they are away), the call goes back to
            // its own place. Under ring-all nobody is to blame: they stay available.
            out.push(RouterAction::CancelRing {
                call,
                agent,
                elsewhere: false,
            });
            let ring_all = self
                .calls
                .get(&call)
                .is_some_and(|c| self.queues[c.queue].config.strategy == Strategy::RingAll);
            self.agents[agent].call = None;
            self.agents[agent].after_call = None;
            let next = if ring_all {
                AgentState::Available
            } else {
                AgentState::NotReady
            };
            // Back in line first (give_back marks the agent as tried), so the agent just
            // freed is not offered the same call before its retry time.
            self.give_back(call, agent, now, out);
            self.set_state(agent, next, now, out);
            if next == AgentState::NotReady {
                self.agents[agent].reason = Some(reason::RING_NO_ANSWER.into());
            }
        }
        while let Some(&(at, agent)) = self.wrap_deadlines.first() {
            if at > now {
                break;
            }
            self.wrap_deadlines.pop_first();
            if self.agents[agent].state == AgentState::WrapUp {
                self.after_wrap_up(agent, now, out);
            }
        }
        // A retry time is up: the agents who tried the call may be offered it again.
        let mut queues = Vec::new();
        while let Some(&(at, call)) = self.retry_deadlines.first() {
            if at > now {
                break;
            }
            self.retry_deadlines.pop_first();
            if let Some(c) = self.calls.get_mut(&call) {
                c.tried.retain(|t| t.1 > now);
                if !queues.contains(&c.queue) {
                    queues.push(c.queue);
                }
            }
        }
        for q in queues {
            self.dispatch(q, now, out);
        }
    }
}

fn new_queue(config: &QueueConfig) -> Queue {
    Queue {
        config: config.clone(),
        retired: false,
        waiting: BTreeMap::new(),
        available: BTreeSet::new(),
        staffed: 0,
        handle_times: HandleTimes::default(),
        recent_waits: RecentWaits::default(),
        audit: AuditFigures::default(),
    }
}

fn new_agent(config: &AgentConfig, now: Instant) -> Agent {
    Agent {
        id: config.id.clone(),
        retired: false,
        state: AgentState::Offline,
        since: now,
        registered: false,
        after_call: None,
        reason: Some(reason::NOT_REGISTERED.into()),
        queues: Vec::new(),
        keys: Vec::new(),
        handled: 0,
        last_rung: 0,
        call: None,
        skills: config.skills.clone(),
    }
}

/// The queues an agent with these skills serves: every one whose skills it has all of.
fn memberships(queues: &[Queue], skills: &BTreeMap<String, u32>) -> Vec<QueueId> {
    queues
        .iter()
        .enumerate()
        .filter(|(_, q)| !q.retired && q.config.skills.iter().all(|s| skills.contains_key(s)))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests;

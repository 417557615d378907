//! What the desk and the wall show: each agent's row, the card of the caller she rings for or
//! talks to, the live calls, and each queue's figures with its service level. Computed from
//! the routing core and the registrar as they stand. Pure: the driver passes in the time, the
//! wall clock, and what only it holds (a caller's From header, an agent's consultation).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::routing::{AgentState, Router, estimate};
use crate::sip::registrar::Registrar;
use crate::status::caller::{CallerCard, LIVE_CALLS_SHOWN, LiveCall, Variable};
use crate::status::{AgentCounts, AgentRow, ConsultRow, NextState, QueueRow, WaitEstimateRow};

/// The service level counts the callers who left a queue within this window.
pub const SERVICE_WINDOW: Duration = Duration::from_secs(3600);

/// Per queue, the callers who left it within the last hour: when, and whether an agent
/// answered within the queue's `service_level_s`.
#[derive(Debug, Default)]
pub struct ServiceLevels {
    served: Vec<VecDeque<(Instant, bool)>>,
    thresholds: Vec<Duration>,
}

impl ServiceLevels {
    /// One threshold per queue, in the routing core's queue order.
    pub fn new(thresholds: Vec<Duration>) -> ServiceLevels {
        ServiceLevels {
            served: vec![VecDeque::new(); thresholds.len()],
            thresholds,
        }
    }

    /// Queue `q`'s threshold (a queue added by a reload comes last).
    pub fn set(&mut self, q: usize, threshold: Duration) {
        if self.thresholds.len() <= q {
            self.thresholds.resize(q + 1, Duration::ZERO);
            self.served.resize(q + 1, VecDeque::new());
        }
        self.thresholds[q] = threshold;
    }

    /// Whether a caller who waited `waited` in queue `q` was answered in time.
    pub fn in_time(&self, q: usize, waited: Duration) -> bool {
        waited
            <= self
                .thresholds
                .get(q)
                .copied()
                .unwrap_or(Duration::from_secs(20))
    }

    /// A caller left queue `q`, answered in time or not.
    pub fn served(&mut self, q: usize, in_time: bool, now: Instant) {
        let Some(list) = self.served.get_mut(q) else {
            return;
        };
        while list
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > SERVICE_WINDOW)
        {
            list.pop_front();
        }
        list.push_back((now, in_time));
    }

    /// The share of the last hour's callers answered in time; none before the first.
    pub fn level(&self, q: usize, now: Instant) -> Option<f64> {
        let (mut all, mut in_time) = (0usize, 0usize);
        for (_, ok) in self
            .served
            .get(q)?
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= SERVICE_WINDOW)
        {
            all += 1;
            in_time += usize::from(*ok);
        }
        (all > 0).then(|| in_time as f64 / all as f64)
    }

    /// The wait within which an answer counts, in seconds (20 for an unknown queue).
    pub fn threshold_s(&self, q: usize) -> u64 {
        self.thresholds.get(q).map_or(20, Duration::as_secs)
    }
}

/// What the driver knows of a caller in a queue or with an agent.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub call_id: &'a str,
    pub queue: &'a str,
    pub entered: Instant,
    /// Their number as the line saw it, and their INVITE's From header (for the name).
    pub number: &'a str,
    pub from: Option<&'a str>,
    pub path: &'a [String],
    pub variables: &'a [(String, String)],
    /// An agent calls them back.
    pub callback: bool,
    pub transferred_by: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// The callers the driver holds, by the routing core's call id.
pub trait Callers {
    fn caller(&self, call: u64) -> Option<Caller<'_>>;
    /// The calls in a queue or with an agent that the wall lists (not callbacks).
    fn live(&self) -> Vec<u64>;
}

/// The agents and queues as the desk and the wall see them.
pub struct View<'a, C: Callers> {
    pub router: &'a Router,
    pub registrar: &'a Registrar,
    /// Agents with a phone that answers when asked.
    pub reachable: &'a HashSet<usize>,
    pub ids: &'a [String],
    pub names: &'a [String],
    pub queue_names: &'a [String],
    /// The queues the config still has (a removed one lingers in the router).
    pub queue_ids: &'a HashMap<String, usize>,
    pub levels: &'a ServiceLevels,
    pub callers: C,
}

impl<C: Callers> View<'_, C> {
    /// Agent `i`'s row; `wall` is the wall-clock time at `now`, `consulting` her call about
    /// her caller if she makes one.
    pub fn agent_row(
        &self,
        i: usize,
        now: Instant,
        wall: jiff::Timestamp,
        consulting: Option<ConsultRow>,
    ) -> Option<AgentRow> {
        let (state, since, call) = self.router.agent_state(i)?;
        let card = call.and_then(|c| self.caller_card(c, now));
        let (auth_failures, locked_out) = self.registrar.failures(i, now);
        let registered = self.registrar.is_registered(i);
        let unreachable = registered && !self.reachable.contains(&i);
        let ago = now.saturating_duration_since(since);
        let since_wall = wall
            .checked_sub(jiff::SignedDuration::from_millis(
                i64::try_from(ago.as_millis()).unwrap_or(i64::MAX),
            ))
            .unwrap_or(wall);
        Some(AgentRow {
            id: self.ids.get(i)?.clone(),
            name: self.names.get(i)?.clone(),
            state: state.as_str(),
            since: since_wall.to_string(),
            since_s: ago.as_secs(),
            reason: if unreachable {
                Some("unreachable".to_string())
            } else {
                self.router.agent_reason(i).map(str::to_string)
            },
            registered,
            unreachable,
            auth_failures,
            locked_out: locked_out.iter().map(ToString::to_string).collect(),
            call: card.as_ref().map(|c| c.call.clone()),
            next_state: self.router.next_state(i).map(|(r, why)| NextState {
                state: r.as_str(),
                reason: why.map(str::to_string),
            }),
            caller: card,
            consulting,
            wrap_up_left_s: (state == AgentState::WrapUp)
                .then(|| self.router.wrap_up_left(i, now))
                .flatten()
                .map(|d| d.as_secs_f64().ceil() as u64),
        })
    }

    /// The agents the desk lists: a removed agent stays until the call she was on ends.
    pub fn listed_agents(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.ids.len()).filter(|&i| {
            !self.router.is_retired(i)
                || self.router.agent_state(i).map(|s| s.0) != Some(AgentState::Offline)
        })
    }

    /// What the desk shows of the caller an agent rings for or talks to.
    pub fn caller_card(&self, call: u64, now: Instant) -> Option<CallerCard> {
        let c = self.callers.caller(call)?;
        let (name, uri) = crate::sip::dialog::caller_identity(c.from, c.number);
        let until = self.router.answered_at(call).unwrap_or(now);
        Some(CallerCard {
            call: c.call_id.to_string(),
            number: crate::sip::dialog::uri_user(&uri).to_string(),
            name,
            uri,
            queue: c.queue.to_string(),
            waited_s: until.saturating_duration_since(c.entered).as_secs(),
            steps: crate::status::caller::steps(c.path),
            variables: c
                .variables
                .iter()
                .map(|(name, value)| Variable {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            callback: c.callback,
            transferred_by: c.transferred_by.map(str::to_string),
            note: c.note.map(str::to_string),
            returning: crate::status::caller::returning(
                c.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        })
    }

    /// The callers in a queue or with an agent, longest waiting first (at most
    /// `LIVE_CALLS_SHOWN`).
    pub fn live_calls(&self, now: Instant) -> Vec<LiveCall> {
        let mut live: Vec<(Instant, u64)> = self
            .callers
            .live()
            .into_iter()
            .filter_map(|id| Some((self.callers.caller(id)?.entered, id)))
            .collect();
        live.sort();
        live.into_iter()
            .take(LIVE_CALLS_SHOWN)
            .filter_map(|(_, id)| {
                let card = self.caller_card(id, now)?;
                let agent = self.router.connected_agent(id);
                let state = if agent.is_some() {
                    "talking"
                } else if self.router.is_waiting(id) {
                    "waiting"
                } else {
                    "ringing"
                };
                Some(LiveCall {
                    call: card.call,
                    name: card.name,
                    number: card.number,
                    queue: card.queue,
                    state,
                    agent: agent.and_then(|a| self.names.get(a).cloned()),
                    waited_s: card.waited_s,
                    steps: card.steps,
                    returning: card.returning,
                })
            })
            .collect()
    }

    /// Each queue's figures for the wall and `GET /api/queues`.
    pub fn queue_rows(&self, now: Instant) -> Vec<QueueRow> {
        // Each queue's agents by state: one pass over the agents.
        let mut counts = vec![AgentCounts::default(); self.queue_names.len()];
        for i in 0..self.ids.len() {
            let Some((state, ..)) = self.router.agent_state(i) else {
                continue;
            };
            for &q in self.router.agent_queues(i) {
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
        self.queue_names
            .iter()
            .enumerate()
            .filter(|(_, name)| self.queue_ids.contains_key(*name))
            .filter_map(|(q, name)| {
                let f = self.router.queue_figures(q, now)?;
                let ewt = f
                    .average_handle
                    .filter(|_| f.staffed > 0)
                    .map(|aht| estimate::position_wait(f.waiting, f.staffed, aht).as_secs_f64());
                Some(QueueRow {
                    name: name.clone(),
                    waiting: f.waiting,
                    longest_wait_s: f.longest_wait.as_secs_f64(),
                    agents_available: f.available,
                    agents_logged_in: f.staffed,
                    ewt_s: ewt,
                    service_level: self.levels.level(q, now),
                    wait_estimates: self
                        .router
                        .wait_audit(q)
                        .map(|f| WaitEstimateRow {
                            scored: f.samples,
                            mean_abs_error_s: f.mean_abs_error(),
                            waited_over_1_5x: f.overruns,
                            baseline_better: f.baseline_better(),
                            figures: f.clone(),
                        })
                        .unwrap_or_default(),
                    agents: counts.get(q).cloned().unwrap_or_default(),
                    service_level_s: self.levels.threshold_s(q),
                })
            })
            .collect()
    }

    /// How many agents are in each state (those the router knows), for `/metrics`.
    pub fn agents_by_state(&self) -> Vec<(&'static str, usize)> {
        let mut by_state: Vec<(&'static str, usize)> = Vec::new();
        for i in 0..self.ids.len() {
            if let Some((s, ..)) = self.router.agent_state(i) {
                match by_state.iter_mut().find(|(n, _)| *n == s.as_str()) {
                    Some(e) => e.1 += 1,
                    None => by_state.push((s.as_str(), 1)),
                }
            }
        }
        by_state
    }
}

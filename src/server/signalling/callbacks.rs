//! Callbacks: a caller's place in line kept after they hang up — the queue's "press 1 to be
//! called back" offer, or a flow's callback node — stored in SQLite before the caller hears a
//! confirmation, and loaded again after a restart. When the entry reaches the head of its
//! queue and an agent is free, the agent's phone rings first (with the caller's context and
//! `X-Hotline-Callback`); once the agent answers, hearing ringback, we dial the caller's number
//! and bridge the two. A caller who does not answer is tried again later, a few times.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::agents::{Leg, LegKind, Waiting, add_leg_media, no_one_listens};
use super::{CallerContext, Signalling, SipCommand, Standing};
use crate::engine::announce;
use crate::routing::RouterEvent;
use crate::server::pacer::PacerCommand;
use crate::sip::link::Link;
use crate::sip::sdp;
use crate::store::{CallbackRequest, CallbackState};
use crate::switch::callbacks::{MAX_ATTEMPTS, RETRY_AFTER};
use crate::switch::{CallbackMiss, Dial, Party, Phase};

/// A waiting entry that is a callback.
pub(in crate::server) struct Callback {
    /// Its row in the `callbacks` table.
    pub row: i64,
    /// Calls to the caller that reached no one so far.
    pub attempts: u32,
    /// The leg dialling the caller, once the agent answered.
    pub caller_leg: Option<String>,
    /// Where the caller is dialled (the URI, and the trunk it goes through).
    pub dial: Option<crate::sip::dial::Target>,
}

/// The row of a callback that is no stored request (a desk's "call back now").
const NOT_STORED: i64 = 0;

impl Signalling {
    /// Puts every stored, unfinished callback back in line, oldest first (at startup).
    pub(super) fn load_callbacks(&mut self, now: Instant) {
        let pending = match self.shared.store.lock() {
            Ok(store) => store.pending_callbacks().map_err(|e| e.to_string()),
            Err(_) => Err("the store lock is poisoned".to_string()),
        };
        match pending {
            Ok(list) => {
                if !list.is_empty() {
                    tracing::info!(callbacks = list.len(), "stored callbacks back in line");
                }
                for p in list {
                    self.add_callback(p.row, p.request, p.attempts, now);
                }
            }
            Err(e) => tracing::error!("stored callbacks could not be read: {e}"),
        }
    }

    /// Where a waiting caller stands: callers ahead and the expected wait.
    pub(super) fn queue_status(&self, id: u64, now: Instant) -> Option<Standing> {
        let router = &self.agents.router;
        if !router.is_waiting(id) {
            return None;
        }
        Some(Standing {
            ahead: router.position(id)?,
            wait: router.expected_wait(id),
            baseline: router.baseline_wait(id, now),
        })
    }

    /// The waiting caller took the offer: their entry stays where it is, as a callback, not
    /// dialled before the caller has heard the confirmation and hung up.
    pub(super) fn keep_as_callback(&mut self, id: u64, row: i64, now: Instant) -> bool {
        if !self.agents.router.is_waiting(id) {
            return false;
        }
        let Some(w) = self.agents.waiting.get_mut(&id) else {
            return false;
        };
        if let Err(why) = self.shared.flows().callbacks.target(&w.context.caller) {
            tracing::warn!("callback offer taken but not allowed by [callbacks]: {why}");
            return false;
        }
        w.to_call = None;
        w.context.path.push("callback".into());
        w.callback = Some(Callback {
            row,
            attempts: 0,
            caller_leg: None,
            dial: None,
        });
        // Its caller hears the confirmation first: it is rung for once they hang up.
        self.route(RouterEvent::Hold { call: id }, now);
        self.route(RouterEvent::ToCallback { call: id }, now);
        true
    }

    /// A stored request joins its queue as a callback entry — when the `[callbacks]` policy
    /// allows dialling the caller; otherwise it is left to a human (state `manual`). While the
    /// caller is still on the line (hearing the confirmation) it keeps its place unrung.
    pub(super) fn add_callback(
        &mut self,
        row: i64,
        request: CallbackRequest,
        attempts: u32,
        now: Instant,
    ) {
        if let Err(why) = self.shared.flows().callbacks.target(&request.caller) {
            tracing::warn!(
                row,
                "callback not dialled, left for a human (state manual): {why}"
            );
            self.record_callback(row, CallbackState::Manual, attempts);
            return;
        }
        let caller_on_line = self.uas.contains(&request.call_id);
        let Some(&q) = self.agents.queue_ids.get(&request.queue) else {
            tracing::warn!(
                row,
                queue = request.queue,
                "callback kept in the database: no such queue in the config"
            );
            return;
        };
        let id = self.next_call;
        self.next_call += 1;
        let request_call_id = request.call_id.clone();
        self.agents.waiting.insert(
            id,
            Waiting {
                call_id: request.call_id,
                queue: request.queue,
                priority: 0,
                to_call: None,
                context: CallerContext {
                    caller: request.caller,
                    path: request.path,
                    variables: request.variables,
                    probe: false,
                },
                entered: now,
                connected: None,
                transferred_by: None,
                note: None,
                record: None,
                callback: Some(Callback {
                    row,
                    attempts,
                    caller_leg: None,
                    dial: None,
                }),
            },
        );
        if caller_on_line {
            self.agents.held_callbacks.insert(request_call_id, id);
            self.route(RouterEvent::Hold { call: id }, now);
        }
        self.route(
            RouterEvent::Enqueue {
                call: id,
                queue: q,
                priority: 0,
            },
            now,
        );
        self.route(RouterEvent::ToCallback { call: id }, now);
    }

    /// "Call back now" from the desk (a voicemail's follow-up): the agent's phone rings at
    /// once, then, answered, the caller is dialled, as for any callback. Refused unless the
    /// agent is ready for the queue and `[callbacks]` allows dialling the caller. Nothing is
    /// stored (the follow-up the agent took is its record), and an unreachable caller is not
    /// tried again.
    pub(super) fn call_back_now(
        &mut self,
        agent: &str,
        caller: String,
        queue: &str,
        call_id: String,
        now: Instant,
    ) -> Result<(), String> {
        if let Err(why) = self.shared.flows().callbacks.target(&caller) {
            return Err(format!("hotline may not dial this caller: {why}"));
        }
        let Some(a) = self.agents.ids.iter().position(|id| id == agent) else {
            return Err("no such agent".into());
        };
        let Some(&q) = self.agents.queue_ids.get(queue) else {
            return Err(format!("no queue \"{queue}\" in the config"));
        };
        let id = self.next_call;
        self.next_call += 1;
        self.agents.waiting.insert(
            id,
            Waiting {
                call_id,
                queue: queue.to_string(),
                priority: u32::MAX,
                to_call: None,
                context: CallerContext {
                    caller,
                    path: Vec::new(),
                    variables: Vec::new(),
                    probe: false,
                },
                entered: now,
                connected: None,
                transferred_by: None,
                note: None,
                record: None,
                callback: Some(Callback {
                    row: NOT_STORED,
                    attempts: MAX_ATTEMPTS - 1,
                    caller_leg: None,
                    dial: None,
                }),
            },
        );
        self.route(
            RouterEvent::CallBackNow {
                call: id,
                queue: q,
                agent: a,
            },
            now,
        );
        if self.agents.router.agent_state(a).map(|s| s.2) == Some(Some(id)) {
            tracing::info!(agent, queue, "call back now: the agent's phone rings");
            Ok(())
        } else {
            self.agents.waiting.remove(&id);
            Err("be Ready, with your phone registered, for this queue's calls first".into())
        }
    }

    /// The agent answered a callback: they hear ringback while we look up the caller's number.
    pub(super) fn callback_agent_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agent: usize,
        agreed: sdp::Agreed,
        _now: Instant,
    ) {
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        add_leg_media(&self.shared, leg, &agreed, no_one_listens());
        let ringback = self
            .shared
            .flows()
            .prompts
            .frames(&[announce::RINGBACK.to_string()], agreed.law);
        let _ = self.shared.pacer.send(PacerCommand::Play {
            id: leg.media,
            items: ringback,
            looped: true,
            tag: 0,
        });
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return;
        };
        let caller = w.context.caller.clone();
        // Checked when the callback joined the line; checked again, never dialled verbatim.
        let target = self.shared.flows().callbacks.target(&caller).ok();
        if let (Some(t), Some(cb)) = (&target, w.callback.as_mut()) {
            cb.dial = Some(t.clone());
        }
        tracing::info!(
            agent = self.agents.ids[agent],
            caller,
            "agent answered a callback: dialling the caller"
        );
        let sip = self.shared.sip.clone();
        let transport = std::sync::Arc::clone(&self.transport);
        let dns = std::sync::Arc::clone(&self.dns);
        let open = target
            .as_ref()
            .and_then(|t| t.trunk.as_ref())
            .and_then(|r| self.open_link(&r.name));
        tokio::spawn(async move {
            let resolved = match target {
                Some(t) => {
                    let (proto, srv) = t
                        .trunk
                        .map(|r| (r.proto.clone(), r.srv_name()))
                        .unwrap_or_default();
                    let hop = super::trunks::Hop {
                        host: t.host,
                        port: t.port,
                        srv,
                        proto,
                    };
                    super::trunks::reach(transport, &dns, hop, open).await
                }
                None => None,
            };
            let _ = sip
                .send(SipCommand::CallbackResolved {
                    id: call,
                    target: resolved,
                })
                .await;
        });
    }

    /// The number of the line a call came in on, when it is one (`[lines]` by number).
    fn line_number(&self, call_id: &str) -> Option<String> {
        let line = match self.shared.store.lock() {
            Ok(store) => store.call(call_id).ok().flatten()?.line,
            Err(_) => return None,
        };
        self.shared.flows().callbacks.numbering.e164(&line)
    }

    /// Places the INVITE to the caller's number, while their agent waits.
    pub(super) fn dial_caller(
        &mut self,
        id: u64,
        target: Option<(SocketAddr, Link)>,
        now: Instant,
    ) {
        let Some(w) = self.agents.waiting.get(&id) else {
            return;
        };
        let Some(agent) = w
            .connected
            .as_ref()
            .and_then(|l| self.agents.legs.get(l))
            .map(|l| l.agent)
        else {
            return; // the agent hung up meanwhile
        };
        let (Some((target, link)), Some(how)) =
            (target, w.callback.as_ref().and_then(|c| c.dial.clone()))
        else {
            tracing::warn!(
                caller = w.context.caller,
                "cannot dial back: not a sip: URI with a reachable host"
            );
            return self.miss_callback(id, CallbackMiss::NotDialable, now);
        };
        let Some(socket) = self.shared.ports.open() else {
            tracing::warn!("cannot dial back: no RTP port free");
            return self.miss_callback(id, CallbackMiss::NoPort, now);
        };
        let made = w.callback.as_ref().map_or(0, |c| c.attempts);
        let uri = how.uri.clone();
        // A TCP connection is kept for the trunk's next requests.
        if let Some(trunk) = &how.trunk
            && link != Link::Udp
        {
            self.trunk_links.insert(trunk.name.clone(), (target, link));
        }
        let redirect = Some(crate::switch::Redirect {
            policy: std::sync::Arc::new(self.shared.flows().callbacks.clone()),
            host: how.host.clone(),
            port: how.port,
        });
        let mut dial = match &how.trunk {
            // Through a carrier: the line's own number (the one the caller dialled, else the
            // trunk's), in From and asserted, so the caller's phone shows who calls them
            // back; and the carrier's credentials.
            Some(trunk) => {
                let number = self
                    .line_number(&w.call_id)
                    .unwrap_or_else(|| trunk.caller_id.clone());
                let from = Party {
                    display: w.queue.clone(),
                    uri: trunk.uri(&number),
                };
                Dial {
                    assert_identity: true,
                    auth: trunk.auth.clone(),
                    redirect,
                    link,
                    ..Dial::to_address(&uri, target, from, None)
                }
            }
            None => {
                let from = Party {
                    display: w.queue.clone(),
                    uri: format!("sip:hotline@{}", self.shared.config.sip.domain),
                };
                Dial {
                    redirect,
                    ..Dial::to_address(&uri, target, from, None)
                }
            }
        };
        tracing::info!(uri, %target, "calling the caller back");
        let media = self.media_for(&mut dial, &socket);
        let leg_id = self.switch.call_back(id, made, dial, now);
        let user = Leg {
            call: id,
            agent,
            kind: LegKind::CallbackCaller,
            socket,
            media,
            peer: target,
        };
        self.agents.legs.insert(leg_id.clone(), user);
        if let Some(cb) = self
            .agents
            .waiting
            .get_mut(&id)
            .and_then(|w| w.callback.as_mut())
        {
            cb.caller_leg = Some(leg_id);
        }
    }

    /// The call to the caller was not made, or is stopped: the switch counts the attempt.
    fn miss_callback(&mut self, id: u64, why: CallbackMiss, now: Instant) {
        let made = self
            .agents
            .waiting
            .get(&id)
            .and_then(|w| w.callback.as_ref())
            .map_or(0, |c| c.attempts);
        self.switch.callback_missed(id, made, why, now);
    }

    /// The caller picked up: bridge them to the waiting agent; the callback is done.
    pub(super) fn caller_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agreed: sdp::Agreed,
        attempts: u32,
    ) {
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return;
        };
        let Some(agent_media) = w
            .connected
            .as_ref()
            .and_then(|l| self.agents.legs.get(l))
            .map(|l| l.media)
        else {
            return;
        };
        let Some(cb) = w.callback.as_mut() else {
            return;
        };
        cb.attempts = attempts;
        let row = cb.row;
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        add_leg_media(&self.shared, leg, &agreed, no_one_listens());
        let _ = self.shared.pacer.send(PacerCommand::Bridge {
            a: agent_media,
            b: leg.media,
        });
        tracing::info!(row, attempts, "the caller answered the callback: bridged");
        self.record_callback(row, CallbackState::Done, attempts);
    }

    /// Nobody took the call to the caller (the switch counted the attempt, `why` the last
    /// miss): the agent is released, and the callback goes back in line later, or, `given_up`,
    /// is marked failed.
    pub(super) fn caller_unreached(
        &mut self,
        call: u64,
        attempts: u32,
        why: CallbackMiss,
        given_up: bool,
        now: Instant,
    ) {
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return;
        };
        let agent_leg = w.connected.take();
        let Some(cb) = w.callback.as_mut() else {
            return;
        };
        cb.attempts = attempts;
        cb.caller_leg = None;
        let row = cb.row;
        if let Some(l) = agent_leg {
            self.hang_up_leg(&l, now);
        }
        self.route(RouterEvent::Ended { call }, now);
        if given_up {
            tracing::warn!(
                row,
                attempts,
                ?why,
                "callback given up: the caller was never reached"
            );
            self.agents.waiting.remove(&call);
            self.record_callback(row, CallbackState::Failed, attempts);
        } else {
            tracing::info!(
                row,
                attempts,
                ?why,
                retry_s = RETRY_AFTER.as_secs(),
                "callback back in line later"
            );
            self.record_callback(row, CallbackState::Pending, attempts);
        }
    }

    /// An unanswered callback's retry is due: it joins the line again.
    pub(super) fn retry_callback(&mut self, id: u64, now: Instant) {
        let Some(w) = self.agents.waiting.get(&id) else {
            return;
        };
        let Some(&q) = self.agents.queue_ids.get(&w.queue) else {
            return;
        };
        let priority = w.priority;
        self.route(
            RouterEvent::Enqueue {
                call: id,
                queue: q,
                priority,
            },
            now,
        );
        self.route(RouterEvent::ToCallback { call: id }, now);
    }

    /// One of a callback's legs hung up (its leg already forgotten): end the other.
    pub(super) fn callback_leg_hung_up(&mut self, call: u64, now: Instant) {
        let Some(w) = self.agents.waiting.get(&call) else {
            return;
        };
        let agent_leg = w.connected.clone();
        let caller_leg = w.callback.as_ref().and_then(|c| c.caller_leg.clone());
        let agent_here = agent_leg
            .as_ref()
            .is_some_and(|l| self.agents.legs.contains_key(l));
        let caller_state = caller_leg
            .as_ref()
            .filter(|l| self.agents.legs.contains_key(*l))
            .map(|l| self.switch.phase(l) == Some(Phase::Up));
        match (agent_here, caller_state) {
            // The caller hung up after talking: the agent's side ends too.
            (true, _) => {
                if let Some(l) = agent_leg {
                    self.hang_up_leg(&l, now);
                }
                self.callback_over(call, now);
            }
            // The agent hung up after talking to the caller.
            (false, Some(true)) => {
                if let Some(l) = caller_leg {
                    self.hang_up_leg(&l, now);
                }
                self.callback_over(call, now);
            }
            // The agent gave up before the caller answered (or was dialled): try again later.
            (false, _) => self.miss_callback(call, CallbackMiss::AgentLeft, now),
        }
    }

    fn callback_over(&mut self, call: u64, now: Instant) {
        tracing::info!("callback call ended");
        self.agents.waiting.remove(&call);
        self.route(RouterEvent::Ended { call }, now);
    }

    /// Writes a callback's progress to the store, off the signalling task.
    fn record_callback(&self, row: i64, state: CallbackState, attempts: u32) {
        if row == NOT_STORED {
            return;
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let result = match shared.store.lock() {
                Ok(s) => s
                    .set_callback_state(row, state, attempts)
                    .map_err(|e| e.to_string()),
                Err(_) => Err("the store lock is poisoned".to_string()),
            };
            match result {
                // Its follow-up may have closed (done, failed) or become a person's (manual).
                Ok(()) => shared
                    .events
                    .publish(crate::status::events::Event::FollowUps),
                Err(e) => tracing::error!(row, "callback state NOT saved: {e}"),
            }
        });
    }
}

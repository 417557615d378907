//! Calling a caller back: once their agent has answered (and hears ringback), the caller's
//! number is dialled. It may ring for `CALLER_RING`; a caller who does not take it is tried
//! again `RETRY_AFTER` later, and after `MAX_ATTEMPTS` calls the callback is given up, with the
//! reason of the last miss. The switch counts the attempts of the call it places; how many
//! were made before (stored, across restarts) its user tells it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Deadline, Dial, Event, Output, Phase, Switch, Unreached};

/// Calls to the caller before a callback is given up.
pub const MAX_ATTEMPTS: u32 = 3;
/// An unanswered callback is tried again after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(120);
/// How long the caller's phone may ring.
pub const CALLER_RING: Duration = Duration::from_secs(30);

/// Why a call to the caller reached nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMiss {
    /// Their phone refused (busy, declined...).
    Refused(u16),
    /// It rang for `CALLER_RING` unanswered.
    NoAnswer,
    /// It was never reached, or answered with nothing usable.
    Unreached(Unreached),
    /// Their number is not one hotline may dial, or its host does not resolve.
    NotDialable,
    /// No RTP port was free.
    NoPort,
    /// The agent hung up before the caller answered.
    AgentLeft,
}

/// The callbacks whose call to the caller is placed.
#[derive(Default)]
pub(super) struct Callbacks {
    /// Each leg's callback, and the calls made before it.
    by_leg: HashMap<String, (u64, u32)>,
    leg_of: HashMap<u64, String>,
}

impl Switch {
    /// Dials the caller of callback `id`, after `made` calls to them that reached nobody.
    /// Returns the leg.
    pub fn call_back(&mut self, id: u64, made: u32, dial: Dial, now: Instant) -> String {
        let leg = self.place(dial, now);
        self.callbacks.by_leg.insert(leg.clone(), (id, made));
        self.callbacks.leg_of.insert(id, leg.clone());
        self.at(now + CALLER_RING, Deadline::CallbackRing(leg.clone()));
        leg
    }

    /// The call to the caller of callback `id` was not made, or its user stopped it (the
    /// agent left): it counts as an attempt; a ringing leg is cancelled.
    pub fn callback_missed(&mut self, id: u64, made: u32, why: CallbackMiss, now: Instant) {
        if let Some(leg) = self.callbacks.leg_of.remove(&id) {
            self.callbacks.by_leg.remove(&leg);
            self.hang_up(&leg, now);
        }
        self.missed(id, made + 1, why, now);
    }

    /// The attempt counted: later, or given up.
    fn missed(&mut self, id: u64, attempts: u32, why: CallbackMiss, now: Instant) {
        let event = if attempts >= MAX_ATTEMPTS {
            Event::CallbackFailed { id, attempts, why }
        } else {
            self.at(now + RETRY_AFTER, Deadline::CallbackRetry(id));
            Event::CallbackLater {
                id,
                attempts,
                why,
                retry_in: RETRY_AFTER,
            }
        };
        self.out.push_back(Output::Event(event));
    }

    /// The caller's phone rang for `CALLER_RING`: stop it.
    pub(super) fn callback_rang_out(&mut self, leg: &str, now: Instant) {
        if self.phase(leg) != Some(Phase::Ringing) {
            return;
        }
        let Some((id, made)) = self.callbacks.by_leg.remove(leg) else {
            return;
        };
        self.callbacks.leg_of.remove(&id);
        self.cancel(leg, false, now);
        self.missed(id, made + 1, CallbackMiss::NoAnswer, now);
    }

    /// A callback's retry time has come: its user puts it back in line.
    pub(super) fn callback_due(&mut self, id: u64) {
        self.out.push_back(Output::Event(Event::CallbackDue { id }));
    }

    /// What a leg's event means for its callback, if it is one's call to the caller.
    pub(super) fn callback_event(&mut self, event: Event, now: Instant) -> Option<Event> {
        let Some(leg) = event.of_a_leg() else {
            return Some(event);
        };
        let Some(&(id, made)) = self.callbacks.by_leg.get(&leg) else {
            return Some(event);
        };
        let miss = match event {
            Event::Answered { agreed, .. } => {
                return Some(Event::CallbackAnswered {
                    id,
                    leg,
                    agreed,
                    attempts: made + 1,
                });
            }
            Event::Refused { code, .. } => CallbackMiss::Refused(code),
            Event::Unreached { why, .. } => CallbackMiss::Unreached(why),
            closed @ Event::Closed { .. } => {
                self.callbacks.by_leg.remove(&leg);
                if self.callbacks.leg_of.get(&id) == Some(&leg) {
                    self.callbacks.leg_of.remove(&id);
                }
                return Some(closed);
            }
            other => return Some(other),
        };
        self.callbacks.by_leg.remove(&leg);
        self.callbacks.leg_of.remove(&id);
        self.missed(id, made + 1, miss, now);
        None
    }
}

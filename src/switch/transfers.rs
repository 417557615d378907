//! A transfer: a flow's `transfer` node hands the caller to a live human elsewhere (a SIP URI
//! the validated flow names). The target rings for the node's `ring_timeout_s`; answered, the
//! user bridges the two. Declined, unreachable, or not answered in time: the transfer fails
//! with its reason and the flow's `on_failure` takes the caller on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Deadline, Dial, Event, Phase, Switch, Unreached};

/// Why a transfer did not connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferFailure {
    /// The target refused (busy, declined, not found...).
    Refused(u16),
    /// It rang for the whole `ring_timeout_s`.
    NoAnswer,
    /// It was never reached, or answered with nothing usable.
    Unreached(Unreached),
}

/// The transfers whose leg is placed: the caller's call each is for.
#[derive(Default)]
pub(super) struct Transfers {
    call_of: HashMap<String, u64>,
}

impl Switch {
    /// Dials a transfer target for `call`; it may ring for `ring_timeout`. Returns its leg.
    pub fn transfer(
        &mut self,
        call: u64,
        dial: Dial,
        ring_timeout: Duration,
        now: Instant,
    ) -> String {
        let leg = self.place(dial, now);
        self.transfers.call_of.insert(leg.clone(), call);
        self.at(now + ring_timeout, Deadline::TransferRing(leg.clone()));
        leg
    }

    /// The target rang for its whole time: stop it; the transfer failed.
    pub(super) fn transfer_rang_out(&mut self, leg: &str, now: Instant) {
        let Some(&call) = self.transfers.call_of.get(leg) else {
            return;
        };
        if self.phase(leg) != Some(Phase::Ringing) {
            return;
        }
        self.cancel(leg, false, now);
        self.transfers.call_of.remove(leg);
        self.out
            .push_back(super::Output::Event(Event::TransferFailed {
                call,
                why: TransferFailure::NoAnswer,
            }));
    }

    /// What a leg's event means for its transfer, if it is one's.
    pub(super) fn transfer_event(&mut self, event: Event) -> Option<Event> {
        let Some(leg) = event.of_a_leg() else {
            return Some(event);
        };
        let Some(&call) = self.transfers.call_of.get(&leg) else {
            return Some(event);
        };
        match event {
            Event::Answered { agreed, .. } => Some(Event::TransferAnswered { call, leg, agreed }),
            Event::Refused { code, .. } => {
                self.transfers.call_of.remove(&leg);
                Some(Event::TransferFailed {
                    call,
                    why: TransferFailure::Refused(code),
                })
            }
            Event::Unreached { why, .. } => {
                self.transfers.call_of.remove(&leg);
                Some(Event::TransferFailed {
                    call,
                    why: TransferFailure::Unreached(why),
                })
            }
            closed @ Event::Closed { .. } => {
                self.transfers.call_of.remove(&leg);
                Some(closed)
            }
            other => Some(other),
        }
    }
}

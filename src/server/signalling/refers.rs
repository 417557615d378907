//! An agent passes a caller on — from her phone, by a REFER (a blind transfer, RFC 3515),
//! or from the desk's transfer button — to another queue (`sip:billing@…`, or `billing`),
//! another agent (`sip:bob@…`, or `bob`), or a number outside (`tel:+34600111222`,
//! `sip:600111222@…`, or `600111222`) that the `[callbacks]` dial policy allows — through
//! the trunk whose numbers take it — and nothing else.
//!
//! To a queue, the caller hears the hold music again and waits there at the place their
//! first arrival gave them; the agent wraps up; the next agent is told who passed the caller
//! on. To an agent, that agent is rung (if available) while the caller hears the hold music;
//! he answers and has the caller, she wraps up. He declines or does not answer within the
//! queue's ring time: the caller is hers again — or, if she hung up meanwhile, first in line
//! in their queue. Never a dropped call. A number outside rings the same way (for
//! `OUTSIDE_RING`): answered, the caller talks to it and she wraps up; busy, declined or
//! unanswered, the caller is hers again.
//!
//! The phone hears how it went as a NOTIFY: `100` while the agent rings, `200` once the
//! caller waits in the queue or the agent answered, `404` for no such queue or agent, `480`
//! when nobody serves the queue, the agent is not available or did not take the call (the
//! caller then stays with her), `603` for a call that is not a caller's (a callback, a
//! transfer target's) or a transfer to herself. The desk hears the same as JSON; a transfer
//! from the desk hangs up her phone once the caller is passed on.

use std::time::{Duration, Instant};

use super::Signalling;
use super::agents::LegKind;
use crate::engine::session::Heard;
use crate::routing::{AgentId, RouterEvent};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;

/// The agent passing her caller on, while whoever she passes them to rings.
pub(in crate::server) struct Passer {
    /// Her leg: told how it goes, and the caller's way back.
    pub leg: String,
    pub agent: AgentId,
    /// Her phone hung up meanwhile.
    pub gone: bool,
    /// Asked by REFER (her phone is told by NOTIFY), else from the desk (her phone is hung
    /// up once the caller is taken).
    pub refer: bool,
}

/// A caller one agent passes on to another, while he rings; or, for an attended transfer,
/// while she calls him about them first.
pub(in crate::server) struct Pass {
    pub by: Passer,
    pub to: AgentId,
    pub consult: Option<super::consults::Consult>,
}

/// How long a number outside an agent passes her caller on to may ring.
pub(super) const OUTSIDE_RING: Duration = Duration::from_secs(30);

/// A caller passed on: to wait in a queue, while an agent rings, or while a number outside
/// does (`tel:+34…`, as the record shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    Queue(String),
    Ringing(String),
    Dialling(String),
}

/// Why a caller was not passed on: the SIP status the phone hears, and the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPassed {
    pub code: u16,
    pub why: String,
}

impl NotPassed {
    pub(super) fn new(code: u16, why: impl Into<String>) -> NotPassed {
        NotPassed {
            code,
            why: why.into(),
        }
    }

    pub(super) fn reason(&self) -> &'static str {
        match self.code {
            403 => "Forbidden",
            404 => "Not Found",
            480 => "Temporarily Unavailable",
            486 => "Busy Here",
            _ => "Declined",
        }
    }
}

/// What a transfer to `to` outside asks the dial policy for: only a number, dialled as a
/// number (`tel:`) whatever host the phone wrote after it (its own registrar, usually),
/// through the trunk or gateway the policy names for it. A name that is no queue or agent
/// is not dialled anywhere (a SIP URI at hotline's own host would only come back to it).
pub(super) fn dialled_as(to: &str) -> Option<String> {
    let name = if to.contains(':') {
        crate::sip::dialog::uri_user(to)
    } else {
        to
    };
    let number = name.chars().any(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.() ".contains(c));
    number.then(|| format!("tel:{}", name.replace(' ', "")))
}

impl Signalling {
    /// A REFER from a phone we placed a call to: with `Replaces`, an attended transfer.
    pub(super) fn referred(
        &mut self,
        leg_id: &str,
        to: &str,
        replaces: Option<&crate::sip::replaces::Replaces>,
        now: Instant,
    ) {
        if let Some(replaces) = replaces {
            return match self.replaced(leg_id, replaces, now) {
                Ok(()) => self.switch.notify(leg_id, 200, "OK", now),
                Err(e) => {
                    tracing::info!(to, why = e.why, "an attended transfer refused");
                    self.switch.notify(leg_id, e.code, e.reason(), now)
                }
            };
        }
        match self.pass_on(leg_id, to, true, None, now) {
            Ok(Passed::Queue(_)) => self.switch.notify(leg_id, 200, "OK", now),
            Ok(Passed::Ringing(_) | Passed::Dialling(_)) => {
                self.switch.notify(leg_id, 100, "Trying", now)
            }
            Err(e) => {
                tracing::info!(to, why = e.why, "a transfer refused");
                let reason = e.reason();
                self.switch.notify(leg_id, e.code, reason, now)
            }
        }
    }

    /// The desk's transfer button: the agent's current caller to `to` (a queue or an
    /// agent, by name, or a number).
    pub(super) fn desk_transfer(
        &mut self,
        agent: &str,
        to: &str,
        note: Option<String>,
        now: Instant,
    ) -> Result<Passed, NotPassed> {
        let Some(a) = self.agents.ids.iter().position(|id| id == agent) else {
            return Err(NotPassed::new(404, "no such agent"));
        };
        let leg = self
            .agents
            .router
            .agent_state(a)
            .and_then(|s| s.2)
            .filter(|&call| self.agents.router.connected_agent(call) == Some(a))
            .and_then(|call| self.agents.waiting.get(&call))
            .and_then(|w| w.connected.clone());
        let Some(leg) = leg else {
            return Err(NotPassed::new(603, "you are not talking to a caller"));
        };
        let passed = self.pass_on(&leg, to, false, note, now)?;
        if let Passed::Queue(_) = passed {
            // The caller waits elsewhere: her call is over.
            self.hang_up_leg(&leg, now);
        }
        Ok(passed)
    }

    /// Passes the caller of the agent's leg `leg_id` on to `to` (a Refer-To URI, or what
    /// the desk typed): a queue or an agent by name, else a number the dial policy allows.
    fn pass_on(
        &mut self,
        leg_id: &str,
        to: &str,
        refer: bool,
        note: Option<String>,
        now: Instant,
    ) -> Result<Passed, NotPassed> {
        let to = to.trim();
        let name = if to.contains(':') {
            crate::sip::dialog::uri_user(to)
        } else {
            to
        };
        let user = self
            .agents
            .legs
            .get(leg_id)
            .map(|l| (l.call, l.agent, l.kind));
        let Some((call, agent, LegKind::Agent)) = user else {
            return Err(NotPassed::new(603, "not an agent's call"));
        };
        let by = self.agents.ids.get(agent).cloned().unwrap_or_default();
        let callers = self.agents.waiting.get(&call).is_some_and(|w| {
            w.connected.as_deref() == Some(leg_id) && w.to_call.is_some() && w.callback.is_none()
        });
        let passing =
            self.agents.passes.contains_key(&call) || self.agents.transfers.contains_key(&call);
        if !callers || passing {
            return Err(NotPassed::new(603, "no caller to pass on"));
        }
        let queue = self
            .agents
            .queue_ids
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, &q)| (n.clone(), q));
        let Some((queue, q)) = queue else {
            let target = self
                .agents
                .ids
                .iter()
                .position(|id| id.eq_ignore_ascii_case(name));
            let Some(target) = target else {
                return self.pass_outside(leg_id, call, (agent, by), to, refer, note);
            };
            return self.pass_to_agent(leg_id, call, (agent, by), target, (refer, note), now);
        };
        let staffed = self
            .agents
            .router
            .queue_figures(q, now)
            .is_some_and(|f| f.staffed > 0);
        if !staffed {
            return Err(NotPassed::new(480, format!("nobody serves {queue}")));
        }
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return Err(NotPassed::new(603, "no caller to pass on"));
        };
        tracing::info!(
            agent = by,
            from = w.queue,
            to = queue,
            caller_call = w.call_id,
            "the agent passed the caller on to another queue"
        );
        w.queue = queue.clone();
        w.connected = None;
        w.transferred_by = Some(by.clone());
        w.note.clone_from(&note);
        if let Some(to_call) = &w.to_call {
            let _ = to_call.send(CallInput::Heard(Heard::Transferred {
                queue: queue.clone(),
                by,
                note,
            }));
        }
        let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: call });
        self.route(RouterEvent::Transfer { call, queue: q }, now);
        Ok(Passed::Queue(queue))
    }

    /// Rings `target` for the caller `leg_id`'s agent passes on, or says why not.
    fn pass_to_agent(
        &mut self,
        leg_id: &str,
        call: u64,
        (from, by): (AgentId, String),
        target: AgentId,
        (refer, note): (bool, Option<String>),
        now: Instant,
    ) -> Result<Passed, NotPassed> {
        let name = self.agents.ids[target].clone();
        if target == from {
            return Err(NotPassed::new(603, "a transfer to yourself"));
        }
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return Err(NotPassed::new(603, "no caller to pass on"));
        };
        // The INVITE to his phone (and his desk) says who passed the caller on, and why.
        let before = (w.transferred_by.replace(by.clone()), w.note.clone());
        w.note.clone_from(&note);
        self.agents.passes.insert(
            call,
            Pass {
                by: Passer {
                    leg: leg_id.to_string(),
                    agent: from,
                    gone: false,
                    refer,
                },
                to: target,
                consult: None,
            },
        );
        self.route(
            RouterEvent::PassTo {
                call,
                agent: target,
            },
            now,
        );
        if self.agents.router.passing_to(call) != Some(target) {
            self.agents.passes.remove(&call);
            if let Some(w) = self.agents.waiting.get_mut(&call) {
                (w.transferred_by, w.note) = before;
            }
            return Err(NotPassed::new(480, format!("{name} is not available")));
        }
        tracing::info!(
            agent = by,
            to = name,
            "the agent passes the caller on to another agent"
        );
        let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: call });
        if let Some(to_call) = self
            .agents
            .waiting
            .get(&call)
            .and_then(|w| w.to_call.as_ref())
        {
            let _ = to_call.send(CallInput::Heard(Heard::Passing {
                to: format!("agent:{name}"),
                by,
                note,
            }));
        }
        Ok(Passed::Ringing(name))
    }

    /// Dials the number outside `to` names for the caller `leg_id`'s agent passes on, if
    /// the dial policy allows it, or says why not.
    fn pass_outside(
        &mut self,
        leg_id: &str,
        call: u64,
        (from, by): (AgentId, String),
        to: &str,
        refer: bool,
        note: Option<String>,
    ) -> Result<Passed, NotPassed> {
        let Some(uri) = dialled_as(to) else {
            return Err(NotPassed::new(
                404,
                "no queue, agent or number by that name",
            ));
        };
        let (target, shown) = self.outside_target(&uri)?;
        let Some(w) = self.agents.waiting.get(&call) else {
            return Err(NotPassed::new(603, "no caller to pass on"));
        };
        let Some(to_call) = w.to_call.clone() else {
            return Err(NotPassed::new(603, "no caller to pass on"));
        };
        tracing::info!(
            agent = by,
            to = shown,
            caller_call = w.call_id,
            "the agent passes the caller on to a number outside"
        );
        self.agents.transfers.insert(
            call,
            super::transfers::Transfer {
                to_call: to_call.clone(),
                call_id: w.call_id.clone(),
                uri: target.uri.clone(),
                ring_timeout: OUTSIDE_RING,
                context: w.context.clone(),
                leg: None,
                next_hop: (target.host.clone(), target.port),
                by: Some(super::transfers::PassedBy {
                    passer: Passer {
                        leg: leg_id.to_string(),
                        agent: from,
                        gone: false,
                        refer,
                    },
                    shown: shown.clone(),
                    consult: None,
                }),
            },
        );
        let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: call });
        // The note stays home: it is for the record, not for a carrier.
        let _ = to_call.send(CallInput::Heard(Heard::Passing {
            to: shown.clone(),
            by,
            note,
        }));
        self.resolve_transfer(call, target.host, target.port, target.trunk);
        Ok(Passed::Dialling(shown))
    }

    /// Where a number outside (`tel:…`) an agent passes or calls her caller on to is dialled,
    /// as the dial policy allows (else 403), and how the record shows it (`tel:+34…`).
    pub(super) fn outside_target(
        &self,
        uri: &str,
    ) -> Result<(crate::sip::dial::Target, String), NotPassed> {
        let flows = self.shared.flows();
        let policy = &flows.callbacks;
        let target = policy
            .target(uri)
            .map_err(|why| NotPassed::new(403, format!("not dialled: {why}")))?;
        let shown = policy
            .numbering
            .e164(uri)
            .map_or_else(|| target.uri.clone(), |n| format!("tel:{n}"));
        Ok((target, shown))
    }

    /// After the routing core moved: each caller being passed on whose ring is over is the
    /// new agent's (his phone answered), or comes back.
    pub(super) fn passes_settled(&mut self, now: Instant) {
        let settled: Vec<u64> = self
            .agents
            .passes
            .keys()
            .copied()
            .filter(|&c| self.agents.router.passing_to(c).is_none())
            .collect();
        for call in settled {
            let Some(pass) = self.agents.passes.remove(&call) else {
                continue;
            };
            if pass.consult.is_some() {
                // Handed over, it would be gone already: the consultation is over.
                self.consult_over(call, pass, now);
                continue;
            }
            match self.agents.router.connected_agent(call) {
                // The caller's leg is bridged to his by `agent_answered`.
                Some(a) if a == pass.to && pass.by.refer => {
                    self.switch.notify(&pass.by.leg, 200, "OK", now)
                }
                Some(a) if a == pass.to => self.hang_up_leg(&pass.by.leg, now),
                Some(a) if a == pass.by.agent => self.pass_failed(call, pass, now),
                // The caller left meanwhile.
                _ => {}
            }
        }
    }

    /// The agent passed to did not take the caller: they go back to the agent who passed
    /// them on, or, if she is gone, first in line in their queue.
    fn pass_failed(&mut self, call: u64, pass: Pass, now: Instant) {
        let to = self.agents.ids[pass.to].clone();
        let status = (480, "Temporarily Unavailable");
        self.give_back(call, &pass.by, status, &to, now);
    }

    /// Whom the caller was passed on to (`to`) did not take them: back to the agent who
    /// passed them on, or, if she is gone, first in line in their queue. Her phone hears
    /// `status` when she asked by REFER.
    pub(super) fn give_back(
        &mut self,
        call: u64,
        passer: &Passer,
        status: (u16, &str),
        to: &str,
        now: Instant,
    ) {
        let by = self
            .agents
            .ids
            .get(passer.agent)
            .cloned()
            .unwrap_or_default();
        if passer.refer && !passer.gone {
            self.switch.notify(&passer.leg, status.0, status.1, now);
        }
        let mode = match self.agents.waiting.get(&call) {
            Some(w) => w
                .record
                .unwrap_or_else(|| self.agents.record_mode(&w.queue)),
            None => return,
        };
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return;
        };
        let leg = self.agents.legs.get(&passer.leg).filter(|_| !passer.gone);
        match (leg, &w.to_call) {
            (Some(leg), Some(to_call)) => {
                tracing::info!(
                    agent = by,
                    to,
                    "not taken: the caller is back with the agent who passed them on"
                );
                let _ = self.shared.pacer.send(PacerCommand::Bridge {
                    a: call,
                    b: leg.media,
                });
                let _ = to_call.send(CallInput::Heard(Heard::AgentAnswered {
                    agent: by,
                    record: mode,
                }));
            }
            _ => {
                tracing::info!(
                    agent = by,
                    to,
                    "not taken, and the agent who passed the caller on is gone: first in line again"
                );
                w.connected = None;
                if let Some(to_call) = &w.to_call {
                    let _ = to_call.send(CallInput::Heard(Heard::Requeued {
                        queue: w.queue.clone(),
                    }));
                }
                self.route(RouterEvent::Requeue { call }, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dialled_as;

    #[test]
    fn a_number_is_dialled_as_a_number_whatever_host_follows_it() {
        let tel = |s: &str| Some(s.to_string());
        assert_eq!(
            dialled_as("sip:+34600111222@hotline.example;user=phone"),
            tel("tel:+34600111222")
        );
        assert_eq!(dialled_as("+34 600 111 222"), tel("tel:+34600111222"));
        assert_eq!(dialled_as("tel:600-111-222"), tel("tel:600-111-222"));
        // A name is no number: not dialled.
        assert_eq!(dialled_as("sip:frontdesk@pbx.example.com"), None);
        assert_eq!(dialled_as("room101"), None);
        assert_eq!(dialled_as("sip:@x"), None);
    }
}

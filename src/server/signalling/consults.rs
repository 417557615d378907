//! An attended transfer (RFC 5589 §7): an agent talking to a caller dials a colleague by
//! name from her phone (`bob`). Her phone puts the caller on hold (they hear the hold
//! music); his phone rings, showing her and carrying the caller's context; he answers and
//! they talk while the caller waits with her. Then she either transfers — her phone's REFER
//! on the caller's call with `Replaces` naming the call to him, or simply hanging up on the
//! caller — and the caller is his (she wraps up, we hang up her call to him, the record
//! says she passed the caller on), or one of them hangs up that call and the caller is
//! hers again when she takes them off hold.
//!
//! He declines, is busy or does not answer within the queue's ring time: her call to him
//! gets 480 (486 when he is on another call) and she still has the caller. The caller
//! hanging up meanwhile ends her call to him too.

use std::time::Instant;

use super::agents::LegKind;
use super::refers::{NotPassed, Pass, Passer};
use super::{Phase, Signalling};
use crate::routing::{AgentId, PassKind, RouterEvent};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::replaces::Replaces;

/// The call an agent made to a colleague about her caller.
pub(in crate::server) struct Consult {
    /// Her call to him (its Call-ID): ringing until he answers, then bridged to his leg.
    pub call_id: String,
    /// His leg, once he answered.
    pub leg: Option<String>,
}

impl Signalling {
    /// The agent named by an INVITE's Request-URI user, if it names one and no line has
    /// that name: a colleague an agent calls.
    pub(super) fn colleague_named(&self, user: &str) -> Option<AgentId> {
        if self.shared.flows().line_named(user).is_some() {
            return None;
        }
        self.agents
            .ids
            .iter()
            .position(|id| id.eq_ignore_ascii_case(user))
    }

    /// The caller `agent` is talking to (the call, and her leg to it), whom she may consult
    /// `colleague` about; or why her call to him is refused.
    pub(super) fn consultable(
        &self,
        agent: AgentId,
        colleague: AgentId,
    ) -> Result<(u64, String), NotPassed> {
        if agent == colleague {
            return Err(NotPassed::new(603, "a call to yourself"));
        }
        let router = &self.agents.router;
        let call = router
            .agent_state(agent)
            .and_then(|s| s.2)
            .filter(|&call| router.connected_agent(call) == Some(agent));
        let leg = call.and_then(|call| {
            let w = self.agents.waiting.get(&call)?;
            let callers = w.to_call.is_some() && w.callback.is_none();
            let leg = w.connected.clone().filter(|_| callers)?;
            let busy =
                self.agents.passes.contains_key(&call) || self.agents.transfers.contains_key(&call);
            (!busy).then_some((call, leg))
        });
        // Agents call each other about a caller only (not yet to chat).
        leg.ok_or_else(|| NotPassed::new(403, "not talking to a caller"))
    }

    /// Rings `colleague` for the agent's call `call_id` to him about her caller `call`,
    /// or says why not (he is not available).
    pub(super) fn start_consult(
        &mut self,
        (call, leg): (u64, String),
        agent: AgentId,
        colleague: AgentId,
        call_id: &str,
        now: Instant,
    ) -> Result<(), NotPassed> {
        let by = self.agents.ids[agent].clone();
        let to = self.agents.ids[colleague].clone();
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return Err(NotPassed::new(403, "not talking to a caller"));
        };
        // His phone says who calls him, about which caller.
        let before = w.transferred_by.replace(by.clone());
        self.agents.passes.insert(
            call,
            Pass {
                by: Passer {
                    leg,
                    agent,
                    gone: false,
                    refer: true,
                },
                to: colleague,
                consult: Some(Consult {
                    call_id: call_id.to_string(),
                    leg: None,
                }),
            },
        );
        self.route(
            RouterEvent::Consult {
                call,
                agent: colleague,
            },
            now,
        );
        if self.agents.router.passing_to(call) != Some(colleague) {
            self.agents.passes.remove(&call);
            if let Some(w) = self.agents.waiting.get_mut(&call) {
                w.transferred_by = before;
            }
            let on_a_call = self
                .agents
                .router
                .agent_state(colleague)
                .is_some_and(|s| s.2.is_some());
            let code = if on_a_call { 486 } else { 480 };
            return Err(NotPassed::new(code, format!("{to} is not available")));
        }
        tracing::info!(
            agent = by,
            to,
            "the agent calls a colleague about her caller"
        );
        Ok(())
    }

    /// He answered: her call to him is answered now and bridged to his leg.
    pub(super) fn consult_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agent: AgentId,
        agreed: crate::sip::sdp::Agreed,
        now: Instant,
    ) {
        self.route(RouterEvent::Answered { call, agent }, now);
        let talking = self.agents.router.pass_kind(call) == Some(PassKind::Consulting)
            && self.agents.router.passing_to(call) == Some(agent);
        let consult = self
            .agents
            .passes
            .get_mut(&call)
            .and_then(|p| p.consult.as_mut())
            .filter(|_| talking);
        let (Some(consult), Some(leg)) = (consult, self.agents.legs.get(leg_id)) else {
            return self.hang_up_leg(leg_id, now);
        };
        consult.leg = Some(leg_id.to_string());
        let call_id = consult.call_id.clone();
        super::agents::add_leg_media(&self.shared, leg, &agreed, super::agents::no_one_listens());
        let media = leg.media;
        let ringing = match self.calls.get_mut(&call_id).map(|c| &mut c.phase) {
            Some(Phase::Ringing { line, .. }) => {
                line.consult = Some(media);
                true
            }
            _ => false,
        };
        if !ringing {
            // Her call to him is gone already.
            return self.route(RouterEvent::EndConsult { call }, now);
        }
        tracing::info!(
            agent = self.agents.ids[agent],
            "the colleague answered: the agents talk, the caller waits"
        );
        self.answer(&call_id, now);
    }

    /// Her phone's REFER with `Replaces` on her leg to the caller: the caller goes to the
    /// colleague on the call it names.
    pub(super) fn replaced(
        &mut self,
        leg_id: &str,
        replaces: &Replaces,
        now: Instant,
    ) -> Result<(), NotPassed> {
        let call = self.agents.legs.get(leg_id).map(|l| (l.call, l.kind));
        let Some((call, LegKind::Agent)) = call else {
            return Err(NotPassed::new(603, "not an agent's call"));
        };
        let named = self
            .agents
            .passes
            .get(&call)
            .filter(|p| p.by.leg == leg_id)
            .and_then(|p| p.consult.as_ref())
            .and_then(|c| self.calls.get(&c.call_id))
            .is_some_and(|entry| {
                let d = &entry.dialog;
                replaces.names(&d.call_id, &d.local_tag, &d.remote_tag)
            });
        if !named {
            return Err(NotPassed::new(603, "no call of yours to that colleague"));
        }
        self.hand_over(call, now)
    }

    /// The caller goes to the colleague she consulted (he answered): she wraps up, her call
    /// to him ends.
    pub(super) fn hand_over(&mut self, call: u64, now: Instant) -> Result<(), NotPassed> {
        let talking = self.agents.router.pass_kind(call) == Some(PassKind::Consulting);
        let leg = self
            .agents
            .passes
            .get(&call)
            .and_then(|p| p.consult.as_ref())
            .and_then(|c| c.leg.clone())
            .filter(|_| talking);
        let Some(leg) = leg else {
            return Err(NotPassed::new(480, "the colleague has not answered"));
        };
        let Some(pass) = self.agents.passes.remove(&call) else {
            return Err(NotPassed::new(480, "the colleague has not answered"));
        };
        self.route(RouterEvent::Complete { call }, now);
        let media = self.agents.legs.get(&leg).map(|l| l.media);
        let mode = self.agents.waiting.get(&call).map(|w| {
            w.record
                .unwrap_or_else(|| self.agents.record_mode(&w.queue))
        });
        let (Some(media), Some(mode), Some(w)) = (media, mode, self.agents.waiting.get_mut(&call))
        else {
            return Err(NotPassed::new(480, "the caller is gone"));
        };
        let by = self.agents.ids[pass.by.agent].clone();
        let to = self.agents.ids[pass.to].clone();
        tracing::info!(
            agent = by,
            to,
            caller_call = w.call_id,
            "the agent handed her caller over to the colleague she consulted"
        );
        w.connected = Some(leg);
        for id in [media, call] {
            let _ = self.shared.pacer.send(PacerCommand::Unbridge { id });
        }
        let _ = self
            .shared
            .pacer
            .send(PacerCommand::Bridge { a: call, b: media });
        if let Some(to_call) = &w.to_call {
            let _ = to_call.send(CallInput::Handed {
                to,
                by,
                record: mode,
            });
        }
        // We hang up her call to him, as the one taking its place would (RFC 5589 §7).
        if let Some(consult) = pass.consult {
            self.end_consult_call(&consult.call_id, now);
        }
        Ok(())
    }

    /// After the routing core moved, a consultation that is over: he did not answer, one of
    /// them hung up, or the caller left. Her call to him and his leg end.
    pub(super) fn consult_over(&mut self, pass: Pass, now: Instant) {
        let Some(consult) = pass.consult else {
            return;
        };
        tracing::info!(
            agent = self.agents.ids.get(pass.by.agent).map(String::as_str),
            "the consultation is over; the caller stays with the agent"
        );
        if let Some(leg) = consult.leg {
            self.hang_up_leg(&leg, now);
        }
        self.end_consult_call(&consult.call_id, now);
    }

    /// Ends an agent's call to a colleague: refused while it rings (480, he did not take
    /// it), hung up once answered.
    fn end_consult_call(&mut self, call_id: &str, now: Instant) {
        let ringing = self
            .calls
            .get(call_id)
            .is_some_and(|c| matches!(c.phase, Phase::Ringing { .. }));
        if ringing {
            if let Some(entry) = self.calls.remove(call_id) {
                let tag = entry.dialog.local_tag.clone();
                self.respond(
                    &entry.invite,
                    &entry.invite_request,
                    480,
                    "Temporarily Unavailable",
                    Some(&tag),
                    &[],
                    Vec::new(),
                    now,
                );
            }
            return;
        }
        match self.calls.get(call_id).map(|c| &c.phase) {
            Some(Phase::Answered { to_call }) => {
                let _ = to_call.send(CallInput::AgentHungUp);
            }
            Some(_) => self.bye(call_id, now),
            None => {}
        }
    }

    /// The consultation about `call` whose call from the agent is `call_id`, if any.
    fn consulting(&self, call_id: &str) -> Option<u64> {
        self.agents
            .passes
            .iter()
            .find(|(_, p)| p.consult.as_ref().is_some_and(|c| c.call_id == call_id))
            .map(|(&call, _)| call)
    }

    /// An agent's call (by Call-ID) ended or was cancelled: if it was to a colleague, their
    /// consultation is over.
    pub(super) fn consult_call_ended(&mut self, call_id: &str, now: Instant) {
        if let Some(call) = self.consulting(call_id) {
            self.route(RouterEvent::EndConsult { call }, now);
        }
    }

    /// A leg of the consultation about `call` hung up: his (their talk is over), or hers to
    /// the caller (once he answered, that hands the caller over to him, as a phone's
    /// transfer would). `true` when it was one of them and is dealt with.
    pub(super) fn consult_leg_hung_up(&mut self, call: u64, leg_id: &str, now: Instant) -> bool {
        let Some(pass) = self.agents.passes.get(&call) else {
            return false;
        };
        let Some(consult) = &pass.consult else {
            return false;
        };
        if consult.leg.as_deref() == Some(leg_id) {
            self.route(RouterEvent::EndConsult { call }, now);
            return true;
        }
        if pass.by.leg == leg_id && consult.leg.is_some() {
            return self.hand_over(call, now).is_ok();
        }
        false
    }
}

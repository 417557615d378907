//! An attended transfer (RFC 5589 §7): an agent talking to a caller dials a colleague by
//! name from her phone (`bob`), a queue (`billing`: whoever its next caller would reach), or
//! a number outside the `[callbacks]` dial policy allows (`+34600111222`, through its
//! trunk). Her phone puts the caller on hold (they hear the hold music); his phone rings,
//! showing her and carrying the caller's context; he answers and they talk while the caller
//! waits with her. Then she either transfers — her phone's REFER on the caller's call with
//! `Replaces` naming the call to him, or simply hanging up on the caller — and the caller is
//! his (she wraps up, we hang up her call to him, the record says she passed the caller
//! on), or one of them hangs up that call and the caller is hers again when she takes them
//! off hold.
//!
//! He declines, is busy or does not answer (within the queue's ring time; 30 s for a
//! number): her call to him gets 480 (486 when he is busy) and she still has the caller.
//! The caller hanging up meanwhile ends her call to him too. An agent not on a call with a
//! caller gets 403: hotline places no call that is not about a caller.
//!
//! From the desk (`desk_consult`) there is no second call on her phone: the caller holds
//! (hold music), her leg hears the ringback and is then bridged to whoever answers; the
//! desk's buttons hand the caller over (her phone is hung up) or bring them back.

use std::time::Instant;

use super::Signalling;
use super::agents::LegKind;
use super::refers::{NotPassed, OUTSIDE_RING, Pass, Passer};
use super::transfers::{PassedBy, Transfer};
use crate::engine::session::Heard;
use crate::routing::{AgentId, PassKind, RouterEvent};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::replaces::Replaces;
use crate::sip::wire::Message;

/// The call an agent made to a colleague about her caller.
pub(in crate::server) struct Consult {
    /// Her call to him (its Call-ID): ringing until he answers, then bridged to his leg.
    /// None when she asked from the desk: her leg to the caller is bridged to his instead,
    /// while the caller hears the hold music.
    pub call_id: Option<String>,
    /// His leg, once he answered.
    pub leg: Option<String>,
}

/// Whom an agent's INVITE calls about her caller, as dialled.
pub(super) enum ConsultTo {
    Agent(AgentId),
    Queue(usize),
    /// A number (`tel:`), for the dial policy to allow.
    Number(String),
}

/// An agent's call about her caller (the call, and her leg to it), to be put through.
pub(super) struct Consulting {
    about: (u64, String),
    agent: AgentId,
    to: Colleague,
}

enum Colleague {
    Agent(AgentId),
    Outside {
        target: Box<crate::sip::dial::Target>,
        shown: String,
    },
}

impl Signalling {
    /// Whom an INVITE calls about a caller, if it is an agent's: its From names an agent,
    /// and its Request-URI user an agent, a queue or a number — no line (a caller dialling
    /// a line, or anything the default line takes, is never asked who they are). The agent
    /// is authenticated next.
    pub(super) fn consult_target(&self, req: &Message, user: &str) -> Option<ConsultTo> {
        let named = |name: &str| {
            self.agents
                .ids
                .iter()
                .position(|id| id.eq_ignore_ascii_case(name))
        };
        let from = req
            .get("From")
            .and_then(crate::sip::wire::parse_name_addr)?;
        named(crate::sip::dialog::uri_user(&from.uri))?;
        if self.shared.flows().line_named(user).is_some() {
            return None;
        }
        if let Some(agent) = named(user) {
            return Some(ConsultTo::Agent(agent));
        }
        if let Some((_, &q)) = self
            .agents
            .queue_ids
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(user))
        {
            return Some(ConsultTo::Queue(q));
        }
        super::refers::dialled_as(user).map(ConsultTo::Number)
    }

    /// The call about her caller the authenticated `agent` asks for, or why it is refused.
    pub(super) fn consult_request(
        &self,
        agent: AgentId,
        to: ConsultTo,
    ) -> Result<Consulting, NotPassed> {
        let about = self.callers_leg(agent)?;
        let to = match to {
            ConsultTo::Agent(colleague) if colleague == agent => {
                return Err(NotPassed::new(603, "a call to yourself"));
            }
            ConsultTo::Agent(colleague) => Colleague::Agent(colleague),
            ConsultTo::Queue(q) => {
                let Some(colleague) = self.agents.router.next_available(q, agent) else {
                    let name = self.agents.queue_names.get(q).cloned().unwrap_or_default();
                    return Err(NotPassed::new(
                        480,
                        format!("nobody of {name} is available"),
                    ));
                };
                Colleague::Agent(colleague)
            }
            ConsultTo::Number(uri) => {
                let (target, shown) = self.outside_target(&uri)?;
                Colleague::Outside {
                    target: Box::new(target),
                    shown,
                }
            }
        };
        Ok(Consulting { about, agent, to })
    }

    /// The caller `agent` is talking to (the call, and her leg to it), whom she may call
    /// someone about; or why not.
    fn callers_leg(&self, agent: AgentId) -> Result<(u64, String), NotPassed> {
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

    /// Puts the agent's call `call_id` through (none: from the desk, over her leg to the
    /// caller): rings the colleague, or dials the number. Where it went (`agent:bob`,
    /// `tel:+34…`).
    pub(super) fn start_consult(
        &mut self,
        consulting: Consulting,
        call_id: Option<&str>,
        now: Instant,
    ) -> Result<String, NotPassed> {
        let Consulting { about, agent, to } = consulting;
        let (call, her_leg) = (about.0, about.1.clone());
        let to = match to {
            Colleague::Agent(colleague) => {
                self.consult_colleague(about, agent, colleague, call_id, now)?;
                format!("agent:{}", self.agents.ids[colleague])
            }
            Colleague::Outside { target, shown } => {
                self.consult_outside(about, agent, (*target, shown.clone()), call_id)?;
                shown
            }
        };
        if call_id.is_none() {
            // From the desk: the caller holds (her phone is not asked to), and she hears
            // the ringback until they answer.
            let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: call });
            if let Some(to_call) = self
                .agents
                .waiting
                .get(&call)
                .and_then(|w| w.to_call.as_ref())
            {
                let _ = to_call.send(CallInput::Heard(Heard::Held));
            }
            let hers = self.agents.legs.get(&her_leg).map(|l| l.media);
            let law = self.switch.leg(&her_leg).and_then(|l| l.law());
            if let (Some(id), Some(law)) = (hers, law) {
                let ringback = [crate::engine::announce::RINGBACK.to_string()];
                let items = self.shared.flows().prompts.frames(&ringback, law);
                let _ = self.shared.pacer.send(PacerCommand::Play {
                    id,
                    items,
                    looped: true,
                    // Its end (if it had one) means nothing to the caller's call.
                    tag: u64::MAX,
                });
            }
        }
        self.publish_agent(agent, now);
        Ok(to)
    }

    /// The desk's "talk first": the agent calls `to` (a colleague, a queue or a number, as
    /// typed) about her caller, who holds meanwhile.
    pub(super) fn desk_consult(
        &mut self,
        agent: &str,
        to: &str,
        now: Instant,
    ) -> Result<String, NotPassed> {
        let Some(a) = self.agents.ids.iter().position(|id| id == agent) else {
            return Err(NotPassed::new(404, "no such agent"));
        };
        let name = to.trim();
        let target = if let Some(c) = self
            .agents
            .ids
            .iter()
            .position(|id| id.eq_ignore_ascii_case(name))
        {
            ConsultTo::Agent(c)
        } else if let Some((_, &q)) = self
            .agents
            .queue_ids
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            ConsultTo::Queue(q)
        } else {
            let number = super::refers::dialled_as(name)
                .ok_or_else(|| NotPassed::new(404, "no queue, agent or number by that name"))?;
            ConsultTo::Number(number)
        };
        let consulting = self.consult_request(a, target)?;
        self.start_consult(consulting, None, now)
    }

    /// The desk's buttons while the agent talks to whom she called about her caller (from
    /// the desk or her phone): hand the caller over (`complete`), or have them back.
    pub(super) fn desk_consult_end(
        &mut self,
        agent: &str,
        complete: bool,
        now: Instant,
    ) -> Result<String, NotPassed> {
        let Some(a) = self.agents.ids.iter().position(|id| id == agent) else {
            return Err(NotPassed::new(404, "no such agent"));
        };
        let none = || NotPassed::new(409, "you are calling nobody about a caller");
        let colleague = self
            .agents
            .passes
            .iter()
            .find(|(_, p)| p.by.agent == a && p.consult.is_some())
            .map(|(&call, p)| {
                let to = format!("agent:{}", self.agents.ids[p.to]);
                (call, to, p.by.leg.clone())
            });
        // Her leg to the caller is hung up once they are handed over (a call she made
        // from her phone leaves it on hold there otherwise).
        if let Some((call, to, hers)) = colleague {
            if complete {
                self.hand_over(call, now)?;
                self.hang_up_leg(&hers, now);
                return Ok(to);
            }
            self.route(RouterEvent::EndConsult { call }, now);
            return Ok(to);
        }
        let outside = self
            .agents
            .transfers
            .iter()
            .find(|(_, t)| {
                t.by.as_ref()
                    .is_some_and(|by| by.passer.agent == a && by.consult.is_some())
            })
            .map(|(&call, t)| {
                let by = t.by.as_ref();
                (call, by.map(|by| (by.shown.clone(), by.passer.leg.clone())))
            });
        let Some((call, Some((to, hers)))) = outside else {
            return Err(none());
        };
        if complete {
            self.hand_over_outside(call, now)?;
            self.hang_up_leg(&hers, now);
            return Ok(to);
        }
        self.end_transfer(call, now);
        Ok(to)
    }

    /// Whom the agent calls about her caller, for her row.
    pub(super) fn consult_row(&self, agent: AgentId) -> Option<crate::status::ConsultRow> {
        let colleague = self.agents.passes.values().find_map(|p| {
            let c = p.consult.as_ref().filter(|_| p.by.agent == agent)?;
            Some(crate::status::ConsultRow {
                to: format!("agent:{}", self.agents.ids[p.to]),
                answered: c.leg.is_some(),
            })
        });
        colleague.or_else(|| {
            self.agents.transfers.values().find_map(|t| {
                let by = t.by.as_ref().filter(|by| by.passer.agent == agent)?;
                let c = by.consult.as_ref()?;
                Some(crate::status::ConsultRow {
                    to: by.shown.clone(),
                    answered: c.leg.is_some(),
                })
            })
        })
    }

    /// Sends the desk and the wall the agent's row (her consultation changed).
    pub(super) fn publish_agent(&mut self, agent: AgentId, now: Instant) {
        if let Some(row) = self.agent_row(agent, now) {
            self.shared
                .events
                .publish(crate::status::events::Event::Agent {
                    agent: Box::new(row),
                });
        }
    }

    /// Rings `colleague` for the agent's call `call_id` to him about her caller `call`,
    /// or says why not (he is not available).
    fn consult_colleague(
        &mut self,
        (call, leg): (u64, String),
        agent: AgentId,
        colleague: AgentId,
        call_id: Option<&str>,
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
                    call_id: call_id.map(str::to_string),
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

    /// Dials the number outside for the agent's call `call_id` about her caller `call`.
    fn consult_outside(
        &mut self,
        (call, leg): (u64, String),
        agent: AgentId,
        (target, shown): (crate::sip::dial::Target, String),
        call_id: Option<&str>,
    ) -> Result<(), NotPassed> {
        let Some(w) = self.agents.waiting.get(&call) else {
            return Err(NotPassed::new(403, "not talking to a caller"));
        };
        let Some(to_call) = w.to_call.clone() else {
            return Err(NotPassed::new(403, "not talking to a caller"));
        };
        tracing::info!(
            agent = self.agents.ids[agent],
            to = shown,
            caller_call = w.call_id,
            "the agent calls a number outside about her caller"
        );
        self.agents.transfers.insert(
            call,
            Transfer {
                to_call,
                call_id: w.call_id.clone(),
                uri: target.uri.clone(),
                ring_timeout: OUTSIDE_RING,
                context: w.context.clone(),
                leg: None,
                next_hop: (target.host.clone(), target.port),
                by: Some(PassedBy {
                    passer: Passer {
                        leg,
                        agent,
                        gone: false,
                        refer: true,
                    },
                    shown,
                    consult: Some(Consult {
                        call_id: call_id.map(str::to_string),
                        leg: None,
                    }),
                }),
            },
        );
        self.resolve_transfer(call, target.host, target.port, target.trunk);
        Ok(())
    }

    /// The number outside answered the agent's call about her caller `call`: her call is
    /// answered now and bridged to it.
    pub(super) fn outside_consult_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agreed: crate::sip::sdp::Agreed,
        now: Instant,
    ) {
        let by = self
            .agents
            .transfers
            .get_mut(&call)
            .and_then(|t| t.by.as_mut());
        let Some(by) = by.filter(|_| self.agents.legs.contains_key(leg_id)) else {
            return self.hang_up_leg(leg_id, now);
        };
        let (agent, her_leg) = (by.passer.agent, by.passer.leg.clone());
        let Some(consult) = by.consult.as_mut() else {
            return self.hang_up_leg(leg_id, now);
        };
        consult.leg = Some(leg_id.to_string());
        let call_id = consult.call_id.clone();
        if !self.connect_consult(leg_id, &agreed, call_id.as_deref(), &her_leg, now) {
            return self.end_transfer(call, now);
        }
        tracing::info!("the number outside answered: the agent talks to it, the caller waits");
        self.publish_agent(agent, now);
    }

    /// Whom she called answered on `leg_id`: its media starts, and her call to them is
    /// answered and bridged to it, or, from the desk, her leg to the caller is. `false` if
    /// hers is gone.
    fn connect_consult(
        &mut self,
        leg_id: &str,
        agreed: &crate::sip::sdp::Agreed,
        call_id: Option<&str>,
        her_leg: &str,
        now: Instant,
    ) -> bool {
        let Some(leg) = self.agents.legs.get(leg_id) else {
            return false;
        };
        super::agents::add_leg_media(&self.shared, leg, agreed, super::agents::no_one_listens());
        let media = leg.media;
        let Some(call_id) = call_id else {
            let Some(hers) = self.agents.legs.get(her_leg).map(|l| l.media) else {
                return false;
            };
            let _ = self
                .shared
                .pacer
                .send(PacerCommand::Bridge { a: hers, b: media });
            return true;
        };
        match self.pending.get_mut(call_id) {
            Some(p) if self.uas.is_ringing(call_id) => p.line.consult = Some(media),
            _ => return false,
        }
        self.uas.answer(call_id, now);
        true
    }

    /// A consultation over without a transfer: her call to whom she called is refused with
    /// `status` (or hung up, if answered); from the desk, the caller is bridged back to her
    /// leg (if she still has it) and hears her again.
    pub(super) fn consult_back(
        &mut self,
        call: u64,
        passer: &Passer,
        consult: &Consult,
        status: (u16, &str),
        now: Instant,
    ) {
        if let Some(call_id) = &consult.call_id {
            self.end_consult_call(call_id, status, now);
            return self.publish_agent(passer.agent, now);
        }
        let hers = self.agents.legs.get(&passer.leg).map(|l| l.media);
        let mode = self.agents.waiting.get(&call).map(|w| {
            w.record
                .unwrap_or_else(|| self.agents.record_mode(&w.queue))
        });
        let to_call = self
            .agents
            .waiting
            .get(&call)
            .and_then(|w| w.to_call.clone());
        if let (Some(hers), Some(mode), Some(to_call)) = (hers, mode, to_call) {
            tracing::info!("the consultation is over: the caller is back with the agent");
            let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: hers });
            let _ = self
                .shared
                .pacer
                .send(PacerCommand::Bridge { a: call, b: hers });
            let _ = to_call.send(CallInput::Heard(Heard::AgentAnswered {
                agent: self.agents.ids[passer.agent].clone(),
                record: mode,
            }));
        }
        self.publish_agent(passer.agent, now);
    }

    /// The caller is handed over: her side of the consultation ends — her call to whom she
    /// called is hung up by us (as the one taking its place would, RFC 5589 §7), or, from
    /// the desk, her phone is.
    fn end_her_side(&mut self, passer: &Passer, consult: &Consult, now: Instant) {
        match &consult.call_id {
            Some(call_id) => self.end_consult_call(call_id, (480, "Temporarily Unavailable"), now),
            None => self.hang_up_leg(&passer.leg, now),
        }
        self.publish_agent(passer.agent, now);
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
        let pass = self.agents.passes.get_mut(&call).filter(|_| talking);
        let Some(pass) = pass.filter(|_| self.agents.legs.contains_key(leg_id)) else {
            return self.hang_up_leg(leg_id, now);
        };
        let (by, her_leg) = (pass.by.agent, pass.by.leg.clone());
        let Some(consult) = pass.consult.as_mut() else {
            return self.hang_up_leg(leg_id, now);
        };
        consult.leg = Some(leg_id.to_string());
        let call_id = consult.call_id.clone();
        if !self.connect_consult(leg_id, &agreed, call_id.as_deref(), &her_leg, now) {
            // Her call to him is gone already.
            return self.route(RouterEvent::EndConsult { call }, now);
        }
        tracing::info!(
            agent = self.agents.ids[agent],
            "the colleague answered: the agents talk, the caller waits"
        );
        self.publish_agent(by, now);
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
        let names = |c: &Consult| {
            let dialog = c.call_id.as_ref().and_then(|id| self.uas.dialog(id));
            dialog.is_some_and(|d| replaces.names(&d.call_id, &d.local_tag, &d.remote_tag))
        };
        let colleague = self
            .agents
            .passes
            .get(&call)
            .filter(|p| p.by.leg == leg_id)
            .and_then(|p| p.consult.as_ref())
            .is_some_and(names);
        if colleague {
            return self.hand_over(call, now);
        }
        let outside = self
            .agents
            .transfers
            .get(&call)
            .and_then(|t| t.by.as_ref())
            .filter(|by| by.passer.leg == leg_id)
            .and_then(|by| by.consult.as_ref())
            .is_some_and(names);
        if outside {
            return self.hand_over_outside(call, now);
        }
        Err(NotPassed::new(603, "no call of yours to that colleague"))
    }

    /// The caller goes to the number outside she called about them (it answered): she
    /// wraps up, her call to it ends; from now on it is the caller's transfer leg.
    pub(super) fn hand_over_outside(&mut self, call: u64, now: Instant) -> Result<(), NotPassed> {
        let not_yet = || NotPassed::new(480, "the number has not answered");
        let answered = self
            .agents
            .transfers
            .get(&call)
            .and_then(|t| t.by.as_ref())
            .and_then(|by| by.consult.as_ref())
            .and_then(|c| c.leg.clone());
        let media = answered
            .and_then(|leg| self.agents.legs.get(&leg))
            .map(|l| l.media);
        let Some(media) = media else {
            return Err(not_yet());
        };
        let Some(t) = self.agents.transfers.get_mut(&call) else {
            return Err(not_yet());
        };
        // Settled: from now on it is the caller's transfer leg.
        let Some(by) = t.by.take() else {
            return Err(not_yet());
        };
        let to_call = t.to_call.clone();
        let agent = self.agents.ids[by.passer.agent].clone();
        tracing::info!(
            agent,
            to = by.shown,
            "the agent handed her caller over to the number she called"
        );
        for id in [media, call] {
            let _ = self.shared.pacer.send(PacerCommand::Unbridge { id });
        }
        let _ = self
            .shared
            .pacer
            .send(PacerCommand::Bridge { a: call, b: media });
        let _ = to_call.send(CallInput::Heard(Heard::Handed {
            to: by.shown.clone(),
            agent: None,
            by: agent,
            record: None,
        }));
        // The caller is no longer hers: she wraps up.
        self.agents.waiting.remove(&call);
        self.route(RouterEvent::Ended { call }, now);
        if let Some(consult) = &by.consult {
            self.end_her_side(&by.passer, consult, now);
        }
        Ok(())
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
            let _ = to_call.send(CallInput::Heard(Heard::Handed {
                to: format!("agent:{to}"),
                agent: Some(to),
                by,
                record: Some(mode),
            }));
        }
        if let Some(consult) = &pass.consult {
            self.end_her_side(&pass.by, consult, now);
        }
        Ok(())
    }

    /// After the routing core moved, a consultation that is over: he did not answer, one of
    /// them hung up, or the caller left. Her call to him and his leg end.
    pub(super) fn consult_over(&mut self, call: u64, pass: Pass, now: Instant) {
        let Some(consult) = pass.consult else {
            return;
        };
        tracing::info!(
            agent = self.agents.ids.get(pass.by.agent).map(String::as_str),
            "the consultation is over; the caller stays with the agent"
        );
        if let Some(leg) = &consult.leg {
            self.hang_up_leg(leg, now);
        }
        let status = (480, "Temporarily Unavailable");
        self.consult_back(call, &pass.by, &consult, status, now);
    }

    /// Ends an agent's call to a colleague: refused with `status` while it rings (he did
    /// not take it), hung up once answered.
    pub(super) fn end_consult_call(&mut self, call_id: &str, status: (u16, &str), now: Instant) {
        if self.uas.refuse(call_id, status.0, status.1, now) {
            self.pending.remove(call_id);
            return;
        }
        match self.running.get(call_id) {
            Some(to_call) => {
                let _ = to_call.send(CallInput::AgentHungUp);
            }
            None => self.uas.hang_up(call_id, now),
        }
    }

    /// The consultation about `call` whose call from the agent is `call_id`, if any.
    fn consulting(&self, call_id: &str) -> Option<u64> {
        self.agents
            .passes
            .iter()
            .find(|(_, p)| {
                p.consult
                    .as_ref()
                    .is_some_and(|c| c.call_id.as_deref() == Some(call_id))
            })
            .map(|(&call, _)| call)
    }

    /// An agent's call (by Call-ID) ended or was cancelled: if it was to a colleague or a
    /// number about her caller, that call is over.
    pub(super) fn consult_call_ended(&mut self, call_id: &str, now: Instant) {
        if let Some(call) = self.consulting(call_id) {
            self.route(RouterEvent::EndConsult { call }, now);
        }
        let outside = self.agents.transfers.iter().find(|(_, t)| {
            t.by.as_ref()
                .and_then(|by| by.consult.as_ref())
                .is_some_and(|c| c.call_id.as_deref() == Some(call_id))
        });
        if let Some((&call, _)) = outside {
            self.end_transfer(call, now);
        }
    }

    /// A leg of the consultation about `call` hung up: his (their talk is over), or hers to
    /// the caller (once he answered, that hands the caller over to him, as a phone's
    /// transfer would). `true` when it was one of them and is dealt with.
    pub(super) fn consult_leg_hung_up(&mut self, call: u64, leg_id: &str, now: Instant) -> bool {
        let outside = self
            .agents
            .transfers
            .get(&call)
            .and_then(|t| t.by.as_ref())
            .filter(|by| by.passer.leg == leg_id)
            .and_then(|by| by.consult.as_ref())
            .map(|c| c.leg.is_some());
        match outside {
            Some(true) => return self.hand_over_outside(call, now).is_ok(),
            // Before it answered: her call to it ends, and the caller's as she hung up.
            Some(false) => {
                self.end_transfer(call, now);
                return false;
            }
            None => {}
        }
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

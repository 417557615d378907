//! Transfers: a flow's `transfer` node hands the caller to a live human elsewhere — a SIP URI
//! the validated flow names (a front desk, another PBX). We place the INVITE (with the caller's
//! context, as for agents) while the caller hears ringback; on answer the two are bridged and
//! either side's BYE ends both. Declined, unanswered within `ring_timeout_s`, unreachable or
//! unresolvable: the flow's `on_failure` takes the caller on. The caller hanging up cancels it.
//!
//! An agent passing her caller on to a number outside (`refers.rs`) uses the same leg: it
//! is placed only where the `[callbacks]` dial policy allows, and its failure brings the
//! caller back to her (or first in line in their queue), not to a flow.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::agents::{Leg, LegKind, add_leg_media};
use super::{CallerContext, Signalling, SipCommand};
use crate::engine::session::Heard;
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::link::Link;
use crate::sip::sdp;
use crate::switch::{Context, Dial, Party};

/// A caller being transferred.
pub(in crate::server) struct Transfer {
    pub to_call: crate::server::call_inputs::CallTx,
    pub call_id: String,
    /// The URI dialled (without header fields).
    pub uri: String,
    pub ring_timeout: Duration,
    pub context: CallerContext,
    /// Our leg to the target, once placed.
    pub leg: Option<String>,
    /// The host and port the INVITE goes to (the target's, or its trunk's proxy).
    pub next_hop: (String, u16),
    /// The agent who passed the caller on to it, when one did (not a flow).
    pub by: Option<PassedBy>,
}

/// The agent who passes her caller on to a number outside, while it rings; or who called
/// it about her caller first (an attended transfer), until she hands the caller over.
pub(in crate::server) struct PassedBy {
    pub passer: super::refers::Passer,
    /// The number as the record and the desk show it.
    pub shown: String,
    /// Her call it is answered on, when she calls it first.
    pub consult: Option<super::consults::Consult>,
}

impl Transfer {
    /// Her call about the caller, while the number is hers to talk to (not the caller's).
    fn consult(&self) -> Option<&super::consults::Consult> {
        self.by.as_ref().and_then(|by| by.consult.as_ref())
    }
}

impl Signalling {
    /// The caller reached a transfer node: resolve the target's host, then dial it.
    pub(super) fn transfer(
        &mut self,
        id: u64,
        call_id: &str,
        to: String,
        ring_timeout_s: u32,
        context: CallerContext,
    ) {
        let Some(to_call) = self.running.get(call_id).cloned() else {
            return; // the caller is already gone
        };
        // A sip: target at its host (or its carrier's trunk proxy), a tel: number through
        // the trunk or gateway the dial policy names for it.
        let target = self.shared.flows().callbacks.transfer_target(&to);
        let crate::sip::dial::Target {
            uri,
            host,
            port,
            trunk,
        } = match target {
            Ok(t) => t,
            Err(why) => {
                tracing::warn!(to, why, "cannot transfer");
                let _ = to_call.send(CallInput::Heard(Heard::TransferFailed));
                return;
            }
        };
        self.agents.transfers.insert(
            id,
            Transfer {
                to_call,
                call_id: call_id.to_string(),
                uri,
                ring_timeout: Duration::from_secs(u64::from(ring_timeout_s.max(1))),
                context,
                leg: None,
                next_hop: (host.clone(), port),
                by: None,
            },
        );
        self.resolve_transfer(id, host, port, trunk);
    }

    /// Looks up where the transfer `id`'s INVITE goes (`host`, or its trunk's proxy), then
    /// dials it.
    pub(super) fn resolve_transfer(
        &mut self,
        id: u64,
        host: String,
        port: u16,
        trunk: Option<crate::sip::dial::Route>,
    ) {
        let sip = self.shared.sip.clone();
        let transport = std::sync::Arc::clone(&self.transport);
        let open = trunk.as_ref().and_then(|r| self.open_link(&r.name));
        let hop = super::trunks::Hop {
            host,
            port,
            srv: trunk.as_ref().and_then(|r| r.srv_name()),
            proto: trunk.as_ref().map(|r| r.proto.clone()).unwrap_or_default(),
        };
        let dns = std::sync::Arc::clone(&self.dns);
        tokio::spawn(async move {
            let target = super::trunks::reach(transport, &dns, hop, open).await;
            let _ = sip.send(SipCommand::TransferResolved { id, target }).await;
        });
    }

    /// Places the INVITE to the transfer target.
    pub(super) fn dial_transfer(
        &mut self,
        id: u64,
        target: Option<(SocketAddr, Link)>,
        now: Instant,
    ) {
        let Some(t) = self.agents.transfers.get(&id) else {
            return; // the caller hung up meanwhile
        };
        let Some((target, link)) = target else {
            tracing::warn!(
                to = t.uri,
                "cannot transfer: the host does not resolve (or no TCP connection to it)"
            );
            return self.transfer_failed(id, 480, now);
        };
        if t.context.probe {
            // The probe hears the ringback and hangs up: nobody is rung for it. That far the
            // transfer is proven: the dial policy takes it and its next hop resolves (a
            // failure above sends the probe down on_failure, which it reports).
            tracing::info!(to = t.uri, %target, "a probe call reached a transfer: it is not dialled");
            self.agents.transfers.remove(&id);
            return;
        }
        let Some(socket) = self.shared.ports.open() else {
            tracing::warn!("cannot transfer: no RTP port free");
            return self.transfer_failed(id, 480, now);
        };
        let flows = self.shared.flows();
        let trunk = crate::sip::dial::sip_target(&t.uri)
            .and_then(|u| flows.callbacks.trunks.iter().find(|r| r.serves(&u.host)))
            .cloned();
        let private = self.uas.invite(&t.call_id).is_some_and(|invite| {
            crate::sip::identity::caller(invite, false, &flows.callbacks.numbering).private
        });
        let from = match &trunk {
            // Through a carrier: the caller's own number where the trunk lets us present it
            // and they did not ask for privacy, else the line's; never our own domain.
            Some(r) => {
                let number = flows.callbacks.numbering.e164(&t.context.caller);
                let user = match number {
                    Some(n) if r.present_caller && !private => n,
                    _ => r.caller_id.clone(),
                };
                Party {
                    display: if private { String::new() } else { user.clone() },
                    uri: r.uri(&user),
                }
            }
            None => Party {
                display: crate::sip::dialog::uri_user(&t.context.caller).to_string(),
                uri: format!("sip:hotline@{}", self.shared.config.sip.domain),
            },
        };
        let context = Context {
            caller: t.context.caller.clone(),
            queue: None,
            path: t.context.path.clone(),
            waited: None,
            callback_attempt: None,
            variables: t.context.variables.clone(),
            transferred_by: None,
            transfer_note: None,
        };
        // What the caller told the line is for the humans of a PBX, not for a carrier.
        let context = trunk.is_none().then_some(context);
        let redirect = Some(crate::switch::Redirect {
            policy: std::sync::Arc::new(flows.callbacks.clone()),
            host: t.next_hop.0.clone(),
            port: t.next_hop.1,
        });
        if let Some(r) = &trunk
            && link != Link::Udp
        {
            self.trunk_links.insert(r.name.clone(), (target, link));
        }
        let mut dial = Dial {
            assert_identity: trunk.is_some(),
            auth: trunk.and_then(|r| r.auth),
            redirect,
            link,
            ..Dial::to_address(&t.uri, target, from, context)
        };
        let ring_timeout = t.ring_timeout;
        tracing::info!(to = t.uri, %target, caller_call = t.call_id, "transferring the caller");
        if let (Some(by), Some(c)) = (&t.by, dial.context.as_mut()) {
            // Whoever answers at a PBX of ours is told who passed the caller on.
            c.transferred_by = self.agents.ids.get(by.passer.agent).cloned();
        }
        let media = self.media_for(&mut dial, &socket);
        let leg_id = self.switch.transfer(id, dial, ring_timeout, now);
        let user = Leg {
            call: id,
            agent: 0,
            kind: LegKind::Transfer,
            socket,
            media,
            peer: target,
        };
        self.agents.legs.insert(leg_id.clone(), user);
        if let Some(t) = self.agents.transfers.get_mut(&id) {
            t.leg = Some(leg_id);
        }
    }

    pub(super) fn transfer_answered(
        &mut self,
        leg_id: &str,
        call: u64,
        agreed: sdp::Agreed,
        now: Instant,
    ) {
        if self
            .agents
            .transfers
            .get(&call)
            .is_some_and(|t| t.consult().is_some())
        {
            return self.outside_consult_answered(leg_id, call, agreed, now);
        }
        let (Some(t), Some(leg)) = (
            self.agents.transfers.get(&call),
            self.agents.legs.get_mut(leg_id),
        ) else {
            return;
        };
        tracing::info!(to = t.uri, "the transfer target answered: bridging");
        add_leg_media(&self.shared, leg, &agreed, t.to_call.clone());
        let _ = self.shared.pacer.send(PacerCommand::Bridge {
            a: call,
            b: leg.media,
        });
        let Some(by) = &t.by else {
            let _ = t.to_call.send(CallInput::Heard(Heard::TransferAnswered {
                to: t.uri.clone(),
            }));
            return;
        };
        let _ = t.to_call.send(CallInput::Heard(Heard::PassedOutside {
            to: by.shown.clone(),
        }));
        let p = &by.passer;
        let (leg, gone, refer) = (p.leg.clone(), p.gone, p.refer);
        if let Some(t) = self.agents.transfers.get_mut(&call) {
            t.by = None; // settled: from now on it is an ordinary transfer leg
        }
        // The caller is no longer hers: she wraps up, her phone is told or hung up.
        self.agents.waiting.remove(&call);
        self.route(crate::routing::RouterEvent::Ended { call }, now);
        match (gone, refer) {
            (true, _) => {}
            (false, true) => self.switch.notify(&leg, 200, "OK", now),
            (false, false) => self.hang_up_leg(&leg, now),
        }
    }

    /// The transfer did not connect: the caller's flow takes `on_failure`, or, when an
    /// agent passed them on, they are hers again (first in line if she is gone).
    pub(super) fn transfer_failed(&mut self, call: u64, code: u16, now: Instant) {
        let Some(t) = self.agents.transfers.remove(&call) else {
            return;
        };
        match t.by {
            None => {
                let _ = t.to_call.send(CallInput::Heard(Heard::TransferFailed));
            }
            Some(by) => {
                let reason = if code == 486 {
                    "Busy Here"
                } else if code >= 600 {
                    "Declined"
                } else {
                    "Temporarily Unavailable"
                };
                let code = if code == 486 || code >= 600 {
                    code
                } else {
                    480
                };
                match &by.consult {
                    // Her call to it is refused as it was; the caller is still hers.
                    Some(c) => self.consult_back(call, &by.passer, c, (code, reason), now),
                    None => self.give_back(call, &by.passer, (code, reason), &by.shown, now),
                }
            }
        }
    }

    /// The transfer target hung up (its leg already forgotten): the caller's call ends —
    /// unless it was an agent's call about the caller, which just ends.
    pub(super) fn transfer_hung_up(&mut self, call: u64, now: Instant) {
        let Some(t) = self.agents.transfers.remove(&call) else {
            return;
        };
        match t.by {
            Some(PassedBy {
                passer,
                consult: Some(c),
                ..
            }) => self.consult_back(call, &passer, &c, (480, "Temporarily Unavailable"), now),
            _ => {
                let _ = t.to_call.send(CallInput::AgentHungUp);
            }
        }
    }

    /// The caller's call ended (or an agent's call about them did): cancel or hang up its
    /// transfer leg, and an agent's call to it.
    pub(super) fn end_transfer(&mut self, call: u64, now: Instant) {
        let Some(t) = self.agents.transfers.remove(&call) else {
            return;
        };
        if let Some(leg) = t.leg {
            self.switch.hang_up(&leg, now);
        }
        if let Some(PassedBy {
            passer,
            consult: Some(c),
            ..
        }) = t.by
        {
            self.consult_back(call, &passer, &c, (480, "Temporarily Unavailable"), now);
        }
    }
}

//! Transfers: a flow's `transfer` node hands the caller to a live human elsewhere — a SIP URI
//! the validated flow names (a front desk, another PBX). We place the INVITE (with the caller's
//! context, as for agents) while the caller hears ringback; on answer the two are bridged and
//! either side's BYE ends both. Declined, unanswered within `ring_timeout_s`, unreachable or
//! unresolvable: the flow's `on_failure` takes the caller on. The caller hanging up cancels it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::agents::{Answer, Leg, LegKind, LegState, add_leg_media, clean, header};
use super::{CallerContext, Signalling, SipCommand, TimerRef, tag};
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;
use crate::sip::dialog::ALLOW;
use crate::sip::sdp;
use crate::sip::transport::Link;
use crate::sip::wire::{Message, Start};

/// A caller being transferred.
pub(in crate::server) struct Transfer {
    pub to_call: mpsc::UnboundedSender<CallInput>,
    pub call_id: String,
    /// The URI dialled (without header fields).
    pub uri: String,
    pub ring_timeout: Duration,
    pub context: CallerContext,
    /// Our leg to the target, once placed.
    pub leg: Option<String>,
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
        let to_call = match self.calls.get(call_id).map(|c| &c.phase) {
            Some(super::Phase::Answered { to_call }) => to_call.clone(),
            _ => return, // the caller is already gone
        };
        let Some(crate::sip::dial::Target { uri, host, port }) = crate::sip::dial::sip_target(&to)
        else {
            tracing::warn!(to, "cannot transfer: not a sip: URI with a host");
            let _ = to_call.send(CallInput::TransferFailed);
            return;
        };
        if context.probe {
            // The probe hears the ringback and hangs up: nobody is rung for it.
            tracing::info!(to, "a probe call reached a transfer: it is not dialled");
            return;
        }
        self.agents.transfers.insert(
            id,
            Transfer {
                to_call,
                call_id: call_id.to_string(),
                uri,
                ring_timeout: Duration::from_secs(u64::from(ring_timeout_s.max(1))),
                context,
                leg: None,
            },
        );
        let sip = self.shared.sip.clone();
        tokio::spawn(async move {
            let target = tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4));
            let _ = sip.send(SipCommand::TransferResolved { id, target });
        });
    }

    /// Places the INVITE to the transfer target.
    pub(super) fn dial_transfer(&mut self, id: u64, target: Option<SocketAddr>, now: Instant) {
        let Some(t) = self.agents.transfers.get(&id) else {
            return; // the caller hung up meanwhile
        };
        let Some(target) = target else {
            tracing::warn!(to = t.uri, "cannot transfer: the host does not resolve");
            return self.transfer_failed(id);
        };
        let Some(socket) = self.shared.ports.open() else {
            tracing::warn!("cannot transfer: no RTP port free");
            return self.transfer_failed(id);
        };
        let domain = self.shared.config.sip.domain.clone();
        let (leg_id, offer) = self.leg_offer(&socket, sdp::OfferSrtp::No);
        let caller_user = crate::sip::dialog::uri_user(&t.context.caller);
        let mut headers = vec![
            header("Via", &self.via(Link::Udp)),
            header("Max-Forwards", "70"),
            header(
                "From",
                &format!(
                    "\"{}\" <sip:hotline@{domain}>;tag={}",
                    clean(caller_user).replace('"', ""),
                    tag()
                ),
            ),
            header("To", &format!("<{}>", t.uri)),
            header("Call-ID", &leg_id),
            header("CSeq", "1 INVITE"),
            header("Contact", &self.contact(Link::Udp)),
            header("Allow", ALLOW),
            header("User-Agent", "hotline"),
            header("X-Hotline-Caller", &clean(&t.context.caller)),
            header("X-Hotline-Path", &clean(&t.context.path.join(" "))),
        ];
        for (name, value) in &t.context.variables {
            let name: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .take(64)
                .collect();
            headers.push(header(&format!("X-Hotline-Var-{name}"), &clean(value)));
        }
        headers.push(header("Content-Type", "application/sdp"));
        let uri = t.uri.clone();
        let ring_timeout = t.ring_timeout;
        let invite = Message {
            start: Start::Request {
                method: "INVITE".into(),
                uri: uri.clone(),
            },
            headers,
            body: offer.into_bytes(),
        };
        tracing::info!(to = uri, %target, caller_call = t.call_id, "transferring the caller");
        self.send_request(&invite, Link::Udp, target, Some(leg_id.clone()), now);
        let media = self.next_call;
        self.next_call += 1;
        self.agents.legs.insert(
            leg_id.clone(),
            Leg {
                call: id,
                agent: 0,
                kind: LegKind::Transfer,
                invite,
                link: Link::Udp,
                peer: target,
                state: LegState::Ringing,
                socket,
                media,
                law: None,
                srtp: None,
                sdp_version: 1,
                reinvite: None,
            },
        );
        if let Some(t) = self.agents.transfers.get_mut(&id) {
            t.leg = Some(leg_id.clone());
        }
        self.schedule(now + ring_timeout, TimerRef::TransferRing(leg_id));
    }

    /// An answer to our INVITE to a transfer target.
    pub(super) fn on_transfer_response(
        &mut self,
        leg_id: &str,
        code: u16,
        resp: Message,
        via: String,
        now: Instant,
    ) {
        let Some(leg) = self.agents.legs.get_mut(leg_id) else {
            return;
        };
        let call = leg.call;
        match (code, &leg.state) {
            (100..=199, _) => {}
            (200..=299, _) => match self.take_answer(leg_id, &resp, &via, now) {
                Answer::Media(agreed) => self.transfer_answered(leg_id, call, agreed),
                Answer::Unusable => self.transfer_failed(call),
                Answer::Nothing => {}
            },
            (_, LegState::Ringing) => {
                tracing::info!(code, "the transfer target declined");
                self.remove_leg(leg_id);
                self.transfer_failed(call);
            }
            (_, _) => self.remove_leg(leg_id),
        }
    }

    fn transfer_answered(&mut self, leg_id: &str, call: u64, agreed: sdp::Agreed) {
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
        let _ = t
            .to_call
            .send(CallInput::TransferAnswered { to: t.uri.clone() });
    }

    /// The target rang for `ring_timeout_s`: stop it, and the flow goes on.
    pub(super) fn transfer_ring_timeout(&mut self, leg_id: &str, now: Instant) {
        let Some(leg) = self.agents.legs.get(leg_id) else {
            return;
        };
        if !matches!(leg.state, LegState::Ringing) {
            return;
        }
        let call = leg.call;
        tracing::info!("the transfer target did not answer in time");
        self.cancel_leg(leg_id, false, now);
        self.transfer_failed(call);
    }

    /// The transfer did not connect: the caller's flow takes `on_failure`.
    pub(super) fn transfer_failed(&mut self, call: u64) {
        if let Some(t) = self.agents.transfers.remove(&call) {
            let _ = t.to_call.send(CallInput::TransferFailed);
        }
    }

    /// The transfer target hung up (its leg already forgotten): the caller's call ends.
    pub(super) fn transfer_hung_up(&mut self, call: u64) {
        if let Some(t) = self.agents.transfers.remove(&call) {
            let _ = t.to_call.send(CallInput::AgentHungUp);
        }
    }

    /// The caller's call ended: cancel or hang up its transfer leg.
    pub(super) fn end_transfer(&mut self, call: u64, now: Instant) {
        let Some(t) = self.agents.transfers.remove(&call) else {
            return;
        };
        if let Some(leg) = t.leg {
            match self.agents.legs.get(&leg).map(|l| &l.state) {
                Some(LegState::Ringing) => self.cancel_leg(&leg, false, now),
                Some(LegState::Up { .. }) => self.hang_up_leg(&leg, now),
                _ => {}
            }
        }
    }
}

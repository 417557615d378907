//! An agent passes a caller on: a REFER from the agent's phone (a blind transfer, RFC 3515)
//! whose Refer-To names another queue (`sip:billing@…`). The caller hears the hold music
//! again and waits in that queue at the place their first arrival gave them; the agent wraps
//! up; the next agent is told who passed the caller on. The phone hears how it went as a
//! NOTIFY: `200` once the caller waits there, `404` for no such queue, `480` when nobody
//! serves it (the caller then stays with the agent), `603` for a call that is not a
//! caller's (a callback, a transfer target's).

use std::time::Instant;

use super::Signalling;
use super::agents::LegKind;
use crate::routing::RouterEvent;
use crate::server::call::CallInput;
use crate::server::pacer::PacerCommand;

impl Signalling {
    pub(super) fn referred(&mut self, leg_id: &str, to: &str, now: Instant) {
        let user = self
            .agents
            .legs
            .get(leg_id)
            .map(|l| (l.call, l.agent, l.kind));
        let Some((call, agent, LegKind::Agent)) = user else {
            tracing::info!(to, "a REFER on a call that is not an agent's: declined");
            return self.switch.notify(leg_id, 603, "Declined", now);
        };
        let by = self.agents.ids.get(agent).cloned().unwrap_or_default();
        let callers = self.agents.waiting.get(&call).is_some_and(|w| {
            w.connected.as_deref() == Some(leg_id) && w.to_call.is_some() && w.callback.is_none()
        });
        if !callers {
            tracing::info!(
                agent = by,
                to,
                "a REFER on a call with no caller to pass on"
            );
            return self.switch.notify(leg_id, 603, "Declined", now);
        }
        let name = crate::sip::dialog::uri_user(to);
        let queue = self
            .agents
            .queue_ids
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, &q)| (n.clone(), q));
        let Some((queue, q)) = queue else {
            tracing::info!(
                agent = by,
                to,
                "a transfer to no queue by that name: refused"
            );
            return self.switch.notify(leg_id, 404, "Not Found", now);
        };
        let staffed = self
            .agents
            .router
            .queue_figures(q, now)
            .is_some_and(|f| f.staffed > 0);
        if !staffed {
            tracing::info!(
                agent = by,
                queue,
                "a transfer to a queue nobody serves: refused"
            );
            return self
                .switch
                .notify(leg_id, 480, "Temporarily Unavailable", now);
        }
        let Some(w) = self.agents.waiting.get_mut(&call) else {
            return;
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
        if let Some(to_call) = &w.to_call {
            let _ = to_call.send(CallInput::Transferred {
                queue: queue.clone(),
                by,
            });
        }
        let _ = self.shared.pacer.send(PacerCommand::Unbridge { id: call });
        self.switch.notify(leg_id, 200, "OK", now);
        self.route(RouterEvent::Transfer { call, queue: q }, now);
    }
}

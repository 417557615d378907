//! `unknown-queue`, `unknown-calendar`, `unknown-lookup` and `unknown-switch`: names the config must define; and
//! `undialable-destination`: a transfer the server could not place with the config's trunks
//! and dial policy (a `tel:` no trunk or gateway takes, a `sips:` with no TLS trunk). Checked
//! only when a config was given or found (`validate` falls back to the embedded one).

use super::Checker;
use crate::flow::diagnostic::{Diagnostic, Rule};
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
    if let Some(policy) = &c.ctx.dial {
        for node in &c.set.nodes {
            let NodeKind::Transfer(t) = &node.kind else {
                continue;
            };
            let Some((to, pos)) = &t.to else { continue };
            if let Some(why) = policy.refuses(to) {
                let source = &c.set.flows[node.flow].source;
                c.diags.push(
                    Diagnostic::new(
                        Rule::UndialableDestination,
                        source,
                        *pos,
                        format!("transfer: hotline cannot dial \"{to}\": {why}"),
                    )
                    .at_node(node.full_name.clone()),
                );
            }
        }
    }
    for node in &c.set.nodes {
        let (rule, name, known, what) = match &node.kind {
            NodeKind::Queue(q) | NodeKind::Owner(q) => {
                (Rule::UnknownQueue, &q.queue, &c.ctx.queues, "queue")
            }
            NodeKind::Callback(q) => (Rule::UnknownQueue, &q.queue, &c.ctx.queues, "queue"),
            NodeKind::Schedule(s) => (
                Rule::UnknownCalendar,
                &s.calendar,
                &c.ctx.calendars,
                "calendar",
            ),
            NodeKind::Switch(s) => (
                Rule::UnknownSwitch,
                &s.switch,
                &c.ctx.switches,
                "switch ([switches.NAME])",
            ),
            NodeKind::Lookup(l) => (
                Rule::UnknownLookup,
                &l.endpoint,
                &c.ctx.lookups,
                "lookup endpoint ([lookups.NAME])",
            ),
            _ => continue,
        };
        let (Some((name, pos)), Some(known)) = (name, known) else {
            continue;
        };
        if !known.contains(name) {
            let mut list: Vec<_> = known.iter().map(String::as_str).collect();
            list.sort_unstable();
            let have = if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            };
            let source = &c.set.flows[node.flow].source;
            c.diags.push(
                Diagnostic::new(
                    rule,
                    source,
                    *pos,
                    format!("the config has no {what} \"{name}\" (it has: {have})"),
                )
                .at_node(node.full_name.clone()),
            );
        }
    }
}

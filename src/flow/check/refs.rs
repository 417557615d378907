//! `unknown-queue` and `unknown-calendar`: names the config must define (checked only when a
//! config was given or found).

use super::Checker;
use crate::flow::diagnostic::{Diagnostic, Rule};
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
    for node in &c.set.nodes {
        let (rule, name, known, what) = match &node.kind {
            NodeKind::Queue(q) => (Rule::UnknownQueue, &q.queue, &c.ctx.queues, "queue"),
            NodeKind::Callback(q) => (Rule::UnknownQueue, &q.queue, &c.ctx.queues, "queue"),
            NodeKind::Schedule(s) => (
                Rule::UnknownCalendar,
                &s.calendar,
                &c.ctx.calendars,
                "calendar",
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

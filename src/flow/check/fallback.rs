//! `no-fallback`: when a queue times out or a transfer fails, the call must go on to a live
//! human or a follow-up (through plays, schedules and branches), never to a menu or a hangup.

use super::Checker;
use super::walk::{Caller, Cost, End, Walker, state};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
    let mut w = Walker::new(c.g, Caller::Fallback, Cost::Steps);
    for (id, node) in c.set.nodes.iter().enumerate() {
        let (target, label) = match &node.kind {
            NodeKind::Queue(q) | NodeKind::Owner(q) => (&q.on_timeout, "timeout"),
            NodeKind::Transfer(t) => (&t.on_failure, "failure"),
            _ => continue,
        };
        let Some(target) = target.as_ref().and_then(|t| t.node) else {
            continue;
        };
        if !c.all.has_vertex(c.g.base[id]) {
            continue;
        }
        let s = state(c.g.base[target], false);
        let o = w.eval(s);
        let ends_at = c.g.node_of(o.at);
        let bad = match o.end {
            End::Human | End::FollowUp | End::FollowUpWhenClosed => false,
            // A play or schedule with no way onward is a dead end, reported there.
            End::Stuck => {
                c.set.nodes[ends_at].class() == Class::CallerFacing
                    && !matches!(c.set.nodes[ends_at].kind, NodeKind::Play(_))
            }
            End::Hangup | End::Loop => true,
        };
        if !bad {
            continue;
        }
        let why = match o.end {
            End::Loop => format!(
                "goes round to {} without a live human or a follow-up",
                c.describe(ends_at)
            ),
            _ => format!("ends at {}", c.describe(ends_at)),
        };
        let walk = c.path_to(c.g.base[id]).then(&{
            let mut tail = super::graph::Walk::from(c.g.base[id]);
            tail.hops.push((
                if label == "timeout" {
                    super::graph::Label::Timeout
                } else {
                    super::graph::Label::Failure
                },
                c.g.base[target],
            ));
            tail.then(&w.walk(s))
        });
        let d = c
            .at_node(
                Rule::NoFallback,
                id,
                format!(
                    "when {} {} the call {why}; it must end at a live human or a follow-up",
                    node.full_name,
                    if label == "timeout" {
                        "times out"
                    } else {
                        "fails"
                    }
                ),
            )
            .with_path(walk.to_path(c.g));
        c.diags.push(d);
    }
}

//! `dead-end`: a node with no way onward where it needs one (a play or collect without `next`,
//! a schedule without `open`/`closed`, a branch without `default`, a menu without options), and
//! schedules and branches that only lead round to each other.

use super::Checker;
use super::walk::{Caller, Cost, End, Walker, state};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
    let mut invisible = Walker::new(c.g, Caller::Invisible, Cost::Steps);
    for (id, node) in c.set.nodes.iter().enumerate() {
        let missing = match &node.kind {
            NodeKind::Play(n) if n.next.is_none() => {
                Some("a play needs `next`: where the call goes after the prompt")
            }
            NodeKind::Collect(n) if n.next.is_none() => {
                Some("a collect needs `next`: where the call goes with the digits")
            }
            NodeKind::Menu(n) if n.options.is_empty() => {
                Some("a menu needs `options`: the keys the caller can press")
            }
            NodeKind::Schedule(n) if n.open.is_none() => Some("a schedule needs `open`"),
            NodeKind::Schedule(n) if n.closed.is_none() => Some("a schedule needs `closed`"),
            NodeKind::Branch(n) if n.default.is_none() => {
                Some("a branch needs `default`: where calls that match no case go")
            }
            _ => None,
        };
        if let Some(why) = missing {
            let d = c.at_node(
                Rule::DeadEnd,
                id,
                format!("{} has no way onward: {why}", node.full_name),
            );
            c.diags.push(d);
            continue;
        }
        if node.class() == Class::Invisible {
            let s = state(c.g.base[id], false);
            let o = invisible.eval(s);
            // Report a loop once, at the node it comes back to.
            if o.end == End::Loop && c.g.node_of(o.at) == id {
                let walk = invisible.walk(s);
                let d = c
                    .at_node(
                        Rule::DeadEnd,
                        id,
                        format!(
                            "{} only leads round through schedules and branches back to itself",
                            node.full_name
                        ),
                    )
                    .with_path(walk.to_path(c.g));
                c.diags.push(d);
            }
        }
    }
}

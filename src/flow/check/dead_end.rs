//! `dead-end`: a node with no way onward where it needs one (a play or collect without `next`,
//! a schedule without `open`/`closed`, a branch without `default`, a menu without options), and
//! schedules and branches that only lead round to each other.

use super::Checker;
use super::graph::{Label, Vertex, Walk};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
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
            NodeKind::Switch(n) if n.on.is_none() || n.off.is_none() => {
                Some("a switch needs `on` and `off`")
            }
            NodeKind::Returning(n) if n.open.is_none() || n.none.is_none() => {
                Some("a returning node needs `open` (the caller has an open follow-up) and `none`")
            }
            NodeKind::Withdraw(n) if n.next.is_none() => {
                Some("a withdraw needs `next`: where the call goes once the item is closed")
            }
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
        }
    }
    invisible_loops(c);
}

/// Schedules and branches that lead round to each other: the call would spin without the
/// caller ever hearing anything. One diagnostic per loop, at the node it returns to.
fn invisible_loops(c: &mut Checker) {
    let g = c.g;
    let invisible = |v: Vertex| g.class(v) == Class::Invisible;
    // 0 unseen, 1 on the current path, 2 done.
    let mut color = vec![0u8; g.len()];
    for root in 0..g.len() as Vertex {
        if !invisible(root) || color[root as usize] != 0 {
            continue;
        }
        let mut stack: Vec<(Vertex, usize)> = vec![(root, 0)];
        color[root as usize] = 1;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            let edges = g.edges(v);
            if *i == edges.len() {
                color[v as usize] = 2;
                stack.pop();
                continue;
            }
            let e = edges[*i];
            *i += 1;
            if !invisible(e.to) {
                continue;
            }
            match color[e.to as usize] {
                0 => {
                    color[e.to as usize] = 1;
                    stack.push((e.to, 0));
                }
                1 => {
                    let from = stack.iter().position(|&(x, _)| x == e.to).unwrap_or(0);
                    let mut walk = Walk::from(e.to);
                    for w in stack[from..].windows(2) {
                        let (a, b) = (w[0].0, w[1].0);
                        let label = g
                            .edges(a)
                            .iter()
                            .find(|x| x.to == b)
                            .map_or(Label::Default, |x| x.label);
                        walk.hops.push((label, b));
                    }
                    walk.hops.push((e.label, e.to));
                    let id = g.node_of(e.to);
                    let d = c
                        .at_node(
                            Rule::DeadEnd,
                            id,
                            format!(
                                "{} leads round through schedules and branches back to itself: the call would spin with nothing for the caller",
                                c.set.nodes[id].full_name
                            ),
                        )
                        .with_path(walk.to_path(g));
                    c.diags.push(d);
                }
                _ => {}
            }
        }
    }
}

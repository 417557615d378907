//! `unreachable-node` and `watchdog-reachable` (warnings): nodes no call can reach, and choices
//! that run more than N steps without a live human, where the runtime watchdog steps in.

use std::collections::{HashMap, VecDeque};

use super::Checker;
use super::graph::{Label, Vertex, Walk};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;

/// States the watchdog search may visit before it gives up (it is a warning, not a proof).
const MAX_STATES: usize = 2_000_000;

pub(crate) fn check(c: &mut Checker) {
    let g = c.g;
    for (fi, flow) in c.set.flows.iter().enumerate() {
        if !flow.reported || c.set.entry(fi).is_none() {
            continue;
        }
        for &id in &flow.nodes {
            if !c.all.has_vertex(g.base[id]) {
                let d = c.at_node(
                    Rule::UnreachableNode,
                    id,
                    format!(
                        "no call can reach {}: nothing leads to it from an entry",
                        c.set.nodes[id].full_name
                    ),
                );
                c.diags.push(d);
            }
        }
    }
    for (fi, flow) in c.set.flows.iter().enumerate() {
        let Some(entry) = c.set.entry(fi) else {
            continue;
        };
        if !flow.reported {
            continue;
        }
        let bound = c.steps_bound(fi);
        if let Some(walk) = over_bound(c, g.base[entry], bound) {
            let end = walk.end().unwrap_or(g.base[entry]);
            let node = g.node_of(end);
            // The bound is the line's (the flow the call entered); the watchdog sends the
            // caller to the escape of the flow they are in when it steps in, as the escape
            // digit would: the engine and `simulate` do the same.
            let here = c.set.nodes[node].flow;
            let escape = c.set.flows[here].escape_to.as_ref().map_or_else(
                || "escape_to".to_string(),
                |t| {
                    t.node
                        .map_or(t.text.clone(), |n| c.set.nodes[n].full_name.clone())
                },
            );
            let d = c
                .at_node(
                    Rule::WatchdogReachable,
                    node,
                    format!(
                        "a caller can take {bound} steps without reaching a live human; the watchdog sends them to {escape} instead of step {}",
                        bound + 1
                    ),
                )
                .with_path(walk.to_path(g));
            c.diags.push(d);
        }
    }
}

/// The shortest walk from `start` whose step count passes `bound` before any live human.
fn over_bound<'a>(c: &Checker<'_, 'a>, start: Vertex, bound: u32) -> Option<Walk<'a>> {
    let g = c.g;
    let weight = |v: Vertex| u32::from(g.is_step(v));
    let mut pred: HashMap<(Vertex, u32), ((Vertex, u32), Label<'a>)> = HashMap::new();
    let mut queue = VecDeque::from([(start, weight(start))]);
    let mut seen = std::collections::HashSet::from([(start, weight(start))]);
    let mut found = None;
    if weight(start) > bound {
        found = Some((start, weight(start)));
    }
    while let (None, Some((v, k))) = (found, queue.pop_front()) {
        if seen.len() > MAX_STATES {
            return None;
        }
        if matches!(
            g.class(v),
            Class::LiveHuman | Class::FollowUp | Class::Hangup
        ) {
            continue;
        }
        for e in g.edges(v) {
            if g.class(e.to) == Class::LiveHuman {
                continue;
            }
            let t = (e.to, k + weight(e.to));
            if seen.insert(t) {
                pred.insert(t, ((v, k), e.label));
                if t.1 > bound {
                    found = Some(t);
                    break;
                }
                queue.push_back(t);
            }
        }
    }
    let mut s = found?;
    let mut hops = Vec::new();
    while let Some(&(p, label)) = pred.get(&s) {
        hops.push((label, s.0));
        s = p;
    }
    hops.reverse();
    Some(Walk {
        start: Some(s.0),
        hops,
    })
}

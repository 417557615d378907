//! `unreachable-node` and `watchdog-reachable` (warnings): nodes no call can reach, and choices
//! that run more than N steps without a live human, where the runtime watchdog steps in. A
//! node marked `allow = ["loop"]` may be come back to as often as the caller chooses: walks
//! that return to it are acknowledged, not warned of (walks that do not still are).

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

/// The shortest walk from `start` whose step count passes `bound` before any live human,
/// never coming back to a node marked `allow = ["loop"]` (its state keeps which of those
/// it has entered).
fn over_bound<'a>(c: &Checker<'_, 'a>, start: Vertex, bound: u32) -> Option<Walk<'a>> {
    let g = c.g;
    let weight = |v: Vertex| u32::from(g.is_step(v));
    // The first 32 such nodes are told apart; more than that is no line anyone writes.
    let bits: HashMap<usize, u32> = c
        .set
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.allow_loop)
        .take(32)
        .enumerate()
        .map(|(bit, (id, _))| (id, 1u32 << bit))
        .collect();
    // Entering `v` with `mask`: the new mask, or `None` for a return to an allowed loop.
    let enter = |v: Vertex, mask: u32| -> Option<u32> {
        let bit = bits
            .get(&g.node_of(v))
            .copied()
            .filter(|_| g.is_first_attempt(v));
        match bit {
            Some(b) if mask & b != 0 => None,
            Some(b) => Some(mask | b),
            None => Some(mask),
        }
    };
    type State = (Vertex, u32, u32);
    let first: State = (start, weight(start), enter(start, 0).unwrap_or(0));
    let mut pred: HashMap<State, (State, Label<'a>)> = HashMap::new();
    let mut queue = VecDeque::from([first]);
    let mut seen = std::collections::HashSet::from([first]);
    let mut found = None;
    if weight(start) > bound {
        found = Some(first);
    }
    while let (None, Some((v, k, mask))) = (found, queue.pop_front()) {
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
            let Some(m) = enter(e.to, mask) else {
                continue; // the caller chose to come back: an intended loop
            };
            let t = (e.to, k + weight(e.to), m);
            if seen.insert(t) {
                pred.insert(t, ((v, k, mask), e.label));
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

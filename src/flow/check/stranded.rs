//! `silent-caller-stranded` and `lost-caller-stranded`: from every caller-facing node met before
//! a live human, a caller who falls silent (or presses only wrong keys) there must reach a live
//! human within N steps, on every branch.

use std::collections::HashMap;

use super::Checker;
use super::graph::{Label, Vertex};
use super::reach::Reach;
use super::walk::{Caller, Cost, End, Outcome, Walker};
use crate::flow::diagnostic::Rule;

fn fails(o: &Outcome, bound: u32) -> bool {
    match o.end {
        // Missing targets are reported by their own rules.
        End::Stuck => false,
        _ => !o.ok() || o.cost > u64::from(bound),
    }
}

/// A play on the way to a hangup the caller chose (nothing but plays from here to it): the
/// `forced-hangup` rule proves the caller got here by pressing an option.
fn chosen_goodbye(w: &mut Walker, s: u32) -> bool {
    w.eval(s).end == End::Hangup && w.walk(s).hops.iter().all(|h| h.0 == Label::Done)
}

pub(crate) fn check(c: &mut Checker, caller: Caller) {
    let g = c.g;
    let rule = match caller {
        Caller::Silent => Rule::SilentCallerStranded,
        _ => Rule::LostCallerStranded,
    };
    let mut w = Walker::new(g, caller, Cost::Steps);
    // What callers meet before a human, from every entry at once: each node's path is the
    // shortest from any entry (ties to the flow whose name sorts first), whatever the order
    // the files came in. Every failing first attempt: (vertex, state).
    let entries = super::entries(c.set, g);
    let reach = Reach::from(g, &entries, true);
    let entries: std::collections::HashSet<Vertex> = entries.into_iter().collect();
    let mut failing: Vec<(Vertex, u32)> = Vec::new();
    let mut order_of: HashMap<Vertex, usize> = HashMap::new();
    for &s in &reach.order {
        let v = s / 2;
        // Every caller-facing node, and an entry whatever it is: no choice was made there.
        let judged = g.is_first_attempt(v) || entries.contains(&v);
        if !judged || order_of.contains_key(&v) {
            continue;
        }
        order_of.insert(v, order_of.len());
        let bound = c.steps_bound(c.set.nodes[g.node_of(v)].flow);
        if fails(&w.eval(s), bound) && !chosen_goodbye(&mut w, s) {
            failing.push((v, s));
        }
    }
    let failing_states: HashMap<Vertex, u32> = failing.iter().copied().collect();
    let cycles = w.cycles();
    // Of the failing nodes going round one cycle together, the first reached reports it.
    let mut first_of_cycle: HashMap<u32, usize> = HashMap::new();
    for &(v, s) in &failing {
        if let Some(c) = cycles[s as usize] {
            let o = order_of[&v];
            first_of_cycle
                .entry(c)
                .and_modify(|m| *m = (*m).min(o))
                .or_insert(o);
        }
    }
    // Where each failing node's trouble lies: itself (reported), or a failing node its walk
    // passes first (skipped, unless they go round together and this one comes first). (Found
    // lazily: in a chain of thousands of failing nodes each one's first hop answers.)
    let mut leads_to: HashMap<Vertex, Vertex> = HashMap::new();
    for &(v, s) in &failing {
        let downstream = w.first_on_walk(s, |y| {
            y != v && g.is_first_attempt(y) && failing_states.contains_key(&y)
        });
        if let Some(t) = downstream {
            let y = t / 2;
            // Going round together is a matter of the states on this walk (a node met
            // before and after a closed branch is two states, on two cycles).
            let (cv, cy) = (cycles[s as usize], cycles[t as usize]);
            let round = cv.is_some() && cv == cy;
            let first = cv.is_some_and(|c| first_of_cycle[&c] == order_of[&v]);
            if !round || !first {
                leads_to.insert(v, y);
            }
        }
    }
    // Every failing node pointing at another is a round with no first one: the first
    // reached is reported, so no trap goes unsaid.
    if failing.iter().all(|(v, _)| leads_to.contains_key(v))
        && let Some(&(v, _)) = failing.iter().min_by_key(|(v, _)| order_of[v])
    {
        leads_to.remove(&v);
    }
    // How many skipped nodes each reported one strands: each skipped node's chain is followed
    // to its end once (what it ends at is remembered for every node on the way).
    let mut root_of: HashMap<Vertex, Option<Vertex>> = HashMap::new();
    let mut behind: HashMap<Vertex, usize> = HashMap::new();
    for &(v, ..) in &failing {
        if !leads_to.contains_key(&v) {
            continue;
        }
        let mut chain = Vec::new();
        let mut at = v;
        let root = loop {
            if let Some(r) = root_of.get(&at) {
                break *r;
            }
            match leads_to.get(&at) {
                None => break Some(at),
                Some(&next) => {
                    if chain.len() > leads_to.len() {
                        break None; // round without an end: no one node to count it against
                    }
                    chain.push(at);
                    at = next;
                }
            }
        };
        for x in chain {
            root_of.insert(x, root);
        }
        if let Some(r) = root {
            *behind.entry(r).or_default() += 1;
        }
    }
    for &(v, s) in &failing {
        if leads_to.contains_key(&v) {
            continue;
        }
        let walk = w.walk(s);
        let o = w.eval(s);
        let node = g.node_of(v);
        let bound = c.steps_bound(c.set.nodes[node].flow);
        let steps = walk.steps(g);
        let who = caller.describe();
        let end = g.node_of(o.at);
        let msg = match o.end {
            End::Hangup => format!("{who} reaches {} after {steps} steps", c.describe(end)),
            End::FollowUp => format!(
                "{who} ends at {} after {steps} steps, while the line is open: not a live human",
                c.describe(end)
            ),
            End::Loop => format!(
                "{who} goes round back to {} and never reaches a live human",
                c.set.nodes[end].full_name
            ),
            _ => format!(
                "{who} takes {} steps to reach {}; the bound is {bound}",
                o.cost,
                c.describe(end)
            ),
        };
        let msg = match behind.get(&v) {
            Some(1) => format!(
                "{msg} (1 more caller-facing node leads here and strands its callers the same way)"
            ),
            Some(n) => format!(
                "{msg} ({n} more caller-facing nodes lead here and strand their callers the same way)"
            ),
            None => msg,
        };
        let path = reach.path_to(s).then(&walk).to_path(g);
        let d = c.at_node(rule, node, msg).with_path(path);
        c.diags.push(d);
    }
}

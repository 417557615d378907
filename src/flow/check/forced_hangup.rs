//! `forced-hangup`: a hangup is acceptable only where the caller chose it. Walking back from the
//! hangup through plays, the edge found must be a menu option the caller pressed.

use std::collections::HashSet;

use super::Checker;
use super::graph::{Label, Vertex};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;
use crate::flow::node::NodeKind;

fn cause(label: Option<Label>) -> &'static str {
    match label {
        None => "it is where the call starts",
        Some(Label::Silence) => "a silent caller runs out of retries",
        Some(Label::Wrong) => "a caller presses a wrong key",
        Some(Label::Digits) => "a collect finishes",
        Some(Label::Timeout) => "a queue times out",
        Some(Label::Failure) => "a transfer fails",
        Some(Label::Open | Label::Closed) => "a schedule sends the call there",
        Some(Label::Case(_) | Label::Default) => "a branch sends the call there",
        Some(Label::Answer | Label::Error) => "a lookup sends the call there",
        Some(Label::On | Label::Off) => "a switch sends the call there",
        Some(Label::NoItem) => "a returning node sends the call there",
        Some(Label::Withdrawn) => "the caller withdrew their follow-up",
        Some(Label::Escape(_)) => "the escape digit is pressed",
        Some(Label::Key(_) | Label::Done) => "the caller chose it",
    }
}

pub(crate) fn check(c: &mut Checker) {
    let g = c.g;
    let mut rev: Vec<Vec<(Vertex, Label)>> = vec![Vec::new(); g.len()];
    for u in 0..g.len() as Vertex {
        for e in g.edges(u) {
            rev[e.to as usize].push((u, e.label));
        }
    }
    let entries: HashSet<Vertex> = (0..c.set.flows.len())
        .filter_map(|f| c.set.entry(f))
        .map(|n| g.base[n])
        .collect();
    let is_play = |v: Vertex| matches!(c.set.nodes[g.node_of(v)].kind, NodeKind::Play(_));
    for (id, node) in c.set.nodes.iter().enumerate() {
        if node.class() != Class::Hangup {
            continue;
        }
        let h = g.base[id];
        // The plays that lead to this hangup, and the edges that lead into them.
        let mut chain = vec![h];
        let mut in_chain: HashSet<Vertex> = HashSet::from([h]);
        let mut bad: Vec<(Option<(Vertex, Label)>, Vertex)> = Vec::new();
        let mut i = 0;
        while i < chain.len() {
            let x = chain[i];
            i += 1;
            if entries.contains(&x) {
                bad.push((None, x));
            }
            for &(u, label) in &rev[x as usize] {
                match label {
                    // Plays, and closing the caller's follow-up at their word, pass the choice
                    // on.
                    Label::Done | Label::Withdrawn if is_play(u) || label == Label::Withdrawn => {
                        if in_chain.insert(u) {
                            chain.push(u);
                        }
                    }
                    Label::Key(_) if g.class(u) == Class::CallerFacing => {}
                    // Escaping to a hangup is the `no-escape` rule's finding.
                    Label::Escape(_) => {}
                    _ => bad.push((Some((u, label)), x)),
                }
            }
        }
        let mut seen = HashSet::new();
        for (edge, x) in bad {
            let from = edge.map_or(x, |(u, _)| u);
            if !c.all.has_vertex(from) || !seen.insert(g.node_of(from)) {
                continue;
            }
            let mut walk = c.path_to(from);
            if let Some((_, label)) = edge {
                walk.hops.push((label, x));
            }
            // On through the plays to the hangup.
            let mut v = x;
            while v != h && walk.hops.len() < 2 * chain.len() + 8 {
                let Some(e) = g
                    .edges(v)
                    .iter()
                    .find(|e| matches!(e.label, Label::Done | Label::Withdrawn))
                else {
                    break;
                };
                walk.hops.push((e.label, e.to));
                v = e.to;
            }
            let via = c.set.nodes[g.node_of(from)].full_name.clone();
            let msg = match edge {
                None => format!(
                    "{} is reached without the caller choosing it: {}",
                    c.describe(id),
                    cause(None)
                ),
                Some((_, label)) => format!(
                    "{} is reached from {via} when {}: a hangup the caller did not choose",
                    c.describe(id),
                    cause(Some(label))
                ),
            };
            let d = c
                .at_node(Rule::ForcedHangup, id, msg)
                .with_path(walk.to_path(g));
            c.diags.push(d);
        }
    }
}

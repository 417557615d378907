//! `unknown-variable`: a branch tests a call variable that some way to it never sets (a
//! misspelt name, or a collect the caller can go round). Such a caller would silently take
//! the branch's default; the shortest such way from an entry is the counterexample.
//! A variable is set by a collect's accepted entry, by arriving at a node whose `set` names
//! it, and is always set when it is a built-in (`caller_number`, `line`, `time`, `weekday`).

use std::collections::{HashMap, HashSet, VecDeque};

use super::Checker;
use super::graph::{Label, Vertex, Walk};
use crate::flow::diagnostic::Rule;
use crate::flow::node::NodeKind;

pub(crate) fn check(c: &mut Checker) {
    let g = c.g;
    let mut tested: Vec<&str> = c
        .set
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Branch(b) => b.variable.as_ref().map(|(v, _)| v.as_str()),
            _ => None,
        })
        .filter(|v| !crate::flow::variables::is_builtin(v))
        .collect();
    tested.sort_unstable();
    tested.dedup();
    let set_somewhere: Vec<&str> = {
        let mut v: Vec<&str> = c
            .set
            .nodes
            .iter()
            .flat_map(|n| {
                let own = match &n.kind {
                    NodeKind::Collect(col) => col.variable.as_deref(),
                    _ => None,
                };
                own.into_iter().chain(n.set.iter().map(|(k, _)| k.as_str()))
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let entries = super::entries(c.set, g);
    for var in tested {
        // Every way from an entry that does not pass a collect setting `var` (its entry
        // accepted: the `digits` edge).
        let sets = |v: Vertex, label: Label| {
            let node = &c.set.nodes[g.node_of(v)];
            node.set.iter().any(|(k, _)| k == var)
                || label == Label::Digits
                    && matches!(&node.kind,
                    NodeKind::Collect(col) if col.variable.as_deref() == Some(var))
        };
        let mut pred: HashMap<Vertex, (Vertex, Label)> = HashMap::new();
        let mut seen: HashSet<Vertex> = entries.iter().copied().collect();
        let mut queue: VecDeque<Vertex> = entries.iter().copied().collect();
        let mut reported = HashSet::new();
        while let Some(v) = queue.pop_front() {
            let node = g.node_of(v);
            if let NodeKind::Branch(b) = &c.set.nodes[node].kind
                && let Some((name, pos)) = &b.variable
                && name == var
                && !c.set.nodes[node].set.iter().any(|(k, _)| k == var)
                && reported.insert(node)
            {
                let mut hops = Vec::new();
                let mut at = v;
                while let Some(&(p, label)) = pred.get(&at) {
                    hops.push((label, at));
                    at = p;
                }
                hops.reverse();
                let walk = Walk {
                    start: Some(at),
                    hops,
                };
                let default = b
                    .default
                    .as_ref()
                    .and_then(|t| t.node)
                    .map_or("its default".to_string(), |n| {
                        c.set.nodes[n].full_name.clone()
                    });
                let known = if set_somewhere.is_empty() {
                    "nothing in these flows sets a variable".to_string()
                } else {
                    format!("variables these flows set: {}", set_somewhere.join(", "))
                };
                let flow = &c.set.flows[c.set.nodes[node].flow];
                let d = crate::flow::Diagnostic::new(
                    Rule::UnknownVariable,
                    &flow.source,
                    *pos,
                    format!(
                        "{} tests \"{var}\", which nothing sets on this way here: every such caller goes to {default} ({known})",
                        c.set.nodes[node].full_name
                    ),
                )
                .at_node(c.set.nodes[node].full_name.clone())
                .with_path(walk.to_path(g));
                c.diags.push(d);
            }
            for e in g.edges(v) {
                if sets(v, e.label) || !seen.insert(e.to) {
                    continue;
                }
                pred.insert(e.to, (v, e.label));
                queue.push_back(e.to);
            }
        }
    }
}

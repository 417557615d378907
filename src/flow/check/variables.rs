//! `unknown-variable`: a branch tests (or a lookup sends) a call variable that some way to it
//! never sets (a misspelt name, or a collect the caller can go round). Such a caller would
//! silently take the branch's default; the shortest such way from an entry is the
//! counterexample. A variable is set by a collect's accepted entry, by arriving at a node
//! whose `set` names it, by a lookup's answer (`NAME.FIELD` for the fields its endpoint
//! declares), and is always set when it is a built-in (`caller_number`, `line`, `time`,
//! `weekday`).

use std::collections::{HashMap, HashSet, VecDeque};

use super::Checker;
use super::graph::{Label, Vertex, Walk};
use crate::flow::diagnostic::Rule;
use crate::flow::model::{FlowSet, Node};
use crate::flow::node::NodeKind;
use crate::flow::source::Pos;

/// The variables a node reads, with where each is written.
fn reads(node: &Node) -> Vec<(&str, Pos)> {
    match &node.kind {
        NodeKind::Branch(b) => b.variable.iter().map(|(v, p)| (v.as_str(), *p)).collect(),
        NodeKind::Lookup(l) => l.send.iter().map(|(v, p)| (v.as_str(), *p)).collect(),
        _ => Vec::new(),
    }
}

/// Whether leaving `node` by `label` has set `var`.
fn sets(set: &FlowSet, node: &Node, label: Label, var: &str) -> bool {
    if node.set.iter().any(|(k, _)| k == var) {
        return true;
    }
    match (&node.kind, label) {
        (NodeKind::Collect(col), Label::Digits) => col.variable.as_deref() == Some(var),
        (NodeKind::Returning(_), Label::Open) => {
            crate::flow::node::FOLLOW_UP_VARIABLES.contains(&var)
        }
        (NodeKind::Lookup(l), Label::Answer) => var
            .strip_prefix(l.endpoint())
            .and_then(|f| f.strip_prefix('.'))
            .is_some_and(|field| {
                set.lookups
                    .get(l.endpoint())
                    .is_some_and(|e| e.fields.contains_key(field))
            }),
        _ => false,
    }
}

pub(crate) fn check(c: &mut Checker) {
    let g = c.g;
    let mut tested: Vec<&str> = c
        .set
        .nodes
        .iter()
        .flat_map(|n| reads(n).into_iter().map(|(v, _)| v))
        .filter(|v| !crate::flow::variables::is_builtin(v))
        .collect();
    tested.sort_unstable();
    tested.dedup();
    let set_somewhere: Vec<String> = {
        let mut v: Vec<String> = c
            .set
            .nodes
            .iter()
            .flat_map(|n| {
                let mut own: Vec<String> = n.set.iter().map(|(k, _)| k.clone()).collect();
                match &n.kind {
                    NodeKind::Collect(col) => own.extend(col.variable.clone()),
                    NodeKind::Returning(_) => own.extend(
                        crate::flow::node::FOLLOW_UP_VARIABLES
                            .iter()
                            .map(|v| v.to_string()),
                    ),
                    NodeKind::Lookup(l) => {
                        if let Some(e) = c.set.lookups.get(l.endpoint()) {
                            own.extend(e.variables(l.endpoint()));
                        }
                    }
                    _ => {}
                }
                own
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let entries = super::entries(c.set, g);
    for var in tested {
        // Every way from an entry that passes nothing setting `var`.
        let mut pred: HashMap<Vertex, (Vertex, Label)> = HashMap::new();
        let mut seen: HashSet<Vertex> = entries.iter().copied().collect();
        let mut queue: VecDeque<Vertex> = entries.iter().copied().collect();
        let mut reported = HashSet::new();
        while let Some(v) = queue.pop_front() {
            let node = g.node_of(v);
            let n = &c.set.nodes[node];
            let read = reads(n).into_iter().find(|(name, _)| *name == var);
            if let Some((_, pos)) = read
                && !n.set.iter().any(|(k, _)| k == var)
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
                let consequence = match &n.kind {
                    NodeKind::Branch(b) => {
                        let default = b
                            .default
                            .as_ref()
                            .and_then(|t| t.node)
                            .map_or("its default".to_string(), |d| {
                                c.set.nodes[d].full_name.clone()
                            });
                        format!("every such caller goes to {default}")
                    }
                    _ => "every such caller's lookup sends it empty".to_string(),
                };
                let known = if set_somewhere.is_empty() {
                    "nothing in these flows sets a variable".to_string()
                } else {
                    format!("variables these flows set: {}", set_somewhere.join(", "))
                };
                let verb = match &n.kind {
                    NodeKind::Branch(_) => "tests",
                    _ => "sends",
                };
                let flow = &c.set.flows[n.flow];
                let d = crate::flow::Diagnostic::new(
                    Rule::UnknownVariable,
                    &flow.source,
                    pos,
                    format!(
                        "{} {verb} \"{var}\", which nothing sets on this way here: {consequence} ({known})",
                        n.full_name
                    ),
                )
                .at_node(n.full_name.clone())
                .with_path(walk.to_path(g));
                c.diags.push(d);
            }
            for e in g.edges(v) {
                if sets(c.set, n, e.label, var) || !seen.insert(e.to) {
                    continue;
                }
                pred.insert(e.to, (v, e.label));
                queue.push_back(e.to);
            }
        }
    }
}

//! `too-slow`: a caller who falls silent at any caller-facing node met before a live human must
//! be offered one within `max_seconds_to_human` of the start of the call. The time counts the
//! shortest way from an entry to that node (its prompts heard, keys pressed once they end, a
//! timeout waited out where the way is silence), then the silent caller's worst case from there
//! (prompt lengths and timeouts). Each root cause is reported once: at the first node on such a
//! way where the bound is exceeded, with how many nodes behind it are too slow because of it.
//! Also the per-flow summary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use super::graph::{Graph, Label, Vertex, Walk};
use super::reach::StateHasher;
use super::walk::{Caller, Cost, Outcome, Walker, state};
use super::{Checker, FlowSummary};
use crate::flow::diagnostic::Rule;
use crate::flow::model::Class;

/// What leaving vertex `v` by `label` costs in milliseconds: its prompts, and its timeout
/// when the caller says nothing.
fn edge_millis(g: &Graph, v: Vertex, label: Label) -> u64 {
    let node = &g.set.nodes[g.node_of(v)];
    if let crate::flow::node::NodeKind::Lookup(l) = &node.kind {
        return g.set.lookup_millis(l.endpoint());
    }
    if !g.is_step(v) {
        return 0;
    }
    let Some((prompts, timeout)) = node.kind.prompts_and_timeout() else {
        return 0;
    };
    let prompt = (g.set.prompt_seconds(g.node_of(v), prompts) * 1000.0).round() as u64;
    match label {
        Label::Silence => prompt + u64::from(timeout) * 1000,
        _ => prompt,
    }
}

/// Maps keyed by the operator's own small state numbers: the fast hasher is enough.
type Fast<K, V> = HashMap<K, V, BuildHasherDefault<StateHasher>>;

/// The quickest way (in time) from any entry to every state met before a live human.
struct Quickest<'a> {
    /// States in the order they were settled (nearest first), with their time.
    order: Vec<(u32, u64)>,
    pred: super::reach::Preds<'a>,
}

impl<'a> Quickest<'a> {
    fn from(g: &Graph<'a>, entries: &[Vertex]) -> Quickest<'a> {
        let mut best: Fast<u32, u64> = Fast::default();
        let mut pred = Fast::default();
        let mut heap = BinaryHeap::new();
        // Ties go to the entry listed first (the flows sorted by name), then the lower state.
        for (i, &v) in entries.iter().enumerate() {
            let s = state(v, false);
            if best.insert(s, 0).is_none() {
                pred.insert(s, None);
                heap.push(Reverse((0u64, i, s)));
            }
        }
        let mut order = Vec::new();
        let mut settled: HashSet<u32, BuildHasherDefault<StateHasher>> = HashSet::default();
        while let Some(Reverse((d, i, s))) = heap.pop() {
            if !settled.insert(s) {
                continue;
            }
            order.push((s, d));
            let v = s / 2;
            if g.class(v) == Class::LiveHuman {
                continue;
            }
            for e in g.edges(v) {
                let t = state(e.to, s % 2 == 1 || e.label == Label::Closed);
                let nd = d + edge_millis(g, v, e.label);
                if best.get(&t).is_none_or(|&b| nd < b) {
                    best.insert(t, nd);
                    pred.insert(t, Some((s, e.label)));
                    heap.push(Reverse((nd, i, t)));
                }
            }
        }
        Quickest { order, pred }
    }

    fn path_to(&self, s: u32) -> Walk<'a> {
        super::reach::walk_back(&self.pred, s)
    }
}

pub(crate) fn check(c: &mut Checker) -> Vec<FlowSummary> {
    let g = c.g;
    let mut steps = Walker::new(g, Caller::Silent, Cost::Steps);
    let mut millis = Walker::new(g, Caller::Silent, Cost::Millis);
    let mut out = Vec::new();
    for flow in &c.set.flows {
        if !flow.reported {
            continue;
        }
        let entry = flow.entry.as_ref().and_then(|t| t.node);
        let mut summary = FlowSummary {
            flow: flow.name.clone(),
            file: flow.source.path.display().to_string(),
            entry: entry.map(|e| c.set.nodes[e].full_name.clone()),
            nodes: flow.nodes.len(),
            silent_steps: None,
            silent_seconds: None,
        };
        if let Some(entry) = entry {
            let s = state(g.base[entry], false);
            let (st, ms) = (steps.eval(s), millis.eval(s));
            if st.ok() {
                summary.silent_steps = Some(st.cost);
            }
            if ms.ok() {
                summary.silent_seconds = Some(ms.cost as f64 / 1000.0);
            }
        }
        out.push(summary);
    }
    too_slow(c, &mut millis);
    out
}

fn too_slow(c: &mut Checker, millis: &mut Walker) {
    let g = c.g;
    let entries = super::entries(c.set, g);
    let quickest = Quickest::from(g, &entries);
    let is_entry: std::collections::HashSet<Vertex> = entries.iter().copied().collect();
    // Judged: every caller-facing node's first attempt, and the entries whatever they are.
    // Each judged state, in the order reached: (state, time to it, the silent worst from it).
    let mut judged: Vec<(u32, u64, Outcome)> = Vec::new();
    let mut failing: Fast<u32, bool> = Fast::default();
    for &(s, d) in &quickest.order {
        let v = s / 2;
        if !(g.is_first_attempt(v) || is_entry.contains(&v)) {
            continue;
        }
        let o = millis.eval(s);
        let bound = u64::from(c.set.flows[c.set.nodes[g.node_of(v)].flow].max_seconds_to_human);
        let fails = o.ok() && d + o.cost > bound * 1000;
        failing.insert(s, fails);
        judged.push((s, d, o));
    }
    // The failing node nearest before each state on its quickest way, if any: a node with one
    // is too slow because of it (reported there, counted behind it).
    let mut cause: Fast<u32, Option<u32>> = Fast::default();
    for &(s, _) in &quickest.order {
        let before = match quickest.pred.get(&s) {
            Some(Some((p, _))) => {
                if failing.get(p).copied().unwrap_or(false) {
                    Some(cause.get(p).copied().flatten().unwrap_or(*p))
                } else {
                    cause.get(p).copied().flatten()
                }
            }
            _ => None,
        };
        cause.insert(s, before);
    }
    let mut behind: Fast<u32, usize> = Fast::default();
    for &(s, ..) in &judged {
        if failing[&s]
            && let Some(Some(root)) = cause.get(&s)
        {
            *behind.entry(*root).or_default() += 1;
        }
    }
    for (s, d, o) in judged {
        if !failing[&s] || cause.get(&s).copied().flatten().is_some() {
            continue;
        }
        let v = s / 2;
        let node = g.node_of(v);
        let bound = c.set.flows[c.set.nodes[node].flow].max_seconds_to_human;
        let end = c.describe(g.node_of(o.at));
        let secs = |ms: u64| ms as f64 / 1000.0;
        let msg = if d == 0 {
            format!(
                "a silent caller waits {:.1} s of prompts and timeouts before reaching {end}; max_seconds_to_human is {bound}",
                secs(o.cost)
            )
        } else {
            format!(
                "a caller who gets here {:.1} s into the call and then falls silent waits {:.1} s more of prompts and timeouts before reaching {end}: {:.1} s in all; max_seconds_to_human is {bound}",
                secs(d),
                secs(o.cost),
                secs(d + o.cost)
            )
        };
        let walk = quickest.path_to(s).then(&millis.walk(s));
        let times = per_node(g, &walk);
        let msg = match node_by_node(c, &times) {
            Some(t) => format!("{msg}; {t}"),
            None => msg,
        };
        // Told at a node the caller hears: an invisible entry (a schedule, a branch) is
        // nowhere the time goes, so the first node that takes some is named instead (and is
        // no longer one of those behind it).
        let invisible = c.set.nodes[node].kind.class() == Class::Invisible;
        let heard = times.iter().find(|t| t.1 > 0).map(|t| t.0);
        let (node, behind) = match (invisible, heard) {
            (true, Some(heard)) => (heard, behind.get(&s).map(|n| n.saturating_sub(1))),
            _ => (node, behind.get(&s).copied()),
        };
        let msg = match behind {
            Some(0) | None => msg,
            Some(1) => {
                format!("{msg} (1 more caller-facing node after it is too slow because of it)")
            }
            Some(n) => {
                format!("{msg} ({n} more caller-facing nodes after it are too slow because of it)")
            }
        };
        let diag = c
            .at_node(Rule::TooSlow, node, msg)
            .with_path(walk.to_path(g));
        c.diags.push(diag);
    }
}

/// The time a walk spends at each node (its prompts, and the timeouts waited out there;
/// every attempt of a menu counted), in the order the nodes are first met.
fn per_node(g: &Graph, walk: &Walk) -> Vec<(usize, u64)> {
    let mut out: Vec<(usize, u64)> = Vec::new();
    let vertices: Vec<Vertex> = walk.vertices().collect();
    for (i, &v) in vertices.iter().enumerate() {
        let ms = walk
            .hops
            .get(i)
            .map_or(0, |&(label, _)| edge_millis(g, v, label));
        let node = g.node_of(v);
        match out.iter_mut().find(|t| t.0 == node) {
            Some(t) => t.1 += ms,
            None => out.push((node, ms)),
        }
    }
    out
}

/// `node by node: main.welcome 1.0 s, main.menu 21.0 s; most in main.menu` (the nodes that
/// take any time; a node whose prompts are slowest in another language than the default says
/// which: `main.menu 21.0 s in Spanish (es)`).
fn node_by_node(c: &Checker, times: &[(usize, u64)]) -> Option<String> {
    let taking: Vec<&(usize, u64)> = times.iter().filter(|t| t.1 > 0).collect();
    let most = taking.iter().max_by_key(|t| t.1)?;
    let name = |n: usize| c.set.nodes[n].full_name.as_str();
    let list: Vec<String> = taking
        .iter()
        .map(|&&(n, ms)| {
            let language = c.set.nodes[n]
                .kind
                .prompts_and_timeout()
                .map(|(prompts, _)| c.set.slowest_language(n, prompts).0)
                .filter(|l| l != crate::flow::language::DEFAULT && !l.is_empty())
                .map(|l| format!(" in {}", crate::flow::language::display(&l)))
                .unwrap_or_default();
            format!("{} {:.1} s{language}", name(n), ms as f64 / 1000.0)
        })
        .collect();
    Some(format!(
        "node by node: {}; most in {}",
        list.join(", "),
        name(most.0)
    ))
}

//! The proof that no caller is trapped: every rule of SPEC §3, each in the file of its family,
//! all on one expanded graph (`graph.rs`) with shortest counterexamples (`reach.rs`) and
//! worst-case walks (`walk.rs`).

mod coverage;
mod dead_end;
mod escape;
mod fallback;
mod forced_hangup;
pub mod graph;
pub mod reach;
mod refs;
mod stranded;
mod timing;
mod variables;
pub mod walk;

use std::collections::HashSet;
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Rule};
use super::model::{FlowId, FlowSet, NodeId};
use graph::{Graph, Walk};
use reach::Reach;
use walk::{Caller, Cost, Walker};

/// What the checks need beyond the flows.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Queue names from the config; `None` when no config was given or found.
    pub queues: Option<HashSet<String>>,
    pub calendars: Option<HashSet<String>>,
    /// Lookup endpoints from the config (`[lookups.NAME]`).
    pub lookups: Option<HashSet<String>>,
    /// Switches from the config (`[switches.NAME]`).
    pub switches: Option<HashSet<String>>,
    /// The config's dial policy (`[callbacks]`, `[[trunks]]`): what a `transfer` can reach.
    pub dial: Option<std::sync::Arc<dyn Dialable>>,
    /// `--max-steps`: overrides every flow's `max_steps_to_human`.
    pub max_steps: Option<u32>,
}

/// Whom the server can dial, as the validator asks it: the config's dial policy implements
/// it (`sip::dial`), so the flow language depends on nothing above it.
pub trait Dialable: std::fmt::Debug + Send + Sync {
    /// Why a `transfer` to `to` could not be placed, if it could not.
    fn refuses(&self, to: &str) -> Option<String>;
}

/// One line per flow in the text report.
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub flow: String,
    pub file: String,
    pub entry: Option<String>,
    pub nodes: usize,
    /// The silent caller's worst case from the entry, when it reaches a human at all.
    pub silent_steps: Option<u64>,
    pub silent_seconds: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub summaries: Vec<FlowSummary>,
}

pub(crate) struct Checker<'g, 'a> {
    pub g: &'g Graph<'a>,
    pub set: &'a FlowSet,
    pub ctx: &'g Context,
    /// Everything reachable from any entry, through humans too.
    pub all: Reach<'a>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Checker<'_, 'a> {
    pub fn steps_bound(&self, flow: FlowId) -> u32 {
        self.ctx
            .max_steps
            .unwrap_or(self.set.flows[flow].max_steps_to_human)
    }

    pub fn at_node(&self, rule: Rule, node: NodeId, message: String) -> Diagnostic {
        let n = &self.set.nodes[node];
        Diagnostic::new(rule, &self.set.flows[n.flow].source, n.pos, message)
            .at_node(n.full_name.clone())
    }

    /// How a node is named in messages: `main.bye (a hangup)`.
    pub fn describe(&self, node: NodeId) -> String {
        let n = &self.set.nodes[node];
        let what = match n.kind.type_name() {
            "queue" | "transfer" => format!("a {}, a live human", n.kind.type_name()),
            "owner" => "an owner, a live human".to_string(),
            "menu" => "a menu".to_string(),
            t => format!("a {t}"),
        };
        format!("{} ({what})", n.full_name)
    }

    /// The shortest walk from any entry to `v`, through anything.
    pub fn path_to(&self, v: graph::Vertex) -> Walk<'a> {
        match self.all.first_state(v) {
            Some(s) => self.all.path_to(s),
            None => Walk::from(v),
        }
    }
}

/// Every flow's entry, in the order of the flows' names: paths found from them (the shortest
/// from any entry, ties to the first) do not depend on the order files were given in.
pub(crate) fn entries(set: &FlowSet, g: &Graph) -> Vec<graph::Vertex> {
    let mut flows: Vec<usize> = (0..set.flows.len()).collect();
    flows.sort_by(|&a, &b| set.flows[a].name.cmp(&set.flows[b].name));
    flows
        .into_iter()
        .filter_map(|f| set.entry(f))
        .map(|n| g.base[n])
        .collect()
}

/// Runs every rule on a loaded set. Diagnostics of flows that were loaded only to resolve
/// references are left out.
pub fn check(set: &FlowSet, ctx: &Context) -> Report {
    let g = Graph::new(set);
    let all = Reach::from(&g, &entries(set, &g), false);
    let mut c = Checker {
        g: &g,
        set,
        ctx,
        all,
        diags: Vec::new(),
    };

    refs::check(&mut c);
    escape::check(&mut c);
    dead_end::check(&mut c);
    fallback::check(&mut c);
    forced_hangup::check(&mut c);
    stranded::check(&mut c, Caller::Silent);
    stranded::check(&mut c, Caller::Lost);
    let summaries = timing::check(&mut c);
    coverage::check(&mut c);
    variables::check(&mut c);

    // A flow with a node that could not be read is not judged as a graph: its load error
    // is the one thing to fix, and its paths would mislead (a node only the broken one
    // leads to looks unreachable).
    let broken = |name: &str| {
        set.unreadable
            .iter()
            .any(|u| u.split_once('.').is_some_and(|(f, _)| f == name))
    };
    let reported: Vec<_> = set
        .flows
        .iter()
        .filter(|f| f.reported && !broken(&f.name))
        .map(|f| Arc::clone(&f.source))
        .collect();
    let mut diagnostics = c.diags;
    diagnostics.retain(|d| reported.iter().any(|s| Arc::ptr_eq(s, &d.source)));
    Report {
        diagnostics,
        summaries,
    }
}

/// Sorts diagnostics the way people read them: by file, then line, then rule.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.file(), a.pos, a.rule, &a.node, &a.message).cmp(&(
            b.file(),
            b.pos,
            b.rule,
            &b.node,
            &b.message,
        ))
    });
}

/// The silent caller's worst case from a vertex, in steps and in seconds.
pub fn silent_worst(g: &Graph, v: graph::Vertex) -> (walk::Outcome, walk::Outcome) {
    let s = walk::state(v, false);
    let steps = Walker::new(g, Caller::Silent, Cost::Steps).eval(s);
    let ms = Walker::new(g, Caller::Silent, Cost::Millis).eval(s);
    (steps, ms)
}

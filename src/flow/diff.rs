//! `hotline diff OLD NEW`: the escape-regression review of a change to a line. For every
//! caller-facing node (play, menu, collect) present in both versions: the worst a silent caller
//! and a caller pressing only wrong keys meet from there, in steps and seconds to a live human,
//! before and after; nodes added and removed; diagnostics that are new. The change fails the
//! review when a node got worse and is now beyond its flow's bound (or reaches no human at all),
//! or when it brings new errors.

use std::fmt::Write as _;

use super::check::graph::Graph;
use super::check::reach::Reach;
use super::check::walk::{Caller, Cost, Walker, state};
use super::diagnostic::{Diagnostic, Severity};
use super::model::{Class, FlowSet};
use super::report::plural;

/// How far a node is from a live human for one kind of caller; `None`: never reaches one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distance {
    pub silent_steps: Option<u64>,
    pub silent_seconds: Option<f64>,
    pub lost_steps: Option<u64>,
}

impl Distance {
    /// Worse in any respect: more steps or seconds, or no human where there was one.
    fn worse_than(&self, before: &Distance) -> bool {
        fn worse<T: PartialOrd>(after: Option<T>, before: Option<T>) -> bool {
            match (after, before) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => a > b,
                _ => false,
            }
        }
        worse(self.silent_steps, before.silent_steps)
            || worse(self.silent_seconds, before.silent_seconds)
            || worse(self.lost_steps, before.lost_steps)
    }

    fn better_than(&self, before: &Distance) -> bool {
        before.worse_than(self) && !self.worse_than(before)
    }
}

/// A flow's bounds, as the validator proves them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub steps: u32,
    pub seconds: u32,
}

impl Bound {
    fn exceeded_by(&self, d: &Distance) -> bool {
        d.silent_steps.is_none_or(|s| s > u64::from(self.steps))
            || d.lost_steps.is_none_or(|s| s > u64::from(self.steps))
            || d.silent_seconds.is_none_or(|s| s > f64::from(self.seconds))
    }
}

/// One caller-facing node of one version.
#[derive(Debug, Clone)]
pub struct NodeDistance {
    pub node: String,
    pub distance: Distance,
    pub bound: Bound,
    /// What the caller hears there: prompt names, and the text of text prompts in quotes.
    pub hears: Vec<String>,
}

/// Every caller-facing node of the reported flows, with its distance to a human.
pub fn distances(set: &FlowSet, max_steps: Option<u32>) -> Vec<NodeDistance> {
    let g = Graph::new(set);
    let entries: Vec<_> = (0..set.flows.len())
        .filter_map(|f| set.entry(f))
        .map(|n| g.base[n])
        .collect();
    let reach = Reach::from(&g, &entries, false);
    let mut steps = Walker::new(&g, Caller::Silent, Cost::Steps);
    let mut millis = Walker::new(&g, Caller::Silent, Cost::Millis);
    let mut lost = Walker::new(&g, Caller::Lost, Cost::Steps);
    let mut out = Vec::new();
    for flow in set.flows.iter().filter(|f| f.reported) {
        let bound = Bound {
            steps: max_steps.unwrap_or(flow.max_steps_to_human),
            seconds: flow.max_seconds_to_human,
        };
        for &n in &flow.nodes {
            let node = set.node(n);
            if node.class() != Class::CallerFacing {
                continue;
            }
            // As callers meet it: a node reached only after a schedule's closed branch may
            // end in a follow-up (a voicemail at night is fine).
            let open = state(g.base[n], false);
            let closed = state(g.base[n], true);
            let s = if !reach.has_state(open) && reach.has_state(closed) {
                closed
            } else {
                open
            };
            let (st, ms, lo) = (steps.eval(s), millis.eval(s), lost.eval(s));
            out.push(NodeDistance {
                hears: node.kind.prompts().iter().map(|p| p.shown()).collect(),
                node: node.full_name.clone(),
                distance: Distance {
                    silent_steps: st.ok().then_some(st.cost),
                    silent_seconds: ms.ok().then_some(ms.cost as f64 / 1000.0),
                    lost_steps: lo.ok().then_some(lo.cost),
                },
                bound,
            });
        }
    }
    out
}

/// A node in both versions.
#[derive(Debug, Clone)]
pub struct Change {
    pub node: String,
    pub before: Distance,
    pub after: Distance,
    pub bound: Bound,
    /// What the caller heard there before, when it changed.
    pub heard: Option<(Vec<String>, Vec<String>)>,
}

impl Change {
    pub fn worse(&self) -> bool {
        self.after.worse_than(&self.before)
    }

    /// Worse, and now beyond the bound: this is what fails the review.
    pub fn regression(&self) -> bool {
        self.worse() && self.bound.exceeded_by(&self.after)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub added: Vec<NodeDistance>,
    pub removed: Vec<String>,
    /// Diagnostics of the new version that the old one did not have.
    pub new_diagnostics: Vec<Diagnostic>,
}

impl Diff {
    pub fn new(
        old: &[NodeDistance],
        new: &[NodeDistance],
        old_diags: &[Diagnostic],
        new_diags: &[Diagnostic],
    ) -> Diff {
        let mut d = Diff::default();
        for n in new {
            match old.iter().find(|o| o.node == n.node) {
                Some(o) => d.changes.push(Change {
                    node: n.node.clone(),
                    before: o.distance,
                    after: n.distance,
                    bound: n.bound,
                    heard: (o.hears != n.hears).then(|| (o.hears.clone(), n.hears.clone())),
                }),
                None => d.added.push(n.clone()),
            }
        }
        d.removed = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.node == o.node))
            .map(|o| o.node.clone())
            .collect();
        // The same finding at the same node is not new, even if its line moved.
        let key = |x: &Diagnostic| (x.rule, x.node.clone(), x.message.clone());
        d.new_diagnostics = new_diags
            .iter()
            .filter(|n| !old_diags.iter().any(|o| key(o) == key(n)))
            .cloned()
            .collect();
        d
    }

    /// Why the review fails, one line each; empty when it passes.
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.regression())
            .map(|c| {
                format!(
                    "{} got worse: {} (bound {} steps, {} s)",
                    c.node,
                    summary(&c.after),
                    c.bound.steps,
                    c.bound.seconds
                )
            })
            .collect();
        out.extend(
            self.added
                .iter()
                .filter(|a| a.bound.exceeded_by(&a.distance))
                .map(|a| {
                    format!(
                        "new node {} is beyond the bound: {} (bound {} steps, {} s)",
                        a.node,
                        summary(&a.distance),
                        a.bound.steps,
                        a.bound.seconds
                    )
                }),
        );
        let errors = self
            .new_diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .count();
        if errors > 0 {
            out.push(format!("{} new", plural(errors, "error")));
        }
        out
    }
}

fn steps(s: Option<u64>) -> String {
    s.map_or_else(|| "never".to_string(), |s| s.to_string())
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "never".to_string(), |s| format!("{s:.1} s"))
}

fn summary(d: &Distance) -> String {
    match (d.silent_steps, d.silent_seconds) {
        (Some(st), Some(se)) => format!(
            "silent {} and {se:.1} s, wrong keys {}",
            plural(st as usize, "step"),
            steps(d.lost_steps)
        ),
        _ => format!(
            "a silent caller never reaches a human (wrong keys: {})",
            steps(d.lost_steps)
        ),
    }
}

fn verdict(c: &Change) -> &'static str {
    if c.regression() {
        "WORSE, beyond the bound"
    } else if c.worse() {
        "worse"
    } else if c.after.better_than(&c.before) {
        "better"
    } else {
        "same"
    }
}

fn arrow(before: String, after: String) -> String {
    if before == after {
        before
    } else {
        format!("{before} -> {after}")
    }
}

fn diagnostic_line(d: &Diagnostic) -> String {
    format!(
        "{}[{}] {}:{}:{}: {}",
        d.severity().as_str(),
        d.rule.id(),
        d.file(),
        d.pos.line,
        d.pos.column,
        d.message
    )
}

/// For a terminal or a CI log.
pub fn text(diff: &Diff, old: &str, new: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "escape review: {old} -> {new}");
    let width = diff
        .changes
        .iter()
        .map(|c| c.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    if !diff.changes.is_empty() {
        let _ = writeln!(
            out,
            "{:width$}  {:>14}  {:>22}  {:>16}  verdict",
            "node", "silent steps", "silent seconds", "wrong-key steps"
        );
    }
    for c in &diff.changes {
        let _ = writeln!(
            out,
            "{:width$}  {:>14}  {:>22}  {:>16}  {}",
            c.node,
            arrow(steps(c.before.silent_steps), steps(c.after.silent_steps)),
            arrow(
                seconds(c.before.silent_seconds),
                seconds(c.after.silent_seconds)
            ),
            arrow(steps(c.before.lost_steps), steps(c.after.lost_steps)),
            verdict(c)
        );
    }
    for c in &diff.changes {
        if let Some((before, after)) = &c.heard {
            let _ = writeln!(
                out,
                "{} now says {} (was {})",
                c.node,
                after.join(", "),
                before.join(", ")
            );
        }
    }
    for a in &diff.added {
        let _ = writeln!(out, "new node {}: {}", a.node, summary(&a.distance));
    }
    for r in &diff.removed {
        let _ = writeln!(out, "removed node {r}");
    }
    for d in &diff.new_diagnostics {
        let _ = writeln!(out, "new {}", diagnostic_line(d));
    }
    let failures = diff.failures();
    if failures.is_empty() {
        let worse = diff.changes.iter().filter(|c| c.worse()).count();
        let _ = writeln!(
            out,
            "ok: {} compared, {} worse within the bound, {} new, {} removed",
            plural(diff.changes.len(), "node"),
            worse,
            diff.added.len(),
            diff.removed.len()
        );
    } else {
        for f in &failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
    }
    out
}

/// To paste in a pull-request review.
pub fn markdown(diff: &Diff, old: &str, new: &str) -> String {
    let mut out = String::new();
    let failures = diff.failures();
    let _ = writeln!(
        out,
        "### Escape review {}\n\n`{old}` → `{new}`\n",
        if failures.is_empty() { "✅" } else { "❌" }
    );
    if !diff.changes.is_empty() {
        out.push_str("| node | silent steps | silent seconds | wrong-key steps | verdict |\n");
        out.push_str("|---|---:|---:|---:|---|\n");
        for c in &diff.changes {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                c.node,
                arrow(steps(c.before.silent_steps), steps(c.after.silent_steps)),
                arrow(
                    seconds(c.before.silent_seconds),
                    seconds(c.after.silent_seconds)
                ),
                arrow(steps(c.before.lost_steps), steps(c.after.lost_steps)),
                verdict(c)
            );
        }
        out.push('\n');
    }
    for c in &diff.changes {
        if let Some((before, after)) = &c.heard {
            let _ = writeln!(
                out,
                "- `{}` now says {} (was {})",
                c.node,
                after.join(", "),
                before.join(", ")
            );
        }
    }
    for a in &diff.added {
        let _ = writeln!(out, "- new node `{}`: {}", a.node, summary(&a.distance));
    }
    for r in &diff.removed {
        let _ = writeln!(out, "- removed node `{r}`");
    }
    for d in &diff.new_diagnostics {
        let _ = writeln!(out, "- new {}", diagnostic_line(d));
    }
    if !(diff.added.is_empty()
        && diff.removed.is_empty()
        && diff.new_diagnostics.is_empty()
        && diff.changes.iter().all(|c| c.heard.is_none()))
    {
        out.push('\n');
    }
    if failures.is_empty() {
        out.push_str("**ok**: no caller is further from a live human than the bound.\n");
    } else {
        for f in &failures {
            let _ = writeln!(out, "**failed**: {f}");
        }
    }
    out
}

//! `too-slow`: a silent caller's worst case from the entry, counting prompt lengths and menu
//! timeouts, must offer a live human within `max_seconds_to_human`. Also the per-flow summary.

use super::walk::{Caller, Cost, Walker, state};
use super::{Checker, FlowSummary};
use crate::flow::diagnostic::Rule;

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
                let bound = u64::from(flow.max_seconds_to_human) * 1000;
                if ms.cost > bound {
                    let walk = millis.walk(s);
                    let d = c
                        .at_node(
                            Rule::TooSlow,
                            entry,
                            format!(
                                "a silent caller waits {:.1} s of prompts and timeouts before reaching {}; max_seconds_to_human is {}",
                                ms.cost as f64 / 1000.0,
                                c.describe(g.node_of(ms.at)),
                                flow.max_seconds_to_human
                            ),
                        )
                        .with_path(walk.to_path(g));
                    c.diags.push(d);
                }
            }
        }
        out.push(summary);
    }
    out
}

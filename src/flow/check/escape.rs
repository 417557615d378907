//! `no-escape` and `escape-conflict`: the escape digit must lead, through invisible nodes only,
//! to a live human on every branch (a schedule's closed branch may end in a follow-up).
//! `escape-in-collect` (a warning): a collect reads digits and the escape digit is one, so an
//! entry beginning with it would escape, unless the collect says how escape works there.

use super::Checker;
use super::graph::Walk;
use super::walk::{Caller, Cost, Walker, state};
use crate::flow::diagnostic::{Diagnostic, Rule};
use crate::flow::node::NodeKind;

/// `Ok` when `node` leads to a live human; otherwise the walk that does not.
fn leads_to_human<'a>(
    c: &Checker<'_, 'a>,
    w: &mut Walker<'_, 'a>,
    node: usize,
) -> Result<(), Walk<'a>> {
    let s = state(c.g.base[node], false);
    if w.eval(s).ok() {
        Ok(())
    } else {
        Err(w.walk(s))
    }
}

pub(crate) fn check(c: &mut Checker) {
    let mut w = Walker::new(c.g, Caller::Invisible, Cost::Steps);
    for (fi, flow) in c.set.flows.iter().enumerate() {
        match &flow.escape_to {
            None => {
                let mut d = Diagnostic::new(
                    Rule::NoEscape,
                    &flow.source,
                    flow.pos,
                    format!(
                        "flow {} has no escape_to: pressing {} must take a caller to a live human",
                        flow.name, flow.escape_digit
                    ),
                );
                d.node = c.set.entry(fi).map(|e| c.set.nodes[e].full_name.clone());
                c.diags.push(d);
            }
            Some(t) => {
                let Some(target) = t.node else { continue };
                if let Err(walk) = leads_to_human(c, &mut w, target) {
                    let end = c.g.node_of(walk.end().unwrap_or(c.g.base[target]));
                    c.diags.push(
                        Diagnostic::new(
                            Rule::NoEscape,
                            &flow.source,
                            t.pos,
                            format!(
                                "escape_to \"{}\" does not lead straight to a live human: it can end at {}",
                                t.text,
                                c.describe(end)
                            ),
                        )
                        .at_node(c.set.nodes[target].full_name.clone())
                        .with_path(walk.to_path(c.g)),
                    );
                }
            }
        }
        for &id in &flow.nodes {
            let NodeKind::Collect(col) = &c.set.nodes[id].kind else {
                continue;
            };
            let digit = flow.escape_digit;
            if !digit.is_ascii_digit() || col.escape.is_some() {
                continue;
            }
            let to = flow
                .escape_to
                .as_ref()
                .and_then(|t| t.node)
                .map_or("escape_to".to_string(), |n| {
                    c.set.nodes[n].full_name.clone()
                });
            let d = c.at_node(
                Rule::EscapeInCollect,
                id,
                format!(
                    "{} reads digits and the escape digit {digit} is one of them: an entry beginning with {digit} sends the caller to {to} at once. Say how escape works here: escape = \"alone\" ({digit} on its own, then silence, escapes; entries may begin with {digit}) or escape = \"first\" (no entry begins with {digit})",
                    c.set.nodes[id].full_name
                ),
            );
            c.diags.push(d);
        }
        for &id in &flow.nodes {
            let NodeKind::Menu(m) = &c.set.nodes[id].kind else {
                continue;
            };
            let Some(t) = m.option(flow.escape_digit) else {
                continue;
            };
            let Some(target) = t.node else { continue };
            if let Err(walk) = leads_to_human(c, &mut w, target) {
                let end = c.g.node_of(walk.end().unwrap_or(c.g.base[target]));
                let d = Diagnostic::new(
                    Rule::EscapeConflict,
                    &flow.source,
                    t.pos,
                    format!(
                        "option {} is the escape digit of flow {} but leads to {}, not a live human",
                        flow.escape_digit,
                        fi_name(c, fi),
                        c.describe(end)
                    ),
                )
                .at_node(c.set.nodes[id].full_name.clone())
                .with_path(walk.to_path(c.g));
                c.diags.push(d);
            }
        }
    }
}

fn fi_name(c: &Checker, fi: usize) -> String {
    c.set.flows[fi].name.clone()
}

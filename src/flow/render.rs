//! Draws a flow as Graphviz DOT or Mermaid: live humans stand out, edges carry the caller
//! action, and every caller-facing node shows how few steps separate it from a live human.

use std::collections::VecDeque;
use std::fmt::Write;

use super::check::graph::{Graph, Vertex};
use super::model::{Action, Class, FlowId, FlowSet, NodeId};
use super::node::NodeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
}

/// The fewest steps from each node's first play to a live human for a caller pressing the
/// right keys, `None` where none can be reached. The escape digit is left out: it makes every
/// prompt one step from a human, which says nothing about the flow's own design.
pub fn steps_to_human(g: &Graph) -> Vec<Option<u32>> {
    let mut rev: Vec<Vec<Vertex>> = vec![Vec::new(); g.len()];
    for u in 0..g.len() as Vertex {
        for e in g.edges(u) {
            if !matches!(e.label, super::check::graph::Label::Escape(_)) {
                rev[e.to as usize].push(u);
            }
        }
    }
    let mut dist = vec![u32::MAX; g.len()];
    let mut queue = VecDeque::new();
    for v in 0..g.len() as Vertex {
        if g.class(v) == Class::LiveHuman {
            dist[v as usize] = 0;
            queue.push_back(v);
        }
    }
    while let Some(v) = queue.pop_front() {
        for &u in &rev[v as usize] {
            if g.class(u) == Class::LiveHuman {
                continue;
            }
            let w = u32::from(g.is_step(u));
            let d = dist[v as usize] + w;
            if d < dist[u as usize] {
                dist[u as usize] = d;
                if w == 0 {
                    queue.push_front(u)
                } else {
                    queue.push_back(u)
                }
            }
        }
    }
    (0..g.set.nodes.len())
        .map(|n| Some(dist[g.base[n] as usize]).filter(|&d| d != u32::MAX))
        .collect()
}

fn summary(set: &FlowSet, id: NodeId) -> String {
    let n = &set.nodes[id];
    let prompts =
        |p: &[super::model::Prompt]| p.iter().map(|p| p.shown()).collect::<Vec<_>>().join(", ");
    match &n.kind {
        NodeKind::Play(p) => format!("play: {}", prompts(&p.prompts)),
        NodeKind::Menu(m) => format!(
            "menu: {} ({}x{}s)",
            prompts(&m.prompts),
            m.max_retries + 1,
            m.timeout_s
        ),
        NodeKind::Collect(c) => format!("collect {}-{} digits", c.min_digits, c.max_digits),
        NodeKind::Schedule(s) => format!(
            "schedule {}",
            s.calendar.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Branch(b) => format!(
            "branch on {}",
            b.variable.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Lookup(l) => format!("lookup {}", l.endpoint()),
        NodeKind::Switch(s) => format!("switch {}", s.name()),
        NodeKind::Returning(_) => "returning caller?".to_string(),
        NodeKind::Withdraw(_) => "close the caller's follow-up".to_string(),
        NodeKind::Owner(q) => format!(
            "LIVE HUMAN: the owner of the caller's follow-up, then queue {}",
            q.queue.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Queue(q) => format!(
            "LIVE HUMAN: queue {}",
            q.queue.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Transfer(t) => format!(
            "LIVE HUMAN: transfer {}",
            t.to.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Voicemail(v) => format!(
            "follow-up: voicemail {}",
            v.mailbox.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Callback(c) => format!(
            "follow-up: callback {}",
            c.queue.as_ref().map_or("", |c| c.0.as_str())
        ),
        NodeKind::Hangup(_) => "hangup".to_string(),
    }
}

fn edge_label(kind: &NodeKind, a: Action) -> String {
    match (kind, a) {
        (_, Action::Exhausted) => format!("_ / wrong x{}", kind.retries() + 1),
        _ => a.to_string(),
    }
}

struct Drawn {
    nodes: Vec<(NodeId, String, bool)>,
    edges: Vec<(NodeId, NodeId, String)>,
}

fn collect(set: &FlowSet, flow: FlowId, dist: &[Option<u32>]) -> Drawn {
    let mut nodes: Vec<(NodeId, String, bool)> = Vec::new();
    let mut edges = Vec::new();
    let mut external = Vec::new();
    for &id in &set.flows[flow].nodes {
        let n = &set.nodes[id];
        let mut label = format!("{}\n{}", n.name, summary(set, id));
        if n.class() == Class::CallerFacing {
            match dist[id] {
                Some(d) => {
                    let _ = write!(
                        label,
                        "\n{d} step{} to a human",
                        if d == 1 { "" } else { "s" }
                    );
                }
                None => label.push_str("\nNO WAY to a human"),
            }
        }
        nodes.push((id, label, false));
        for e in n.kind.edges() {
            let Some(t) = e.target.node else { continue };
            if set.nodes[t].flow != flow && !external.contains(&t) {
                external.push(t);
            }
            edges.push((id, t, edge_label(&n.kind, e.action)));
        }
    }
    for t in external {
        let label = format!("{}\n{}", set.nodes[t].full_name, summary(set, t));
        nodes.push((t, label, true));
    }
    Drawn { nodes, edges }
}

fn dot_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

pub fn dot(set: &FlowSet, flow: FlowId) -> String {
    let g = Graph::new(set);
    let dist = steps_to_human(&g);
    let d = collect(set, flow, &dist);
    let f = &set.flows[flow];
    let mut out = format!("digraph {} {{\n", dot_str(&f.name));
    out.push_str("  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (id, label, external) in &d.nodes {
        let n = &set.nodes[*id];
        let style = match n.class() {
            Class::LiveHuman => {
                "shape=doubleoctagon, style=\"filled,bold\", fillcolor=\"#b7e4c7\", color=\"#1b7a3d\""
            }
            Class::FollowUp => "shape=note, style=filled, fillcolor=\"#fff3b0\"",
            Class::Hangup => "shape=octagon, style=filled, fillcolor=\"#f4c2c2\"",
            Class::Invisible => "shape=diamond",
            Class::CallerFacing => "shape=box, style=rounded",
        };
        let ext = if *external {
            ", peripheries=1, style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} [label={}, {style}{ext}];",
            dot_str(&n.full_name),
            dot_str(label)
        );
    }
    if let (Some(e), Some(entry)) = (
        f.escape_to.as_ref().and_then(|t| t.node),
        f.entry.as_ref().and_then(|t| t.node),
    ) {
        let _ = writeln!(
            out,
            "  \"start\" [shape=circle, label=\"call\", width=0.4];"
        );
        let _ = writeln!(
            out,
            "  \"start\" -> {};",
            dot_str(&set.nodes[entry].full_name)
        );
        let _ = writeln!(
            out,
            "  \"escape\" [shape=plaintext, label={}];\n  \"escape\" -> {} [style=dashed, color=\"#1b7a3d\"];",
            dot_str(&format!("any prompt: press {}", f.escape_digit)),
            dot_str(&set.nodes[e].full_name)
        );
    }
    for (a, b, label) in &d.edges {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            dot_str(&set.nodes[*a].full_name),
            dot_str(&set.nodes[*b].full_name),
            dot_str(label)
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid_str(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', "<br/>")
}

pub fn mermaid(set: &FlowSet, flow: FlowId) -> String {
    let g = Graph::new(set);
    let dist = steps_to_human(&g);
    let d = collect(set, flow, &dist);
    let f = &set.flows[flow];
    let id = |n: NodeId| format!("n{n}");
    let mut out = String::from("flowchart TD\n");
    for (n, label, external) in &d.nodes {
        let l = mermaid_str(label);
        let shape = match set.nodes[*n].class() {
            Class::LiveHuman => format!("{{{{\"{l}\"}}}}"),
            Class::FollowUp => format!("([\"{l}\"])"),
            Class::Hangup => format!("((\"{l}\"))"),
            Class::Invisible => format!("{{\"{l}\"}}"),
            Class::CallerFacing => format!("[\"{l}\"]"),
        };
        let _ = writeln!(out, "  {}{shape}", id(*n));
        let class = match set.nodes[*n].class() {
            Class::LiveHuman => "human",
            Class::FollowUp => "followup",
            Class::Hangup => "hangup",
            _ if *external => "external",
            _ => "",
        };
        if !class.is_empty() {
            let _ = writeln!(out, "  class {} {class}", id(*n));
        }
    }
    if let (Some(e), Some(entry)) = (
        f.escape_to.as_ref().and_then(|t| t.node),
        f.entry.as_ref().and_then(|t| t.node),
    ) {
        let _ = writeln!(out, "  start((call)) --> {}", id(entry));
        let _ = writeln!(
            out,
            "  escape[/\"any prompt: press {}\"/] -.-> {}",
            f.escape_digit,
            id(e)
        );
    }
    for (a, b, label) in &d.edges {
        let _ = writeln!(
            out,
            "  {} -->|\"{}\"| {}",
            id(*a),
            mermaid_str(label),
            id(*b)
        );
    }
    out.push_str("  classDef human fill:#b7e4c7,stroke:#1b7a3d,stroke-width:3px\n");
    out.push_str("  classDef followup fill:#fff3b0\n  classDef hangup fill:#f4c2c2\n  classDef external stroke-dasharray: 5 5\n");
    out
}

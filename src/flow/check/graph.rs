//! The flow as the caller lives it: one vertex per node, and one per attempt of a menu or
//! collect (its first play and each retry), so a step is exactly one caller-facing vertex and
//! every edge carries the caller action that takes it. All path rules run on this graph.

use std::fmt;

use crate::flow::model::{Action, Class, FlowSet, NodeId, Target};
use crate::flow::node::NodeKind;

pub type Vertex = u32;

/// The caller action on an edge, as counterexample paths print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label<'a> {
    /// Silence until the timeout.
    Silence,
    /// A key the menu does not offer, or an entry the collect does not accept.
    Wrong,
    Key(char),
    /// The flow's escape digit, pressed at any prompt.
    Escape(char),
    Done,
    Digits,
    Open,
    Closed,
    Case(&'a str),
    Default,
    Timeout,
    Failure,
    /// A lookup answered, or did not.
    Answer,
    Error,
    /// A switch's position.
    On,
    Off,
    /// No open follow-up; one closed at the caller's word.
    NoItem,
    Withdrawn,
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Silence => f.write_str("_"),
            Label::Wrong => f.write_str("wrong"),
            Label::Key(c) | Label::Escape(c) => write!(f, "{c}"),
            Label::Done => f.write_str("done"),
            Label::Digits => f.write_str("digits"),
            Label::Open => f.write_str("open"),
            Label::Closed => f.write_str("closed"),
            Label::Case(v) => write!(f, "case:{v}"),
            Label::Default => f.write_str("default"),
            Label::Timeout => f.write_str("timeout"),
            Label::Failure => f.write_str("failure"),
            Label::Answer => f.write_str("answer"),
            Label::Error => f.write_str("error"),
            Label::On => f.write_str("on"),
            Label::Off => f.write_str("off"),
            Label::NoItem => f.write_str("none"),
            Label::Withdrawn => f.write_str("withdrawn"),
        }
    }
}

impl Label<'_> {
    /// Whether a caller who presses nothing more can take this edge.
    pub fn silent(self) -> bool {
        matches!(self, Label::Silence | Label::Done) || self.invisible()
    }

    /// Whether the edge is taken by a schedule, branch, lookup, switch or follow-up node,
    /// without the caller.
    pub fn invisible(self) -> bool {
        matches!(
            self,
            Label::Open
                | Label::Closed
                | Label::Case(_)
                | Label::Default
                | Label::Answer
                | Label::Error
                | Label::On
                | Label::Off
                | Label::NoItem
                | Label::Withdrawn
        )
    }

    /// Whether a caller who presses only wrong keys can take this edge.
    pub fn lost(self) -> bool {
        matches!(self, Label::Wrong | Label::Done) || self.invisible()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct VEdge<'a> {
    pub to: Vertex,
    pub label: Label<'a>,
}

pub struct Graph<'a> {
    pub set: &'a FlowSet,
    /// The first vertex of each node.
    pub base: Vec<Vertex>,
    /// Each vertex's node and attempt (0 for the first play).
    pub vertex: Vec<(NodeId, u32)>,
    offsets: Vec<u32>,
    edges: Vec<VEdge<'a>>,
}

impl<'a> Graph<'a> {
    pub fn new(set: &'a FlowSet) -> Graph<'a> {
        let mut base = Vec::with_capacity(set.nodes.len());
        let mut vertex = Vec::with_capacity(set.nodes.len());
        for (id, node) in set.nodes.iter().enumerate() {
            base.push(vertex.len() as Vertex);
            for attempt in 0..=node.kind.retries() {
                vertex.push((id, attempt));
            }
        }
        let mut g = Graph {
            set,
            base,
            vertex,
            offsets: Vec::new(),
            edges: Vec::new(),
        };
        g.offsets.push(0);
        for v in 0..g.vertex.len() {
            g.push_edges(v as Vertex);
            g.offsets.push(g.edges.len() as u32);
        }
        g
    }

    fn push_edges(&mut self, v: Vertex) {
        let (id, attempt) = self.vertex[v as usize];
        let set = self.set;
        let node = &set.nodes[id];
        let flow = &set.flows[node.flow];
        let at = |t: &Target| t.node;
        // The next attempt of this menu or collect, or `on_exhausted` after the last one.
        let retries = node.kind.retries();
        let next_attempt = |exhausted: &Option<Target>| {
            if attempt < retries {
                Some(self.base[id] + attempt + 1)
            } else {
                exhausted.as_ref().and_then(at).map(|t| self.base[t])
            }
        };
        let mut out: Vec<(Option<Vertex>, Label<'a>)> = Vec::new();
        let escape = set.escape_to(node.flow).map(|e| self.base[e]);
        let digit = flow.escape_digit;
        match &node.kind {
            NodeKind::Play(n) => {
                out.push((escape, Label::Escape(digit)));
                out.push((
                    n.next.as_ref().and_then(at).map(|t| self.base[t]),
                    Label::Done,
                ));
            }
            NodeKind::Menu(n) => {
                for (k, t) in &n.options {
                    out.push((at(t).map(|t| self.base[t]), Label::Key(*k)));
                }
                if n.option(digit).is_none() {
                    out.push((escape, Label::Escape(digit)));
                }
                let again = next_attempt(&n.on_exhausted);
                out.push((again, Label::Silence));
                match &n.on_invalid {
                    Some(t) => out.push((at(t).map(|t| self.base[t]), Label::Wrong)),
                    None => out.push((again, Label::Wrong)),
                }
            }
            NodeKind::Collect(n) => {
                out.push((escape, Label::Escape(digit)));
                out.push((
                    n.next.as_ref().and_then(at).map(|t| self.base[t]),
                    Label::Digits,
                ));
                let again = next_attempt(&n.on_exhausted);
                out.push((again, Label::Silence));
                out.push((again, Label::Wrong));
            }
            _ => {
                for e in node.kind.edges() {
                    let label = match e.action {
                        Action::Open => Label::Open,
                        Action::Closed => Label::Closed,
                        Action::Case(v) => Label::Case(v),
                        Action::Default => Label::Default,
                        Action::Timeout => Label::Timeout,
                        Action::Failure => Label::Failure,
                        Action::Answer => Label::Answer,
                        Action::Error => Label::Error,
                        Action::On => Label::On,
                        Action::Off => Label::Off,
                        Action::NoItem => Label::NoItem,
                        Action::Withdrawn => Label::Withdrawn,
                        // Caller-facing actions are handled above.
                        _ => continue,
                    };
                    out.push((at(e.target).map(|t| self.base[t]), label));
                }
            }
        }
        self.edges.extend(
            out.into_iter()
                .filter_map(|(to, label)| to.map(|to| VEdge { to, label })),
        );
    }

    pub fn len(&self) -> usize {
        self.vertex.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vertex.is_empty()
    }

    pub fn edges(&self, v: Vertex) -> &[VEdge<'a>] {
        let (a, b) = (self.offsets[v as usize], self.offsets[v as usize + 1]);
        &self.edges[a as usize..b as usize]
    }

    pub fn node_of(&self, v: Vertex) -> NodeId {
        self.vertex[v as usize].0
    }

    pub fn class(&self, v: Vertex) -> Class {
        self.set.nodes[self.node_of(v)].class()
    }

    pub fn name(&self, v: Vertex) -> &'a str {
        &self.set.nodes[self.node_of(v)].full_name
    }

    /// Whether entering `v` is a step (a caller-facing prompt, or a retry of one).
    pub fn is_step(&self, v: Vertex) -> bool {
        self.class(v) == Class::CallerFacing
    }

    /// Whether `v` is the first play of a caller-facing node.
    pub fn is_first_attempt(&self, v: Vertex) -> bool {
        self.is_step(v) && self.vertex[v as usize].1 == 0
    }
}

/// A walk through the graph, printed as SPEC paths: node, action, node, …, node.
#[derive(Debug, Clone, Default)]
pub struct Walk<'a> {
    pub start: Option<Vertex>,
    pub hops: Vec<(Label<'a>, Vertex)>,
}

impl<'a> Walk<'a> {
    pub fn from(v: Vertex) -> Walk<'a> {
        Walk {
            start: Some(v),
            hops: Vec::new(),
        }
    }

    pub fn end(&self) -> Option<Vertex> {
        self.hops.last().map(|h| h.1).or(self.start)
    }

    pub fn then(mut self, other: &Walk<'a>) -> Walk<'a> {
        self.hops.extend_from_slice(&other.hops);
        self
    }

    pub fn vertices(&self) -> impl Iterator<Item = Vertex> + '_ {
        self.start.into_iter().chain(self.hops.iter().map(|h| h.1))
    }

    pub fn steps(&self, g: &Graph) -> u32 {
        self.vertices().filter(|&v| g.is_step(v)).count() as u32
    }

    pub fn to_path(&self, g: &Graph) -> Vec<String> {
        let mut out = Vec::with_capacity(1 + 2 * self.hops.len());
        if let Some(s) = self.start {
            out.push(g.name(s).to_string());
        }
        for (label, v) in &self.hops {
            out.push(label.to_string());
            out.push(g.name(*v).to_string());
        }
        out
    }
}

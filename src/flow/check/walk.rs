//! The worst a caller who behaves one way (silent, or pressing only wrong keys) can meet from a
//! vertex: schedules and branches may go either way, so every choice is taken adversarially.
//! Memoised over (vertex, passed-a-closed-branch) states, iterative so long flows cannot
//! overflow the stack.

use super::graph::{Graph, Label, Vertex, Walk};
use crate::flow::model::Class;

/// How a walk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A live human: the caller is fine.
    Human,
    /// A follow-up after a schedule's closed branch: acceptable.
    FollowUpWhenClosed,
    /// A follow-up while the line is open: not a live human.
    FollowUp,
    Hangup,
    /// Round and round without a live human.
    Loop,
    /// No way onward (missing or unknown target; reported by its own rule).
    Stuck,
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub end: End,
    /// Where the walk ends (or where it loops back to).
    pub at: Vertex,
    /// Steps, or milliseconds, taken on the way.
    pub cost: u64,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self.end, End::Human | End::FollowUpWhenClosed)
    }

    /// Failures first (the shortest of them), then the most costly success.
    fn worse_than(&self, other: &Outcome) -> bool {
        let key = |o: &Outcome| {
            (
                !o.ok(),
                if o.ok() {
                    o.cost as i128
                } else {
                    -(o.cost as i128)
                },
            )
        };
        key(self) > key(other)
    }
}

/// Which caller the walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Silent,
    Lost,
    /// Through schedules and branches only: where an escape target leads.
    Invisible,
    /// Through plays, schedules and branches: where a queue's or transfer's fallback leads.
    Fallback,
}

impl Caller {
    fn takes(self, l: Label) -> bool {
        match self {
            Caller::Silent => l.silent(),
            Caller::Lost => l.lost(),
            Caller::Invisible => l.invisible(),
            Caller::Fallback => l.invisible() || l == Label::Done,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Caller::Silent => "a silent caller",
            Caller::Lost => "a caller pressing only wrong keys",
            Caller::Invisible | Caller::Fallback => "the call",
        }
    }
}

/// What a vertex costs: a step, or the seconds of its prompts and timeouts (as ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Steps,
    Millis,
}

/// A state is `vertex * 2 + closed`.
pub fn state(v: Vertex, closed: bool) -> u32 {
    v * 2 + u32::from(closed)
}

pub struct Walker<'g, 'a> {
    g: &'g Graph<'a>,
    caller: Caller,
    weights: Vec<u64>,
    memo: Vec<Option<Outcome>>,
    choice: Vec<Option<(Label<'a>, u32)>>,
    on_stack: Vec<bool>,
}

struct Frame<'a> {
    state: u32,
    next: usize,
    taking: Option<Label<'a>>,
    best: Option<(Outcome, Label<'a>, u32)>,
}

impl<'g, 'a> Walker<'g, 'a> {
    pub fn new(g: &'g Graph<'a>, caller: Caller, cost: Cost) -> Self {
        let weights = (0..g.len() as Vertex)
            .map(|v| vertex_cost(g, v, cost))
            .collect();
        let n = g.len() * 2;
        Walker {
            g,
            caller,
            weights,
            memo: vec![None; n],
            choice: vec![None; n],
            on_stack: vec![false; n],
        }
    }

    pub fn caller(&self) -> Caller {
        self.caller
    }

    fn terminal(&self, s: u32) -> Option<Outcome> {
        let v = s / 2;
        let end = match self.g.class(v) {
            Class::LiveHuman => End::Human,
            Class::FollowUp if s % 2 == 1 => End::FollowUpWhenClosed,
            Class::FollowUp => End::FollowUp,
            Class::Hangup => End::Hangup,
            _ => return None,
        };
        Some(Outcome {
            end,
            at: v,
            cost: 0,
        })
    }

    pub fn eval(&mut self, s0: u32) -> Outcome {
        if let Some(o) = self.memo[s0 as usize] {
            return o;
        }
        let mut stack = vec![Frame {
            state: s0,
            next: 0,
            taking: None,
            best: None,
        }];
        self.on_stack[s0 as usize] = true;
        loop {
            let Some(top) = stack.last_mut() else {
                unreachable!("the walk stack empties only by returning")
            };
            let s = top.state;
            let v = s / 2;
            let closed = s % 2 == 1;
            let terminal = if top.next == 0 {
                self.terminal(s)
            } else {
                None
            };
            let edges = self.g.edges(v);
            let mut pushed = None;
            if terminal.is_none() {
                while top.next < edges.len() {
                    let e = edges[top.next];
                    top.next += 1;
                    if !self.caller.takes(e.label) {
                        continue;
                    }
                    let t = state(e.to, closed || e.label == Label::Closed);
                    let child = if let Some(o) = self.memo[t as usize] {
                        o
                    } else if self.on_stack[t as usize] {
                        Outcome {
                            end: End::Loop,
                            at: e.to,
                            cost: 0,
                        }
                    } else {
                        top.taking = Some(e.label);
                        pushed = Some(t);
                        break;
                    };
                    if top.best.as_ref().is_none_or(|b| child.worse_than(&b.0)) {
                        top.best = Some((child, e.label, t));
                    }
                }
            }
            if let Some(t) = pushed {
                self.on_stack[t as usize] = true;
                stack.push(Frame {
                    state: t,
                    next: 0,
                    taking: None,
                    best: None,
                });
                continue;
            }
            // This state is decided.
            let Some(frame) = stack.pop() else {
                unreachable!()
            };
            let outcome = match (terminal, frame.best) {
                (Some(o), _) => o,
                (None, None) => Outcome {
                    end: End::Stuck,
                    at: v,
                    cost: 0,
                },
                (None, Some((o, label, t))) => {
                    self.choice[s as usize] = Some((label, t));
                    Outcome {
                        cost: o.cost + self.weights[v as usize],
                        ..o
                    }
                }
            };
            self.memo[s as usize] = Some(outcome);
            self.on_stack[s as usize] = false;
            match stack.last_mut() {
                None => return outcome,
                Some(parent) => {
                    let label = parent.taking.take().unwrap_or(Label::Done);
                    if parent
                        .best
                        .as_ref()
                        .is_none_or(|b| outcome.worse_than(&b.0))
                    {
                        parent.best = Some((outcome, label, s));
                    }
                }
            }
        }
    }

    /// The first state after `s0` on its worst walk whose vertex `pred` accepts, looking no
    /// further than the walk goes (its end, or the first state seen twice): a walk followed
    /// lazily, so asking this of every node of a long chain stays linear.
    pub fn first_on_walk(&mut self, s0: u32, mut pred: impl FnMut(Vertex) -> bool) -> Option<u32> {
        self.eval(s0);
        let mut seen = std::collections::HashSet::new();
        seen.insert(s0);
        let mut s = s0;
        while let Some((_, t)) = self.choice[s as usize] {
            if pred(t / 2) {
                return Some(t);
            }
            if !seen.insert(t) {
                return None;
            }
            s = t;
        }
        None
    }

    /// For every state evaluated so far, the cycle of worst-walk choices it lies on, if any
    /// (each state has one choice, so the choices form a functional graph): two states go
    /// round together exactly when they share one.
    pub fn cycles(&self) -> Vec<Option<u32>> {
        let n = self.choice.len();
        let mut cycle: Vec<Option<u32>> = vec![None; n];
        // 0 unvisited, 1 on the current path, 2 done.
        let mut mark = vec![0u8; n];
        let mut next_id = 0;
        for start in 0..n {
            if mark[start] != 0 {
                continue;
            }
            let mut path = Vec::new();
            let mut s = start;
            loop {
                if mark[s] == 1 {
                    // Back on the current path: from `s` to the path's end is a cycle.
                    let from = path.iter().position(|&x| x == s).unwrap_or(0);
                    for &x in &path[from..] {
                        cycle[x] = Some(next_id);
                    }
                    next_id += 1;
                    break;
                }
                if mark[s] == 2 {
                    break;
                }
                mark[s] = 1;
                path.push(s);
                match self.choice[s] {
                    Some((_, t)) => s = t as usize,
                    None => break,
                }
            }
            for x in path {
                mark[x] = 2;
            }
        }
        cycle
    }

    /// The worst walk from a state, following the choices `eval` made, up to its end or the
    /// first state seen twice.
    pub fn walk(&mut self, s0: u32) -> Walk<'a> {
        self.eval(s0);
        let mut walk = Walk::from(s0 / 2);
        let mut seen = std::collections::HashSet::new();
        let mut s = s0;
        seen.insert(s);
        while let Some((label, t)) = self.choice[s as usize] {
            walk.hops.push((label, t / 2));
            if !seen.insert(t) {
                break;
            }
            s = t;
        }
        walk
    }
}

fn vertex_cost(g: &Graph, v: Vertex, cost: Cost) -> u64 {
    if let (Cost::Millis, crate::flow::node::NodeKind::Lookup(l)) =
        (cost, &g.set.nodes[g.node_of(v)].kind)
    {
        // The caller waits in silence for the answer, at worst until the timeout.
        return g.set.lookup_millis(l.endpoint());
    }
    if !g.is_step(v) {
        return 0;
    }
    match cost {
        Cost::Steps => 1,
        Cost::Millis => {
            let node = &g.set.nodes[g.node_of(v)];
            let Some((prompts, timeout)) = node.kind.prompts_and_timeout() else {
                return 0;
            };
            (g.set.prompt_seconds(g.node_of(v), prompts) * 1000.0).round() as u64
                + u64::from(timeout) * 1000
        }
    }
}

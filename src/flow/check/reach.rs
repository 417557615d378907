//! Breadth-first reachability from flow entries, keeping the predecessor of every state so the
//! shortest path from the entry to any problem can be shown.

use super::graph::{Graph, Label, Vertex, Walk};
use super::walk::state;
use crate::flow::model::Class;

pub struct Reach<'a> {
    /// States (`vertex * 2 + closed`) in the order they were reached.
    pub order: Vec<u32>,
    pred: Vec<Option<(u32, Label<'a>)>>,
    seen: Vec<bool>,
}

impl<'a> Reach<'a> {
    /// Everything reachable from `starts`. With `stop_at_humans`, live humans are reached but
    /// not gone through (what a caller meets before a human); follow-ups and hangups end calls.
    pub fn from(g: &Graph<'a>, starts: &[Vertex], stop_at_humans: bool) -> Reach<'a> {
        let n = g.len() * 2;
        let mut r = Reach {
            order: Vec::new(),
            pred: vec![None; n],
            seen: vec![false; n],
        };
        for &v in starts {
            let s = state(v, false);
            if !r.seen[s as usize] {
                r.seen[s as usize] = true;
                r.order.push(s);
            }
        }
        let mut i = 0;
        while i < r.order.len() {
            let s = r.order[i];
            i += 1;
            let v = s / 2;
            if stop_at_humans && g.class(v) == Class::LiveHuman {
                continue;
            }
            for e in g.edges(v) {
                let t = state(e.to, s % 2 == 1 || e.label == Label::Closed);
                if !r.seen[t as usize] {
                    r.seen[t as usize] = true;
                    r.pred[t as usize] = Some((s, e.label));
                    r.order.push(t);
                }
            }
        }
        r
    }

    pub fn has_state(&self, s: u32) -> bool {
        self.seen[s as usize]
    }

    pub fn has_vertex(&self, v: Vertex) -> bool {
        self.seen[state(v, false) as usize] || self.seen[state(v, true) as usize]
    }

    /// The state by which `v` was first reached, if it was.
    pub fn first_state(&self, v: Vertex) -> Option<u32> {
        [state(v, false), state(v, true)]
            .into_iter()
            .filter(|&s| self.seen[s as usize])
            .min_by_key(|&s| self.depth(s))
    }

    fn depth(&self, mut s: u32) -> usize {
        let mut d = 0;
        while let Some((p, _)) = self.pred[s as usize] {
            s = p;
            d += 1;
        }
        d
    }

    /// The shortest walk from a start to state `s`.
    pub fn path_to(&self, mut s: u32) -> Walk<'a> {
        let mut hops = Vec::new();
        while let Some((p, label)) = self.pred[s as usize] {
            hops.push((label, s / 2));
            s = p;
        }
        hops.reverse();
        Walk {
            start: Some(s / 2),
            hops,
        }
    }
}

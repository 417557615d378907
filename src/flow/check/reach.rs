//! Breadth-first reachability from flow entries, keeping the predecessor of every state so the
//! shortest path from the entry to any problem can be shown. What is kept grows with what is
//! reached, not with the whole line: a line of many flows holds one of these per entry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::graph::{Graph, Label, Vertex, Walk};
use super::walk::state;
use crate::flow::model::Class;

pub struct Reach<'a> {
    /// States (`vertex * 2 + closed`) in the order they were reached.
    pub order: Vec<u32>,
    /// Every state reached, with the state and edge it was first reached by (none: a start).
    pred: Preds<'a>,
}

/// States are small integers from the operator's own flows: a multiplicative hash spreads them
/// well and costs a fraction of the default hasher (which guards against hostile keys).
#[derive(Default)]
pub struct StateHasher(u64);

impl Hasher for StateHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl<'a> Reach<'a> {
    /// Everything reachable from `starts`. With `stop_at_humans`, live humans are reached but
    /// not gone through (what a caller meets before a human); follow-ups and hangups end calls.
    pub fn from(g: &Graph<'a>, starts: &[Vertex], stop_at_humans: bool) -> Reach<'a> {
        let mut r = Reach {
            order: Vec::new(),
            pred: HashMap::default(),
        };
        for &v in starts {
            let s = state(v, false);
            if let std::collections::hash_map::Entry::Vacant(e) = r.pred.entry(s) {
                e.insert(None);
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
                if let std::collections::hash_map::Entry::Vacant(slot) = r.pred.entry(t) {
                    slot.insert(Some((s, e.label)));
                    r.order.push(t);
                }
            }
        }
        r
    }

    pub fn has_state(&self, s: u32) -> bool {
        self.pred.contains_key(&s)
    }

    pub fn has_vertex(&self, v: Vertex) -> bool {
        self.has_state(state(v, false)) || self.has_state(state(v, true))
    }

    /// The state by which `v` was first reached, if it was.
    pub fn first_state(&self, v: Vertex) -> Option<u32> {
        [state(v, false), state(v, true)]
            .into_iter()
            .filter(|&s| self.has_state(s))
            .min_by_key(|&s| self.depth(s))
    }

    fn depth(&self, mut s: u32) -> usize {
        let mut d = 0;
        while let Some(&Some((p, _))) = self.pred.get(&s) {
            s = p;
            d += 1;
        }
        d
    }

    /// The shortest walk from a start to state `s`.
    pub fn path_to(&self, s: u32) -> Walk<'a> {
        walk_back(&self.pred, s)
    }
}

/// Every state reached, with the state and edge it was first reached by (none: a start).
pub type Preds<'a> = HashMap<u32, Option<(u32, Label<'a>)>, BuildHasherDefault<StateHasher>>;

/// The walk that led to `s`, read back through the predecessors.
pub fn walk_back<'a>(pred: &Preds<'a>, mut s: u32) -> Walk<'a> {
    let mut hops = Vec::new();
    while let Some(&Some((p, label))) = pred.get(&s) {
        hops.push((label, s / 2));
        s = p;
    }
    hops.reverse();
    Walk {
        start: Some(s / 2),
        hops,
    }
}

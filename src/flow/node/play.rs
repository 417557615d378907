//! `play`: plays one or more prompts, then goes on. Keys pressed meanwhile are kept for the next
//! menu or collect (type-ahead); the escape digit acts at once.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Prompt, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Play {
    pub prompts: Vec<Prompt>,
    /// Missing is a dead end, reported by the checker.
    pub next: Option<Target>,
}

impl Play {
    pub fn parse(f: &mut Fields, at: Pos) -> Play {
        Play {
            prompts: super::required_prompts(f, "prompt", at),
            next: f.target("next"),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        self.next
            .iter()
            .map(|target| Edge {
                action: Action::Done,
                target,
            })
            .collect()
    }
}

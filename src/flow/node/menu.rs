//! `menu`: a prompt and a choice of keys. Silence and wrong keys use up retries and end at
//! `on_exhausted`; a wrong key goes to `on_invalid` instead when it is set.

use crate::flow::fields::{Fields, is_key};
use crate::flow::model::{Action, Edge, Prompt, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Menu {
    pub prompts: Vec<Prompt>,
    /// In file order; keys are single keypad keys, each at most once.
    pub options: Vec<(char, Target)>,
    pub timeout_s: u32,
    pub max_retries: u32,
    pub invalid_prompt: Vec<Prompt>,
    pub on_invalid: Option<Target>,
    pub on_exhausted: Option<Target>,
}

impl Menu {
    pub fn parse(f: &mut Fields, at: Pos) -> Menu {
        let prompts = super::required_prompts(f, "prompt", at);
        let mut options = Vec::new();
        for (key, pos, target) in f.target_map("options").unwrap_or_default() {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if is_key(c) => options.push((c, target)),
                _ => f.error(
                    pos,
                    format!("menu option \"{key}\" is not one key of 0-9, * or #"),
                ),
            }
        }
        Menu {
            prompts,
            options,
            timeout_s: f.number("timeout_s", 5, 3600),
            max_retries: f.number("max_retries", 2, 20),
            invalid_prompt: f.prompts("invalid_prompt"),
            on_invalid: f.target("on_invalid"),
            on_exhausted: f.required_target("on_exhausted", at),
        }
    }

    pub fn option(&self, key: char) -> Option<&Target> {
        self.options.iter().find(|(k, _)| *k == key).map(|(_, t)| t)
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out: Vec<Edge> = self
            .options
            .iter()
            .map(|(k, target)| Edge {
                action: Action::Key(*k),
                target,
            })
            .collect();
        out.extend(self.on_invalid.iter().map(|target| Edge {
            action: Action::Invalid,
            target,
        }));
        out.extend(self.on_exhausted.iter().map(|target| Edge {
            action: Action::Exhausted,
            target,
        }));
        out
    }
}

//! `collect`: reads a number from the keypad into a call variable. An entry ends at the
//! terminator, at `max_digits`, or when the caller pauses for `timeout_s`.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Prompt, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Collect {
    pub prompts: Vec<Prompt>,
    pub min_digits: u32,
    pub max_digits: u32,
    pub terminator: Option<char>,
    pub timeout_s: u32,
    pub max_retries: u32,
    pub variable: Option<String>,
    pub next: Option<Target>,
    pub on_exhausted: Option<Target>,
    /// How the flow's escape digit works here (`escape`), when the collect says.
    pub escape: Option<Escape>,
}

/// How the escape digit works at a collect, whose entries may begin with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// `"first"`: pressed first, it escapes at once (no entry begins with it).
    First,
    /// `"alone"`: it escapes only when it is the whole entry (pressed, then silence or the
    /// terminator); an entry beginning with it is read as digits.
    Alone,
}

impl Collect {
    pub fn parse(f: &mut Fields, at: Pos) -> Collect {
        let prompts = super::required_prompts(f, "prompt", at);
        let min_digits = f.number("min_digits", 1, 64);
        let max_digits = f.number("max_digits", min_digits.max(20), 64);
        if min_digits > max_digits {
            f.error(
                at,
                format!(
                    "collect: min_digits ({min_digits}) is larger than max_digits ({max_digits})"
                ),
            );
        }
        let terminator = f.key("terminator");
        let variable = match f.string("variable") {
            Some((v, pos)) if !crate::flow::variables::valid_name(&v) => {
                f.error(
                    pos,
                    format!(
                        "collect: `variable` \"{v}\": letters, digits and _, starting with a letter"
                    ),
                );
                None
            }
            Some((v, pos)) if crate::flow::variables::is_builtin(&v) => {
                f.error(
                    pos,
                    format!(
                        "collect: `variable` may not be \"{v}\": it is a built-in variable ({})",
                        crate::flow::variables::BUILTINS.join(", ")
                    ),
                );
                None
            }
            other => other.map(|(v, _)| v),
        };
        let escape = match f.string("escape") {
            None => None,
            Some((s, _)) if s == "first" => Some(Escape::First),
            Some((s, _)) if s == "alone" => Some(Escape::Alone),
            Some((s, pos)) => {
                f.error(
                    pos,
                    format!("collect: `escape` is \"first\" (the escape digit pressed first escapes) or \"alone\" (only on its own, then silence), found \"{s}\""),
                );
                None
            }
        };
        Collect {
            prompts,
            min_digits,
            max_digits,
            terminator,
            timeout_s: f.number("timeout_s", 5, 3600),
            max_retries: f.number("max_retries", 2, 20),
            variable,
            next: f.target("next"),
            on_exhausted: f.required_target("on_exhausted", at),
            escape,
        }
    }

    /// Whether an entry (without terminator) is acceptable: digits only, within the bounds.
    pub fn accepts(&self, digits: &str) -> bool {
        let n = digits.chars().count() as u32;
        n >= self.min_digits && n <= self.max_digits && digits.chars().all(|c| c.is_ascii_digit())
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out: Vec<Edge> = self
            .next
            .iter()
            .map(|target| Edge {
                action: Action::Digits,
                target,
            })
            .collect();
        out.extend(self.on_exhausted.iter().map(|target| Edge {
            action: Action::Exhausted,
            target,
        }));
        out
    }
}

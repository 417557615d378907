//! `hangup`: ends the call, after an optional goodbye prompt. Only acceptable where the caller
//! chose it (the `forced-hangup` rule).

use crate::flow::fields::Fields;
use crate::flow::model::Prompt;
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Hangup {
    pub prompts: Vec<Prompt>,
}

impl Hangup {
    pub fn parse(f: &mut Fields, _at: Pos) -> Hangup {
        Hangup {
            prompts: f.prompts("prompt"),
        }
    }
}

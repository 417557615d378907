//! `callback`: a follow-up. The request is stored and dialled when an agent of the queue is free.

use crate::flow::fields::Fields;
use crate::flow::model::Prompt;
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Callback {
    pub queue: Option<(String, Pos)>,
    pub prompts: Vec<Prompt>,
}

impl Callback {
    pub fn parse(f: &mut Fields, at: Pos) -> Callback {
        Callback {
            queue: f.required_string("queue", at),
            prompts: f.prompts("prompt"),
        }
    }
}

//! `voicemail`: a follow-up. The caller leaves a message in a mailbox and a human calls back.

use crate::flow::fields::Fields;
use crate::flow::model::Prompt;
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Voicemail {
    pub mailbox: Option<(String, Pos)>,
    pub prompts: Vec<Prompt>,
    pub max_length_s: u32,
}

impl Voicemail {
    pub fn parse(f: &mut Fields, at: Pos) -> Voicemail {
        Voicemail {
            mailbox: f.required_string("mailbox", at),
            prompts: f.prompts("prompt"),
            max_length_s: f.number("max_length_s", 120, 3600),
        }
    }
}

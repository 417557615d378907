//! `transfer`: a live human elsewhere, reached at a SIP URI; `on_failure` when unanswered.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Transfer {
    pub to: Option<(String, Pos)>,
    pub ring_timeout_s: u32,
    pub on_failure: Option<Target>,
}

impl Transfer {
    pub fn parse(f: &mut Fields, at: Pos) -> Transfer {
        let to = f.required_string("to", at);
        if let Some((uri, pos)) = &to {
            let ok = ["sip:", "sips:", "tel:"]
                .iter()
                .any(|s| uri.starts_with(s) && uri.len() > s.len());
            if !ok {
                f.error(
                    *pos,
                    format!("transfer: `to` must be a sip:, sips: or tel: URI, found \"{uri}\""),
                );
            }
        }
        Transfer {
            to,
            ring_timeout_s: f.number("ring_timeout_s", 30, 600),
            on_failure: f.required_target("on_failure", at),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        self.on_failure
            .iter()
            .map(|target| Edge {
                action: Action::Failure,
                target,
            })
            .collect()
    }
}

//! `queue`: a live human. The caller waits for an agent of the queue; `on_timeout` when the
//! wait runs out or nobody is logged in.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Queue {
    pub queue: Option<(String, Pos)>,
    pub priority: u32,
    pub max_wait_s: u32,
    pub announce_position_every_s: u32,
    pub offer_callback_after_s: u32,
    /// Whether this line's callers are recorded, over the queue's own `record`.
    pub record: Option<crate::config::RecordMode>,
    pub on_timeout: Option<Target>,
}

impl Queue {
    pub fn parse(f: &mut Fields, at: Pos) -> Queue {
        Queue {
            queue: f.required_string("queue", at),
            priority: f.number("priority", 0, 1000),
            max_wait_s: f.number("max_wait_s", 600, 86_400),
            announce_position_every_s: f.number("announce_position_every_s", 0, 86_400),
            offer_callback_after_s: f.number("offer_callback_after_s", 0, 86_400),
            record: f.string("record").and_then(|(v, pos)| {
                use crate::config::RecordMode;
                match v.as_str() {
                    "off" => Some(RecordMode::Off),
                    "on" => Some(RecordMode::On),
                    "on-demand" => Some(RecordMode::OnDemand),
                    _ => {
                        let shown: String = v.chars().take(40).collect();
                        f.error(
                            pos,
                            format!("record = \"{shown}\": one of off, on, on-demand"),
                        );
                        None
                    }
                }
            }),
            on_timeout: f.required_target("on_timeout", at),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        self.on_timeout
            .iter()
            .map(|target| Edge {
                action: Action::Timeout,
                target,
            })
            .collect()
    }
}

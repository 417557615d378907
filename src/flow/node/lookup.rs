//! `lookup`: invisible; asks an endpoint of `hotline.toml` (`[lookups.NAME]`) about the caller,
//! sending `caller_number`, `line` and the variables listed in `send`. Its answer's fields
//! become the variables `NAME.FIELD` and the call goes to `next`; a timeout, an HTTP error or
//! an answer that does not read goes to `on_error`.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Lookup {
    pub endpoint: Option<(String, Pos)>,
    /// Variables sent besides the built-ins, with their places.
    pub send: Vec<(String, Pos)>,
    pub next: Option<Target>,
    pub on_error: Option<Target>,
}

impl Lookup {
    pub fn parse(f: &mut Fields, at: Pos) -> Lookup {
        let endpoint = f.required_string("endpoint", at);
        let send = f.strings("send");
        let next = f.required_target("next", at);
        let on_error = f.required_target("on_error", at);
        Lookup {
            endpoint,
            send,
            next,
            on_error,
        }
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_ref().map_or("", |e| e.0.as_str())
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        super::edges_of([
            (Action::Answer, &self.next),
            (Action::Error, &self.on_error),
        ])
    }
}

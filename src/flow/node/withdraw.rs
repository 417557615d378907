//! `withdraw`: invisible; the caller said they no longer need their open follow-up: it is
//! closed (done, with that reason, kept), then the call goes `next`. Without an open item it
//! simply goes on.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

/// The reason a follow-up closed by its caller is kept with.
pub const REASON: &str = "no longer needed, said the caller";

#[derive(Debug)]
pub struct Withdraw {
    pub next: Option<Target>,
}

impl Withdraw {
    pub fn parse(f: &mut Fields, _at: Pos) -> Withdraw {
        Withdraw {
            next: f.target("next"),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        super::edges_of([(Action::Withdrawn, &self.next)])
    }
}

//! `returning`: invisible; goes `open` when the caller has an open follow-up (a voicemail or
//! callback request of theirs nobody has done yet), `none` otherwise. On the `open` way the
//! call knows the item: `follow_up.kind` (`voicemail`, `callback`), `follow_up.state` (`new`,
//! `taken`, `failed`), `follow_up.owner` (who has it, or empty) and `follow_up.at` (when it
//! was left, `HH:MM`), for branches and the agent's card.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

/// The variables the `open` way sets.
pub const VARIABLES: [&str; 4] = [
    "follow_up.kind",
    "follow_up.state",
    "follow_up.owner",
    "follow_up.at",
];

#[derive(Debug)]
pub struct Returning {
    pub open: Option<Target>,
    pub none: Option<Target>,
}

impl Returning {
    pub fn parse(f: &mut Fields, _at: Pos) -> Returning {
        Returning {
            open: f.target("open"),
            none: f.target("none"),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        super::edges_of([(Action::Open, &self.open), (Action::NoItem, &self.none)])
    }
}

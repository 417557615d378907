//! `schedule`: invisible; goes `open` or `closed` by a calendar of `hotline.toml`.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Schedule {
    pub calendar: Option<(String, Pos)>,
    pub open: Option<Target>,
    pub closed: Option<Target>,
}

impl Schedule {
    pub fn parse(f: &mut Fields, at: Pos) -> Schedule {
        Schedule {
            calendar: f.required_string("calendar", at),
            open: f.target("open"),
            closed: f.target("closed"),
        }
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        super::edges_of([(Action::Open, &self.open), (Action::Closed, &self.closed)])
    }
}

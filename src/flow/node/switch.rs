//! `switch`: invisible; goes `on` or `off` by a named switch of `hotline.toml`
//! (`[switches.NAME]`), which the API flips (an outage message, an emergency closure).

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug)]
pub struct Switch {
    pub switch: Option<(String, Pos)>,
    pub on: Option<Target>,
    pub off: Option<Target>,
}

impl Switch {
    pub fn parse(f: &mut Fields, at: Pos) -> Switch {
        Switch {
            switch: f.required_string("switch", at),
            on: f.target("on"),
            off: f.target("off"),
        }
    }

    pub fn name(&self) -> &str {
        self.switch.as_ref().map_or("", |s| s.0.as_str())
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        super::edges_of([(Action::On, &self.on), (Action::Off, &self.off)])
    }
}

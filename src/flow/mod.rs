//! The flow language: loading flow files, the typed graph, the checks that prove no caller is
//! trapped, and diagrams.

pub mod calendar;
pub mod check;
pub mod diagnostic;
pub mod diff;
pub mod fields;
pub mod language;
pub mod load;
pub mod model;
pub mod node;
pub mod render;
pub mod report;
pub mod schema;
pub mod source;
pub mod variables;

pub use diagnostic::{Diagnostic, Rule, Severity};
pub use model::{FlowSet, NodeId};

//! hotline: a phone-line engine where no caller is ever trapped in a phone menu.

pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod flow;
#[doc(hidden)]
pub mod fuzz;
pub mod line;
pub mod lookup;
pub mod media;
pub mod numbers;
pub mod probe;
pub mod routing;
pub mod server;
pub mod sip;
pub mod status;
pub mod store;
pub mod switch;
pub mod tts;
pub mod web;

//! What the checker tells ops teams: a rule id, where, which node, and for path rules the
//! counterexample a caller would live through.

use std::fmt;
use std::sync::Arc;

use super::source::{Pos, Source};

/// Every rule of the contract, with its stable id (CI and tooling match on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    InvalidFlow,
    UnknownNode,
    UnknownQueue,
    UnknownCalendar,
    MissingPrompt,
    BadPrompt,
    NoEscape,
    EscapeConflict,
    SilentCallerStranded,
    LostCallerStranded,
    ForcedHangup,
    NoFallback,
    TooSlow,
    DeadEnd,
    UnreachableNode,
    WatchdogReachable,
    UndialableDestination,
    EscapeInCollect,
    UnknownVariable,
    UnknownLookup,
    UnknownSwitch,
}

impl Rule {
    pub const ALL: [Rule; 21] = [
        Rule::InvalidFlow,
        Rule::UnknownNode,
        Rule::UnknownQueue,
        Rule::UnknownCalendar,
        Rule::MissingPrompt,
        Rule::BadPrompt,
        Rule::NoEscape,
        Rule::EscapeConflict,
        Rule::SilentCallerStranded,
        Rule::LostCallerStranded,
        Rule::ForcedHangup,
        Rule::NoFallback,
        Rule::TooSlow,
        Rule::DeadEnd,
        Rule::UnreachableNode,
        Rule::WatchdogReachable,
        Rule::UndialableDestination,
        Rule::EscapeInCollect,
        Rule::UnknownVariable,
        Rule::UnknownLookup,
        Rule::UnknownSwitch,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::InvalidFlow => "invalid-flow",
            Rule::UnknownNode => "unknown-node",
            Rule::UnknownQueue => "unknown-queue",
            Rule::UnknownCalendar => "unknown-calendar",
            Rule::MissingPrompt => "missing-prompt",
            Rule::BadPrompt => "bad-prompt",
            Rule::NoEscape => "no-escape",
            Rule::EscapeConflict => "escape-conflict",
            Rule::SilentCallerStranded => "silent-caller-stranded",
            Rule::LostCallerStranded => "lost-caller-stranded",
            Rule::ForcedHangup => "forced-hangup",
            Rule::NoFallback => "no-fallback",
            Rule::TooSlow => "too-slow",
            Rule::DeadEnd => "dead-end",
            Rule::UnreachableNode => "unreachable-node",
            Rule::WatchdogReachable => "watchdog-reachable",
            Rule::UndialableDestination => "undialable-destination",
            Rule::EscapeInCollect => "escape-in-collect",
            Rule::UnknownVariable => "unknown-variable",
            Rule::UnknownLookup => "unknown-lookup",
            Rule::UnknownSwitch => "unknown-switch",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Rule::UnreachableNode | Rule::WatchdogReachable | Rule::EscapeInCollect => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub rule: Rule,
    pub source: Arc<Source>,
    pub pos: Pos,
    /// `flow.node`, when the problem belongs to a node.
    pub node: Option<String>,
    pub message: String,
    /// Node names alternating with the caller action taken there.
    pub path: Vec<String>,
}

impl Diagnostic {
    pub fn new(rule: Rule, source: &Arc<Source>, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            rule,
            source: Arc::clone(source),
            pos,
            node: None,
            message: message.into(),
            path: Vec::new(),
        }
    }

    pub fn at_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    pub fn with_path(mut self, path: Vec<String>) -> Self {
        self.path = path;
        self
    }

    pub fn severity(&self) -> Severity {
        self.rule.severity()
    }

    pub fn file(&self) -> String {
        self.source.path.display().to_string()
    }
}

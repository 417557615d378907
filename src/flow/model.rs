//! The typed flow graph: every flow of a set, their nodes, and resolved references between them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::node::NodeKind;
use super::source::{Pos, Source};

/// Index of a node in `FlowSet::nodes`.
pub type NodeId = usize;
/// Index of a flow in `FlowSet::flows`.
pub type FlowId = usize;

/// A reference to a node as written (`node` or `flow.node`), resolved after loading.
#[derive(Debug, Clone)]
pub struct Target {
    pub text: String,
    pub pos: Pos,
    pub node: Option<NodeId>,
}

impl Target {
    pub fn new(text: String, pos: Pos) -> Target {
        Target {
            text,
            pos,
            node: None,
        }
    }
}

/// A prompt name as written: `prompts/<name>.wav`.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// `prompts/NAME.wav`; for a text prompt, its rendering (`.tts/KEY`) once rendered.
    pub name: String,
    pub pos: Pos,
    /// What a text prompt says (`{ say = "…" }`).
    pub say: Option<String>,
}

/// What a node is to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// play, menu, collect: each visit or retry is a step.
    CallerFacing,
    /// schedule, branch, lookup, switch, returning, withdraw: the caller does not notice them.
    Invisible,
    /// queue, owner, transfer.
    LiveHuman,
    /// voicemail, callback: a human calls back.
    FollowUp,
    Hangup,
}

/// The caller action (or outcome) on an edge of the flow as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// A play finished.
    Done,
    /// A menu option was pressed.
    Key(char),
    /// A collect got valid digits.
    Digits,
    /// A menu or collect ran out of retries (silence or wrong keys).
    Exhausted,
    /// A wrong key at a menu with `on_invalid`.
    Invalid,
    Open,
    Closed,
    Case(&'a str),
    Default,
    /// A queue's wait ran out, or nobody is logged in.
    Timeout,
    /// A transfer was not answered.
    Failure,
    /// A lookup answered.
    Answer,
    /// A lookup timed out, failed or answered what does not read.
    Error,
    /// A switch is on, or off.
    On,
    Off,
    /// The caller has no open follow-up.
    NoItem,
    /// The caller's follow-up was closed at their word.
    Withdrawn,
}

#[derive(Debug, Clone, Copy)]
pub struct Edge<'a> {
    pub action: Action<'a>,
    pub target: &'a Target,
}

#[derive(Debug)]
pub struct Node {
    pub flow: FlowId,
    pub name: String,
    /// `flow.node`, as diagnostics and paths show it.
    pub full_name: String,
    pub pos: Pos,
    pub kind: NodeKind,
    /// `allow = ["loop"]`: callers coming back here as often as they choose is intended
    /// (a "9 = back" menu); `watchdog-reachable` does not count such returns.
    pub allow_loop: bool,
    /// `set = { name = value }`: variables the call takes on arriving here, in file order.
    pub set: Vec<(String, String)>,
}

impl Node {
    pub fn class(&self) -> Class {
        self.kind.class()
    }
}

#[derive(Debug)]
pub struct Flow {
    pub name: String,
    pub source: Arc<Source>,
    /// Where `[flow]` is.
    pub pos: Pos,
    pub entry: Option<Target>,
    pub escape_digit: char,
    pub escape_to: Option<Target>,
    pub max_steps_to_human: u32,
    pub max_seconds_to_human: u32,
    pub description: Option<String>,
    pub nodes: Vec<NodeId>,
    /// False for flows loaded only to resolve references: their diagnostics are not reported.
    pub reported: bool,
}

/// What is known of a prompt file after reading its header.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptFile {
    Ok {
        seconds: f64,
    },
    /// The name escapes the prompts folder.
    Escapes,
    Missing,
    /// Exists but is not 8 kHz mono 16-bit PCM WAV.
    Bad(String),
}

/// All flows that may reach each other, with references resolved.
#[derive(Debug, Default)]
pub struct FlowSet {
    pub flows: Vec<Flow>,
    pub nodes: Vec<Node>,
    pub prompts: HashMap<String, PromptFile>,
    /// Flows whose file could not be read or parsed, and nodes (`flow.node`) that could not
    /// be (already reported): references to them are left unresolved without a second
    /// diagnostic.
    pub unreadable: Vec<String>,
    /// Text prompts that could not be rendered, by their text: why.
    pub unrendered: HashMap<String, String>,
    /// The config's lookup endpoints (`[lookups.NAME]`): their timeouts and fields.
    pub lookups: std::collections::BTreeMap<String, crate::lookup::Endpoint>,
    /// The config's switches (`[switches.NAME]`), by name: `simulate` takes their positions
    /// as the config sets them unless told otherwise.
    pub switches: std::collections::BTreeMap<String, crate::config::SwitchConfig>,
    /// Per flow, node name to id.
    by_name: Vec<HashMap<String, NodeId>>,
}

impl FlowSet {
    pub fn flow_by_name(&self, name: &str) -> Option<FlowId> {
        self.flows.iter().position(|f| f.name == name)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn flow_of(&self, id: NodeId) -> &Flow {
        &self.flows[self.nodes[id].flow]
    }

    /// Adds a node to its flow (the flow must be pushed already, or be the next one).
    pub fn add_node(&mut self, node: Node) -> NodeId {
        let id = self.nodes.len();
        if self.by_name.len() <= node.flow {
            self.by_name.resize_with(node.flow + 1, HashMap::new);
        }
        self.by_name[node.flow].insert(node.name.clone(), id);
        self.nodes.push(node);
        id
    }

    /// Finds `node` in `from`'s flow, or `flow.node` anywhere.
    pub fn find(&self, from: FlowId, reference: &str) -> Option<NodeId> {
        let (flow, node) = match reference.split_once('.') {
            Some((f, n)) => (self.flow_by_name(f)?, n),
            None => (from, reference),
        };
        self.by_name.get(flow)?.get(node).copied()
    }

    pub fn entry(&self, flow: FlowId) -> Option<NodeId> {
        self.flows[flow].entry.as_ref().and_then(|t| t.node)
    }

    pub fn escape_to(&self, flow: FlowId) -> Option<NodeId> {
        self.flows[flow].escape_to.as_ref().and_then(|t| t.node)
    }

    /// How long a lookup at `endpoint` may take, in milliseconds (the default for an endpoint
    /// the config does not declare: that is its own diagnostic).
    pub fn lookup_millis(&self, endpoint: &str) -> u64 {
        u64::from(
            self.lookups
                .get(endpoint)
                .map_or(crate::lookup::DEFAULT_TIMEOUT_MS, |e| e.timeout_ms),
        )
    }

    /// Length of a prompt in seconds, 0 when unknown (a missing prompt is its own diagnostic).
    pub fn prompt_seconds(&self, prompts: &[Prompt]) -> f64 {
        prompts
            .iter()
            .map(|p| match self.prompts.get(&p.name) {
                Some(PromptFile::Ok { seconds }) => *seconds,
                _ => 0.0,
            })
            .sum()
    }
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Done => f.write_str("done"),
            Action::Key(c) => write!(f, "{c}"),
            Action::Digits => f.write_str("digits"),
            Action::Exhausted => f.write_str("_"),
            Action::Invalid => f.write_str("wrong"),
            Action::Open => f.write_str("open"),
            Action::Closed => f.write_str("closed"),
            Action::Case(v) => write!(f, "case:{v}"),
            Action::Default => f.write_str("default"),
            Action::Timeout => f.write_str("timeout"),
            Action::Failure => f.write_str("failure"),
            Action::Answer => f.write_str("answer"),
            Action::Error => f.write_str("error"),
            Action::On => f.write_str("on"),
            Action::Off => f.write_str("off"),
            Action::NoItem => f.write_str("none"),
            Action::Withdrawn => f.write_str("withdrawn"),
        }
    }
}

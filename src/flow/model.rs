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

/// A prompt as written: a name (`prompts/<name>.wav`, per language `prompts/es/<name>.wav`) or
/// a text (`{ say = "…" }`, per language `{ say = { en = "…", es = "…" } }`).
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// `prompts/NAME.wav`; for a text prompt, its rendering (`.tts/KEY`) once rendered.
    pub name: String,
    pub pos: Pos,
    /// What a text prompt says (`{ say = "…" }`) in `language`.
    pub say: Option<String>,
    /// The language of `say`: the flow's unless the prompt names one (empty for a file).
    pub language: String,
    /// `{ say = "…", language = "es" }`: said so to every caller, whatever their language
    /// (the offer of another language).
    pub fixed: bool,
    /// The text for callers of other languages, by language: what it says and, once
    /// rendered, its prompt name.
    pub others: std::collections::BTreeMap<String, (String, String)>,
}

impl Prompt {
    /// A prompt file, `prompts/NAME.wav`.
    pub fn file(name: &str, pos: Pos) -> Prompt {
        Prompt {
            name: name.to_string(),
            pos,
            ..Prompt::default()
        }
    }

    /// The prompt a caller speaking `language` hears: a file in that language's folder, or
    /// the text given in it (none when the flow gives no text in that language).
    pub fn name_in(&self, language: &str) -> Option<String> {
        if self.say.is_none() {
            return Some(super::language::file_in(language, &self.name));
        }
        if self.fixed || language == self.language {
            return Some(self.name.clone());
        }
        self.others.get(language).map(|(_, name)| name.clone())
    }

    /// As `graph` and `diff` show it: a file's name, or the text (`"…"`), then each other
    /// language's (`es: "…"`).
    pub fn shown(&self) -> String {
        let Some(text) = &self.say else {
            return self.name.clone();
        };
        let mut out = format!("\"{text}\"");
        for (language, (text, _)) in &self.others {
            out.push_str(&format!(" / {language}: \"{text}\""));
        }
        out
    }

    /// What a text prompt says to a caller speaking `language`.
    pub fn text_in(&self, language: &str) -> Option<&str> {
        if self.fixed || language == self.language {
            return self.say.as_deref();
        }
        self.others.get(language).map(|(text, _)| text.as_str())
    }
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
    /// `language`: what a call starting here speaks (`language::DEFAULT` unless given).
    pub language: String,
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
    /// Per node, the languages a caller may speak there (`language::reachable`).
    pub languages: Vec<std::collections::BTreeSet<String>>,
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

    /// Length of `node`'s prompts in seconds in the slowest language a caller may hear them
    /// in, 0 when unknown (a missing prompt is its own diagnostic).
    pub fn prompt_seconds(&self, node: NodeId, prompts: &[Prompt]) -> f64 {
        self.slowest_language(node, prompts).1
    }

    /// The language in which `node`'s `prompts` take longest, and how long.
    pub fn slowest_language(&self, node: NodeId, prompts: &[Prompt]) -> (String, f64) {
        let seconds = |language: &str| -> f64 {
            prompts
                .iter()
                .filter_map(|p| p.name_in(language))
                .map(|name| match self.prompts.get(&name) {
                    Some(PromptFile::Ok { seconds }) => *seconds,
                    _ => 0.0,
                })
                .sum()
        };
        let default = std::collections::BTreeSet::from([self.flow_of(node).language.clone()]);
        let languages = match self.languages.get(node) {
            Some(l) if !l.is_empty() => l,
            _ => &default,
        };
        languages
            .iter()
            .map(|l| (l.clone(), seconds(l)))
            .fold(
                (String::new(), -1.0),
                |best, x| if x.1 > best.1 { x } else { best },
            )
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

//! The node kinds of the flow language, one file each: fields, parsing, and the edges leaving
//! the node with the caller action on each.

mod branch;
mod callback;
mod collect;
mod hangup;
mod lookup;
mod menu;
mod play;
mod queue;
mod returning;
mod schedule;
mod switch;
mod transfer;
mod voicemail;
mod withdraw;

pub use branch::{Branch, CaseMatch};
pub use callback::Callback;
pub use collect::{Collect, Escape as CollectEscape};
pub use hangup::Hangup;
pub use lookup::Lookup;
pub use menu::Menu;
pub use play::Play;
pub use queue::Queue;
pub use returning::{Returning, VARIABLES as FOLLOW_UP_VARIABLES};
pub use schedule::Schedule;
pub use switch::Switch;
pub use transfer::Transfer;
pub use voicemail::Voicemail;
pub use withdraw::{REASON as WITHDRAWN_REASON, Withdraw};

use super::fields::Fields;
use super::model::{Action, Class, Edge, Prompt, Target};
use super::source::Pos;

/// The `type` names, in the order the contract lists them.
pub const TYPES: [&str; 15] = [
    "play",
    "menu",
    "collect",
    "schedule",
    "switch",
    "branch",
    "lookup",
    "returning",
    "withdraw",
    "queue",
    "owner",
    "transfer",
    "voicemail",
    "callback",
    "hangup",
];

#[derive(Debug)]
pub enum NodeKind {
    Play(Play),
    Menu(Menu),
    Collect(Collect),
    Schedule(Schedule),
    Switch(Switch),
    Branch(Branch),
    Lookup(Lookup),
    Returning(Returning),
    Withdraw(Withdraw),
    Queue(Queue),
    /// A queue whose first choice is the agent who has the caller's open follow-up.
    Owner(Queue),
    Transfer(Transfer),
    Voicemail(Voicemail),
    Callback(Callback),
    Hangup(Hangup),
}

impl NodeKind {
    /// Parses the fields of a node of type `ty`; `None` for an unknown type.
    pub fn parse(ty: &str, f: &mut Fields, at: Pos) -> Option<NodeKind> {
        Some(match ty {
            "play" => NodeKind::Play(Play::parse(f, at)),
            "menu" => NodeKind::Menu(Menu::parse(f, at)),
            "collect" => NodeKind::Collect(Collect::parse(f, at)),
            "schedule" => NodeKind::Schedule(Schedule::parse(f, at)),
            "switch" => NodeKind::Switch(Switch::parse(f, at)),
            "branch" => NodeKind::Branch(Branch::parse(f, at)),
            "lookup" => NodeKind::Lookup(Lookup::parse(f, at)),
            "returning" => NodeKind::Returning(Returning::parse(f, at)),
            "withdraw" => NodeKind::Withdraw(Withdraw::parse(f, at)),
            "owner" => NodeKind::Owner(Queue::parse(f, at)),
            "queue" => NodeKind::Queue(Queue::parse(f, at)),
            "transfer" => NodeKind::Transfer(Transfer::parse(f, at)),
            "voicemail" => NodeKind::Voicemail(Voicemail::parse(f, at)),
            "callback" => NodeKind::Callback(Callback::parse(f, at)),
            "hangup" => NodeKind::Hangup(Hangup::parse(f, at)),
            _ => return None,
        })
    }

    /// What a caller-facing node plays and how long it then waits for a key (0 for a play);
    /// `None` for the nodes that are not caller-facing.
    pub fn prompts_and_timeout(&self) -> Option<(&[crate::flow::model::Prompt], u32)> {
        match self {
            NodeKind::Play(n) => Some((&n.prompts, 0)),
            NodeKind::Menu(n) => Some((&n.prompts, n.timeout_s)),
            NodeKind::Collect(n) => Some((&n.prompts, n.timeout_s)),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Play(_) => "play",
            NodeKind::Menu(_) => "menu",
            NodeKind::Collect(_) => "collect",
            NodeKind::Schedule(_) => "schedule",
            NodeKind::Switch(_) => "switch",
            NodeKind::Branch(_) => "branch",
            NodeKind::Lookup(_) => "lookup",
            NodeKind::Returning(_) => "returning",
            NodeKind::Withdraw(_) => "withdraw",
            NodeKind::Owner(_) => "owner",
            NodeKind::Queue(_) => "queue",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Voicemail(_) => "voicemail",
            NodeKind::Callback(_) => "callback",
            NodeKind::Hangup(_) => "hangup",
        }
    }

    pub fn class(&self) -> Class {
        match self {
            NodeKind::Play(_) | NodeKind::Menu(_) | NodeKind::Collect(_) => Class::CallerFacing,
            NodeKind::Schedule(_)
            | NodeKind::Switch(_)
            | NodeKind::Branch(_)
            | NodeKind::Lookup(_)
            | NodeKind::Returning(_)
            | NodeKind::Withdraw(_) => Class::Invisible,
            NodeKind::Queue(_) | NodeKind::Owner(_) | NodeKind::Transfer(_) => Class::LiveHuman,
            NodeKind::Voicemail(_) | NodeKind::Callback(_) => Class::FollowUp,
            NodeKind::Hangup(_) => Class::Hangup,
        }
    }

    /// Every edge leaving the node, with the action that takes it.
    pub fn edges(&self) -> Vec<Edge<'_>> {
        match self {
            NodeKind::Play(n) => n.edges(),
            NodeKind::Menu(n) => n.edges(),
            NodeKind::Collect(n) => n.edges(),
            NodeKind::Schedule(n) => n.edges(),
            NodeKind::Switch(n) => n.edges(),
            NodeKind::Branch(n) => n.edges(),
            NodeKind::Lookup(n) => n.edges(),
            NodeKind::Returning(n) => n.edges(),
            NodeKind::Withdraw(n) => n.edges(),
            NodeKind::Queue(n) | NodeKind::Owner(n) => n.edges(),
            NodeKind::Transfer(n) => n.edges(),
            NodeKind::Voicemail(_) | NodeKind::Callback(_) | NodeKind::Hangup(_) => Vec::new(),
        }
    }

    /// Every reference the node makes, for resolution.
    pub fn targets_mut(&mut self) -> Vec<&mut Target> {
        let mut out: Vec<&mut Target> = Vec::new();
        match self {
            NodeKind::Play(n) => out.extend(n.next.as_mut()),
            NodeKind::Menu(n) => {
                out.extend(n.options.iter_mut().map(|(_, t)| t));
                out.extend(n.on_invalid.as_mut());
                out.extend(n.on_exhausted.as_mut());
            }
            NodeKind::Collect(n) => {
                out.extend(n.next.as_mut());
                out.extend(n.on_exhausted.as_mut());
            }
            NodeKind::Schedule(n) => {
                out.extend(n.open.as_mut());
                out.extend(n.closed.as_mut());
            }
            NodeKind::Branch(n) => {
                out.extend(n.cases.iter_mut().map(|(_, t)| t));
                out.extend(n.default.as_mut());
            }
            NodeKind::Lookup(n) => {
                out.extend(n.next.as_mut());
                out.extend(n.on_error.as_mut());
            }
            NodeKind::Switch(n) => {
                out.extend(n.on.as_mut());
                out.extend(n.off.as_mut());
            }
            NodeKind::Returning(n) => {
                out.extend(n.open.as_mut());
                out.extend(n.none.as_mut());
            }
            NodeKind::Withdraw(n) => out.extend(n.next.as_mut()),
            NodeKind::Queue(n) | NodeKind::Owner(n) => out.extend(n.on_timeout.as_mut()),
            NodeKind::Transfer(n) => out.extend(n.on_failure.as_mut()),
            NodeKind::Voicemail(_) | NodeKind::Callback(_) | NodeKind::Hangup(_) => {}
        }
        out
    }

    /// Every prompt the node may play, for the prompt checks.
    pub fn prompts(&self) -> Vec<&Prompt> {
        match self {
            NodeKind::Play(n) => n.prompts.iter().collect(),
            NodeKind::Menu(n) => n.prompts.iter().chain(&n.invalid_prompt).collect(),
            NodeKind::Collect(n) => n.prompts.iter().collect(),
            NodeKind::Voicemail(n) => n.prompts.iter().collect(),
            NodeKind::Callback(n) => n.prompts.iter().collect(),
            NodeKind::Hangup(n) => n.prompts.iter().collect(),
            NodeKind::Schedule(_)
            | NodeKind::Switch(_)
            | NodeKind::Branch(_)
            | NodeKind::Lookup(_)
            | NodeKind::Returning(_)
            | NodeKind::Withdraw(_) => Vec::new(),
            NodeKind::Queue(_) | NodeKind::Owner(_) | NodeKind::Transfer(_) => Vec::new(),
        }
    }

    /// The same, to name a text prompt's rendering.
    pub fn prompts_mut(&mut self) -> Vec<&mut Prompt> {
        match self {
            NodeKind::Play(n) => n.prompts.iter_mut().collect(),
            NodeKind::Menu(n) => n.prompts.iter_mut().chain(&mut n.invalid_prompt).collect(),
            NodeKind::Collect(n) => n.prompts.iter_mut().collect(),
            NodeKind::Voicemail(n) => n.prompts.iter_mut().collect(),
            NodeKind::Callback(n) => n.prompts.iter_mut().collect(),
            NodeKind::Hangup(n) => n.prompts.iter_mut().collect(),
            _ => Vec::new(),
        }
    }

    /// How often a menu or collect plays its prompt again (0 for other nodes).
    pub fn retries(&self) -> u32 {
        match self {
            NodeKind::Menu(n) => n.max_retries,
            NodeKind::Collect(n) => n.max_retries,
            _ => 0,
        }
    }
}

/// The edges of a node whose ways are optional targets, each taken by its action.
fn edges_of<'a, const N: usize>(ways: [(Action<'a>, &'a Option<Target>); N]) -> Vec<Edge<'a>> {
    ways.into_iter()
        .filter_map(|(action, t)| t.as_ref().map(|target| Edge { action, target }))
        .collect()
}

/// A required prompt: missing is a schema error.
fn required_prompts(f: &mut Fields, key: &'static str, at: Pos) -> Vec<Prompt> {
    let prompts = f.prompts(key);
    if prompts.is_empty() && !f.has(key) {
        f.missing(key, at);
    }
    prompts
}

//! A caller joining a queue: which queue (a returning caller waits in their follow-up's queue
//! when the config has it), whether anyone serves it (nobody logged in: the flow takes the
//! caller on at once, rather than letting them wait for no one), and how the routing core
//! is told (in line by priority, or at the head for whoever has their follow-up). Pure: the
//! driver keeps the caller and carries the decision out.

use std::collections::HashMap;
use std::time::Instant;

use crate::engine::First;
use crate::routing::{Router, RouterEvent};

/// What becomes of a caller who enters a queue node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joining {
    /// Nobody is logged in to serve the queue (or the config has no such queue).
    NoAgents,
    /// A probe call: it hears the hold music, and nobody is rung for it.
    Probe { queue: String },
    /// In line: the queue the caller waits in, and what the router is told.
    Join {
        queue: String,
        event: RouterEvent,
        /// The follow-up's owner is no agent any more: its queue takes the caller.
        owner_gone: Option<String>,
    },
}

/// The caller `call` enters a queue node for `queue` at `priority`; `first` when they return
/// about an open follow-up; `probe` for a `hotline probe` call.
#[allow(clippy::too_many_arguments)]
pub fn join(
    router: &Router,
    queue_ids: &HashMap<String, usize>,
    agent_ids: &[String],
    call: u64,
    queue: String,
    priority: u32,
    first: Option<&First>,
    probe: bool,
    now: Instant,
) -> Joining {
    let queue = match first {
        Some(f) if queue_ids.contains_key(&f.queue) => f.queue.clone(),
        _ => queue,
    };
    let Some(&q) = queue_ids
        .get(&queue)
        .filter(|&&q| router.queue_figures(q, now).is_some_and(|f| f.staffed > 0))
    else {
        return Joining::NoAgents;
    };
    if probe {
        return Joining::Probe { queue };
    }
    let (event, owner_gone) = match first {
        Some(f) => {
            let owner = f
                .owner
                .as_ref()
                .and_then(|o| agent_ids.iter().position(|i| i == o));
            let gone = f.owner.clone().filter(|_| owner.is_none());
            (
                RouterEvent::EnqueueReturning {
                    call,
                    queue: q,
                    owner,
                },
                gone,
            )
        }
        None => (
            RouterEvent::Enqueue {
                call,
                queue: q,
                priority,
            },
            None,
        ),
    };
    Joining::Join {
        queue,
        event,
        owner_gone,
    }
}

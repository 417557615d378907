//! The live stream the desk and the wall follow (`GET /api/events`, Server-Sent Events): one
//! typed event per change the routing core decides, numbered, with a short ring of recent
//! ones so a page that reconnects with `Last-Event-ID` misses nothing. Published by the
//! signalling task; each subscriber sees only what its login may see.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use super::{AgentRow, QueueRow};

/// How many recent events a reconnecting page can resume from.
pub const RING: usize = 512;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// An agent's state, reason, next state or call changed: the agent's new row.
    Agent { agent: Box<AgentRow> },
    /// The queues' live figures (sent at most a few times a second).
    Queues { queues: Vec<QueueRow> },
    /// The callers waiting for or talking to a human (supervisors only), with the queues.
    Calls { calls: Vec<super::caller::LiveCall> },
    /// A voicemail or callback request came or changed: pages read `/api/followups` again
    /// (which shows each login what it may see).
    FollowUps,
    /// A switch was flipped: every switch's row.
    Switches {
        switches: Vec<super::switches::SwitchRow>,
    },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Agent { .. } => "agent",
            Event::Queues { .. } => "queues",
            Event::FollowUps => "follow-ups",
            Event::Calls { .. } => "calls",
            Event::Switches { .. } => "switches",
        }
    }

    /// Whether a login may see it: an agent their own row and the queues' figures, a
    /// supervisor everything.
    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        match (self, viewer) {
            (_, Viewer::Supervisor) => true,
            (Event::Agent { agent }, Viewer::Agent(id)) => agent.id == *id,
            (
                Event::Queues { .. } | Event::FollowUps | Event::Switches { .. },
                Viewer::Agent(_),
            ) => true,
            (Event::Calls { .. }, Viewer::Agent(_)) => false,
        }
    }
}

/// Who follows the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Agent(String),
    Supervisor,
}

/// One event as published: its number and its JSON (made once for every subscriber).
#[derive(Debug)]
pub struct Published {
    pub id: u64,
    pub event: Event,
    pub json: String,
}

/// The broadcast and the ring of recent events.
pub struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
    recent: Mutex<(u64, VecDeque<Arc<Published>>)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(RING).0,
            recent: Mutex::new((0, VecDeque::with_capacity(RING))),
        }
    }
}

impl Hub {
    pub fn publish(&self, event: Event) {
        let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
        let mut recent = match self.recent.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        recent.0 += 1;
        let published = Arc::new(Published {
            id: recent.0,
            event,
            json,
        });
        if recent.1.len() == RING {
            recent.1.pop_front();
        }
        recent.1.push_back(Arc::clone(&published));
        // Sent under the lock, so a subscriber taken under it sees each event once.
        let _ = self.tx.send(published);
    }

    /// The events after `last` still in the ring (all of them if `last` is older than the
    /// ring: the page then also reloads its state), and a receiver for the ones to come.
    /// `gap` says whether events after `last` were lost.
    pub fn subscribe(&self, last: Option<u64>) -> Subscription {
        let recent = match self.recent.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rx = self.tx.subscribe();
        let (missed, gap) = match last {
            None => (Vec::new(), false),
            Some(last) => {
                let oldest = recent.1.front().map_or(recent.0 + 1, |p| p.id);
                let missed: Vec<_> = recent.1.iter().filter(|p| p.id > last).cloned().collect();
                (missed, last + 1 < oldest || last > recent.0)
            }
        };
        Subscription { missed, gap, rx }
    }

    /// The number of the newest event.
    pub fn last_id(&self) -> u64 {
        self.recent.lock().map(|r| r.0).unwrap_or(0)
    }
}

pub struct Subscription {
    pub missed: Vec<Arc<Published>>,
    pub gap: bool,
    pub rx: broadcast::Receiver<Arc<Published>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(waiting: usize) -> Event {
        Event::Queues {
            queues: vec![QueueRow {
                name: "support".into(),
                waiting,
                longest_wait_s: 0.0,
                agents_available: 0,
                agents_logged_in: 0,
                ewt_s: None,
                service_level: None,
                service_level_s: 20,
                wait_estimates: Default::default(),
                agents: Default::default(),
            }],
        }
    }

    fn waiting(p: &Published) -> usize {
        match &p.event {
            Event::Queues { queues } => queues[0].waiting,
            _ => usize::MAX,
        }
    }

    #[test]
    fn a_page_that_reconnects_gets_what_it_missed_once() {
        let hub = Hub::default();
        hub.publish(queues(1));
        let mut first = hub.subscribe(None);
        assert!(first.missed.is_empty() && !first.gap);
        hub.publish(queues(2));
        hub.publish(queues(3));
        let got = first.rx.try_recv().unwrap();
        assert_eq!((got.id, waiting(&got)), (2, 2));
        assert!(got.json.contains("\"waiting\":2"), "{}", got.json);
        // The page saw event 2, lost its connection, and comes back.
        let again = hub.subscribe(Some(2));
        let ids: Vec<u64> = again.missed.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![3]);
        assert!(!again.gap);
        // Older than the ring: everything the ring has, and a gap to reload over.
        for n in 0..RING {
            hub.publish(queues(n));
        }
        let late = hub.subscribe(Some(1));
        assert!(late.gap);
        assert_eq!(late.missed.len(), RING);
        assert_eq!(late.missed.last().unwrap().id, hub.last_id());
        // An id from before a restart (larger than any now) is a gap too.
        assert!(hub.subscribe(Some(hub.last_id() + 10)).gap);
    }

    #[test]
    fn an_agent_sees_their_own_row_and_the_queues() {
        let row = |id: &str| AgentRow {
            id: id.into(),
            name: id.into(),
            state: "available",
            since: String::new(),
            since_s: 0,
            reason: None,
            registered: true,
            unreachable: false,
            auth_failures: 0,
            locked_out: Vec::new(),
            call: None,
            next_state: None,
            wrap_up_left_s: None,
            caller: None,
            consulting: None,
        };
        let alice = Viewer::Agent("alice".into());
        assert!(
            Event::Agent {
                agent: Box::new(row("alice"))
            }
            .visible_to(&alice)
        );
        assert!(
            !Event::Agent {
                agent: Box::new(row("bob"))
            }
            .visible_to(&alice)
        );
        assert!(queues(1).visible_to(&alice));
        assert!(
            Event::Agent {
                agent: Box::new(row("bob"))
            }
            .visible_to(&Viewer::Supervisor)
        );
    }
}

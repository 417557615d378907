//! An agent's phones ringing together for a caller: one leg per registered phone. The first
//! to answer takes the call and the others are cancelled as answered elsewhere (RFC 3326, so
//! they log no missed call); a busy or declining phone leaves the others ringing, a 6xx stops
//! them all (RFC 3261 §16.7). The ring's user (the routing) hears the agent's answer, once:
//! [`Event::AgentAnswered`] or [`Event::AgentDeclined`], never a phone's.

use core::net::SocketAddr;
use std::collections::HashMap;
use std::time::Instant;

use super::{Context, Dial, Event, Party, Phase, Switch};
use crate::sip::link::Link;
use crate::sip::sdp;

/// A caller offered to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ring {
    pub call: u64,
    pub agent: usize,
}

/// One of the agent's registered phones, and what its leg is given.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Its registered contact: the Request-URI.
    pub uri: String,
    pub link: Link,
    pub peer: SocketAddr,
    /// The RTP port and media id opened for the leg (by the driver).
    pub rtp_port: u16,
    pub media: u64,
    pub srtp: sdp::OfferSrtp,
}

/// Who rings an agent's phones, and what every INVITE of the ring carries.
#[derive(Debug, Clone, Copy)]
pub struct Ringing<'a> {
    /// The caller, as the desk sees them.
    pub caller: &'a crate::switch::status::Caller<'a>,
    /// Their place is a callback: the call to them this will be.
    pub callback_attempt: Option<u32>,
    /// A colleague calling about the caller (an attended transfer): his display name and id.
    pub colleague: Option<(&'a str, &'a str)>,
    /// The agent rung, and the domain of our agents' addresses.
    pub agent: &'a str,
    pub domain: &'a str,
}

impl Ringing<'_> {
    /// What every INVITE of the ring carries: the phone shows the caller (their own From's
    /// name and URI, a callback's stored number), or the colleague who calls about them, while
    /// the context (`X-Hotline-*`) is always the caller's, with how long they have waited.
    /// The driver fills in each phone's contact, link, port and media.
    pub fn dial(&self, now: Instant) -> Dial {
        let c = self.caller;
        let (display, uri) = match self.colleague {
            Some((name, id)) => (name.to_string(), format!("sip:{id}@{}", self.domain)),
            None => crate::sip::dialog::caller_identity(c.from, c.number),
        };
        Dial {
            uri: String::new(),
            to: format!("sip:{}@{}", self.agent, self.domain),
            from: Party { display, uri },
            assert_identity: true,
            link: Link::Udp,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            rtp_port: 0,
            srtp: sdp::OfferSrtp::No,
            context: Some(Context {
                caller: c.number.to_string(),
                queue: Some(c.queue.to_string()),
                path: c.path.to_vec(),
                waited: Some(now.saturating_duration_since(c.entered)),
                callback_attempt: self.callback_attempt,
                variables: c.variables.to_vec(),
                transferred_by: c.transferred_by.map(str::to_string),
                transfer_note: c.note.map(str::to_string),
            }),
            media: 0,
            auth: None,
            redirect: None,
        }
    }
}

/// Which legs ring for which agent and caller.
#[derive(Default)]
pub(super) struct Rings {
    legs: HashMap<Ring, Vec<String>>,
    ring_of: HashMap<String, Ring>,
}

impl Rings {
    pub(super) fn of(&self, leg: &str) -> Option<Ring> {
        self.ring_of.get(leg).copied()
    }

    fn forget(&mut self, leg: &str) {
        if let Some(ring) = self.ring_of.remove(leg)
            && let Some(legs) = self.legs.get_mut(&ring)
        {
            legs.retain(|l| l != leg);
            if legs.is_empty() {
                self.legs.remove(&ring);
            }
        }
    }
}

impl Switch {
    /// Rings the agent's phones for a caller, all at once; `dial` says what every INVITE
    /// carries (who calls, the caller's context). Returns the legs placed, one per phone.
    pub fn ring(
        &mut self,
        ring: Ring,
        phones: Vec<Phone>,
        dial: &Dial,
        now: Instant,
    ) -> Vec<String> {
        let mut placed = Vec::new();
        for p in phones {
            let mut d = dial.clone();
            d.uri = p.uri;
            d.link = p.link;
            d.peer = p.peer;
            d.rtp_port = p.rtp_port;
            d.media = p.media;
            d.srtp = p.srtp;
            let leg = self.place(d, now);
            self.rings.legs.entry(ring).or_default().push(leg.clone());
            self.rings.ring_of.insert(leg.clone(), ring);
            placed.push(leg);
        }
        placed
    }

    /// Stops a ring (the agent did not answer in time, the caller left, or another agent
    /// answered: `elsewhere`): CANCEL to each of the agent's phones still ringing.
    pub fn cancel_ring(&mut self, ring: Ring, elsewhere: bool, now: Instant) {
        for leg in self.rings.legs.get(&ring).cloned().unwrap_or_default() {
            self.cancel(&leg, elsewhere, now);
        }
    }

    /// Whether one of the ring's phones still rings.
    pub fn is_ringing(&self, ring: Ring) -> bool {
        self.rings_besides(ring, "")
    }

    /// Whether a phone of the ring other than `leg` still rings.
    fn rings_besides(&self, ring: Ring, leg: &str) -> bool {
        self.rings.legs.get(&ring).is_some_and(|legs| {
            legs.iter()
                .any(|l| l != leg && self.phase(l) == Some(Phase::Ringing))
        })
    }

    /// What a leg's event means for its ring, if it rings for one: the agent's answer, or
    /// nothing yet. Returns the event to pass on (`None`: the ring took it).
    pub(super) fn ring_event(&mut self, event: Event, now: Instant) -> Option<Event> {
        let Some(leg) = event.of_a_leg() else {
            return Some(event);
        };
        let Some(ring) = self.rings.of(&leg) else {
            return Some(event);
        };
        match event {
            Event::Answered { agreed, .. } => {
                // One phone answered: the others stop ringing.
                let others: Vec<String> = self
                    .rings
                    .legs
                    .get(&ring)
                    .into_iter()
                    .flatten()
                    .filter(|l| **l != leg)
                    .cloned()
                    .collect();
                for other in others {
                    self.cancel(&other, true, now);
                }
                Some(Event::AgentAnswered { ring, leg, agreed })
            }
            Event::Refused { code, .. } => {
                if code < 600 && self.rings_besides(ring, &leg) {
                    // Busy on one phone; another of the agent's phones still rings.
                    return None;
                }
                // The agent's answer everywhere: stop the others.
                self.cancel_ring(ring, false, now);
                Some(Event::AgentDeclined {
                    ring,
                    code: Some(code),
                })
            }
            Event::Unreached { .. } => (!self.rings_besides(ring, &leg))
                .then_some(Event::AgentDeclined { ring, code: None }),
            closed @ Event::Closed { .. } => {
                self.rings.forget(&leg);
                Some(closed)
            }
            other => Some(other),
        }
    }
}

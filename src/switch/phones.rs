//! Agents' phones: the registrar (digest-authenticated REGISTERs), whether each phone answers
//! its OPTIONS (`sip::qualify`), and from both whether an agent can be rung at all. An agent
//! is offered calls while one of her registered phones answers; when the last stops answering
//! or leaves, the routing core is told (`Reach::Lost`), and told again when one is back.
//! Pure: the driver answers the REGISTERs, sends the OPTIONS (through the switch), stores the
//! bindings, and tells the router what `Reach` says.

use core::net::SocketAddr;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::sip::link::Link;
use crate::sip::qualify::{Mode, Qualify};
use crate::sip::registrar::{self, Binding, Change, Registrar, Unanswered};

/// Whether an agent can be rung changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A phone of hers is registered and answers: she can be offered calls.
    Gained(usize),
    /// No phone of hers is registered and answering.
    Lost(usize),
}

/// An OPTIONS to send to a phone; `phone` names it when its answer comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub phone: String,
    pub uri: String,
    pub link: Link,
    pub target: SocketAddr,
}

/// What a tick of the phones' timer did.
#[derive(Debug, Default)]
pub struct Tick {
    pub pings: Vec<Ping>,
    pub reach: Vec<Reach>,
    /// Agents whose last registration expired.
    pub expired: Vec<usize>,
    /// Phones that never answered their digest challenge.
    pub unanswered: Vec<Unanswered>,
}

/// A phone's answer (or its silence) that changed whether it is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub agent: usize,
    pub uri: String,
    /// It answers again (`false`: it stopped answering).
    pub reachable: bool,
    pub reach: Option<Reach>,
}

/// The agents' phones.
pub struct Phones {
    pub registrar: Registrar,
    qualify: Qualify,
    mode: Mode,
    /// The agents with a phone that can be rung.
    reachable: HashSet<usize>,
}

impl Phones {
    /// `every == 0` asks no phone, whatever `mode` says.
    pub fn new(registrar: Registrar, every: Duration, mode: Mode) -> Phones {
        Phones {
            registrar,
            qualify: Qualify::new(every),
            mode: if every.is_zero() { Mode::Off } else { mode },
            reachable: HashSet::new(),
        }
    }

    /// Whether the agent has a phone that can be rung.
    pub fn is_reachable(&self, agent: usize) -> bool {
        self.reachable.contains(&agent)
    }

    /// The agents with a phone that can be rung.
    pub fn reachable(&self) -> &HashSet<usize> {
        &self.reachable
    }

    /// Her phones to ring: registered, and answering when last asked.
    pub fn ringable(&self, agent: usize) -> Vec<Binding> {
        self.registrar
            .bindings(agent)
            .into_iter()
            .filter(|b| self.qualify.is_reachable(agent, &b.uri))
            .cloned()
            .collect()
    }

    /// The agent's phones changed (registered, gone, answering or not): which are asked from
    /// now, and whether she can be rung.
    pub fn changed(&mut self, agent: usize, now: Instant) -> Option<Reach> {
        let bindings = self.registrar.bindings(agent);
        let mode = self.mode;
        let asked: Vec<String> = bindings
            .iter()
            .filter(|b| match mode {
                Mode::Off => false,
                Mode::All => true,
                // Reached through a NAT's mapping, not at its Contact.
                Mode::Nat => {
                    b.link == Link::Udp && registrar::contact_address(&b.uri) != Some(b.target)
                }
            })
            .map(|b| b.uri.clone())
            .collect();
        self.qualify.track(agent, &asked, now);
        let reachable = bindings
            .iter()
            .any(|b| self.qualify.is_reachable(agent, &b.uri));
        let was = self.reachable.contains(&agent);
        if reachable && !was {
            self.reachable.insert(agent);
            Some(Reach::Gained(agent))
        } else if !reachable && was {
            self.reachable.remove(&agent);
            Some(Reach::Lost(agent))
        } else {
            None
        }
    }

    /// A registration change the registrar reported.
    pub fn registration(&mut self, change: Change, now: Instant) -> Option<Reach> {
        let (Change::Registered(agent) | Change::Unregistered(agent)) = change;
        self.changed(agent, now)
    }

    /// The phone (a `Ping`'s `phone`) answered its OPTIONS (with anything) or never did.
    pub fn answered(&mut self, phone: &str, reached: bool, now: Instant) -> Option<Answered> {
        let (agent, uri) = phone
            .split_once(' ')
            .and_then(|(a, u)| Some((a.parse::<usize>().ok()?, u.to_string())))?;
        let reachable = self.qualify.answered(&(agent, uri.clone()), reached)?;
        let reach = self.changed(agent, now);
        Some(Answered {
            agent,
            uri,
            reachable,
            reach,
        })
    }

    /// When `tick` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.registrar.poll_timeout(), self.qualify.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Registrations expire, challenges go unanswered, phones are due an OPTIONS.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let mut tick = Tick::default();
        for change in self.registrar.expire(now) {
            if let Change::Unregistered(agent) = change {
                tick.expired.push(agent);
            }
            tick.reach.extend(self.registration(change, now));
        }
        tick.unanswered = self.registrar.unanswered(now);
        for (agent, uri) in self.qualify.due(now) {
            let binding = self
                .registrar
                .bindings(agent)
                .into_iter()
                .find(|b| b.uri == uri)
                .cloned();
            match binding {
                Some(b) => tick.pings.push(Ping {
                    phone: format!("{agent} {uri}"),
                    uri,
                    link: b.link,
                    target: b.target,
                }),
                // Gone meanwhile.
                None => tick.reach.extend(self.changed(agent, now)),
            }
        }
        tick
    }
}

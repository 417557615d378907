//! Keeping agents' phones in reach ("qualify"): an OPTIONS to each registered phone every
//! `[sip] qualify_s`. Its answer (any answer: the phone is there) keeps a NAT's mapping open
//! so the next call still reaches it; no answer at all marks the phone unreachable, and an
//! agent whose every phone is unreachable is not offered calls (no ring-no-answer counted
//! against her) until one answers again. Which phones are asked is `[sip] qualify`: those
//! reached through a NAT's mapping (by default), all, or none. Pure: the driver sends the
//! OPTIONS (through the switch) and says how each ended.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Which phones are asked (`[sip] qualify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Phones called where their REGISTER came from rather than at their Contact (behind a
    /// NAT, whose mapping closes when nothing passes).
    #[default]
    Nat,
    All,
    Off,
}

/// A phone: its agent and the Contact URI it registered.
pub type Phone = (usize, String);

#[derive(Debug, Default)]
struct State {
    /// An OPTIONS is out, not yet answered.
    asking: bool,
    reachable: bool,
}

/// The phones being asked and what their last answer said.
#[derive(Debug)]
pub struct Qualify {
    every: Duration,
    phones: BTreeMap<Phone, State>,
    due: BTreeSet<(Instant, Phone)>,
}

impl Qualify {
    pub fn new(every: Duration) -> Qualify {
        Qualify {
            every: every.max(Duration::from_secs(1)),
            phones: BTreeMap::new(),
            due: BTreeSet::new(),
        }
    }

    /// The phones of `agent` to ask from now (after each change of its registrations): new
    /// ones are first asked one interval on, and count as reachable until then; those no
    /// longer registered are forgotten.
    pub fn track(&mut self, agent: usize, phones: &[String], now: Instant) {
        let gone: Vec<Phone> = self
            .phones
            .keys()
            .filter(|(a, uri)| *a == agent && !phones.contains(uri))
            .cloned()
            .collect();
        for p in gone {
            self.phones.remove(&p);
            self.due.retain(|(_, q)| *q != p);
        }
        for uri in phones {
            let p = (agent, uri.clone());
            if !self.phones.contains_key(&p) {
                self.phones.insert(
                    p.clone(),
                    State {
                        asking: false,
                        reachable: true,
                    },
                );
                self.due.insert((now + self.every, p));
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.first().map(|(t, _)| *t)
    }

    /// The phones to send an OPTIONS now; each is asked again one interval on.
    pub fn due(&mut self, now: Instant) -> Vec<Phone> {
        let mut out = Vec::new();
        while let Some((t, p)) = self.due.first().cloned() {
            if t > now {
                break;
            }
            self.due.remove(&(t, p.clone()));
            let Some(s) = self.phones.get_mut(&p) else {
                continue;
            };
            if !s.asking {
                s.asking = true;
                out.push(p.clone());
            }
            self.due.insert((now + self.every, p));
        }
        out
    }

    /// The phone answered (`true`: with anything) or did not (the OPTIONS timed out):
    /// `Some(reachable)` when that changes whether it is.
    pub fn answered(&mut self, phone: &Phone, reached: bool) -> Option<bool> {
        let s = self.phones.get_mut(phone)?;
        s.asking = false;
        (s.reachable != reached).then(|| {
            s.reachable = reached;
            reached
        })
    }

    /// Whether the phone answered its last OPTIONS (or has not been asked yet). A phone not
    /// tracked (not asked) is reachable.
    pub fn is_reachable(&self, agent: usize, uri: &str) -> bool {
        self.phones
            .get(&(agent, uri.to_string()))
            .is_none_or(|s| s.reachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // an origin only: the core is given every time
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn phones_are_asked_every_interval_and_an_unanswered_one_is_unreachable_until_it_answers() {
        let t = origin();
        let s = Duration::from_secs;
        let mut q = Qualify::new(s(30));
        q.track(0, &["sip:a@1.2.3.4".into(), "sip:b@1.2.3.4".into()], t);
        assert!(q.due(t + s(29)).is_empty());
        assert!(q.is_reachable(0, "sip:a@1.2.3.4"), "until asked");
        let asked = q.due(t + s(30));
        assert_eq!(asked.len(), 2);
        // One answers, the other does not (its OPTIONS timed out).
        assert_eq!(q.answered(&asked[0], true), None, "no change");
        assert_eq!(q.answered(&asked[1], false), Some(false));
        assert!(!q.is_reachable(0, &asked[1].1));
        // Asked again one interval on; it answers: reachable again.
        assert_eq!(q.poll_timeout(), Some(t + s(60)));
        let again = q.due(t + s(60));
        assert_eq!(again.len(), 2);
        assert_eq!(q.answered(&asked[1], true), Some(true));
        assert!(q.is_reachable(0, &asked[1].1));
    }

    #[test]
    fn a_phone_still_being_asked_is_not_asked_twice_and_a_gone_one_is_forgotten() {
        let t = origin();
        let s = Duration::from_secs;
        let mut q = Qualify::new(s(10));
        q.track(1, &["sip:a@h".into()], t);
        assert_eq!(q.due(t + s(10)).len(), 1);
        assert!(q.due(t + s(20)).is_empty(), "its OPTIONS is still out");
        q.track(1, &[], t + s(21));
        assert_eq!(q.poll_timeout(), None);
        assert_eq!(q.answered(&(1, "sip:a@h".into()), false), None);
        assert!(
            q.is_reachable(1, "sip:a@h"),
            "not tracked: nothing known against it"
        );
    }
}

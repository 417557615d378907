//! A caller waiting in a queue, on the caller's clock and nothing else: when they hear their
//! place and expected wait (soon after they come, then every `announce_position_every_s`),
//! when they are offered a callback (once they have waited `offer_callback_after_s`, then
//! with every later announcement), when their wait runs out, and whether the callback key
//! means anything yet. The driver asks the routing core for the caller's standing when an
//! announcement is due and hands it in; what to play comes back. Pure: no IO, no clock.

use std::time::{Duration, Instant};

use super::announce;

/// The first position announcement comes this soon after the caller enters the queue.
pub const FIRST_ANNOUNCEMENT: Duration = Duration::from_secs(1);
/// A due announcement is put off this long while an agent's phone rings for the caller.
pub const ANNOUNCE_LATER: Duration = Duration::from_secs(5);

/// Where the caller stands, as the routing core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Callers ahead (0 = next).
    pub ahead: usize,
    /// The expected wait, once the queue has a handle time.
    pub wait: Option<Duration>,
}

/// What the caller hears now, instead of the hold music until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub prompts: Vec<String>,
    /// The wait the caller was told ("about 4 minutes"), a promise scored against the wait
    /// that follows.
    pub told: Option<Duration>,
    /// The callback offer is made for the first time.
    pub offers: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub queue: String,
    pub entered: Instant,
    /// What the announcements speak.
    pub language: String,
    until: Instant,
    every: Option<Duration>,
    next_announce: Option<Instant>,
    offer_at: Option<Instant>,
    offered: bool,
    /// The tag of an announcement playing instead of the hold music.
    announcing: Option<u64>,
}

/// How a queue node lets its callers wait: a caller passed on to another queue waits there
/// by the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    pub max_wait: Duration,
    /// How often the caller hears their place (none: never).
    pub every: Option<Duration>,
}

impl Waiting {
    /// A caller entering `queue` now. `speaks`: the announcements exist in their language
    /// (without them, hold music only); `dialable`: a callback could reach them (a promise to
    /// call back a number we may not dial is no promise, so no offer).
    #[allow(clippy::too_many_arguments)]
    pub fn enter(
        queue: &str,
        now: Instant,
        max_wait_s: u32,
        announce_every_s: u32,
        offer_callback_after_s: u32,
        speaks: bool,
        dialable: bool,
        language: &str,
    ) -> (Waiting, Rules) {
        let rules = Rules {
            max_wait: Duration::from_secs(u64::from(max_wait_s)),
            every: (speaks && announce_every_s > 0)
                .then(|| Duration::from_secs(u64::from(announce_every_s))),
        };
        let mut w = Waiting::again(queue, now, rules, language);
        w.offer_at = (speaks && dialable && offer_callback_after_s > 0)
            .then(|| now + Duration::from_secs(u64::from(offer_callback_after_s)));
        (w, rules)
    }

    /// Back in line (passed on to another queue, or their agent gone): the same rules, and
    /// no new offer.
    pub fn again(queue: &str, now: Instant, rules: Rules, language: &str) -> Waiting {
        Waiting {
            queue: queue.to_string(),
            entered: now,
            language: language.to_string(),
            until: now + rules.max_wait,
            every: rules.every,
            next_announce: rules.every.map(|_| now + FIRST_ANNOUNCEMENT),
            offer_at: None,
            offered: false,
            announcing: None,
        }
    }

    /// When something is next due: the end of the wait, an announcement or the offer.
    pub fn next_wake(&self) -> Option<Instant> {
        [Some(self.until), self.next_announce, self.offer_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The wait ran out: the caller goes the queue node's `on_timeout` way.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.until <= now
    }

    /// An announcement or the offer is due: the driver asks for the caller's standing.
    pub fn announcement_due(&self, now: Instant) -> bool {
        self.next_announce.is_some_and(|t| t <= now) || self.offer_at.is_some_and(|t| t <= now)
    }

    /// The callback key keeps the caller's place as a callback: only once offered.
    pub fn takes_callback_key(&self, key: char) -> bool {
        self.offered && key == announce::CALLBACK_KEY
    }

    /// What the caller hears, given their standing now (`None` while an agent's phone rings
    /// for them: whatever was due is put off by `ANNOUNCE_LATER`).
    pub fn announce(&mut self, now: Instant, standing: Option<Standing>) -> Option<Announcement> {
        let position_due = self.next_announce.is_some_and(|t| t <= now);
        let offer_due = self.offer_at.is_some_and(|t| t <= now);
        let Some(Standing { ahead, wait }) = standing else {
            if position_due {
                self.next_announce = Some(now + ANNOUNCE_LATER);
            }
            if offer_due {
                self.offer_at = Some(now + ANNOUNCE_LATER);
            }
            return None;
        };
        let mut prompts = Vec::new();
        let mut told = None;
        if position_due {
            self.next_announce = self.every.map(|every| now + every);
            prompts = announce::position_in(&self.language, ahead, wait);
            told = wait.map(announce::spoken_wait);
        }
        if offer_due {
            self.offer_at = None;
            self.offered = true;
        }
        if offer_due || (position_due && self.offered) {
            prompts.push(announce::in_language(
                &self.language,
                announce::CALLBACK_OFFER,
            ));
        }
        (!prompts.is_empty()).then_some(Announcement {
            prompts,
            told,
            offers: offer_due,
        })
    }

    /// An announcement (or an apology) tagged `tag` plays instead of the hold music.
    pub fn speaking(&mut self, tag: u64) {
        self.announcing = Some(tag);
    }

    /// The playback tagged `tag` ended: whether it was the announcement (then the hold music
    /// comes back).
    pub fn spoken(&mut self, tag: u64) -> bool {
        if self.announcing == Some(tag) {
            self.announcing = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn said(a: &Announcement) -> String {
        a.prompts
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect::<Vec<_>>()
            .join(" ")
    }

    const THIRD: Option<Standing> = Some(Standing {
        ahead: 2,
        wait: Some(Duration::from_secs(240)),
    });

    #[test]
    fn the_place_is_told_soon_then_every_period_and_the_offer_joins_once_due() {
        #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
        let t0 = Instant::now();
        let (mut w, _) = Waiting::enter("support", t0, 600, 60, 120, true, true, "en");
        assert_eq!(w.next_wake(), Some(t0 + FIRST_ANNOUNCEMENT));
        assert!(!w.announcement_due(t0));
        let first = w.announce(at(t0, 1), THIRD).unwrap();
        assert_eq!(
            said(&first),
            "you_are_number 3 in_line wait_about 4 minutes"
        );
        assert_eq!(first.told, Some(Duration::from_secs(240)));
        assert!(!first.offers && !w.takes_callback_key('1'));
        assert_eq!(w.next_wake(), Some(at(t0, 61)));
        let second = w.announce(at(t0, 61), THIRD).unwrap();
        assert!(!said(&second).contains("callback_offer"));
        // The offer at 120 s, alone; then with every announcement after.
        assert_eq!(w.next_wake(), Some(at(t0, 120)));
        let offer = w.announce(at(t0, 120), THIRD).unwrap();
        assert_eq!(said(&offer), "callback_offer");
        assert!(offer.offers && offer.told.is_none());
        assert!(w.takes_callback_key('1') && !w.takes_callback_key('2'));
        let third = w.announce(at(t0, 121), THIRD).unwrap();
        assert!(
            said(&third).ends_with("minutes callback_offer"),
            "{third:?}"
        );
        assert!(!third.offers);
        // The wait runs out at 600 s.
        assert!(!w.timed_out(at(t0, 599)) && w.timed_out(at(t0, 600)));
    }

    #[test]
    fn while_an_agent_is_rung_the_announcement_waits() {
        #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
        let t0 = Instant::now();
        let (mut w, _) = Waiting::enter("support", t0, 600, 60, 0, true, true, "en");
        assert_eq!(w.announce(at(t0, 1), None), None);
        assert_eq!(w.next_wake(), Some(at(t0, 1) + ANNOUNCE_LATER));
        assert!(!w.announcement_due(at(t0, 5)));
        assert!(w.announce(at(t0, 6), THIRD).is_some());
    }

    #[test]
    fn no_offer_to_a_caller_we_may_not_call_nor_words_without_the_prompts() {
        #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
        let t0 = Instant::now();
        let (mut w, _) = Waiting::enter("support", t0, 600, 60, 120, true, false, "en");
        w.announce(at(t0, 1), THIRD);
        assert_eq!(w.next_wake(), Some(at(t0, 61)), "no offer is due");
        let (silent, rules) = Waiting::enter("support", t0, 600, 60, 120, false, true, "en");
        assert_eq!(silent.next_wake(), Some(at(t0, 600)), "hold music only");
        assert_eq!(rules.every, None);
    }

    #[test]
    fn back_in_line_by_the_same_rules_in_the_callers_language() {
        #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
        let t0 = Instant::now();
        let (_, rules) = Waiting::enter("support", t0, 300, 30, 60, true, true, "es");
        let mut w = Waiting::again("billing", at(t0, 100), rules, "es");
        assert!(w.timed_out(at(t0, 400)) && !w.timed_out(at(t0, 399)));
        let a = w.announce(at(t0, 101), THIRD).unwrap();
        assert!(a.prompts.iter().all(|p| p.starts_with("es/")), "{a:?}");
        assert!(!a.offers, "no new offer once passed on");
        // The announcement plays over the hold music until its own end.
        w.speaking(7);
        assert!(!w.spoken(6));
        assert!(w.spoken(7));
        assert!(!w.spoken(7));
    }
}

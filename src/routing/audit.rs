//! Wait estimates that audit themselves: every wait a caller is told is paired with the wait
//! they then actually had (until an agent answered, or until they left the queue), per queue.
//! Beside it runs the simplest estimator there is — the queue's recent average wait, less what
//! the caller has already waited — so the figures say when the spoken estimate is worse.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Announcements remembered per waiting call (announcements come every ≥ 10 s, so this covers
/// more than ten minutes of waiting at the fastest rate; older ones are dropped first).
pub const TOLD_PER_CALL: usize = 64;
/// Answered waits the baseline averages.
const RECENT_WAITS: usize = 20;
/// A caller "waited much longer than told" beyond this multiple of what they were told.
pub const OVERRUN: f64 = 1.5;
/// Upper bounds (seconds) of the signed-error histogram (actual − told): negative when the
/// caller was answered sooner than told.
pub const ERROR_BUCKETS: [f64; 11] = [
    -300.0, -120.0, -60.0, -30.0, -10.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// One announcement still waiting for its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Told {
    /// What the caller heard, as a duration ("about 4 minutes" = 240 s; "less than a
    /// minute" = 60 s).
    pub told: Duration,
    /// What the recent-average estimator would have said at that moment, once it has history.
    pub baseline: Option<Duration>,
    pub at: Instant,
}

/// The audit of one queue's announcements: what the error distribution looks like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFigures {
    /// Announcements whose outcome is known.
    pub samples: u64,
    /// Sum of (actual − told), seconds: with `samples`, the bias.
    pub error_sum: f64,
    pub abs_error_sum: f64,
    /// Callers who waited more than `OVERRUN` × what they were told.
    pub overruns: u64,
    /// Cumulative counts per `ERROR_BUCKETS` bound (Prometheus' `le`).
    pub buckets: [u64; ERROR_BUCKETS.len()],
    /// Samples for which the baseline had an estimate, and both estimators' absolute errors
    /// over exactly those samples (so the two compare like for like).
    pub compared: u64,
    pub compared_abs_error: f64,
    pub baseline_abs_error: f64,
}

impl AuditFigures {
    fn add(&mut self, told: &Told, actual: Duration) {
        let (t, a) = (told.told.as_secs_f64(), actual.as_secs_f64());
        let error = a - t;
        self.samples += 1;
        self.error_sum += error;
        self.abs_error_sum += error.abs();
        if a > OVERRUN * t {
            self.overruns += 1;
        }
        for (bound, n) in ERROR_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if error <= *bound {
                *n += 1;
            }
        }
        if let Some(b) = told.baseline {
            self.compared += 1;
            self.compared_abs_error += error.abs();
            self.baseline_abs_error += (a - b.as_secs_f64()).abs();
        }
    }

    /// Mean absolute error of what callers were told, seconds.
    pub fn mean_abs_error(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.abs_error_sum / self.samples as f64)
    }

    /// Whether the recent average would have done better on the same announcements.
    pub fn baseline_better(&self) -> bool {
        self.compared > 0 && self.baseline_abs_error < self.compared_abs_error
    }
}

/// A queue's recent answered waits (from joining to an agent answering): the baseline.
#[derive(Debug, Clone, Default)]
pub struct RecentWaits {
    waits: VecDeque<Duration>,
    total: Duration,
}

impl RecentWaits {
    pub fn record(&mut self, wait: Duration) {
        self.waits.push_back(wait);
        self.total += wait;
        if self.waits.len() > RECENT_WAITS
            && let Some(old) = self.waits.pop_front()
        {
            self.total -= old;
        }
    }

    /// The baseline estimate for a caller who has waited `waited` so far.
    pub fn estimate(&self, waited: Duration) -> Option<Duration> {
        let n = self.waits.len() as u32;
        (n > 0).then(|| (self.total / n).saturating_sub(waited))
    }
}

/// The announcements of one waiting call.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    told: VecDeque<Told>,
}

impl Pending {
    pub fn push(&mut self, told: Told) {
        if self.told.len() == TOLD_PER_CALL {
            self.told.pop_front();
        }
        self.told.push_back(told);
    }

    /// The caller's wait is over at `now` (answered, or left): every announcement is scored.
    pub fn resolve(&mut self, now: Instant, into: &mut AuditFigures) {
        for t in self.told.drain(..) {
            into.add(&t, now.saturating_duration_since(t.at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock's origin: the tests only add offsets to it.
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    fn told(s: u64, at: Instant) -> Told {
        Told {
            told: Duration::from_secs(s),
            baseline: None,
            at,
        }
    }

    #[test]
    fn each_announcement_is_scored_against_the_wait_that_followed_it() {
        let t0 = origin();
        let s = Duration::from_secs;
        let mut f = AuditFigures::default();
        let mut p = Pending::default();
        // Told 4 minutes at 0 s, then 3 minutes at 60 s; answered at 600 s.
        p.push(told(240, t0));
        p.push(told(180, t0 + s(60)));
        p.resolve(t0 + s(600), &mut f);
        assert_eq!(f.samples, 2);
        // 600 − 240 = 360, 540 − 180 = 360.
        assert_eq!(f.error_sum, 720.0);
        assert_eq!(f.mean_abs_error(), Some(360.0));
        assert_eq!(f.overruns, 2, "600 > 1.5 × 240 and 540 > 1.5 × 180");
        // Both errors are 360 s: in the ≤ 600 bucket only.
        assert_eq!(f.buckets[ERROR_BUCKETS.len() - 1], 2);
        assert_eq!(f.buckets[ERROR_BUCKETS.len() - 2], 0);
        // A resolved call scores nothing twice.
        p.resolve(t0 + s(900), &mut f);
        assert_eq!(f.samples, 2);
    }

    #[test]
    fn a_caller_answered_sooner_counts_a_negative_error_and_no_overrun() {
        let t0 = origin();
        let mut f = AuditFigures::default();
        let mut p = Pending::default();
        p.push(told(240, t0));
        p.resolve(t0 + Duration::from_secs(90), &mut f);
        assert_eq!(f.error_sum, -150.0);
        assert_eq!(f.overruns, 0);
        assert_eq!(f.buckets[0], 0, "-150 is above the -300 bound");
        assert_eq!(f.buckets[1], 1, "-150 ≤ -120");
    }

    #[test]
    fn the_baseline_is_compared_on_the_same_announcements() {
        let t0 = origin();
        let s = Duration::from_secs;
        let mut recent = RecentWaits::default();
        assert_eq!(recent.estimate(s(0)), None);
        recent.record(s(300));
        recent.record(s(500));
        // Average 400 s, the caller has waited 100 s: 300 s to go.
        assert_eq!(recent.estimate(s(100)), Some(s(300)));
        assert_eq!(recent.estimate(s(1000)), Some(s(0)));
        let mut f = AuditFigures::default();
        let mut p = Pending::default();
        p.push(told(60, t0)); // no baseline: not compared
        p.push(Told {
            told: s(60),
            baseline: recent.estimate(s(100)),
            at: t0,
        });
        p.resolve(t0 + s(280), &mut f);
        assert_eq!((f.samples, f.compared), (2, 1));
        assert_eq!(f.compared_abs_error, 220.0);
        assert_eq!(f.baseline_abs_error, 20.0);
        assert!(f.baseline_better());
    }

    #[test]
    fn a_call_keeps_a_bounded_number_of_announcements() {
        let t0 = origin();
        let mut p = Pending::default();
        for _ in 0..TOLD_PER_CALL * 3 {
            p.push(told(60, t0));
        }
        let mut f = AuditFigures::default();
        p.resolve(t0, &mut f);
        assert_eq!(f.samples, TOLD_PER_CALL as u64);
    }

    #[test]
    fn the_baseline_follows_the_recent_waits_only() {
        let s = Duration::from_secs;
        let mut recent = RecentWaits::default();
        for _ in 0..RECENT_WAITS {
            recent.record(s(1000));
        }
        for _ in 0..RECENT_WAITS {
            recent.record(s(100));
        }
        assert_eq!(recent.estimate(s(0)), Some(s(100)));
    }
}

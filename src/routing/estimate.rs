//! Wait estimates: from recent handle times, and from Erlang C when the arrival rate and the
//! staffing are known (the classic contact-centre formula: the chance a caller waits, and the
//! average wait of those who do).

use std::collections::VecDeque;
use std::time::Duration;

/// Handle times kept per queue for the average.
const HISTORY: usize = 100;

#[derive(Debug, Default, Clone)]
pub struct HandleTimes {
    recent: VecDeque<Duration>,
    total: Duration,
}

impl HandleTimes {
    pub fn record(&mut self, d: Duration) {
        self.recent.push_back(d);
        self.total += d;
        if self.recent.len() > HISTORY
            && let Some(old) = self.recent.pop_front()
        {
            self.total -= old;
        }
    }

    /// The average handle time, once there is one.
    pub fn average(&self) -> Option<Duration> {
        let n = self.recent.len() as u32;
        (n > 0).then(|| self.total / n)
    }
}

/// Erlang C: the probability that a caller must wait, with `agents` agents and an offered
/// load of `load` Erlangs (arrival rate × handle time). `None` when the queue is unstable
/// (load ≥ agents): every caller waits, and the wait grows without bound.
pub fn erlang_c(agents: u32, load: f64) -> Option<f64> {
    if agents == 0 || load < 0.0 || load >= f64::from(agents) {
        return None;
    }
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=agents {
        b = load * b / (f64::from(k) + load * b);
    }
    let n = f64::from(agents);
    Some(n * b / (n - load * (1.0 - b)))
}

/// The average wait (speed of answer) under Erlang C.
pub fn erlang_c_wait(agents: u32, arrivals_per_s: f64, handle: Duration) -> Option<Duration> {
    let aht = handle.as_secs_f64();
    let load = arrivals_per_s * aht;
    let pw = erlang_c(agents, load)?;
    Some(Duration::from_secs_f64(
        pw * aht / (f64::from(agents) - load),
    ))
}

/// A caller's estimated wait at `position` (0 = next) with `staffed` agents working the queue:
/// the callers ahead of them are served `staffed` at a time, one average handle time each.
pub fn position_wait(position: usize, staffed: u32, handle: Duration) -> Duration {
    let rounds = (position as u32) / staffed.max(1) + 1;
    handle * rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_the_textbook_figures() {
        // 10 agents, 8 Erlangs: P(wait) ≈ 0.409 (standard tables).
        let p = erlang_c(10, 8.0).unwrap();
        assert!((p - 0.409).abs() < 0.002, "{p}");
        // 1 agent is M/M/1: P(wait) = utilisation.
        assert!((erlang_c(1, 0.5).unwrap() - 0.5).abs() < 1e-9);
        assert!(erlang_c(3, 3.0).is_none(), "load at capacity is unstable");
        // 10 agents, 8 calls per 180 s... 8 Erlangs at 180 s AHT: ASA = 0.409 * 180 / 2 ≈ 36.8 s.
        let w = erlang_c_wait(10, 8.0 / 180.0, Duration::from_secs(180)).unwrap();
        assert!((w.as_secs_f64() - 36.8).abs() < 0.5, "{w:?}");
    }

    #[test]
    fn the_average_follows_the_recent_calls() {
        let mut h = HandleTimes::default();
        assert_eq!(h.average(), None);
        for _ in 0..HISTORY {
            h.record(Duration::from_secs(100));
        }
        for _ in 0..HISTORY {
            h.record(Duration::from_secs(200));
        }
        assert_eq!(h.average(), Some(Duration::from_secs(200)));
        assert_eq!(
            position_wait(0, 2, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(
            position_wait(5, 2, Duration::from_secs(60)),
            Duration::from_secs(180)
        );
    }
}

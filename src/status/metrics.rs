//! Counters and histograms for `GET /metrics` that the call tasks and signalling keep (the
//! media loop keeps its own in `pacer::PacerStats`). Atomics only: recording costs no lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus histogram with fixed bounds, in seconds.
#[derive(Debug)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for above the last bound.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let i = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (`le`), then the total, and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, &b) in self.bounds.iter().enumerate() {
            total += self.counts[i].load(Ordering::Relaxed);
            buckets.push((b, total));
        }
        total += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, total, sum)
    }
}

/// Time to a human and queue waits: from seconds to an hour.
const WAIT_BOUNDS: &[f64] = &[
    1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Debug)]
pub struct Metrics {
    /// Ended calls by outcome (a handful of values).
    pub outcomes: Mutex<Vec<(String, u64)>>,
    /// Answer to a live human offered.
    pub time_to_human: Histogram,
    /// Entering a queue to leaving it (answered, timed out, hung up, callback).
    pub queue_wait: Histogram,
    pub escape_presses: AtomicU64,
    pub watchdog_interventions: AtomicU64,
    /// Callers who hung up while waiting for a human.
    pub abandoned: AtomicU64,
    /// SIP transactions started, server and client.
    pub sip_transactions: AtomicU64,
    /// Digest credentials refused, and (address, username) pairs locked out.
    pub auth_failures: AtomicU64,
    pub auth_lockouts: AtomicU64,
    /// INVITEs refused by admission control (503).
    pub refused_calls: AtomicU64,
    /// Per lookup endpoint: how long it took, and why it failed.
    pub lookups: Mutex<std::collections::BTreeMap<String, LookupStats>>,
}

/// One lookup endpoint's figures.
#[derive(Debug)]
pub struct LookupStats {
    /// Request to answer (or failure), in seconds.
    pub latency: Histogram,
    /// Failures by reason: `timeout`, `unreachable`, `status`, `answer`.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
}

/// A lookup's latency: from a millisecond to its longest timeout.
pub const LOOKUP_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            outcomes: Mutex::new(Vec::new()),
            time_to_human: Histogram::new(WAIT_BOUNDS),
            queue_wait: Histogram::new(WAIT_BOUNDS),
            escape_presses: AtomicU64::new(0),
            watchdog_interventions: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            sip_transactions: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            auth_lockouts: AtomicU64::new(0),
            refused_calls: AtomicU64::new(0),
            lookups: Mutex::new(std::collections::BTreeMap::new()),
        }
    }
}

impl Metrics {
    pub fn call_ended(&self, outcome: &str) {
        if let Ok(mut o) = self.outcomes.lock() {
            match o.iter_mut().find(|(k, _)| k == outcome) {
                Some((_, n)) => *n += 1,
                None => o.push((outcome.to_string(), 1)),
            }
        }
    }

    /// A lookup at `endpoint` took `seconds`, and failed for `error` when it did.
    pub fn lookup_done(&self, endpoint: &str, seconds: f64, error: Option<&'static str>) {
        let Ok(mut all) = self.lookups.lock() else {
            return;
        };
        let stats = all
            .entry(endpoint.to_string())
            .or_insert_with(|| LookupStats {
                latency: Histogram::new(LOOKUP_BOUNDS),
                errors: std::collections::BTreeMap::new(),
            });
        stats.latency.observe(seconds);
        if let Some(why) = error {
            *stats.errors.entry(why).or_insert(0) += 1;
        }
    }

    pub fn outcomes(&self) -> Vec<(String, u64)> {
        let mut o = self.outcomes.lock().map(|o| o.clone()).unwrap_or_default();
        o.sort();
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_cumulatively_with_the_sum() {
        let h = Histogram::new(&[1.0, 10.0]);
        for s in [0.5, 1.0, 3.0, 30.0] {
            h.observe(s);
        }
        let (buckets, total, sum) = h.snapshot();
        assert_eq!(buckets, vec![(1.0, 2), (10.0, 3)]);
        assert_eq!(total, 4);
        assert!((sum - 34.5).abs() < 1e-6);
    }
}

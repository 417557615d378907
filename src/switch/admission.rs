//! Admission: whether a new call may come in now (`[sip] max_calls` at once, and
//! `max_new_calls_per_s` as a token bucket: that many in any burst, refilled at that rate), or
//! is turned away with a 503 and why. Decided before any state is kept for the call, so a
//! refused INVITE costs one answer. Pure: the clock is handed in (tested in `tests/switch.rs`).

use std::time::Instant;

/// Why a new call is turned away (the 503's reason phrase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyCalls,
    TooManyNewCalls,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TooManyCalls => "Too Many Calls",
            Refusal::TooManyNewCalls => "Too Many New Calls",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission {
    /// Calls at once (0: no limit).
    max_calls: usize,
    /// New calls a second (0: no limit).
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Admission {
    pub fn new(max_calls: u32, max_new_calls_per_s: u32, now: Instant) -> Admission {
        let rate = f64::from(max_new_calls_per_s);
        Admission {
            max_calls: max_calls as usize,
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Whether the line is full with `live` calls (the driver may then end calls whose 200 was
    /// never acknowledged, and ask again).
    pub fn full(&self, live: usize) -> bool {
        self.max_calls > 0 && live >= self.max_calls
    }

    /// A new call, with `live` calls up now: let in (taking a token) or turned away.
    pub fn admit(&mut self, live: usize, now: Instant) -> Result<(), Refusal> {
        if self.full(live) {
            return Err(Refusal::TooManyCalls);
        }
        if self.rate > 0.0 {
            let refilled =
                self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
            self.tokens = refilled.min(self.rate);
            self.at = now;
            if self.tokens < 1.0 {
                return Err(Refusal::TooManyNewCalls);
            }
            self.tokens -= 1.0;
        }
        Ok(())
    }
}

//! When a call's conversation is recorded: from the agent's answer (`record = "on"`), or
//! from when she asks (`on-demand`); paused and resumed by her — the phone keys of
//! `[recording] pause_keys`, or the desk — while the caller reads a card number. Pure: the
//! call task carries out what it decides, and the paused time is on the record.

use std::time::{Duration, Instant};

use crate::config::RecordMode;

/// What the agent asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Record now (start, or resume).
    On,
    /// Pause.
    Off,
    /// The other of the two (the phone keys).
    Toggle,
}

/// What to do to the media loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start,
    Pause,
    Resume,
    /// Already as asked.
    Nothing,
}

/// A call's recording, as the agent controls it.
#[derive(Debug, Default)]
pub struct Control {
    mode: RecordMode,
    started: bool,
    paused_since: Option<Instant>,
    paused: Duration,
    /// The agent's last keys, as many as the sequence has.
    typed: String,
}

impl Control {
    /// An agent answered for a queue recording as `mode`: `Start` when it records from now.
    pub fn answered(&mut self, mode: RecordMode) -> Step {
        self.mode = mode;
        if mode == RecordMode::On && !self.started {
            self.started = true;
            return Step::Start;
        }
        Step::Nothing
    }

    /// The agent asks; `Err` when this call cannot be recorded.
    pub fn want(&mut self, want: Want, now: Instant) -> Result<Step, &'static str> {
        if self.mode == RecordMode::Off && !self.started {
            return Err("this call's queue is not recorded");
        }
        let recording = self.started && self.paused_since.is_none();
        let on = match want {
            Want::On => true,
            Want::Off => false,
            Want::Toggle => !recording,
        };
        Ok(match (on, self.started, self.paused_since) {
            (true, false, _) => {
                self.started = true;
                Step::Start
            }
            (true, true, Some(since)) => {
                self.paused += now.saturating_duration_since(since);
                self.paused_since = None;
                Step::Resume
            }
            (false, true, None) => {
                self.paused_since = Some(now);
                Step::Pause
            }
            _ => Step::Nothing,
        })
    }

    /// A key from the agent's phone: `Some` when it completes `sequence`.
    pub fn key(
        &mut self,
        key: char,
        sequence: &str,
        now: Instant,
    ) -> Option<Result<Step, &'static str>> {
        self.typed.push(key);
        let n = sequence.chars().count();
        while self.typed.chars().count() > n {
            self.typed.remove(0);
        }
        if n == 0 || self.typed != sequence {
            return None;
        }
        self.typed.clear();
        Some(self.want(Want::Toggle, now))
    }

    /// Whether audio is being written now.
    pub fn recording(&self) -> bool {
        self.started && self.paused_since.is_none()
    }

    /// How long it was paused, up to `now`.
    pub fn paused(&self, now: Instant) -> Duration {
        self.paused
            + self
                .paused_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn on_records_from_the_answer_and_the_keys_pause_and_resume() {
        let t = origin();
        let mut c = Control::default();
        assert_eq!(c.answered(RecordMode::On), Step::Start);
        assert!(c.recording());
        // A second agent (a transfer) does not start it again.
        assert_eq!(c.answered(RecordMode::On), Step::Nothing);
        assert_eq!(c.key('*', "*7", t), None);
        assert_eq!(c.key('7', "*7", t), Some(Ok(Step::Pause)));
        assert!(!c.recording());
        assert_eq!(c.key('1', "*7", t), None, "other keys do nothing");
        assert_eq!(c.key('*', "*7", t), None);
        let later = t + Duration::from_secs(4);
        assert_eq!(c.key('7', "*7", later), Some(Ok(Step::Resume)));
        assert_eq!(
            c.paused(later + Duration::from_secs(9)),
            Duration::from_secs(4)
        );
        // The desk: on while on is nothing; off pauses, and the pause counts until now.
        assert_eq!(c.want(Want::On, later), Ok(Step::Nothing));
        assert_eq!(c.want(Want::Off, later), Ok(Step::Pause));
        assert_eq!(
            c.paused(later + Duration::from_secs(2)),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn on_demand_starts_when_asked_and_off_cannot_be_recorded() {
        let t = origin();
        let mut c = Control::default();
        assert_eq!(c.answered(RecordMode::OnDemand), Step::Nothing);
        assert!(!c.recording());
        assert_eq!(c.want(Want::Off, t), Ok(Step::Nothing));
        assert_eq!(c.key('*', "*7", t), None);
        assert_eq!(c.key('7', "*7", t), Some(Ok(Step::Start)));
        assert!(c.recording());
        assert_eq!(c.paused(t), Duration::ZERO);

        let mut off = Control::default();
        assert_eq!(off.answered(RecordMode::Off), Step::Nothing);
        assert!(off.want(Want::On, t).is_err());
        assert!(off.key('*', "*7", t).is_none());
        assert!(matches!(off.key('7', "*7", t), Some(Err(_))));
    }
}

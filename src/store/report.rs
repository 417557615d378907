//! `hotline report`: the compliance view of the call records. Pure figures over finished calls
//! (live ones are left out), so a fixture of records gives known numbers.
//!
//! - offered a live human within 3 minutes: of all callers, how many reached a queue or
//!   transfer within 180 s of the answer (Spain's Ley 10/2025 asks 95%);
//! - answered by a human: of all callers, how many an agent (or transfer target) answered;
//! - average speed of answer: from being offered a human to that human answering;
//! - service level: of the callers offered a human, how many were answered within 20 s;
//! - abandonment: of the callers offered a human, how many hung up before one answered;
//! - per flow: calls, escape-digit use, watchdog interventions, calls recorded and calls
//!   passed on by an agent;
//! - recordings: how many calls, how many incomplete (a full disk, a writer behind), hours of
//!   audio and how much of it was paused;
//! - the longest paths callers actually took to a human (or without reaching one);
//! - per queue, how good the spoken wait estimates were: every announcement against the wait
//!   the caller then had (until an agent answered, or until the call ended), its mean
//!   absolute error, the share of callers who waited more than 1.5× what they were told, and
//!   the same error for the simplest estimator (the queue's recent average wait).

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use super::followup::{FollowUp, State};
use super::{CallOutcome, CallRecord, EndReason};
use crate::routing::audit::OVERRUN;

/// The law's bound: a live human offered within this many seconds.
pub const OFFER_WITHIN_S: f64 = 180.0;
/// The share of callers the law asks to be offered a human within the bound.
pub const OFFER_TARGET: f64 = 0.95;
/// The service level's answer time.
pub const SERVICE_LEVEL_S: f64 = 20.0;
/// How many of the longest paths are listed.
const LONGEST: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowFigures {
    pub flow: String,
    pub calls: usize,
    pub offered_human: usize,
    pub answered_by_human: usize,
    pub escape_used: usize,
    pub watchdog_used: usize,
    /// Calls with a recording.
    pub recorded: usize,
    /// Calls an agent passed on (to a queue or another agent).
    pub transferred: usize,
}

/// The recorded calls of the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecordingFigures {
    pub calls: usize,
    /// Marked incomplete: part of the audio is missing.
    pub incomplete: usize,
    /// Length of the files (paused spans included).
    pub seconds: f64,
    pub paused_s: f64,
}

/// How a queue's spoken wait estimates held up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitEstimates {
    pub queue: String,
    /// Announcements of an expected wait, in finished calls.
    pub announcements: usize,
    pub mean_abs_error_s: f64,
    /// Mean of (actual − told): positive when callers wait longer than they are told.
    pub mean_error_s: f64,
    /// Callers who waited more than 1.5× what they were told.
    pub waited_over_1_5x: usize,
    pub waited_over_1_5x_share: f64,
    /// Announcements for which the recent-average estimator had a figure, and both
    /// estimators' mean absolute error over exactly those.
    pub compared: usize,
    pub compared_mean_abs_error_s: Option<f64>,
    pub baseline_mean_abs_error_s: Option<f64>,
    /// The queue's recent average would have been closer.
    pub baseline_better: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongPath {
    pub id: String,
    pub flow: String,
    pub started: String,
    pub steps: u32,
    pub steps_to_human: Option<u32>,
    pub seconds_to_human: Option<f64>,
    pub outcome: CallOutcome,
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: Option<String>,
    /// Finished calls counted (interrupted ones included).
    pub calls: usize,
    pub interrupted: usize,
    pub offered_human: usize,
    pub offered_within_3_min: usize,
    /// Of all calls; `None` without calls.
    pub offered_within_3_min_share: Option<f64>,
    pub offered_within_3_min_target: f64,
    pub answered_by_human: usize,
    pub answered_share: Option<f64>,
    pub average_speed_of_answer_s: Option<f64>,
    pub answered_within_20_s: usize,
    /// Of the calls offered a human.
    pub service_level: Option<f64>,
    pub abandoned: usize,
    /// Of the calls offered a human.
    pub abandonment_rate: Option<f64>,
    pub flows: Vec<FlowFigures>,
    pub recordings: RecordingFigures,
    /// Calls an agent passed on, and how many times in all.
    pub transferred: usize,
    pub transfers: usize,
    pub longest_paths: Vec<LongPath>,
    pub wait_estimates: Vec<WaitEstimates>,
    /// Voicemails and callback requests, against `[desk] follow_up_within_h`.
    pub follow_ups: FollowUpFigures,
    /// Calls from callers with an open follow-up (contacts about one issue, beyond the
    /// first), and how many of them reached the agent who had it.
    pub returning_calls: usize,
    pub returning_reached_owner: usize,
}

/// How the follow-ups that came in the period went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FollowUpFigures {
    pub within_h: u32,
    pub total: usize,
    pub done_in_time: usize,
    pub done_late: usize,
    pub failed: usize,
    /// Still new or taken, and of those, past their due time.
    pub open: usize,
    pub overdue: usize,
}

impl FollowUpFigures {
    /// Scores each follow-up: closed by its due time or after it, failed, or still open
    /// (overdue at `now` or not).
    pub fn new(items: &[FollowUp], within_h: u32, now: jiff::Timestamp) -> FollowUpFigures {
        let within = jiff::SignedDuration::from_hours(i64::from(within_h));
        let mut f = FollowUpFigures {
            within_h,
            total: items.len(),
            ..Default::default()
        };
        for i in items {
            let due = i
                .created_at
                .parse::<jiff::Timestamp>()
                .ok()
                .and_then(|t| t.checked_add(within).ok());
            let by = |at: &str| match (at.parse::<jiff::Timestamp>(), due) {
                (Ok(at), Some(due)) => at <= due,
                _ => true,
            };
            match i.state {
                State::Done if by(&i.changed_at) => f.done_in_time += 1,
                State::Done => f.done_late += 1,
                State::Failed => f.failed += 1,
                State::New | State::Taken => {
                    f.open += 1;
                    if due.is_some_and(|d| d < now) {
                        f.overdue += 1;
                    }
                }
            }
        }
        f
    }
}

/// Scores every announcement of finished calls against the wait that followed it.
fn wait_estimates(done: &[&CallRecord]) -> Vec<WaitEstimates> {
    /// Told, actual and baseline, in seconds.
    type Sample = (f64, f64, Option<f64>);
    let mut per: std::collections::BTreeMap<&str, Vec<Sample>> = Default::default();
    for c in done {
        let Some(end) = c.agent_answered_at.as_deref().or(c.ended.as_deref()) else {
            continue;
        };
        for w in &c.waits_told {
            let Some(actual) = seconds_between(&w.at, end) else {
                continue;
            };
            per.entry(&w.queue).or_default().push((
                w.told_s as f64,
                actual.max(0.0),
                w.baseline_s.map(|b| b as f64),
            ));
        }
    }
    per.into_iter()
        .map(|(queue, samples)| {
            let n = samples.len();
            let abs: f64 = samples.iter().map(|(t, a, _)| (a - t).abs()).sum();
            let signed: f64 = samples.iter().map(|(t, a, _)| a - t).sum();
            let over = samples.iter().filter(|(t, a, _)| *a > OVERRUN * t).count();
            let compared: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|(t, a, b)| Some(((a - t).abs(), (a - (*b)?).abs())))
                .collect();
            let mean = |xs: &mut dyn Iterator<Item = f64>| -> Option<f64> {
                let v: Vec<f64> = xs.collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let ours = mean(&mut compared.iter().map(|c| c.0));
            let base = mean(&mut compared.iter().map(|c| c.1));
            WaitEstimates {
                queue: queue.to_string(),
                announcements: n,
                mean_abs_error_s: abs / n as f64,
                mean_error_s: signed / n as f64,
                waited_over_1_5x: over,
                waited_over_1_5x_share: over as f64 / n as f64,
                compared: compared.len(),
                compared_mean_abs_error_s: ours,
                baseline_mean_abs_error_s: base,
                baseline_better: matches!((ours, base), (Some(o), Some(b)) if b < o),
            }
        })
        .collect()
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let (a, b) = (a.parse::<Timestamp>().ok()?, b.parse::<Timestamp>().ok()?);
    Some(b.duration_since(a).as_secs_f64())
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Report {
    /// The report of the calls and follow-ups in `store` since `since` (everything without),
    /// follow-ups judged against `within_h` at `now`.
    pub fn read(
        store: &super::Store,
        since: Option<String>,
        within_h: u32,
        now: Timestamp,
    ) -> Result<Report, super::StoreError> {
        let records = store.calls(
            &super::CallFilter {
                since: since.clone(),
                ..Default::default()
            },
            u32::MAX,
        )?;
        let follow_ups = store.followups_since(since.as_deref())?;
        let mut r = Report::new(&records, since);
        r.follow_ups = FollowUpFigures::new(&follow_ups, within_h.max(1), now);
        Ok(r)
    }

    pub fn new(records: &[CallRecord], since: Option<String>) -> Report {
        // Probe calls prove the line; they are not callers.
        let done: Vec<&CallRecord> = records
            .iter()
            .filter(|c| c.outcome != CallOutcome::Live && !c.probe)
            .collect();
        let offered: Vec<&&CallRecord> = done
            .iter()
            .filter(|c| c.human_offered_at.is_some())
            .collect();
        let within = done
            .iter()
            .filter(|c| c.seconds_to_human.is_some_and(|s| s <= OFFER_WITHIN_S))
            .count();
        let waits: Vec<f64> = offered
            .iter()
            .filter_map(|c| {
                seconds_between(
                    c.human_offered_at.as_deref()?,
                    c.agent_answered_at.as_deref()?,
                )
            })
            .collect();
        let answered = done
            .iter()
            .filter(|c| c.agent_answered_at.is_some())
            .count();
        let abandoned = offered
            .iter()
            .filter(|c| {
                c.agent_answered_at.is_none()
                    && c.end_reason == Some(EndReason::Caller)
                    && c.outcome.offers_human()
            })
            .count();
        let mut flows: Vec<FlowFigures> = Vec::new();
        for c in &done {
            let i = match flows.iter().position(|f| f.flow == c.flow) {
                Some(i) => i,
                None => {
                    flows.push(FlowFigures {
                        flow: c.flow.clone(),
                        calls: 0,
                        offered_human: 0,
                        answered_by_human: 0,
                        escape_used: 0,
                        watchdog_used: 0,
                        recorded: 0,
                        transferred: 0,
                    });
                    flows.len() - 1
                }
            };
            let f = &mut flows[i];
            f.calls += 1;
            f.offered_human += usize::from(c.human_offered_at.is_some());
            f.answered_by_human += usize::from(c.agent_answered_at.is_some());
            f.escape_used += usize::from(c.escape_used);
            f.watchdog_used += usize::from(c.watchdog_used);
            f.recorded += usize::from(c.recording.is_some());
            f.transferred += usize::from(!c.transfers.is_empty());
        }
        let mut recordings = RecordingFigures::default();
        for m in done.iter().filter_map(|c| c.recording.as_ref()) {
            recordings.calls += 1;
            recordings.incomplete += usize::from(!m.complete);
            recordings.seconds += m.seconds.unwrap_or(0.0);
            recordings.paused_s += m.paused_s;
        }
        flows.sort_by(|a, b| a.flow.cmp(&b.flow));
        // The longest to a human first; callers who never reached one count as longest.
        let mut longest: Vec<&&CallRecord> = done.iter().collect();
        longest.sort_by(|a, b| {
            let key = |c: &CallRecord| {
                (
                    c.steps_to_human
                        .unwrap_or(c.steps.saturating_add(1_000_000)),
                    c.seconds_to_human.unwrap_or(f64::MAX),
                )
            };
            let (ka, kb) = (key(a), key(b));
            kb.0.cmp(&ka.0)
                .then(kb.1.total_cmp(&ka.1))
                .then(a.started.cmp(&b.started))
        });
        let longest_paths = longest
            .iter()
            .take(LONGEST)
            .map(|c| LongPath {
                id: c.id.clone(),
                flow: c.flow.clone(),
                started: c.started.clone(),
                steps: c.steps,
                steps_to_human: c.steps_to_human,
                seconds_to_human: c.seconds_to_human,
                outcome: c.outcome,
                path: c.path.clone(),
            })
            .collect();
        Report {
            since,
            calls: done.len(),
            interrupted: done
                .iter()
                .filter(|c| c.outcome == CallOutcome::Interrupted)
                .count(),
            offered_human: offered.len(),
            offered_within_3_min: within,
            offered_within_3_min_share: share(within, done.len()),
            offered_within_3_min_target: OFFER_TARGET,
            answered_by_human: answered,
            answered_share: share(answered, done.len()),
            average_speed_of_answer_s: (!waits.is_empty())
                .then(|| waits.iter().sum::<f64>() / waits.len() as f64),
            answered_within_20_s: waits.iter().filter(|&&w| w <= SERVICE_LEVEL_S).count(),
            service_level: share(
                waits.iter().filter(|&&w| w <= SERVICE_LEVEL_S).count(),
                offered.len(),
            ),
            abandoned,
            abandonment_rate: share(abandoned, offered.len()),
            flows,
            recordings,
            transferred: done.iter().filter(|c| !c.transfers.is_empty()).count(),
            transfers: done.iter().map(|c| c.transfers.len()).sum(),
            longest_paths,
            wait_estimates: wait_estimates(&done),
            follow_ups: FollowUpFigures::default(),
            returning_calls: done
                .iter()
                .filter(|c| c.variables.contains_key("follow_up.kind"))
                .count(),
            returning_reached_owner: done
                .iter()
                .filter(|c| {
                    matches!(
                        (c.variables.get("follow_up.owner"), &c.agent),
                        (Some(o), Some(a)) if !o.is_empty() && o == a
                    )
                })
                .count(),
        }
    }

    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn text(&self) -> String {
        let pct =
            |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |x| format!("{:.1}%", x * 100.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "hotline report: {} calls{}{}",
            self.calls,
            self.since
                .as_ref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default(),
            if self.interrupted > 0 {
                format!(" ({} interrupted by a server stop)", self.interrupted)
            } else {
                String::new()
            }
        );
        let verdict = match self.offered_within_3_min_share {
            Some(s) if s >= self.offered_within_3_min_target => "met",
            Some(_) => "NOT met",
            None => "no calls",
        };
        let _ = writeln!(
            out,
            "offered a live human within 3 min: {} of {} ({}; target {:.0}%: {verdict})",
            self.offered_within_3_min,
            self.calls,
            pct(self.offered_within_3_min_share),
            self.offered_within_3_min_target * 100.0
        );
        let _ = writeln!(
            out,
            "answered by a human:               {} of {} ({})",
            self.answered_by_human,
            self.calls,
            pct(self.answered_share)
        );
        let _ = writeln!(
            out,
            "average speed of answer:           {}",
            self.average_speed_of_answer_s
                .map_or_else(|| "n/a".to_string(), |s| format!("{s:.1} s"))
        );
        let _ = writeln!(
            out,
            "service level (answered in 20 s):  {} of {} offered ({})",
            self.answered_within_20_s,
            self.offered_human,
            pct(self.service_level)
        );
        let _ = writeln!(
            out,
            "abandoned while waiting:           {} of {} offered ({})",
            self.abandoned,
            self.offered_human,
            pct(self.abandonment_rate)
        );
        let rec = &self.recordings;
        let _ = writeln!(
            out,
            "recorded:                          {} calls{}, {:.1} h of audio ({:.1} min paused)",
            rec.calls,
            if rec.incomplete > 0 {
                format!(" ({} INCOMPLETE)", rec.incomplete)
            } else {
                String::new()
            },
            rec.seconds / 3600.0,
            rec.paused_s / 60.0
        );
        let _ = writeln!(
            out,
            "passed on by an agent:             {} calls ({} transfers)",
            self.transferred, self.transfers
        );
        if !self.flows.is_empty() {
            let _ = writeln!(
                out,
                "\nper flow: calls, offered, answered, escape digit, watchdog, recorded, transferred"
            );
            for f in &self.flows {
                let _ = writeln!(
                    out,
                    "  {}: {}, {}, {}, {}, {}, {}, {}",
                    f.flow,
                    f.calls,
                    f.offered_human,
                    f.answered_by_human,
                    f.escape_used,
                    f.watchdog_used,
                    f.recorded,
                    f.transferred
                );
            }
        }
        if !self.wait_estimates.is_empty() {
            let _ = writeln!(
                out,
                "\nwait estimates (what callers were told against what they then waited):"
            );
            for w in &self.wait_estimates {
                let _ = writeln!(
                    out,
                    "  {}: {} announcements, mean error {:.0} s (callers waited {:.0} s {} on average), {} of {} ({:.1}%) waited more than 1.5x what they were told",
                    w.queue,
                    w.announcements,
                    w.mean_abs_error_s,
                    w.mean_error_s.abs(),
                    if w.mean_error_s >= 0.0 {
                        "longer"
                    } else {
                        "less"
                    },
                    w.waited_over_1_5x,
                    w.announcements,
                    w.waited_over_1_5x_share * 100.0
                );
                if let (Some(o), Some(b)) =
                    (w.compared_mean_abs_error_s, w.baseline_mean_abs_error_s)
                {
                    let verdict = if w.baseline_better {
                        "WORSE than the queue's recent average wait"
                    } else {
                        "no worse than the queue's recent average wait"
                    };
                    let _ = writeln!(
                        out,
                        "    the spoken estimate is {verdict}: mean error {o:.0} s against {b:.0} s over {} announcements",
                        w.compared
                    );
                }
            }
        }
        let f = &self.follow_ups;
        if f.total > 0 {
            let _ = writeln!(
                out,
                "\nfollow-ups (voicemails and callback requests, due within {} h): {}\n  done in time {}, done late {}, failed {}, still open {} ({} overdue)",
                f.within_h, f.total, f.done_in_time, f.done_late, f.failed, f.open, f.overdue
            );
        }
        if self.returning_calls > 0 {
            let _ = writeln!(
                out,
                "calls again about an open follow-up: {} ({} reached the agent who had it)",
                self.returning_calls, self.returning_reached_owner
            );
        }
        if !self.longest_paths.is_empty() {
            let _ = writeln!(out, "\nlongest paths callers took:");
            for p in &self.longest_paths {
                let to_human = match (p.steps_to_human, p.seconds_to_human) {
                    (Some(st), Some(se)) => format!("{st} steps, {se:.1} s to a human"),
                    _ => format!("{} steps, no human ({})", p.steps, p.outcome),
                };
                let _ = writeln!(
                    out,
                    "  {} {} ({to_human}): {}",
                    p.started,
                    p.id,
                    p.path.join(" ")
                );
            }
        }
        out
    }

    /// One row per flow plus a total row, for spreadsheets.
    pub fn csv(&self) -> String {
        let f = |x: Option<f64>| x.map_or_else(String::new, |x| format!("{x:.4}"));
        let mut out = String::from(
            "flow,calls,offered_human,offered_within_3_min,offered_within_3_min_share,answered_by_human,average_speed_of_answer_s,service_level,abandoned,abandonment_rate,escape_used,watchdog_used,recorded,transferred\n",
        );
        let _ = writeln!(
            out,
            "(all),{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.calls,
            self.offered_human,
            self.offered_within_3_min,
            f(self.offered_within_3_min_share),
            self.answered_by_human,
            f(self.average_speed_of_answer_s),
            f(self.service_level),
            self.abandoned,
            f(self.abandonment_rate),
            self.flows.iter().map(|x| x.escape_used).sum::<usize>(),
            self.flows.iter().map(|x| x.watchdog_used).sum::<usize>(),
            self.recordings.calls,
            self.transferred,
        );
        for fl in &self.flows {
            let name = if fl.flow.contains([',', '"', '\n']) {
                format!("\"{}\"", fl.flow.replace('"', "\"\""))
            } else {
                fl.flow.clone()
            };
            let _ = writeln!(
                out,
                "{name},{},{},,,{},,,,,{},{},{},{}",
                fl.calls,
                fl.offered_human,
                fl.answered_by_human,
                fl.escape_used,
                fl.watchdog_used,
                fl.recorded,
                fl.transferred
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn call(
        n: u32,
        to_human: Option<f64>,
        answer_after: Option<f64>,
        end: &str,
        outcome: &str,
    ) -> CallRecord {
        let started: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let at = |s: f64| (started + jiff::SignedDuration::from_secs_f64(s)).to_string();
        CallRecord {
            id: format!("c{n}"),
            from: "sip:ana@example.com".into(),
            line: "main".into(),
            flow: if n.is_multiple_of(2) { "main" } else { "sales" }.into(),
            flow_version: "v".into(),
            started: at(0.0),
            answered: Some(at(0.0)),
            human_offered_at: to_human.map(at),
            agent_answered_at: to_human.zip(answer_after).map(|(h, a)| at(h + a)),
            ended: Some(at(400.0)),
            path: vec![format!("p{n}")],
            steps: n,
            outcome: CallOutcome::parse(outcome).expect("a known outcome"),
            steps_to_human: to_human.map(|_| n),
            seconds_to_human: to_human,
            escape_used: n == 1,
            watchdog_used: n == 4,
            agent: answer_after.map(|_| "alice".into()),
            variables: BTreeMap::new(),
            end_reason: Some(EndReason::parse(end).expect("a known end reason")),
            waits_told: Vec::new(),
            probe: false,
            wrap_up: None,
            transfers: Vec::new(),
            recording: None,
            quality: None,
        }
    }

    fn told(
        queue: &str,
        at_s: f64,
        told_s: u64,
        baseline_s: Option<u64>,
    ) -> super::super::WaitTold {
        let started: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        super::super::WaitTold {
            queue: queue.into(),
            at: (started + jiff::SignedDuration::from_secs_f64(at_s)).to_string(),
            told_s,
            baseline_s,
        }
    }

    /// Worked by hand. Queue `support`:
    /// - call 1 offered at 10 s, answered at 310 s; told 60 s at 20 s (waited 290: error 230,
    ///   over 1.5×; baseline 300 → error 10), told 240 s at 100 s (waited 210: error −30);
    /// - call 3 offered at 200 s, hung up at 400 s (the call's end); told 60 s at 300 s
    ///   (waited 100: error 40, over 1.5×).
    ///
    /// Queue `sales`: call 2 answered at 70 s; told 60 s at 40 s (waited 30: error −30;
    /// baseline 120 → error 90). A live call's announcements are left out.
    #[test]
    fn wait_estimates_are_scored_against_the_wait_that_followed() {
        let mut c1 = call(1, Some(10.0), Some(300.0), "agent", "queue");
        c1.waits_told = vec![
            told("support", 20.0, 60, Some(300)),
            told("support", 100.0, 240, None),
        ];
        let mut c2 = call(2, Some(30.0), Some(40.0), "agent", "queue");
        c2.waits_told = vec![told("sales", 40.0, 60, Some(120))];
        let mut c3 = call(3, Some(200.0), None, "caller", "queue");
        c3.waits_told = vec![told("support", 300.0, 60, None)];
        let mut live = CallRecord {
            outcome: CallOutcome::Live,
            ended: None,
            ..call(6, Some(1.0), None, "caller", "queue")
        };
        live.waits_told = vec![told("support", 2.0, 60, None)];
        let r = Report::new(&[c1, c2, c3, live], None);
        let [sales, support] = &r.wait_estimates[..] else {
            panic!("{:?}", r.wait_estimates)
        };
        assert_eq!(support.queue, "support");
        assert_eq!(support.announcements, 3);
        assert!(
            (support.mean_abs_error_s - 100.0).abs() < 1e-9,
            "{support:?}"
        );
        assert!((support.mean_error_s - 80.0).abs() < 1e-9, "{support:?}");
        assert_eq!(support.waited_over_1_5x, 2);
        assert_eq!(support.compared, 1);
        assert_eq!(support.compared_mean_abs_error_s, Some(230.0));
        assert_eq!(support.baseline_mean_abs_error_s, Some(10.0));
        assert!(support.baseline_better);
        assert_eq!((sales.announcements, sales.waited_over_1_5x), (1, 0));
        assert!(!sales.baseline_better);
        let text = r.text();
        assert!(
            text.contains("support: 3 announcements, mean error 100 s (callers waited 80 s longer on average), 2 of 3 (66.7%) waited more than 1.5x"),
            "{text}"
        );
        assert!(
            text.contains("the spoken estimate is WORSE than the queue's recent average wait: mean error 230 s against 10 s over 1 announcements"),
            "{text}"
        );
        assert!(text.contains("sales: 1 announcements"), "{text}");
        assert!(r.json().contains("\"baseline_better\": true"));
    }

    /// Six calls worked by hand:
    /// 1: offered at 10 s, answered 5 s later        (within 3 min, service level)
    /// 2: offered at 30 s, answered 40 s later       (within 3 min, not service level)
    /// 3: offered at 200 s, caller hung up waiting   (late, abandoned)
    /// 4: offered at 60 s, queue timed out to voicemail, caller hung up there (not abandoned)
    /// 5: never offered, hung up in the menu
    /// 6: still live: not counted
    #[test]
    fn the_figures_match_a_hand_computed_fixture() {
        let recorded = |seconds: f64, complete: bool, paused_s: f64| {
            Some(super::super::RecordingMeta {
                file: "recordings/x.wav".into(),
                seconds: Some(seconds),
                complete,
                paused_s,
            })
        };
        let passed = |to: &str| super::super::Transfer {
            at: "2026-11-22T10:01:00Z".into(),
            by: "alice".into(),
            to: to.into(),
            note: None,
        };
        let records = vec![
            // Recorded, paused 30 s, passed on twice.
            CallRecord {
                recording: recorded(3000.0, true, 30.0),
                transfers: vec![passed("queue:billing"), passed("agent:bob")],
                ..call(1, Some(10.0), Some(5.0), "agent", "queue")
            },
            // Recorded, but the disk filled up.
            CallRecord {
                recording: recorded(600.0, false, 0.0),
                ..call(2, Some(30.0), Some(40.0), "caller", "queue")
            },
            call(3, Some(200.0), None, "caller", "queue"),
            call(4, Some(60.0), None, "caller", "voicemail"),
            call(5, None, None, "caller", "caller-hangup"),
            CallRecord {
                outcome: CallOutcome::Live,
                ended: None,
                ..call(6, Some(1.0), None, "caller", "queue")
            },
            // A probe's call: not a caller, not counted.
            CallRecord {
                probe: true,
                recording: recorded(60.0, true, 0.0),
                ..call(7, None, None, "caller", "caller-hangup")
            },
        ];
        let r = Report::new(&records, None);
        assert_eq!(r.calls, 5);
        assert_eq!(r.offered_human, 4);
        assert_eq!(r.offered_within_3_min, 3);
        assert_eq!(r.offered_within_3_min_share, Some(0.6));
        assert_eq!(r.answered_by_human, 2);
        assert_eq!(r.average_speed_of_answer_s, Some(22.5));
        assert_eq!(r.answered_within_20_s, 1);
        assert_eq!(r.service_level, Some(0.25));
        assert_eq!(r.abandoned, 1);
        assert_eq!(r.abandonment_rate, Some(0.25));
        assert_eq!(
            r.flows,
            vec![
                FlowFigures {
                    flow: "main".into(),
                    calls: 2,
                    offered_human: 2,
                    answered_by_human: 1,
                    escape_used: 0,
                    watchdog_used: 1,
                    recorded: 1,
                    transferred: 0,
                },
                FlowFigures {
                    flow: "sales".into(),
                    calls: 3,
                    offered_human: 2,
                    answered_by_human: 1,
                    escape_used: 1,
                    watchdog_used: 0,
                    recorded: 1,
                    transferred: 1,
                },
            ]
        );
        let order: Vec<&str> = r.longest_paths.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            order,
            ["c5", "c4", "c3", "c2", "c1"],
            "no human first, then most steps"
        );
        assert!(
            r.text().contains("3 of 5 (60.0%; target 95%: NOT met)"),
            "{}",
            r.text()
        );
        let csv = r.csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("(all),5,4,3,0.6000,2,22.5000,0.2500,1,0.2500,1,1,2,1"),
            "{csv}"
        );
        assert_eq!(
            r.recordings,
            RecordingFigures {
                calls: 2,
                incomplete: 1,
                seconds: 3600.0,
                paused_s: 30.0
            }
        );
        assert_eq!((r.transferred, r.transfers), (1, 2));
        assert!(
            r.text()
                .contains("recorded:                          2 calls (1 INCOMPLETE), 1.0 h of audio (0.5 min paused)"),
            "{}",
            r.text()
        );
        assert!(
            r.text()
                .contains("passed on by an agent:             1 calls (2 transfers)"),
            "{}",
            r.text()
        );
    }

    /// A follow-up closed by its due time counts as in time, one closed after as late, a
    /// failure as failed, and an open one past its due time as overdue.
    #[test]
    fn follow_ups_are_counted_against_their_deadline() {
        use crate::store::followup::{FollowUp, Kind, State};
        let item = |created: &str, state: State, changed: &str| FollowUp {
            id: 0,
            kind: Kind::Voicemail,
            item: 0,
            call_id: "c".into(),
            caller: "sip:ana@example.com".into(),
            queue: "support".into(),
            created_at: created.into(),
            state,
            owner: None,
            reason: None,
            changed_at: changed.into(),
        };
        let items = [
            item("2026-12-01T10:00:00Z", State::Done, "2026-12-01T20:00:00Z"),
            item("2026-12-01T10:00:00Z", State::Done, "2026-12-02T11:00:00Z"),
            item(
                "2026-12-01T10:00:00Z",
                State::Failed,
                "2026-12-01T11:00:00Z",
            ),
            item("2026-12-01T10:00:00Z", State::Taken, "2026-12-01T11:00:00Z"),
            item("2026-12-06T09:00:00Z", State::New, "2026-12-06T09:00:00Z"),
        ];
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let f = FollowUpFigures::new(&items, 24, now);
        assert_eq!(
            f,
            FollowUpFigures {
                within_h: 24,
                total: 5,
                done_in_time: 1,
                done_late: 1,
                failed: 1,
                open: 2,
                overdue: 1,
            }
        );
        let mut r = Report::new(&[], None);
        r.follow_ups = f;
        let text = r.text();
        assert!(
            text.contains("done in time 1, done late 1, failed 1, still open 2 (1 overdue)"),
            "{text}"
        );
        assert!(r.json().contains("\"done_in_time\": 1"));
    }
}

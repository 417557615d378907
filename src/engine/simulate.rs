//! Walks a flow as a caller would, with no network: a script of caller actions drives the
//! engine on a virtual clock, with prompt lengths read from the WAV headers.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{Action, Call, Event, Outcome};
use crate::flow::calendar::Calendar;
use crate::flow::model::{FlowSet, PromptFile};

/// One caller action, consumed at a menu or collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Keys pressed after the prompt (a menu acts on the first).
    Keys(String),
    /// Silence until the timeout.
    Silence,
    /// The caller hangs up.
    HangUp,
}

/// Parses `--input`: comma-separated keys `0-9*#`, `_` for silence, `!` to hang up.
pub fn parse_script(s: &str) -> Result<Vec<Token>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|t| {
            let t = t.trim();
            match t {
                "_" => Ok(Token::Silence),
                "!" => Ok(Token::HangUp),
                "" => Err("an empty token in --input (use _ for silence)".to_string()),
                k if k.chars().all(crate::flow::fields::is_key) => Ok(Token::Keys(k.to_string())),
                other => Err(format!(
                    "\"{other}\" in --input is not keys (0-9 * #), _ (silence) or ! (hang up)"
                )),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub outcome: Outcome,
    /// `flow.node` where the call ended up.
    pub node: String,
    pub steps: u32,
    pub seconds: f64,
    pub path: Vec<String>,
    pub watchdog: bool,
    pub escape: bool,
    pub variables: Vec<(String, String)>,
    /// The language the caller heard last.
    pub language: String,
}

impl Run {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "outcome": self.outcome.as_str(),
            "node": self.node,
            "steps": self.steps,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "path": self.path,
            "language": self.language,
        });
        if self.watchdog {
            v["watchdog"] = serde_json::Value::Bool(true);
        }
        v
    }
}

/// A call can take this many events before the simulator stops it (a guard, not a limit a
/// valid flow meets).
const MAX_EVENTS: usize = 20_000;

fn seconds(set: &FlowSet, prompts: &[String]) -> Duration {
    let s: f64 = prompts
        .iter()
        .map(|p| match set.prompts.get(p) {
            Some(PromptFile::Ok { seconds }) => *seconds,
            _ => 0.0,
        })
        .sum();
    Duration::from_secs_f64(s)
}

/// Lets the timeout of the same prompt pass, if the call still waits at it.
fn wait_out(call: &mut Call, attempt: u64, now: &mut Instant) -> Vec<Action> {
    match call.poll_timeout() {
        Some(t) if call.attempt_id() == attempt && call.awaiting_input() => {
            *now = (*now).max(t);
            call.handle(Event::Timeout, *now)
        }
        _ => Vec::new(),
    }
}

/// What a simulated call assumes of the world outside the flow.
#[derive(Debug, Clone)]
pub struct World<'a> {
    pub calendars: &'a HashMap<String, Calendar>,
    /// The built-in `caller_number` (E.164, empty for a withheld number).
    pub caller_number: String,
    /// The built-in `line`; the flow's name when `None`.
    pub line: Option<String>,
    /// Where `time` and `weekday` are read.
    pub timezone: jiff::tz::TimeZone,
    /// What each lookup endpoint answers; one not named here does not answer in time.
    pub answers: HashMap<String, Assumed>,
    /// Switches' positions; one not named here is as the config sets it.
    pub switches: std::collections::BTreeMap<String, bool>,
    /// The caller's open follow-up, for a returning caller.
    pub returning: Option<super::OpenItem>,
}

/// What a simulated lookup gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assumed {
    /// These fields, at once.
    Answer(Vec<(String, String)>),
    /// An error at once (unreachable, an HTTP error, a bad answer).
    Error,
}

impl<'a> World<'a> {
    /// Calendars only: an unknown caller, the flow's own name as the line, UTC.
    pub fn new(calendars: &'a HashMap<String, Calendar>) -> World<'a> {
        World {
            calendars,
            caller_number: String::new(),
            line: None,
            timezone: jiff::tz::TimeZone::UTC,
            answers: HashMap::new(),
            switches: std::collections::BTreeMap::new(),
            returning: None,
        }
    }
}

/// Runs one call on the flow `line` from `origin` (any instant: the clock is virtual).
/// `watchdog: false` runs the flow as written, as the validator judges it.
pub fn run(
    set: &FlowSet,
    world: &World,
    line: usize,
    script: &[Token],
    wall: Timestamp,
    origin: Instant,
    watchdog: bool,
) -> Run {
    let line_name = world.line.clone().unwrap_or_else(|| {
        set.flows
            .get(line)
            .map(|f| f.name.clone())
            .unwrap_or_default()
    });
    let mut call = Call::new(set, world.calendars, line)
        .with_caller(&world.caller_number, &line_name)
        .with_timezone(world.timezone.clone())
        .with_switches(world.switches.clone())
        .with_follow_up(world.returning.clone());
    if !watchdog {
        call = call.without_watchdog();
    }
    let mut script: VecDeque<Token> = script.iter().cloned().collect();
    let mut now = origin;
    let mut playing_until: Option<Instant> = None;
    let mut actions = call.handle(Event::Start { wall }, now);
    for _ in 0..MAX_EVENTS {
        for a in actions.drain(..) {
            match a {
                Action::Play(p) => playing_until = Some(now + seconds(set, &p)),
                Action::StopPlayback => playing_until = None,
                _ => {}
            }
        }
        if call.outcome().is_some() || call.is_ended() {
            break;
        }
        if let Some(endpoint) = call.looking_up() {
            actions = match world.answers.get(endpoint) {
                Some(Assumed::Answer(fields)) => {
                    call.handle(Event::LookupAnswered(fields.clone()), now)
                }
                Some(Assumed::Error) => call.handle(Event::LookupFailed, now),
                None => match call.poll_timeout() {
                    Some(t) => {
                        now = now.max(t);
                        call.handle(Event::Timeout, now)
                    }
                    None => call.handle(Event::LookupFailed, now),
                },
            };
            continue;
        }
        let finish_prompt = |call: &mut Call, now: &mut Instant, playing: &mut Option<Instant>| {
            let mut out = Vec::new();
            if let Some(t) = playing.take() {
                *now = t;
                out = call.handle(Event::PromptFinished, *now);
            }
            out
        };
        if !call.awaiting_input() {
            if playing_until.is_some() {
                actions = finish_prompt(&mut call, &mut now, &mut playing_until);
                continue;
            }
            break;
        }
        let attempt = call.attempt_id();
        match script.pop_front().unwrap_or(Token::Silence) {
            Token::HangUp => actions = call.handle(Event::CallerHangup, now),
            Token::Silence => {
                actions = finish_prompt(&mut call, &mut now, &mut playing_until);
                actions.extend(wait_out(&mut call, attempt, &mut now));
            }
            Token::Keys(keys) => {
                actions = finish_prompt(&mut call, &mut now, &mut playing_until);
                let is_menu = call.node().is_some_and(|n| {
                    matches!(set.nodes[n].kind, crate::flow::node::NodeKind::Menu(_))
                });
                let keys: Vec<char> = if is_menu {
                    keys.chars().take(1).collect()
                } else {
                    keys.chars().collect()
                };
                for k in keys {
                    if call.attempt_id() != attempt || !call.awaiting_input() {
                        break;
                    }
                    actions.extend(call.handle(Event::Digit(k), now));
                }
                // A collect still waiting after the keys: the caller pauses, the entry ends.
                actions.extend(wait_out(&mut call, attempt, &mut now));
            }
        }
    }
    let (outcome, node, at) =
        call.outcome()
            .unwrap_or((Outcome::Hangup, call.node().unwrap_or(0), now));
    Run {
        outcome,
        node: set
            .nodes
            .get(node)
            .map(|n| n.full_name.clone())
            .unwrap_or_default(),
        steps: call.steps(),
        seconds: at.duration_since(origin).as_secs_f64(),
        path: call.path().to_vec(),
        watchdog: call.watchdog_used(),
        escape: call.escape_used(),
        variables: call
            .variables()
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect(),
        language: call.language().to_string(),
    }
}

/// Reads `--returning KIND[:STATE[:OWNER]]` (`voicemail:taken:alice`, `callback`): a caller
/// with that open follow-up, left an hour before the call, in `queue`.
pub fn parse_returning(s: &str, queue: &str, wall: Timestamp) -> Result<super::OpenItem, String> {
    let bad = || {
        format!(
            "--returning \"{s}\": KIND[:STATE[:OWNER]], KIND voicemail or callback, STATE new, taken or failed (voicemail:taken:alice)"
        )
    };
    let mut parts = s.split(':');
    let kind = parts
        .next()
        .filter(|k| ["voicemail", "callback"].contains(k))
        .ok_or_else(bad)?;
    let state = parts.next().unwrap_or("new");
    if !["new", "taken", "failed"].contains(&state) {
        return Err(bad());
    }
    let owner = parts.next().filter(|o| !o.is_empty()).map(str::to_string);
    if parts.next().is_some() || (state == "taken" && owner.is_none()) {
        return Err(bad());
    }
    Ok(super::OpenItem {
        id: 1,
        kind: kind.to_string(),
        state: state.to_string(),
        owner,
        queue: queue.to_string(),
        created_at: wall
            .checked_sub(jiff::SignedDuration::from_hours(1))
            .unwrap_or(wall)
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_keys_silence_and_hangup() {
        assert_eq!(
            parse_script("1,_,123#,!").unwrap(),
            vec![
                Token::Keys("1".into()),
                Token::Silence,
                Token::Keys("123#".into()),
                Token::HangUp
            ]
        );
        assert_eq!(parse_script("").unwrap(), vec![]);
        assert!(parse_script("1,,2").is_err());
        assert!(parse_script("a").unwrap_err().contains("\"a\""));
    }
}

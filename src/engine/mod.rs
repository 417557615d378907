//! The call-flow interpreter: one `Call` per phone call, a pure state machine.
//! `handle(event, now)` returns what to do; `poll_timeout()` says when to call back with
//! `Event::Timeout`. It owns retries, timeouts, type-ahead, the escape digit and the watchdog,
//! so the validator's promises hold on a live line. No clock, no IO.

pub mod announce;
pub mod session;
pub mod simulate;
pub mod spanish;
pub mod waiting;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use crate::flow::calendar::Calendar;
use crate::flow::model::{Class, FlowSet, NodeId, Prompt, Target};
use crate::flow::node::NodeKind;

/// What happened on the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call was answered; `wall` is the wall-clock time, for schedules.
    Start {
        wall: Timestamp,
    },
    /// The prompts of the last `Play` finished.
    PromptFinished,
    /// A key from the keypad (RFC 4733, SIP INFO or in-band).
    Digit(char),
    /// `poll_timeout()` has passed.
    Timeout,
    CallerHangup,
    /// The queue's wait ran out, or no agent is logged in.
    QueueTimedOut,
    TransferFailed,
    /// A live human answered (queue or transfer).
    Connected,
    /// The voicemail or the callback request is durable: the caller is then told so.
    Finished,
    /// The voicemail or callback request could not be made durable (a full or failing
    /// disk): the caller is told, and offered a live human instead of a promise.
    SaveFailed,
    /// The caller waiting in a queue took the callback offer: their place is kept as a
    /// callback, stored before this event; the caller is told so, then the call ends.
    CallbackChosen,
    /// The lookup asked for answered: its declared fields, read (`lookup::read_answer`).
    LookupAnswered(Vec<(String, String)>),
    /// The lookup failed: unreachable, an HTTP error, or an answer that does not read.
    LookupFailed,
    /// The voicemail being recorded holds all it may.
    RecordingFull,
}

/// What the call needs done, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these prompts in order, replacing anything playing.
    Play(Vec<String>),
    StopPlayback,
    EnterQueue {
        queue: String,
        priority: u32,
        max_wait_s: u32,
        announce_position_every_s: u32,
        offer_callback_after_s: u32,
        /// The line's own recording rule, over the queue's.
        record: Option<crate::config::RecordMode>,
        /// An `owner` node with the caller's open follow-up: its owner first, then its
        /// queue at the head of the line.
        first: Option<First>,
    },
    /// Close the caller's open follow-up: they no longer need it.
    Withdraw {
        follow_up: i64,
    },
    Transfer {
        to: String,
        ring_timeout_s: u32,
    },
    /// Ask `[lookups.<endpoint>]` with these query parameters; report `LookupAnswered` or
    /// `LookupFailed` (the engine gives up itself at `poll_timeout()`).
    Lookup {
        endpoint: String,
        params: Vec<(String, String)>,
        timeout_ms: u32,
    },
    /// Play the voicemail's greeting (`prompts`) and the beep; report `PromptFinished`.
    RecordVoicemail {
        mailbox: String,
        prompts: Vec<String>,
        max_length_s: u32,
    },
    /// The beep ended: record the caller's message, at most `max_length_s`.
    StartRecording {
        mailbox: String,
        max_length_s: u32,
    },
    /// The message ends (the caller pressed #, or its time or room ran out): store it
    /// durably, then report `Finished` (or `SaveFailed`).
    StopRecording,
    /// Store the request durably, then report `Finished` (the caller is then told, in the
    /// node's prompts) or `SaveFailed`.
    RegisterCallback {
        queue: String,
    },
    Hangup,
}

/// The caller's open follow-up, as the server found it when the call came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenItem {
    pub id: i64,
    /// `voicemail` or `callback`.
    pub kind: String,
    /// `new`, `taken` or `failed`.
    pub state: String,
    /// The agent who has it.
    pub owner: Option<String>,
    /// The queue whose agents see it.
    pub queue: String,
    /// When it was left (RFC 3339).
    pub created_at: String,
}

/// Who a returning caller is put through to first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct First {
    pub follow_up: i64,
    /// Its owner, rung first (within the queue's ring time) when ready.
    pub owner: Option<String>,
    /// Its queue, where the caller then waits at the head of the line (the node's own queue
    /// when the config has no such queue).
    pub queue: String,
}

/// How a call ended up, as `simulate` and the call records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Queue,
    Transfer,
    Voicemail,
    Callback,
    Hangup,
    CallerHangup,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queue => "queue",
            Outcome::Transfer => "transfer",
            Outcome::Voicemail => "voicemail",
            Outcome::Callback => "callback",
            Outcome::Hangup => "hangup",
            Outcome::CallerHangup => "caller-hangup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotStarted,
    Play {
        node: NodeId,
    },
    Menu {
        node: NodeId,
        attempt: u32,
        prompting: bool,
    },
    Collect {
        node: NodeId,
        attempt: u32,
        digits: String,
        prompting: bool,
    },
    /// Waiting for a queue or transfer outcome.
    Human {
        node: NodeId,
    },
    /// Waiting for a lookup's answer, in silence.
    Lookup {
        node: NodeId,
    },
    /// Storing a callback request.
    FollowUp {
        node: NodeId,
    },
    /// Telling the caller their callback is kept; the call ends after it.
    Confirming {
        node: NodeId,
    },
    /// A voicemail: its greeting, the message being recorded, then being stored.
    Voicemail {
        node: NodeId,
        phase: Message,
    },
    /// A hangup node's goodbye prompt, or the confirmation that a message is saved.
    Goodbye {
        node: NodeId,
    },
    /// Telling the caller their follow-up could not be kept; then `then` (the flow's
    /// escape), or a hang-up when the follow-up already failed once.
    Apology {
        node: NodeId,
        then: Option<NodeId>,
    },
    Ended,
}

/// Where a voicemail is: its greeting plays, the caller speaks (recorded), it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Greeting,
    Speaking,
    Storing,
}

/// The key that ends a voicemail message.
pub const END_RECORDING: char = '#';

/// Most keys kept for the next menu while a play runs.
const MAX_TYPEAHEAD: usize = 32;
/// Invisible nodes passed in a row before the call is judged to be looping.
const MAX_HOPS: u32 = 256;

pub struct Call<'a> {
    set: &'a FlowSet,
    calendars: &'a HashMap<String, Calendar>,
    /// The flow the call started in: its `max_steps_to_human` bounds the watchdog.
    line: usize,
    state: State,
    steps: u32,
    path: Vec<String>,
    vars: BTreeMap<String, String>,
    typeahead: String,
    start: Option<(Instant, Timestamp)>,
    deadline: Option<Instant>,
    /// Steps and time when a live human was first offered.
    human_offered: Option<(u32, Instant)>,
    watchdog_on: bool,
    watchdog_used: bool,
    escape_used: bool,
    outcome: Option<(Outcome, NodeId, Instant)>,
    /// Bumps at every step, so a driver can tell one prompt from the next.
    attempt_id: u64,
    /// Follow-ups that could not be saved in this call.
    saves_failed: u32,
    /// The built-in variables `caller_number` and `line`.
    caller_number: String,
    line_name: String,
    /// Where `time` and `weekday` are read.
    timezone: jiff::tz::TimeZone,
    /// The switches' positions when the call came (others: as the config sets them).
    switches: BTreeMap<String, bool>,
    /// The caller's open follow-up, when they have one (until they withdraw it).
    item: Option<OpenItem>,
    /// The language the caller hears: the line's, then as `set` changes it.
    language: String,
}

impl<'a> Call<'a> {
    /// A call on the flow `line` (an index into `set.flows`).
    pub fn new(
        set: &'a FlowSet,
        calendars: &'a HashMap<String, Calendar>,
        line: usize,
    ) -> Call<'a> {
        let mut call = Call {
            set,
            calendars,
            line,
            state: State::NotStarted,
            steps: 0,
            path: Vec::new(),
            vars: BTreeMap::new(),
            typeahead: String::new(),
            start: None,
            deadline: None,
            human_offered: None,
            watchdog_on: true,
            watchdog_used: false,
            escape_used: false,
            outcome: None,
            attempt_id: 0,
            saves_failed: 0,
            caller_number: String::new(),
            line_name: set
                .flows
                .get(line)
                .map(|f| f.name.clone())
                .unwrap_or_default(),
            timezone: jiff::tz::TimeZone::system(),
            switches: BTreeMap::new(),
            item: None,
            language: set.flows.get(line).map_or_else(
                || crate::flow::language::DEFAULT.to_string(),
                |f| f.language.clone(),
            ),
        };
        // A line in another language says so to the agent who answers, as `set` would.
        if call.language != crate::flow::language::DEFAULT {
            call.vars.insert(
                crate::flow::variables::LANGUAGE.to_string(),
                call.language.clone(),
            );
        }
        call
    }

    /// The language the caller hears now.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The caller's open follow-up, found when the call came.
    pub fn with_follow_up(mut self, item: Option<OpenItem>) -> Self {
        self.item = item;
        self
    }

    /// The caller's open follow-up, while they have one.
    pub fn follow_up(&self) -> Option<&OpenItem> {
        self.item.as_ref()
    }

    /// The switches' positions for this call (taken when it comes: a flip changes the next
    /// call's way, not the way of one half through).
    pub fn with_switches(mut self, switches: BTreeMap<String, bool>) -> Self {
        self.switches = switches;
        self
    }

    fn switch_on(&self, name: &str) -> bool {
        self.switches
            .get(name)
            .copied()
            .unwrap_or_else(|| self.set.switches.get(name).is_some_and(|s| s.on))
    }

    /// Who calls (E.164, empty when unknown) and the line they dialled: the built-in
    /// variables `caller_number` and `line`.
    pub fn with_caller(mut self, caller_number: &str, line: &str) -> Self {
        self.caller_number = caller_number.to_string();
        self.line_name = line.to_string();
        self
    }

    /// Where the built-in variables `time` and `weekday` are read.
    pub fn with_timezone(mut self, timezone: jiff::tz::TimeZone) -> Self {
        self.timezone = timezone;
        self
    }

    /// A variable's value now: a built-in, or what the call was given.
    pub fn value(&self, name: &str, now: Instant) -> Option<String> {
        use crate::flow::variables as v;
        match name {
            v::CALLER_NUMBER => Some(self.caller_number.clone()),
            v::LANGUAGE => Some(self.language.clone()),
            v::LINE => Some(self.line_name.clone()),
            v::TIME | v::WEEKDAY => {
                let local = self.wall(now).to_zoned(self.timezone.clone());
                Some(if name == v::TIME {
                    format!("{:02}:{:02}", local.hour(), local.minute())
                } else {
                    crate::flow::calendar::weekday_name(local.weekday()).to_string()
                })
            }
            _ => self.vars.get(name).cloned(),
        }
    }

    /// Turns the watchdog off: the flow as written, as the validator judges it.
    pub fn without_watchdog(mut self) -> Self {
        self.watchdog_on = false;
        self
    }

    pub fn steps(&self) -> u32 {
        self.steps
    }
    /// Node names alternating with the caller action taken there.
    pub fn path(&self) -> &[String] {
        &self.path
    }
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.vars
    }
    pub fn watchdog_used(&self) -> bool {
        self.watchdog_used
    }
    pub fn escape_used(&self) -> bool {
        self.escape_used
    }
    pub fn outcome(&self) -> Option<(Outcome, NodeId, Instant)> {
        self.outcome
    }
    pub fn human_offered(&self) -> Option<(u32, Instant)> {
        self.human_offered
    }
    pub fn attempt_id(&self) -> u64 {
        self.attempt_id
    }
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }
    /// Whether the call waits for the caller's keys (a menu or collect).
    pub fn awaiting_input(&self) -> bool {
        matches!(self.state, State::Menu { .. } | State::Collect { .. })
    }
    /// The endpoint of the lookup the call waits for.
    pub fn looking_up(&self) -> Option<&'a str> {
        match self.state {
            State::Lookup { node } => match &self.set.nodes[node].kind {
                NodeKind::Lookup(l) => Some(l.endpoint()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether a prompt the engine asked for is still expected to be playing.
    pub fn prompting(&self) -> bool {
        match self.state {
            State::Menu { prompting, .. } | State::Collect { prompting, .. } => prompting,
            State::Play { .. }
            | State::Goodbye { .. }
            | State::Apology { .. }
            | State::Confirming { .. } => true,
            _ => false,
        }
    }
    /// The node the call is at.
    pub fn node(&self) -> Option<NodeId> {
        match self.state {
            State::Play { node }
            | State::Menu { node, .. }
            | State::Collect { node, .. }
            | State::Human { node }
            | State::Lookup { node }
            | State::FollowUp { node }
            | State::Confirming { node }
            | State::Voicemail { node, .. }
            | State::Goodbye { node }
            | State::Apology { node, .. } => Some(node),
            _ => self.outcome.map(|o| o.1),
        }
    }

    /// When to call back with `Event::Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Ended {
            return out;
        }
        if let Event::Start { wall } = event {
            if self.state == State::NotStarted {
                self.start = Some((now, wall));
                match self.set.entry(self.line) {
                    Some(entry) => self.enter(Some(entry), now, &mut out),
                    None => self.end(&mut out),
                }
            }
            return out;
        }
        if event == Event::CallerHangup {
            if self.outcome.is_none() {
                let node = self.node().unwrap_or(0);
                self.outcome = Some((Outcome::CallerHangup, node, now));
            }
            self.deadline = None;
            self.state = State::Ended;
            return out;
        }
        match self.state.clone() {
            State::Play { node } => match event {
                Event::Digit(d) if d == self.escape_digit(node) => {
                    self.escape(node, d, now, &mut out)
                }
                Event::Digit(d) if self.typeahead.len() < MAX_TYPEAHEAD => self.typeahead.push(d),
                Event::PromptFinished => {
                    let next = match &self.set.nodes[node].kind {
                        NodeKind::Play(p) => target(&p.next),
                        _ => None,
                    };
                    self.go("done", next, now, &mut out);
                }
                _ => {}
            },
            State::Menu { node, attempt, .. } => match event {
                Event::Digit(d) => self.menu_key(node, attempt, d, now, &mut out),
                Event::PromptFinished => self.prompt_done(node, now),
                Event::Timeout if self.due(now) => self.retry(node, attempt, "_", now, &mut out),
                _ => {}
            },
            State::Collect {
                node,
                attempt,
                digits,
                prompting,
            } => match event {
                Event::Digit(d) => {
                    self.collect_key(node, attempt, digits, prompting, d, now, &mut out)
                }
                Event::PromptFinished => self.prompt_done(node, now),
                Event::Timeout if self.due(now) => {
                    if digits.is_empty() {
                        self.retry(node, attempt, "_", now, &mut out);
                    } else {
                        self.collect_done(node, attempt, digits, now, &mut out);
                    }
                }
                _ => {}
            },
            State::Human { node } => match (event, &self.set.nodes[node].kind) {
                (Event::QueueTimedOut, NodeKind::Queue(q) | NodeKind::Owner(q)) => {
                    self.go("timeout", target(&q.on_timeout), now, &mut out)
                }
                (Event::TransferFailed, NodeKind::Transfer(t)) => {
                    self.go("failure", target(&t.on_failure), now, &mut out)
                }
                (Event::CallbackChosen, NodeKind::Queue(_) | NodeKind::Owner(_)) => {
                    self.path.push("callback".into());
                    self.outcome = Some((Outcome::Callback, node, now));
                    self.state = State::Confirming { node };
                    out.push(Action::Play(vec![announce::in_language(
                        &self.language,
                        announce::CALLBACK_KEPT,
                    )]));
                }
                // Connected: the human has the call; the server bridges and ends it.
                _ => {}
            },
            State::Lookup { node } => {
                let NodeKind::Lookup(l) = &self.set.nodes[node].kind else {
                    return out;
                };
                match event {
                    Event::Digit(d) if d == self.escape_digit(node) => {
                        self.escape(node, d, now, &mut out)
                    }
                    Event::Digit(d) if self.typeahead.len() < MAX_TYPEAHEAD => {
                        self.typeahead.push(d)
                    }
                    Event::LookupAnswered(fields) => {
                        for (field, value) in fields {
                            self.vars.insert(format!("{}.{field}", l.endpoint()), value);
                        }
                        self.deadline = None;
                        self.go("answer", target(&l.next), now, &mut out);
                    }
                    Event::LookupFailed => {
                        self.deadline = None;
                        self.go("error", target(&l.on_error), now, &mut out);
                    }
                    Event::Timeout if self.due(now) => {
                        self.deadline = None;
                        self.go("error", target(&l.on_error), now, &mut out);
                    }
                    _ => {}
                }
            }
            State::FollowUp { node } => match event {
                // Told only now that the request is kept.
                Event::Finished => match &self.set.nodes[node].kind {
                    NodeKind::Callback(c) if !c.prompts.is_empty() => {
                        self.state = State::Confirming { node };
                        out.push(Action::Play(names(&c.prompts, &self.language)));
                    }
                    _ => self.end(&mut out),
                },
                Event::SaveFailed => self.save_failed(node, now, &mut out),
                _ => {}
            },
            State::Confirming { .. } => {
                if event == Event::PromptFinished {
                    self.end(&mut out);
                }
            }
            State::Voicemail { node, phase } => match (phase, event) {
                (Message::Greeting, Event::PromptFinished) => {
                    let NodeKind::Voicemail(v) = &self.set.nodes[node].kind else {
                        return out;
                    };
                    self.state = State::Voicemail {
                        node,
                        phase: Message::Speaking,
                    };
                    self.deadline = Some(now + Duration::from_secs(u64::from(v.max_length_s)));
                    out.push(Action::StartRecording {
                        mailbox: v.mailbox.as_ref().map(|m| m.0.clone()).unwrap_or_default(),
                        max_length_s: v.max_length_s,
                    });
                }
                (Message::Speaking, Event::Digit(END_RECORDING) | Event::RecordingFull) => {
                    self.stop_recording(node, &mut out)
                }
                (Message::Speaking, Event::Timeout) if self.due(now) => {
                    self.stop_recording(node, &mut out)
                }
                (_, Event::Finished) => {
                    // Told only now that the message is on disk.
                    self.deadline = None;
                    self.state = State::Goodbye { node };
                    out.push(Action::Play(vec![announce::in_language(
                        &self.language,
                        announce::MESSAGE_SAVED,
                    )]));
                }
                (_, Event::SaveFailed) => {
                    self.deadline = None;
                    self.save_failed(node, now, &mut out)
                }
                _ => {}
            },
            State::Apology { node, then } => match event {
                Event::Digit(d) if d == self.escape_digit(node) => {
                    self.escape(node, d, now, &mut out)
                }
                Event::PromptFinished => match then {
                    Some(to) => self.go("failure", Some(to), now, &mut out),
                    None => self.end(&mut out),
                },
                _ => {}
            },
            State::Goodbye { node } => match event {
                Event::Digit(d) if d == self.escape_digit(node) => {
                    self.escape(node, d, now, &mut out)
                }
                Event::PromptFinished => self.end(&mut out),
                _ => {}
            },
            State::NotStarted | State::Ended => {}
        }
        out
    }

    fn stop_recording(&mut self, node: NodeId, out: &mut Vec<Action>) {
        self.deadline = None;
        self.state = State::Voicemail {
            node,
            phase: Message::Storing,
        };
        out.push(Action::StopRecording);
    }

    /// Whether the caller's message is being recorded.
    pub fn is_recording(&self) -> bool {
        matches!(
            self.state,
            State::Voicemail {
                phase: Message::Speaking,
                ..
            }
        )
    }

    fn due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn escape_digit(&self, node: NodeId) -> char {
        self.set.flow_of(node).escape_digit
    }

    fn end(&mut self, out: &mut Vec<Action>) {
        self.deadline = None;
        self.state = State::Ended;
        out.push(Action::Hangup);
    }

    /// A follow-up that could not be kept: the caller is told so, and goes on to the flow's
    /// escape (a live human) the first time; a second failure in one call ends it with a
    /// request to call again later rather than a loop of promises.
    fn save_failed(&mut self, node: NodeId, now: Instant, out: &mut Vec<Action>) {
        self.saves_failed += 1;
        let escape = self.set.escape_to(self.set.nodes[node].flow);
        let then = escape.filter(|_| self.saves_failed == 1);
        let prompt = if then.is_some() {
            announce::NOT_SAVED
        } else {
            // Nothing will follow up: the record must not claim a voicemail or callback.
            self.outcome = Some((Outcome::Hangup, node, now));
            announce::CALL_LATER
        };
        self.state = State::Apology { node, then };
        out.push(Action::Play(vec![announce::in_language(
            &self.language,
            prompt,
        )]));
    }

    fn prompt_done(&mut self, node: NodeId, now: Instant) {
        let timeout = match &self.set.nodes[node].kind {
            NodeKind::Menu(m) => m.timeout_s,
            NodeKind::Collect(c) => c.timeout_s,
            _ => return,
        };
        match &mut self.state {
            State::Menu { prompting, .. } | State::Collect { prompting, .. } => *prompting = false,
            _ => return,
        }
        self.deadline = Some(now + Duration::from_secs(u64::from(timeout)));
    }

    /// Records the action taken and moves on to `target`.
    fn go(&mut self, label: &str, target: Option<NodeId>, now: Instant, out: &mut Vec<Action>) {
        self.path.push(label.to_string());
        self.enter(target, now, out);
    }

    fn escape(&mut self, from: NodeId, digit: char, now: Instant, out: &mut Vec<Action>) {
        if self.prompting() {
            out.push(Action::StopPlayback);
        }
        self.escape_used = true;
        self.typeahead.clear();
        let to = self.set.escape_to(self.set.nodes[from].flow);
        self.go(&digit.to_string(), to, now, out);
    }

    fn menu_key(
        &mut self,
        node: NodeId,
        attempt: u32,
        d: char,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let NodeKind::Menu(m) = &self.set.nodes[node].kind else {
            return;
        };
        let prompting = self.prompting();
        if let Some(t) = m.option(d) {
            if prompting {
                out.push(Action::StopPlayback);
            }
            self.go(&d.to_string(), t.node, now, out);
        } else if d == self.escape_digit(node) {
            self.escape(node, d, now, out);
        } else if let Some(t) = &m.on_invalid {
            if prompting {
                out.push(Action::StopPlayback);
            }
            self.go("wrong", t.node, now, out);
        } else {
            self.retry(node, attempt, "wrong", now, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn collect_key(
        &mut self,
        node: NodeId,
        attempt: u32,
        mut digits: String,
        prompting: bool,
        d: char,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let NodeKind::Collect(c) = &self.set.nodes[node].kind else {
            return;
        };
        let alone = c.escape == Some(crate::flow::node::CollectEscape::Alone);
        if digits.is_empty() && d == self.escape_digit(node) && !alone {
            return self.escape(node, d, now, out);
        }
        if Some(d) == c.terminator {
            return self.collect_done(node, attempt, digits, now, out);
        }
        if prompting {
            out.push(Action::StopPlayback);
        }
        digits.push(d);
        if digits.chars().count() as u32 >= c.max_digits {
            return self.collect_done(node, attempt, digits, now, out);
        }
        // Each key restarts the wait for the next one.
        self.deadline = Some(now + Duration::from_secs(u64::from(c.timeout_s)));
        self.state = State::Collect {
            node,
            attempt,
            digits,
            prompting: false,
        };
    }

    fn collect_done(
        &mut self,
        node: NodeId,
        attempt: u32,
        digits: String,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let NodeKind::Collect(c) = &self.set.nodes[node].kind else {
            return;
        };
        // `escape = "alone"`: the escape digit on its own is the escape, not an entry.
        let escape = self.escape_digit(node);
        if c.escape == Some(crate::flow::node::CollectEscape::Alone)
            && digits.len() == 1
            && digits.starts_with(escape)
        {
            return self.escape(node, escape, now, out);
        }
        if c.accepts(&digits) {
            if let Some(var) = &c.variable {
                self.vars.insert(var.clone(), digits);
            }
            self.go("digits", target(&c.next), now, out);
        } else {
            self.retry(node, attempt, "wrong", now, out);
        }
    }

    /// Plays a menu or collect again, or leaves by `on_exhausted` when retries are used up.
    fn retry(
        &mut self,
        node: NodeId,
        attempt: u32,
        label: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let n = &self.set.nodes[node];
        let (retries, exhausted, invalid) = match &n.kind {
            NodeKind::Menu(m) => (
                m.max_retries,
                target(&m.on_exhausted),
                &m.invalid_prompt[..],
            ),
            NodeKind::Collect(c) => (c.max_retries, target(&c.on_exhausted), &[][..]),
            _ => return,
        };
        self.deadline = None;
        if attempt >= retries {
            if self.prompting() {
                out.push(Action::StopPlayback);
            }
            return self.go(label, exhausted, now, out);
        }
        self.path.push(label.to_string());
        let before: Vec<String> = if label == "wrong" {
            names(invalid, &self.language)
        } else {
            Vec::new()
        };
        self.start_attempt(node, attempt + 1, before, now, out);
    }

    /// Begins a step at a menu or collect: the watchdog may send the caller on instead.
    fn start_attempt(
        &mut self,
        node: NodeId,
        attempt: u32,
        before: Vec<String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.watchdog_due() {
            return self.watchdog(node, now, out);
        }
        self.path.push(self.set.nodes[node].full_name.clone());
        self.step();
        let (prompts, is_menu) = match &self.set.nodes[node].kind {
            NodeKind::Menu(m) => (&m.prompts, true),
            NodeKind::Collect(c) => (&c.prompts, false),
            _ => return,
        };
        let mut play = before;
        play.extend(names(prompts, &self.language));
        self.deadline = None;
        self.state = if is_menu {
            State::Menu {
                node,
                attempt,
                prompting: true,
            }
        } else {
            State::Collect {
                node,
                attempt,
                digits: String::new(),
                prompting: true,
            }
        };
        // Keys typed during an earlier play act now, before the prompt.
        if !self.typeahead.is_empty() {
            let keys = std::mem::take(&mut self.typeahead);
            for d in keys.chars() {
                if !self.awaiting_input() || self.node() != Some(node) {
                    break;
                }
                let before = self.attempt_id;
                let mut sub = Vec::new();
                let _ = self.handle_typeahead(d, now, &mut sub);
                let moved = self.attempt_id != before || !self.awaiting_input();
                if moved {
                    out.extend(sub.into_iter().filter(|a| *a != Action::StopPlayback));
                    return;
                }
            }
            if matches!(self.state, State::Collect { ref digits, .. } if !digits.is_empty()) {
                return;
            }
        }
        out.push(Action::Play(play));
    }

    fn handle_typeahead(&mut self, d: char, now: Instant, out: &mut Vec<Action>) -> Option<()> {
        match self.state.clone() {
            State::Menu { node, attempt, .. } => self.menu_key(node, attempt, d, now, out),
            State::Collect {
                node,
                attempt,
                digits,
                prompting,
            } => self.collect_key(node, attempt, digits, prompting, d, now, out),
            _ => {}
        }
        Some(())
    }

    fn step(&mut self) {
        self.steps += 1;
        self.attempt_id += 1;
    }

    fn watchdog_due(&self) -> bool {
        let bound = self.set.flows[self.line].max_steps_to_human;
        self.watchdog_on
            && self.human_offered.is_none()
            && !self.watchdog_used
            && self.steps >= bound
    }

    fn watchdog(&mut self, at: NodeId, now: Instant, out: &mut Vec<Action>) {
        self.watchdog_used = true;
        self.typeahead.clear();
        // The node the caller would have heard is where the watchdog stepped in.
        self.path.push(self.set.nodes[at].full_name.clone());
        let to = self.set.escape_to(self.set.nodes[at].flow);
        self.go("watchdog", to, now, out);
    }

    fn wall(&self, now: Instant) -> Timestamp {
        match self.start {
            Some((t0, wall)) => {
                let elapsed = SignedDuration::try_from(now.saturating_duration_since(t0))
                    .unwrap_or(SignedDuration::ZERO);
                wall.checked_add(elapsed).unwrap_or(wall)
            }
            None => Timestamp::UNIX_EPOCH,
        }
    }

    /// Arrives at a node: passes schedules and branches, starts what the caller meets.
    fn enter(&mut self, mut target: Option<NodeId>, now: Instant, out: &mut Vec<Action>) {
        let mut hops = 0;
        loop {
            let Some(node) = target else {
                // Only an invalid flow gets here; the server refuses to run those.
                return self.end(out);
            };
            hops += 1;
            if hops > MAX_HOPS {
                return self.end(out);
            }
            let n = &self.set.nodes[node];
            if n.class() == Class::CallerFacing && self.watchdog_due() {
                return self.watchdog(node, now, out);
            }
            for (name, value) in &n.set {
                if name == crate::flow::variables::LANGUAGE {
                    self.language = value.clone();
                }
                // (The language too: the agent who answers sees it, and the call's record.)
                self.vars.insert(name.clone(), value.clone());
            }
            match &n.kind {
                NodeKind::Schedule(s) => {
                    self.path.push(n.full_name.clone());
                    let open = s
                        .calendar
                        .as_ref()
                        .and_then(|(name, _)| self.calendars.get(name))
                        .is_none_or(|c| c.is_open(self.wall(now)));
                    let (label, next) = if open {
                        ("open", &s.open)
                    } else {
                        ("closed", &s.closed)
                    };
                    self.path.push(label.to_string());
                    target = self::target(next);
                }
                NodeKind::Switch(s) => {
                    self.path.push(n.full_name.clone());
                    let (label, next) = if self.switch_on(s.name()) {
                        ("on", &s.on)
                    } else {
                        ("off", &s.off)
                    };
                    self.path.push(label.to_string());
                    target = self::target(next);
                }
                NodeKind::Branch(b) => {
                    self.path.push(n.full_name.clone());
                    let value = b.variable.as_ref().and_then(|(v, _)| self.value(v, now));
                    let (action, next) = b.select(value.as_deref());
                    self.path.push(action.to_string());
                    target = next.and_then(|t| t.node);
                }
                NodeKind::Lookup(l) => {
                    self.path.push(n.full_name.clone());
                    let timeout_ms = self.set.lookup_millis(l.endpoint()) as u32;
                    let mut params = vec![
                        (
                            crate::flow::variables::CALLER_NUMBER.to_string(),
                            self.caller_number.clone(),
                        ),
                        (
                            crate::flow::variables::LINE.to_string(),
                            self.line_name.clone(),
                        ),
                    ];
                    for (name, _) in &l.send {
                        params.push((name.clone(), self.value(name, now).unwrap_or_default()));
                    }
                    self.deadline = Some(now + Duration::from_millis(u64::from(timeout_ms)));
                    self.state = State::Lookup { node };
                    out.push(Action::Lookup {
                        endpoint: l.endpoint().to_string(),
                        params,
                        timeout_ms,
                    });
                    return;
                }
                NodeKind::Play(p) => {
                    self.path.push(n.full_name.clone());
                    self.step();
                    self.state = State::Play { node };
                    out.push(Action::Play(names(&p.prompts, &self.language)));
                    return;
                }
                NodeKind::Menu(_) | NodeKind::Collect(_) => {
                    return self.start_attempt(node, 0, Vec::new(), now, out);
                }
                NodeKind::Returning(r) => {
                    self.path.push(n.full_name.clone());
                    let (label, next) = match self.item.clone() {
                        Some(item) => {
                            let at = item
                                .created_at
                                .parse::<Timestamp>()
                                .map(|t| {
                                    let local = t.to_zoned(self.timezone.clone());
                                    format!("{:02}:{:02}", local.hour(), local.minute())
                                })
                                .unwrap_or_default();
                            for (name, value) in crate::flow::node::FOLLOW_UP_VARIABLES
                                .iter()
                                .zip([item.kind, item.state, item.owner.unwrap_or_default(), at])
                            {
                                self.vars.insert(name.to_string(), value);
                            }
                            ("open", &r.open)
                        }
                        None => ("none", &r.none),
                    };
                    self.path.push(label.to_string());
                    target = self::target(next);
                }
                NodeKind::Withdraw(w) => {
                    self.path.push(n.full_name.clone());
                    if let Some(item) = self.item.take() {
                        out.push(Action::Withdraw { follow_up: item.id });
                    }
                    self.path.push("withdrawn".to_string());
                    target = self::target(&w.next);
                }
                NodeKind::Queue(q) | NodeKind::Owner(q) => {
                    self.reach(node, Outcome::Queue, now);
                    self.human_offered.get_or_insert((self.steps, now));
                    self.state = State::Human { node };
                    // An owner node asks first for whoever has the caller's open follow-up.
                    let first = match (&n.kind, &self.item) {
                        (NodeKind::Owner(_), Some(i)) => Some(First {
                            follow_up: i.id,
                            owner: i.owner.clone(),
                            queue: i.queue.clone(),
                        }),
                        _ => None,
                    };
                    out.push(Action::EnterQueue {
                        queue: q.queue.as_ref().map(|q| q.0.clone()).unwrap_or_default(),
                        priority: q.priority,
                        max_wait_s: q.max_wait_s,
                        announce_position_every_s: q.announce_position_every_s,
                        offer_callback_after_s: q.offer_callback_after_s,
                        record: q.record,
                        first,
                    });
                    return;
                }
                NodeKind::Transfer(t) => {
                    self.reach(node, Outcome::Transfer, now);
                    self.human_offered.get_or_insert((self.steps, now));
                    self.state = State::Human { node };
                    out.push(Action::Transfer {
                        to: t.to.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                        ring_timeout_s: t.ring_timeout_s,
                    });
                    return;
                }
                NodeKind::Voicemail(v) => {
                    self.reach(node, Outcome::Voicemail, now);
                    self.state = State::Voicemail {
                        node,
                        phase: Message::Greeting,
                    };
                    out.push(Action::RecordVoicemail {
                        mailbox: v.mailbox.as_ref().map(|m| m.0.clone()).unwrap_or_default(),
                        prompts: names(&v.prompts, &self.language),
                        max_length_s: v.max_length_s,
                    });
                    return;
                }
                NodeKind::Callback(c) => {
                    self.reach(node, Outcome::Callback, now);
                    self.state = State::FollowUp { node };
                    out.push(Action::RegisterCallback {
                        queue: c.queue.as_ref().map(|q| q.0.clone()).unwrap_or_default(),
                    });
                    return;
                }
                NodeKind::Hangup(h) => {
                    self.reach(node, Outcome::Hangup, now);
                    if h.prompts.is_empty() {
                        return self.end(out);
                    }
                    self.state = State::Goodbye { node };
                    out.push(Action::Play(names(&h.prompts, &self.language)));
                    return;
                }
            }
        }
    }

    /// Records the node and the first outcome the call reached.
    fn reach(&mut self, node: NodeId, outcome: Outcome, now: Instant) {
        self.path.push(self.set.nodes[node].full_name.clone());
        self.deadline = None;
        // A human or follow-up reached after a queue timed out is the newer outcome.
        self.outcome = Some((outcome, node, now));
    }
}

fn target(t: &Option<Target>) -> Option<NodeId> {
    t.as_ref().and_then(|t| t.node)
}

/// The prompts as a caller speaking `language` hears them (the validator proved each exists;
/// one that does not is played as written).
fn names(prompts: &[Prompt], language: &str) -> Vec<String> {
    prompts
        .iter()
        .map(|p| p.name_in(language).unwrap_or_else(|| p.name.clone()))
        .collect()
}

#[cfg(test)]
mod tests;

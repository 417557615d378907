//! A call's session around its flow: where the caller is with respect to the humans (led by
//! the flow, waiting in a queue, ringing a transfer target, talking, or on hold while their
//! agent passes them on), which playback is current, the queue wait's announcements and
//! callback offer, the conversation's recording as the agent controls it, and what the flow
//! engine's actions need of the line (a voicemail only onto a disk that takes it, a callback
//! only to a number). Pure: what reached the call goes in ([`Heard`], the time, or the
//! engine's [`Action`]s with the line's [`Facts`]), what to do comes out ([`Do`]); the call
//! task carries it out (the media loop, the routing core, the store, the call record) and
//! feeds the flow engine the events meant for it ([`Do::Engine`]).

use std::time::{Duration, Instant};

use super::announce;
use super::waiting::{Rules, Waiting};
use super::{Action, Event, First};
use crate::config::RecordMode;
use crate::media::recording_control::{Control, Step, Want};

/// What reached the call, besides the caller hanging up and the other ways it ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// The playback with this tag finished.
    PromptDone(u64),
    /// The caller pressed a key.
    Digit(char),
    /// Nobody is logged in to serve the queue.
    NoAgents,
    /// An agent answered: the caller is bridged to her, recorded as `record` says.
    AgentAnswered { agent: String, record: RecordMode },
    /// The agent passed the caller on to another queue.
    Transferred {
        queue: String,
        by: String,
        note: Option<String>,
    },
    /// The agent passes the caller on to `to`: on hold while it rings.
    Passing {
        to: String,
        by: String,
        note: Option<String>,
    },
    /// Their agent is gone: first in line in `queue` again.
    Requeued { queue: String },
    /// The number outside the agent passed them on to answered.
    PassedOutside { to: String },
    /// The agent calls someone about the caller first: on hold.
    Held,
    /// The agent handed them over to whom she called about them (`agent`: a colleague).
    Handed {
        to: String,
        agent: Option<String>,
        by: String,
        record: Option<RecordMode>,
    },
    /// The transfer target answered.
    TransferAnswered { to: String },
    /// The transfer did not connect.
    TransferFailed,
}

/// What became of a waiting caller's "call me back".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Stored, and their place in line is now the callback's.
    Taken,
    /// Not stored (the disk): they keep waiting, and are told so.
    NotSaved,
    /// An agent already rings for them: they keep waiting.
    TooLate,
}

/// What the call task does.
#[derive(Debug, Clone, PartialEq)]
pub enum Do {
    /// Hand this event to the flow engine.
    Engine(Event),
    /// Play the hold music of this queue (`None`: the line's), looped, as `tag`.
    Hold { queue: Option<String>, tag: u64 },
    /// Play these prompts once, as `tag`.
    Say { prompts: Vec<String>, tag: u64 },
    /// Stop what plays.
    Stop,
    /// The caller's wait in a queue, which began at `since`, is over (for the wait metric).
    Waited { since: Instant },
    /// Take the caller out of the routing core's queue.
    LeaveQueue,
    /// Store a callback request for `queue` and turn the caller's place into it; answer with
    /// [`Session::callback`].
    KeepAsCallback { queue: String },
    /// An announcement or the offer is due: ask where the caller stands, then
    /// [`Session::announce`] what [`Waiting::announce`] says.
    AskStanding,
    /// Start recording the conversation, and play the recording notice as `notice`.
    StartRecording { notice: u64 },
    /// Pause (`true`) or resume the recording.
    PauseRecording(bool),
    /// On the call record: passed on to `to` by `by`.
    Passed {
        to: String,
        by: String,
        note: Option<String>,
    },
    /// On the call record: connected to this agent.
    Answered { agent: String },
    /// On the call record: handed over (to a colleague, when `agent`).
    HandedTo { agent: Option<String> },
    /// On the call record: the transfer target answered.
    TransferConnected { to: String },
    /// Save the call record as it now is.
    SaveRecord,
    /// Put the caller in the routing core's queue (the hold music comes as `Hold`).
    Enqueue {
        queue: String,
        priority: u32,
        record: Option<RecordMode>,
        first: Option<First>,
    },
    /// Close the returning caller's follow-up.
    Withdraw { follow_up: i64 },
    /// Ask a lookup endpoint; its answer is an engine event.
    Lookup {
        endpoint: String,
        params: Vec<(String, String)>,
    },
    /// Play the ringback, looped, as `tag`.
    Ringback { tag: u64 },
    /// Place the flow's transfer; its outcome comes back as `Heard`.
    Transfer { to: String, ring_timeout_s: u32 },
    /// Record the caller's message into `mailbox`.
    RecordMessage { mailbox: String, max_length_s: u32 },
    /// The message is over: keep it, and tell the engine (`Finished`, or `SaveFailed`).
    FinishMessage,
    /// Store a callback request for `queue` before the caller is told: then
    /// `Engine(Finished)`, or `Engine(SaveFailed)` when it could not be stored.
    SaveCallback { queue: String },
    /// Hang up on the caller.
    HangUp,
}

/// What the session asks of the line when the flow acts.
pub trait Facts {
    /// The queue announcements are installed in `language`.
    fn speaks(&self, language: &str) -> bool;
    /// Why the `[callbacks]` policy forbids calling this caller back, if it does.
    fn undialable(&self) -> Option<String>;
    /// The data folder takes writes (a voicemail can be kept).
    fn disk_ok(&self) -> bool;
    /// A `hotline probe` call: nobody calls it back.
    fn probe(&self) -> bool;
    /// The caller gave no number to call back.
    fn anonymous(&self) -> bool;
}

/// The session's state.
#[derive(Debug, Default)]
pub struct Session {
    /// The current playback's tag: a `PromptDone` of any other means nothing.
    tag: u64,
    waiting: Option<Waiting>,
    /// How the caller's queue node lets them wait (for a queue they are passed on to).
    rules: Rules,
    /// The queue the caller last waited in: its hold music is theirs while they are held.
    last_queue: Option<String>,
    /// The recording notice's tag while it plays.
    notice: Option<u64>,
    taping: Control,
    recording: bool,
    transferring: bool,
    /// With an agent (or a transfer target): the flow's part is done; the call lasts until
    /// either side hangs up.
    bridged: bool,
    /// On hold while their agent passes them on, or calls someone about them.
    passing: bool,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Talking to a human: the flow's end does not end the call.
    pub fn bridged(&self) -> bool {
        self.bridged
    }

    pub fn waiting(&self) -> Option<&Waiting> {
        self.waiting.as_ref()
    }

    /// The queue the caller last waited in (its hold music is theirs while held).
    pub fn last_queue(&self) -> Option<&str> {
        self.last_queue.as_deref()
    }

    /// The conversation's paused time so far.
    pub fn paused(&self, now: Instant) -> Duration {
        self.taping.paused(now)
    }

    /// When the session next needs the time.
    pub fn next_wake(&self) -> Option<Instant> {
        self.waiting.as_ref().and_then(Waiting::next_wake)
    }

    /// A new playback of the flow's (a prompt, a greeting) or none (stopped): its tag.
    pub fn playback(&mut self) -> u64 {
        self.tag += 1;
        self.tag
    }

    /// The flow put the caller in a queue: the hold music's tag.
    pub fn enter_queue(&mut self, waiting: Waiting, rules: Rules) -> u64 {
        self.last_queue = Some(waiting.queue.clone());
        self.rules = rules;
        self.waiting = Some(waiting);
        self.playback()
    }

    /// The flow transfers the caller: the ringback's tag.
    pub fn transfer(&mut self) -> u64 {
        self.transferring = true;
        self.playback()
    }

    /// What the flow engine asked, as things to do; `language` is the caller's.
    pub fn act(
        &mut self,
        action: Action,
        line: &impl Facts,
        language: &str,
        now: Instant,
    ) -> Vec<Do> {
        match action {
            Action::Play(prompts) => {
                let tag = self.playback();
                vec![Do::Say { prompts, tag }]
            }
            Action::StopPlayback => {
                self.playback();
                vec![Do::Stop]
            }
            Action::EnterQueue {
                queue,
                priority,
                max_wait_s,
                announce_position_every_s,
                offer_callback_after_s,
                record,
                first,
            } => {
                if let Some(f) = &first {
                    tracing::info!(
                        follow_up = f.follow_up,
                        owner = f.owner.as_deref().unwrap_or("nobody yet"),
                        "a returning caller asks for whoever has their follow-up"
                    );
                }
                tracing::info!(queue, max_wait_s, "caller waits for a live human");
                // A callback is offered only to a caller the [callbacks] policy lets us dial:
                // a promise to call back a number we may not is no promise.
                let why = line.undialable();
                if let Some(why) = &why
                    && offer_callback_after_s > 0
                {
                    tracing::info!("no callback offer: {why}");
                }
                // Without the announcement prompts, the caller hears hold music only.
                let (waiting, rules) = Waiting::enter(
                    &queue,
                    now,
                    max_wait_s,
                    announce_position_every_s,
                    offer_callback_after_s,
                    line.speaks(language),
                    why.is_none(),
                    language,
                );
                let tag = self.enter_queue(waiting, rules);
                vec![
                    Do::Hold {
                        queue: Some(queue.clone()),
                        tag,
                    },
                    Do::Enqueue {
                        queue,
                        priority,
                        record,
                        first,
                    },
                ]
            }
            Action::Withdraw { follow_up } => vec![Do::Withdraw { follow_up }],
            Action::Lookup {
                endpoint, params, ..
            } => vec![Do::Lookup { endpoint, params }],
            Action::Transfer { to, ring_timeout_s } => {
                tracing::info!(to, ring_timeout_s, "transferring to a live human elsewhere");
                let tag = self.transfer();
                vec![Do::Ringback { tag }, Do::Transfer { to, ring_timeout_s }]
            }
            Action::RecordVoicemail {
                mailbox,
                mut prompts,
                max_length_s,
            } => {
                if !line.disk_ok() {
                    // Not asked to speak into a disk known to refuse the message.
                    tracing::warn!(mailbox, "no voicemail: the data folder cannot be written");
                    return vec![Do::Engine(Event::SaveFailed)];
                }
                tracing::debug!(mailbox, max_length_s, "voicemail greeting");
                prompts.push(crate::media::player::BEEP.to_string());
                let tag = self.playback();
                vec![Do::Say { prompts, tag }]
            }
            Action::StartRecording {
                mailbox,
                max_length_s,
            } => {
                tracing::info!(mailbox, "recording a voicemail");
                vec![Do::RecordMessage {
                    mailbox,
                    max_length_s,
                }]
            }
            Action::StopRecording => vec![Do::FinishMessage],
            Action::RegisterCallback { queue } => {
                if line.probe() {
                    // Confirmed as to any caller, but nobody will call a probe back.
                    tracing::info!(queue, "a probe call's callback request is not kept");
                    return vec![Do::Engine(Event::Finished)];
                }
                if line.anonymous() {
                    // No number to call: promising a callback would be a black hole. Told
                    // so, and put through to a human instead.
                    tracing::info!(queue, "an anonymous caller cannot be called back");
                    return vec![Do::Engine(Event::SaveFailed)];
                }
                vec![Do::SaveCallback { queue }]
            }
            Action::Hangup => vec![Do::HangUp],
        }
    }

    /// The caller hung up: when their queue wait began (if they waited), and whether they
    /// abandoned (left while waiting for a human).
    pub fn caller_left(&self) -> (Option<Instant>, bool) {
        let since = self.waiting.as_ref().map(|w| w.entered);
        let abandoned = (self.waiting.is_some() || self.transferring) && !self.bridged;
        (since, abandoned)
    }

    /// The time has come for what [`Session::next_wake`] said (or the engine's own timeout).
    pub fn time(&mut self, now: Instant) -> Vec<Do> {
        match &self.waiting {
            Some(w) if w.timed_out(now) => {
                let since = w.entered;
                self.waiting = None;
                vec![
                    Do::Waited { since },
                    Do::LeaveQueue,
                    Do::Engine(Event::QueueTimedOut),
                ]
            }
            Some(w) if w.announcement_due(now) => vec![Do::AskStanding],
            _ => vec![Do::Engine(Event::Timeout)],
        }
    }

    /// The waiting caller's standing was asked (`Do::AskStanding`): what they hear.
    pub fn waiting_mut(&mut self) -> Option<&mut Waiting> {
        self.waiting.as_mut()
    }

    /// An announcement to play instead of the hold music until it ends.
    pub fn announce(&mut self, prompts: Vec<String>) -> Vec<Do> {
        let tag = self.playback();
        if let Some(w) = self.waiting.as_mut() {
            w.speaking(tag);
        }
        vec![Do::Say { prompts, tag }]
    }

    /// What became of the caller's "call me back" (`Do::KeepAsCallback`).
    pub fn callback(&mut self, kept: Kept) -> Vec<Do> {
        match kept {
            Kept::NotSaved if self.waiting.is_some() => {
                // Told at once, then back to the hold music, in line as before.
                let tag = self.playback();
                let Some(w) = self.waiting.as_mut() else {
                    return Vec::new();
                };
                w.speaking(tag);
                let sorry = announce::in_language(&w.language, announce::NOT_SAVED);
                vec![Do::Say {
                    prompts: vec![sorry],
                    tag,
                }]
            }
            Kept::Taken => {
                let mut out = Vec::new();
                if let Some(w) = self.waiting.take() {
                    out.push(Do::Waited { since: w.entered });
                }
                out.push(Do::Engine(Event::CallbackChosen));
                out
            }
            Kept::NotSaved | Kept::TooLate => Vec::new(),
        }
    }

    /// The agent pressed a key on her phone (`pause_keys` pause and resume the recording).
    pub fn agent_key(&mut self, key: char, pause_keys: &str, now: Instant) -> Vec<Do> {
        let asked = self.taping.key(key, pause_keys, now);
        self.recording_step(asked)
    }

    /// The desk asks to record, pause or toggle: what to do, and whether it records now (or
    /// why it cannot).
    pub fn want_recording(&mut self, want: Want, now: Instant) -> (Vec<Do>, Result<bool, String>) {
        let asked = self.taping.want(want, now);
        let out = self.recording_step(Some(asked));
        let on = self.taping.recording();
        let answer = asked.map(|_| on).map_err(String::from);
        (out, answer)
    }

    fn recording_step(&mut self, asked: Option<Result<Step, &'static str>>) -> Vec<Do> {
        match asked {
            Some(Ok(Step::Start)) if !self.recording => {
                tracing::info!("the agent starts the recording");
                self.start_recording(vec![Do::SaveRecord])
            }
            Some(Ok(step @ (Step::Pause | Step::Resume))) => {
                let paused = step == Step::Pause;
                tracing::info!(paused, "the agent pauses or resumes the recording");
                vec![Do::PauseRecording(paused)]
            }
            Some(Err(why)) => {
                tracing::info!(why, "the agent's recording keys do nothing");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The recording starts (its notice plays); `then` follows.
    fn start_recording(&mut self, then: Vec<Do>) -> Vec<Do> {
        self.recording = true;
        let notice = self.playback();
        self.notice = Some(notice);
        let mut out = vec![Do::StartRecording { notice }];
        out.extend(then);
        out
    }

    /// What reached the call. `language`: the caller's, for a queue they wait in again.
    pub fn heard(&mut self, heard: Heard, language: &str, now: Instant) -> Vec<Do> {
        match heard {
            Heard::PromptDone(t) if t == self.tag => {
                let spoken = self
                    .waiting
                    .as_mut()
                    .and_then(|w| w.spoken(t).then(|| w.queue.clone()));
                match spoken {
                    // An announcement ended: back to the hold music.
                    Some(queue) => {
                        let tag = self.playback();
                        vec![Do::Hold {
                            queue: Some(queue),
                            tag,
                        }]
                    }
                    None => vec![Do::Engine(Event::PromptFinished)],
                }
            }
            Heard::PromptDone(t) => {
                if self.notice == Some(t) {
                    self.notice = None;
                }
                Vec::new()
            }
            Heard::Digit(_) if self.bridged => Vec::new(),
            Heard::Digit(d)
                if self
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.takes_callback_key(d)) =>
            {
                let queue = self
                    .waiting
                    .as_ref()
                    .map(|w| w.queue.clone())
                    .unwrap_or_default();
                vec![Do::KeepAsCallback { queue }]
            }
            Heard::Digit(d) => vec![Do::Engine(Event::Digit(d))],
            Heard::NoAgents => {
                let mut out = Vec::new();
                if let Some(w) = self.waiting.take() {
                    out.push(Do::Waited { since: w.entered });
                }
                out.push(Do::Engine(Event::QueueTimedOut));
                out
            }
            Heard::AgentAnswered { agent, record } if self.waiting.is_some() || self.passing => {
                let mut out = Vec::new();
                if let Some(w) = self.waiting.take() {
                    out.push(Do::Waited { since: w.entered });
                }
                self.passing = false;
                self.bridged = true;
                out.push(Do::Answered { agent });
                let start = self.taping.answered(record) == Step::Start;
                self.playback(); // the hold music's end, if it comes, means nothing now
                // On record now, not at hang-up: supervisors see who took the call.
                let then = vec![Do::SaveRecord, Do::Engine(Event::Connected)];
                if start && !self.recording {
                    out.extend(self.start_recording(then));
                } else {
                    out.extend(then);
                }
                out
            }
            Heard::AgentAnswered { .. } => Vec::new(),
            Heard::Transferred { queue, by, note } if self.bridged => {
                self.bridged = false;
                let tag = self.playback();
                self.last_queue = Some(queue.clone());
                self.waiting = Some(Waiting::again(&queue, now, self.rules, language));
                vec![
                    Do::Passed {
                        to: format!("queue:{queue}"),
                        by,
                        note,
                    },
                    Do::SaveRecord,
                    Do::Hold {
                        queue: Some(queue),
                        tag,
                    },
                ]
            }
            Heard::Passing { to, by, note } if self.bridged => {
                self.bridged = false;
                self.passing = true;
                let tag = self.playback();
                vec![
                    Do::Passed { to, by, note },
                    Do::SaveRecord,
                    Do::Hold {
                        queue: self.last_queue.clone(),
                        tag,
                    },
                ]
            }
            Heard::Requeued { queue } if self.passing => {
                self.passing = false;
                self.waiting = Some(Waiting::again(&queue, now, self.rules, language));
                Vec::new()
            }
            Heard::PassedOutside { .. } if self.passing => {
                self.passing = false;
                self.bridged = true;
                self.playback(); // the hold music's end, if it comes, means nothing now
                Vec::new()
            }
            Heard::Held if self.bridged => {
                self.bridged = false;
                self.passing = true;
                let tag = self.playback();
                vec![Do::Hold {
                    queue: self.last_queue.clone(),
                    tag,
                }]
            }
            Heard::Handed {
                to,
                agent,
                by,
                record,
            } if self.bridged || self.passing => {
                self.bridged = true;
                self.passing = false;
                self.playback(); // the hold music's end, if it comes, means nothing now
                let mut out = vec![Do::Passed { to, by, note: None }, Do::HandedTo { agent }];
                let start = record.is_some_and(|r| self.taping.answered(r) == Step::Start);
                if start && !self.recording {
                    out.extend(self.start_recording(vec![Do::SaveRecord]));
                } else {
                    out.push(Do::SaveRecord);
                }
                out
            }
            Heard::TransferAnswered { to } if self.transferring => {
                self.transferring = false;
                self.bridged = true;
                self.playback();
                vec![
                    Do::TransferConnected { to },
                    Do::SaveRecord,
                    Do::Engine(Event::Connected),
                ]
            }
            Heard::TransferFailed if self.transferring => {
                self.transferring = false;
                self.playback();
                vec![Do::Stop, Do::Engine(Event::TransferFailed)]
            }
            Heard::Transferred { .. }
            | Heard::Passing { .. }
            | Heard::Requeued { .. }
            | Heard::PassedOutside { .. }
            | Heard::Held
            | Heard::Handed { .. }
            | Heard::TransferAnswered { .. }
            | Heard::TransferFailed => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
    fn t0() -> Instant {
        Instant::now()
    }

    /// A caller the flow put in "support": announcements every 60 s, a callback offered after
    /// 30 s, a 10-minute wait.
    fn waiting_in_support(t0: Instant) -> Session {
        let mut s = Session::new();
        let (w, rules) = Waiting::enter("support", t0, 600, 60, 30, true, true, "en");
        let tag = s.enter_queue(w, rules);
        assert_eq!(tag, 1);
        s
    }

    fn answered(agent: &str, record: RecordMode) -> Heard {
        Heard::AgentAnswered {
            agent: agent.into(),
            record,
        }
    }

    #[test]
    fn a_waiting_caller_hears_their_place_then_the_hold_music_again_and_times_out() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        let first = s.next_wake().expect("an announcement is due");
        assert_eq!(first, t0 + Duration::from_secs(1));
        assert_eq!(s.time(first), vec![Do::AskStanding]);
        let w = s.waiting_mut().expect("waiting");
        let said = w
            .announce(
                first,
                Some(super::super::waiting::Standing {
                    ahead: 2,
                    wait: None,
                }),
            )
            .expect("something to say");
        let out = s.announce(said.prompts.clone());
        let Some(Do::Say { tag, .. }) = out.first() else {
            panic!("{out:?}")
        };
        // The announcement ends: back to the hold music of the caller's queue.
        assert_eq!(
            s.heard(Heard::PromptDone(*tag), "en", first),
            vec![Do::Hold {
                queue: Some("support".into()),
                tag: tag + 1
            }]
        );
        // The hold music's own end (an old tag) means nothing.
        assert!(s.heard(Heard::PromptDone(1), "en", first).is_empty());
        // Ten minutes on, the wait is over: out of the queue, the flow's on_timeout way.
        let end = t0 + Duration::from_secs(600);
        assert_eq!(
            s.time(end),
            vec![
                Do::Waited { since: t0 },
                Do::LeaveQueue,
                Do::Engine(Event::QueueTimedOut)
            ]
        );
        assert!(s.waiting().is_none());
        assert_eq!(s.time(end), vec![Do::Engine(Event::Timeout)]);
    }

    #[test]
    fn an_agents_answer_bridges_the_caller_records_as_the_queue_says_and_saves_the_record() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        let now = t0 + Duration::from_secs(20);
        let out = s.heard(answered("alice", RecordMode::On), "en", now);
        assert_eq!(
            out,
            vec![
                Do::Waited { since: t0 },
                Do::Answered {
                    agent: "alice".into()
                },
                Do::StartRecording { notice: 3 },
                Do::SaveRecord,
                Do::Engine(Event::Connected),
            ]
        );
        assert!(s.bridged());
        // Keys are the agent's business now; a second answer means nothing.
        assert!(s.heard(Heard::Digit('5'), "en", now).is_empty());
        assert!(
            s.heard(answered("bob", RecordMode::On), "en", now)
                .is_empty()
        );
        // Her pause keys (*7) pause, and again resume.
        assert!(s.agent_key('*', "*7", now).is_empty());
        assert_eq!(s.agent_key('7', "*7", now), vec![Do::PauseRecording(true)]);
        let later = now + Duration::from_secs(5);
        assert!(s.agent_key('*', "*7", later).is_empty());
        assert_eq!(
            s.agent_key('7', "*7", later),
            vec![Do::PauseRecording(false)]
        );
        assert_eq!(
            s.paused(now + Duration::from_secs(9)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn an_unrecorded_queue_records_only_when_the_agent_asks_if_it_may() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        let out = s.heard(answered("alice", RecordMode::OnDemand), "en", t0);
        assert!(!out.iter().any(|d| matches!(d, Do::StartRecording { .. })));
        let (out, on) = s.want_recording(Want::On, t0);
        assert!(
            matches!(out.first(), Some(Do::StartRecording { .. })),
            "{out:?}"
        );
        assert_eq!(on, Ok(true));
        // Never twice.
        let (out, on) = s.want_recording(Want::On, t0);
        assert!(out.is_empty());
        assert_eq!(on, Ok(true));

        let mut off = waiting_in_support(t0);
        off.heard(answered("alice", RecordMode::Off), "en", t0);
        let (out, on) = off.want_recording(Want::On, t0);
        assert!(out.is_empty());
        assert!(on.is_err(), "a queue that is not recorded says why");
    }

    #[test]
    fn passed_on_to_another_queue_the_caller_waits_there_by_the_same_rules() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        s.heard(answered("alice", RecordMode::Off), "en", t0);
        let now = t0 + Duration::from_secs(100);
        let out = s.heard(
            Heard::Transferred {
                queue: "billing".into(),
                by: "alice".into(),
                note: Some("invoice".into()),
            },
            "es",
            now,
        );
        assert_eq!(
            out[..2],
            [
                Do::Passed {
                    to: "queue:billing".into(),
                    by: "alice".into(),
                    note: Some("invoice".into())
                },
                Do::SaveRecord
            ]
        );
        assert!(matches!(&out[2], Do::Hold { queue: Some(q), .. } if q == "billing"));
        assert!(!s.bridged());
        let w = s.waiting().expect("waiting again");
        assert_eq!((w.queue.as_str(), w.language.as_str()), ("billing", "es"));
        // The same ten minutes, from now.
        assert!(!w.timed_out(now + Duration::from_secs(599)));
        assert!(w.timed_out(now + Duration::from_secs(600)));
    }

    #[test]
    fn held_while_the_agent_calls_someone_then_handed_over_or_back_in_line() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        s.heard(answered("alice", RecordMode::Off), "en", t0);
        let out = s.heard(Heard::Held, "en", t0);
        assert!(matches!(&out[..], [Do::Hold { queue: Some(q), .. }] if q == "support"));
        assert!(!s.bridged());
        // Handed over to a colleague whose queue records.
        let out = s.heard(
            Heard::Handed {
                to: "agent:bob".into(),
                agent: Some("bob".into()),
                by: "alice".into(),
                record: Some(RecordMode::On),
            },
            "en",
            t0,
        );
        assert!(s.bridged());
        assert!(out.contains(&Do::HandedTo {
            agent: Some("bob".into())
        }));
        assert!(out.iter().any(|d| matches!(d, Do::StartRecording { .. })));
        // Passed on to someone who is then gone: first in line again.
        s.heard(
            Heard::Passing {
                to: "agent:carol".into(),
                by: "bob".into(),
                note: None,
            },
            "en",
            t0,
        );
        assert!(
            s.heard(
                Heard::Requeued {
                    queue: "support".into()
                },
                "en",
                t0
            )
            .is_empty()
        );
        assert!(s.waiting().is_some() && !s.bridged());
        // Out of place: a hand-over while waiting means nothing.
        let stray = Heard::Handed {
            to: "agent:dan".into(),
            agent: None,
            by: "x".into(),
            record: None,
        };
        assert!(s.heard(stray, "en", t0).is_empty());
    }

    #[test]
    fn the_callback_key_counts_once_offered_and_a_failed_save_is_said_and_waiting_goes_on() {
        let t0 = t0();
        let mut s = waiting_in_support(t0);
        // Before the offer the key is the flow's.
        assert_eq!(
            s.heard(Heard::Digit('1'), "en", t0),
            vec![Do::Engine(Event::Digit('1'))]
        );
        let offer_at = t0 + Duration::from_secs(30);
        let w = s.waiting_mut().expect("waiting");
        let said = w
            .announce(
                offer_at,
                Some(super::super::waiting::Standing {
                    ahead: 0,
                    wait: None,
                }),
            )
            .expect("the offer");
        assert!(said.offers);
        s.announce(said.prompts);
        let key = announce::CALLBACK_KEY;
        assert_eq!(
            s.heard(Heard::Digit(key), "en", offer_at),
            vec![Do::KeepAsCallback {
                queue: "support".into()
            }]
        );
        let out = s.callback(Kept::NotSaved);
        assert!(
            matches!(&out[..], [Do::Say { prompts, .. }] if prompts[0].contains("not_saved")),
            "{out:?}"
        );
        assert!(s.waiting().is_some(), "still in line");
        assert!(s.callback(Kept::TooLate).is_empty());
        assert_eq!(
            s.callback(Kept::Taken),
            vec![Do::Waited { since: t0 }, Do::Engine(Event::CallbackChosen)]
        );
        assert!(s.waiting().is_none());
    }

    #[test]
    fn a_transfer_connects_or_fails_back_to_the_flow_and_a_caller_leaving_while_it_rings_abandons()
    {
        let t0 = t0();
        let mut s = Session::new();
        s.transfer();
        assert_eq!(s.caller_left(), (None, true), "left while it rang");
        assert_eq!(
            s.heard(Heard::TransferFailed, "en", t0),
            vec![Do::Stop, Do::Engine(Event::TransferFailed)]
        );
        s.transfer();
        let out = s.heard(
            Heard::TransferAnswered {
                to: "sip:desk@x".into(),
            },
            "en",
            t0,
        );
        assert_eq!(out.last(), Some(&Do::Engine(Event::Connected)));
        assert!(s.bridged());
        assert_eq!(s.caller_left(), (None, false), "talked to someone");
        // Not transferring any more: a late failure means nothing.
        assert!(s.heard(Heard::TransferFailed, "en", t0).is_empty());
    }

    /// The line as a call finds it.
    #[derive(Default)]
    struct Given {
        silent: bool,
        undialable: bool,
        disk_full: bool,
        probe: bool,
        anonymous: bool,
    }

    impl Facts for Given {
        fn speaks(&self, language: &str) -> bool {
            !self.silent && language == "en"
        }
        fn undialable(&self) -> Option<String> {
            self.undialable.then(|| "not in [callbacks]".to_string())
        }
        fn disk_ok(&self) -> bool {
            !self.disk_full
        }
        fn probe(&self) -> bool {
            self.probe
        }
        fn anonymous(&self) -> bool {
            self.anonymous
        }
    }

    /// "support": its place told every `every` s, a callback offered after 30 s, a
    /// 10-minute wait.
    fn enter_support(every: u32) -> Action {
        Action::EnterQueue {
            queue: "support".into(),
            priority: 2,
            max_wait_s: 600,
            announce_position_every_s: every,
            offer_callback_after_s: 30,
            record: None,
            first: None,
        }
    }

    #[test]
    fn entering_a_queue_plays_its_hold_music_and_announces_only_what_the_line_can_keep() {
        let t0 = t0();
        let mut s = Session::new();
        let out = s.act(enter_support(60), &Given::default(), "en", t0);
        assert_eq!(
            out,
            vec![
                Do::Hold {
                    queue: Some("support".into()),
                    tag: 1
                },
                Do::Enqueue {
                    queue: "support".into(),
                    priority: 2,
                    record: None,
                    first: None
                }
            ]
        );
        assert_eq!(s.last_queue(), Some("support"));
        assert_eq!(
            s.next_wake(),
            Some(t0 + Duration::from_secs(1)),
            "told their place"
        );

        // No announcement prompts in the caller's language, a number we may not call back:
        // hold music until the wait runs out, no offer.
        for facts in [
            Given {
                silent: true,
                undialable: true,
                ..Given::default()
            },
            Given {
                undialable: true,
                ..Given::default()
            },
        ] {
            let mut s = Session::new();
            s.act(enter_support(60), &facts, "es", t0);
            assert_eq!(s.next_wake(), Some(t0 + Duration::from_secs(600)));
        }
        // A queue that announces no place but offers a callback after 30 s: offered only
        // to a number we may call back.
        for (undialable, wake) in [(false, 30), (true, 600)] {
            let mut s = Session::new();
            let facts = Given {
                undialable,
                ..Given::default()
            };
            s.act(enter_support(0), &facts, "en", t0);
            assert_eq!(s.next_wake(), Some(t0 + Duration::from_secs(wake)));
        }
    }

    #[test]
    fn a_voicemail_is_not_offered_onto_a_full_disk_and_a_callback_only_to_a_number() {
        let t0 = t0();
        let greeting = || Action::RecordVoicemail {
            mailbox: "sales".into(),
            prompts: vec!["vm/greeting".into()],
            max_length_s: 120,
        };
        let mut s = Session::new();
        assert_eq!(
            s.act(greeting(), &Given::default(), "en", t0),
            vec![Do::Say {
                prompts: vec!["vm/greeting".into(), crate::media::player::BEEP.into()],
                tag: 1
            }]
        );
        let full = Given {
            disk_full: true,
            ..Given::default()
        };
        assert_eq!(
            s.act(greeting(), &full, "en", t0),
            vec![Do::Engine(Event::SaveFailed)],
            "told at once, not after speaking into nothing"
        );
        assert_eq!(
            s.act(
                Action::StartRecording {
                    mailbox: "sales".into(),
                    max_length_s: 120
                },
                &Given::default(),
                "en",
                t0
            ),
            vec![Do::RecordMessage {
                mailbox: "sales".into(),
                max_length_s: 120
            }]
        );
        assert_eq!(
            s.act(Action::StopRecording, &Given::default(), "en", t0),
            vec![Do::FinishMessage]
        );

        let callback = || Action::RegisterCallback {
            queue: "support".into(),
        };
        assert_eq!(
            s.act(callback(), &Given::default(), "en", t0),
            vec![Do::SaveCallback {
                queue: "support".into()
            }]
        );
        let probe = Given {
            probe: true,
            ..Given::default()
        };
        assert_eq!(
            s.act(callback(), &probe, "en", t0),
            vec![Do::Engine(Event::Finished)],
            "a probe hears the confirmation; nothing is kept"
        );
        let anonymous = Given {
            anonymous: true,
            ..Given::default()
        };
        assert_eq!(
            s.act(callback(), &anonymous, "en", t0),
            vec![Do::Engine(Event::SaveFailed)],
            "no number: put through to a human instead"
        );
    }

    #[test]
    fn a_flow_transfer_rings_back_and_a_new_prompt_makes_the_old_ones_end_meaningless() {
        let t0 = t0();
        let mut s = Session::new();
        let play = s.act(
            Action::Play(vec!["menu".into()]),
            &Given::default(),
            "en",
            t0,
        );
        assert_eq!(
            play,
            vec![Do::Say {
                prompts: vec!["menu".into()],
                tag: 1
            }]
        );
        assert_eq!(
            s.act(Action::StopPlayback, &Given::default(), "en", t0),
            vec![Do::Stop]
        );
        assert!(
            s.heard(Heard::PromptDone(1), "en", t0).is_empty(),
            "the stopped menu's end is not the flow's"
        );
        let out = s.act(
            Action::Transfer {
                to: "sip:desk@example.com".into(),
                ring_timeout_s: 20,
            },
            &Given::default(),
            "en",
            t0,
        );
        assert_eq!(
            out,
            vec![
                Do::Ringback { tag: 3 },
                Do::Transfer {
                    to: "sip:desk@example.com".into(),
                    ring_timeout_s: 20
                }
            ]
        );
        assert_eq!(
            s.heard(Heard::TransferFailed, "en", t0),
            vec![Do::Stop, Do::Engine(Event::TransferFailed)]
        );
        assert_eq!(
            s.act(Action::Hangup, &Given::default(), "en", t0),
            vec![Do::HangUp]
        );
        assert_eq!(
            s.act(
                Action::Withdraw { follow_up: 9 },
                &Given::default(),
                "en",
                t0
            ),
            vec![Do::Withdraw { follow_up: 9 }]
        );
    }
}

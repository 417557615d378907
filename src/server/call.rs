//! One task per answered call: it drives the flow engine with what the caller does (keys from
//! RTP, SIP INFO or in-band tones; silence; hanging up) and carries out what the engine asks
//! (prompts through the media loop, hold music, voicemail recording, callback requests). It
//! wakes on events, never per packet: the media loop reads the RTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::oneshot;

use super::Shared;
use super::pacer::{HoldMusic, PacerCommand};
use super::signalling::{CallerContext, SipCommand};
use crate::engine::announce;
use crate::engine::session::{Do, Facts, Heard, Kept, Session};
use crate::engine::waiting::{Standing, Waiting};
use crate::engine::{Action, Call, Event, Outcome};
use crate::media::g711::Law;
use crate::media::recorder::{Recorder, wav_bytes};
use crate::sip::sdp::{Agreed, Direction};
use crate::store::{
    CallOutcome, CallRecord, CallbackRequest, CallbackState, EndReason, VoicemailRecord, WaitTold,
};

/// What reaches a call task from outside.
#[derive(Debug)]
pub enum CallInput {
    /// What the session decides on: a prompt's end, a key, an agent's answer, a transfer's
    /// outcome (`engine::session::Heard`).
    Heard(Heard),
    /// The voicemail being recorded holds all it may.
    RecordingFull,
    /// The caller hung up (BYE), or the INVITE timed out waiting for the ACK.
    Hangup,
    /// A re-INVITE moved or held the media.
    Media {
        remote: SocketAddr,
        direction: Direction,
        /// SRTP keys, as the re-INVITE left them.
        srtp: Option<crate::sip::sdp::Sdes>,
    },
    /// The server is shutting down and the grace period is over.
    Shutdown,
    /// Nothing has arrived from the caller for `[rtp] timeout_s`: their phone is gone.
    MediaTimeout,
    /// A key from the agent's phone (the recording's pause keys).
    AgentDigit(char),
    /// The desk asks to record, pause or toggle: whether it records now, or why not.
    Recording {
        want: crate::media::recording_control::Want,
        reply: tokio::sync::oneshot::Sender<Result<bool, String>>,
    },
    /// The agent (or the transfer target) hung up: the call ends.
    AgentHungUp,
}

pub struct CallSetup {
    pub id: u64,
    pub call_id: String,
    /// The caller's From URI: the number a callback dials.
    pub caller: String,
    pub line: super::Line,
    pub socket: Arc<std::net::UdpSocket>,
    pub agreed: Agreed,
    /// Where the caller's SIP came from (their RTP may come from that host too: NAT).
    pub sip_host: std::net::IpAddr,
    pub inputs: super::call_inputs::CallRx,
    pub notify: super::call_inputs::CallTx,
}

pub async fn run(shared: Arc<Shared>, setup: CallSetup) {
    if let Some(prompts) = setup.line.announce.clone() {
        return announce_and_hang_up(&shared, setup, &prompts).await;
    }
    if let Some(colleague) = setup.line.consult {
        return consult(&shared, setup, colleague).await;
    }
    let CallSetup {
        id,
        call_id,
        caller,
        line,
        socket,
        agreed,
        sip_host,
        mut inputs,
        notify,
    } = setup;
    let flows = Arc::clone(&line.flows);
    let flow_name = flows
        .set
        .flows
        .get(line.flow)
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let law = agreed.law;
    let caller_number = flows.callbacks.numbering.e164(&caller).unwrap_or_default();
    // A returning caller: their newest open follow-up, when the line asks (a `returning` or
    // `owner` node).
    let item = if flows.set.nodes.iter().any(|n| {
        matches!(
            n.kind,
            crate::flow::node::NodeKind::Returning(_) | crate::flow::node::NodeKind::Owner(_)
        )
    }) {
        open_item(&shared, &flows, &caller).await
    } else {
        None
    };
    let mut call = Call::new(&flows.set, &flows.calendars, line.flow)
        .with_follow_up(item)
        .with_caller(&caller_number, &line.dialled)
        .with_timezone(flows.timezone.clone())
        .with_switches(
            shared
                .switches
                .positions(&flows.set.switches, Timestamp::now()),
        );
    // Where the caller is with respect to the humans, the current playback, the queue wait,
    // the recording's control: decided in `engine::session`, carried out here.
    let mut session = Session::new();
    // The conversation's recording being written, when the queue records.
    let mut recording: Option<tokio::task::JoinHandle<super::recordings::Written>> = None;
    // The lookup the engine waits for, asked in its own task.
    let mut looking_up: Option<Asking> = None;
    // The voicemail being recorded: its mailbox, and when it started.
    let mut message: Option<(String, Timestamp)> = None;
    let mut we_hang_up = false;
    let started_wall = Timestamp::now();
    let started = Instant::now();
    // The call's record, written at each transition (and awaited at the end).
    let uid = format!("{:016x}{:016x}", super::random(), super::random());
    let ids = CallIds {
        call_id: &call_id,
        uid: &uid,
        caller: &caller,
        probe: line.probe,
    };
    let mut record = CallRecord {
        id: call_id.clone(),
        from: caller.clone(),
        line: line.dialled.clone(),
        flow: flow_name.clone(),
        flow_version: flows.versions.get(line.flow).cloned().unwrap_or_default(),
        started: line.invited.clone(),
        answered: Some(started_wall.to_string()),
        human_offered_at: None,
        agent_answered_at: None,
        ended: None,
        path: Vec::new(),
        steps: 0,
        outcome: CallOutcome::Live,
        steps_to_human: None,
        seconds_to_human: None,
        escape_used: false,
        watchdog_used: false,
        agent: None,
        variables: Default::default(),
        end_reason: None,
        waits_told: Vec::new(),
        probe: line.probe,
        wrap_up: None,
        transfers: Vec::new(),
        recording: None,
        quality: None,
    };
    shared.records.save(&uid, &record);
    tracing::info!(
        caller,
        line = line.dialled,
        flow = flow_name,
        "call started"
    );
    let mut end_reason = EndReason::Caller;

    let line_facts = LineFacts {
        shared: &shared,
        flows: &flows,
        caller: &caller,
        probe: line.probe,
    };
    // What to do next: the session's decisions, the flow engine's actions among them.
    let mut todo = std::collections::VecDeque::new();
    let started_flow = call.handle(
        Event::Start {
            wall: Timestamp::now(),
        },
        Instant::now(),
    );
    for action in started_flow {
        todo.extend(session.act(action, &line_facts, call.language(), Instant::now()));
    }
    // The media starts here, right before the first prompt is queued, so the caller's first
    // packet is the prompt rather than silence.
    start_media(&shared, id, socket, &agreed, sip_host, notify, true);
    loop {
        // Carry out what the session decided, feeding the engine what it asked and the session
        // what the engine asked.
        while let Some(d) = todo.pop_front() {
            let now = Instant::now();
            match d {
                Do::Engine(e) => {
                    if let Event::Digit(d) = &e {
                        tracing::debug!(digit = %d, "key pressed");
                    }
                    for action in call.handle(e, now) {
                        todo.extend(session.act(action, &line_facts, call.language(), now));
                    }
                }
                Do::Hold { queue, tag } => {
                    let hold = flows.prompts.frames(&flows.hold(queue.as_deref()), law);
                    play(&shared, id, hold, true, tag);
                }
                Do::Say { prompts, tag } => {
                    play(&shared, id, flows.prompts.frames(&prompts, law), false, tag);
                }
                Do::Ringback { tag } => {
                    // While the transfer rings, when the queue prompts are installed.
                    let ringback = flows.prompts.frames(&[announce::RINGBACK.to_string()], law);
                    play(&shared, id, ringback, true, tag);
                }
                Do::Enqueue {
                    queue,
                    priority,
                    record: line_record,
                    first,
                } => {
                    let _ = shared
                        .sip
                        .send(SipCommand::Enqueue {
                            id,
                            call_id: call_id.clone(),
                            queue,
                            priority,
                            record: line_record,
                            first,
                            context: context(&call, &caller, line.probe),
                        })
                        .await;
                }
                Do::Transfer { to, ring_timeout_s } => {
                    let _ = shared
                        .sip
                        .send(SipCommand::Transfer {
                            id,
                            call_id: call_id.clone(),
                            to,
                            ring_timeout_s,
                            context: context(&call, &caller, line.probe),
                        })
                        .await;
                }
                Do::Withdraw { follow_up } => withdraw(&shared, follow_up, line.probe),
                Do::Lookup { endpoint, params } => {
                    if let Some(old) = looking_up.take() {
                        old.abort();
                    }
                    looking_up = Some(ask(&shared, &flows, &endpoint, params));
                }
                Do::RecordMessage {
                    mailbox,
                    max_length_s,
                } => {
                    let recorder = Recorder::new(max_length_s);
                    let _ = shared.pacer.send(PacerCommand::Record { id, recorder });
                    message = Some((mailbox, Timestamp::now()));
                }
                Do::FinishMessage => {
                    let told =
                        finish_voicemail(&shared, id, &mut call, &mut message, ids, now).await;
                    for action in told {
                        todo.extend(session.act(action, &line_facts, call.language(), now));
                    }
                }
                Do::SaveCallback { queue } => {
                    let request = callback_request(&call, &call_id, &caller, &queue, &flow_name);
                    // Committed before the caller hears the confirmation.
                    let r = request.clone();
                    let saved = shared
                        .saves
                        .save(Vec::new(), move |s| s.add_callback(&r))
                        .await;
                    todo.push_back(Do::Engine(match saved {
                        Ok(row) => {
                            tracing::info!(queue, row, "callback request stored");
                            shared
                                .events
                                .publish(crate::status::events::Event::FollowUps);
                            let _ = shared
                                .sip
                                .send(SipCommand::NewCallback { row, request })
                                .await;
                            Event::Finished
                        }
                        Err(e) => {
                            tracing::error!(queue, "callback request NOT stored: {e}");
                            Event::SaveFailed
                        }
                    }));
                }
                Do::HangUp => we_hang_up = true,
                Do::Stop => {
                    let _ = shared.pacer.send(PacerCommand::Stop { id });
                }
                Do::Waited { since } => {
                    shared
                        .metrics
                        .queue_wait
                        .observe((now - since).as_secs_f64());
                }
                Do::LeaveQueue => {
                    let _ = shared.sip.send(SipCommand::LeaveQueue { id }).await;
                }
                Do::KeepAsCallback { queue } => {
                    let mut request =
                        callback_request(&call, &call_id, &caller, &queue, &flow_name);
                    request.path.push("callback".into());
                    let kept = keep_place_as_callback(&shared, id, request).await;
                    todo.extend(session.callback(kept));
                }
                Do::AskStanding => {
                    let prompts = match session.waiting_mut() {
                        Some(q) => announcement(&shared, id, q, &mut record, now).await,
                        None => None,
                    };
                    if let Some(prompts) = prompts {
                        todo.extend(session.announce(prompts));
                    }
                }
                Do::StartRecording { notice } => {
                    recording = Some(start_recording(&shared, id, &uid, &mut record));
                    announce_recording(&shared, &flows, id, law, notice, call.language());
                }
                Do::PauseRecording(paused) => {
                    let _ = shared
                        .pacer
                        .send(PacerCommand::PauseRecording { id, paused });
                }
                Do::Passed { to, by, note } => {
                    tracing::info!(to, by, "passed on");
                    record.transfers.push(crate::store::Transfer {
                        at: Timestamp::now().to_string(),
                        by,
                        to,
                        note,
                    });
                }
                Do::Answered { agent } => {
                    tracing::info!(agent, "connected to an agent");
                    // The first answer stays the caller's: their wait ended there.
                    if record.agent_answered_at.is_none() {
                        record.agent_answered_at = Some(Timestamp::now().to_string());
                    }
                    record.agent = Some(agent);
                }
                Do::HandedTo { agent } => {
                    if agent.is_some() {
                        record.agent = agent;
                    }
                }
                Do::TransferConnected { to } => {
                    tracing::info!(to, "connected to the transfer target");
                    record.agent_answered_at = Some(Timestamp::now().to_string());
                    record.agent = Some(to);
                }
                Do::SaveRecord => shared.records.save(&uid, &record),
            }
        }
        if progress(&shared, &call, &mut record, started_wall, started) {
            shared.records.save(&uid, &record);
        }
        if (call.is_ended() && !session.bridged()) || we_hang_up {
            end_reason = EndReason::Line;
            break;
        }
        let deadline = [call.poll_timeout(), session.next_wake()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let looked = async {
            match looking_up.as_mut() {
                Some(task) => task.await.ok().flatten(),
                None => std::future::pending().await,
            }
        };
        let mut got = Vec::new();
        tokio::select! {
            answer = looked => {
                looking_up = None;
                got.push(Do::Engine(match answer {
                    Some(fields) => Event::LookupAnswered(fields),
                    None => Event::LookupFailed,
                }));
            }
            input = inputs.recv() => {
                let now = Instant::now();
                let heard = match input {
                    Some(CallInput::Heard(heard)) => {
                        if heard == Heard::NoAgents {
                            tracing::info!("no agent is logged in to the queue");
                        }
                        Some(heard)
                    }
                    Some(CallInput::AgentDigit(d)) => {
                        let keys = &shared.config.recording.pause_keys;
                        got = session.agent_key(d, keys, now);
                        None
                    }
                    Some(CallInput::Recording { want, reply }) => {
                        let answer;
                        (got, answer) = session.want_recording(want, now);
                        let _ = reply.send(answer);
                        None
                    }
                    Some(CallInput::AgentHungUp) => {
                        tracing::info!("the agent hung up");
                        we_hang_up = true;
                        end_reason = EndReason::Agent;
                        break;
                    }
                    Some(CallInput::RecordingFull) => {
                        got.push(Do::Engine(Event::RecordingFull));
                        None
                    }
                    Some(CallInput::Media { remote, direction, srtp }) => {
                        let queue = session.last_queue().map(str::to_string);
                        sending(&shared, id, remote, direction, queue.as_deref());
                        rekey(&shared, id, srtp);
                        None
                    }
                    Some(CallInput::Hangup) | None => {
                        let (waited_since, abandoned) = session.caller_left();
                        if let Some(since) = waited_since {
                            shared.metrics.queue_wait.observe((now - since).as_secs_f64());
                        }
                        if abandoned {
                            shared.metrics.abandoned.fetch_add(1, Ordering::Relaxed);
                        }
                        call.handle(Event::CallerHangup, now);
                        break;
                    }
                    Some(CallInput::Shutdown) => {
                        we_hang_up = true;
                        end_reason = EndReason::Shutdown;
                        break;
                    }
                    Some(CallInput::MediaTimeout) => {
                        tracing::info!(
                            timeout_s = shared.config.rtp.timeout_s,
                            "no media from the caller: hanging up"
                        );
                        we_hang_up = true;
                        end_reason = EndReason::NoMedia;
                        break;
                    }
                };
                if let Some(heard) = heard {
                    got = session.heard(heard, call.language(), now);
                }
            }
            _ = sleep => got = session.time(Instant::now()),
        }
        todo.extend(got);
    }
    // A caller who hangs up while recording has left a message: keep it.
    if message.is_some() {
        finish_voicemail(&shared, id, &mut call, &mut message, ids, Instant::now()).await;
    }
    // How the audio went, on the caller's leg and every leg bridged to it.
    let (reply, quality) = tokio::sync::oneshot::channel();
    let _ = shared.pacer.send(PacerCommand::Quality { id, reply });
    if let Ok(Ok(q)) = tokio::time::timeout(Duration::from_secs(1), quality).await {
        record.quality = q;
    }
    let _ = shared.pacer.send(PacerCommand::Remove { id });
    if we_hang_up {
        let _ = shared
            .sip
            .send(SipCommand::Hangup {
                call_id: call_id.clone(),
            })
            .await;
    }
    // The media loop let go of the recording with the leg: its file is closed once written.
    if let (Some(task), Some(meta)) = (recording, record.recording.as_mut()) {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(written)) => {
                meta.seconds = Some((written.seconds * 100.0).round() / 100.0);
                meta.complete = written.complete;
                let paused = session.paused(Instant::now()).as_secs_f64();
                meta.paused_s = (paused * 100.0).round() / 100.0;
            }
            _ => {
                tracing::error!(file = meta.file, "the call's recording did not finish");
                meta.complete = false;
            }
        }
    }
    let outcome = recorded(call.outcome().map_or(Outcome::Hangup, |o| o.0));
    progress(&shared, &call, &mut record, started_wall, started);
    record.outcome = outcome;
    record.ended = Some(Timestamp::now().to_string());
    record.end_reason = Some(end_reason);
    if !shared.records.save_and_wait(&uid, &record).await {
        tracing::error!("the call's final record is NOT saved");
    }
    shared.metrics.call_ended(outcome.as_str());
    tracing::info!(
        outcome = outcome.as_str(),
        steps = call.steps(),
        path = call.path().join(" "),
        escape = call.escape_used(),
        watchdog = call.watchdog_used(),
        "call ended"
    );
    let _ = shared.sip.send(SipCommand::Ended { call_id, id }).await;
}

/// What the session asks of the line, as this call finds it.
struct LineFacts<'a> {
    shared: &'a Shared,
    flows: &'a crate::line::Flows,
    caller: &'a str,
    probe: bool,
}

impl Facts for LineFacts<'_> {
    fn speaks(&self, language: &str) -> bool {
        let words = announce::in_language(language, announce::YOU_ARE_NUMBER);
        self.flows.prompts.get(&words).is_some()
    }

    fn undialable(&self) -> Option<String> {
        self.shared.flows().callbacks.target(self.caller).err()
    }

    fn disk_ok(&self) -> bool {
        self.shared.disk.ok()
    }

    fn probe(&self) -> bool {
        self.probe
    }

    fn anonymous(&self) -> bool {
        crate::sip::identity::is_anonymous(self.caller)
    }
}

/// A short call's last words (an announcement's, a colleague's): its media gone, a BYE when
/// the far end is still on (`bye`), and the signalling task told it has ended.
async fn let_go(shared: &Shared, id: u64, call_id: String, bye: bool) {
    let _ = shared.pacer.send(PacerCommand::Remove { id });
    if bye {
        let hangup = SipCommand::Hangup {
            call_id: call_id.clone(),
        };
        let _ = shared.sip.send(hangup).await;
    }
    let _ = shared.sip.send(SipCommand::Ended { call_id, id }).await;
}

/// What the caller already told the line, for whoever they are put through to.
fn context(call: &Call, caller: &str, probe: bool) -> CallerContext {
    CallerContext {
        caller: caller.to_string(),
        path: call.path().to_vec(),
        variables: variables(call),
        probe,
    }
}

/// Plays `[recording] announcement` to the caller as `tag`, when there is one.
fn announce_recording(
    shared: &Shared,
    flows: &super::Flows,
    id: u64,
    law: crate::media::g711::Law,
    tag: u64,
    language: &str,
) {
    let Some(name) = shared.config.recording.announcement.as_ref() else {
        return;
    };
    // In the caller's language where the line has it (`prompts/es/NAME.wav`).
    let theirs = announce::in_language(language, name);
    let name = if flows.prompts.get(&theirs).is_some() {
        theirs
    } else {
        name.clone()
    };
    play(
        shared,
        id,
        flows.prompts.frames(std::slice::from_ref(&name), law),
        false,
        tag,
    );
}

/// Starts recording the conversation on the caller's leg (`<data>/recordings/<day>/<uid>.wav`),
/// noted on the call record.
fn start_recording(
    shared: &Shared,
    id: u64,
    uid: &str,
    record: &mut CallRecord,
) -> tokio::task::JoinHandle<super::recordings::Written> {
    let day = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let (file, relative) = super::recordings::path_for(&shared.data, &day, uid);
    let stereo = shared.config.recording.stereo;
    let r = super::recordings::start(file, if stereo { 2 } else { 1 });
    let _ = shared.pacer.send(PacerCommand::RecordCall {
        id,
        sink: r.sink,
        lost: r.lost,
        mono: !stereo,
    });
    tracing::info!(file = relative, "recording the conversation");
    record.recording = Some(crate::store::RecordingMeta {
        file: relative,
        seconds: None,
        complete: true,
        paused_s: 0.0,
    });
    r.task
}

/// Brings the record up to date with the call; returns whether anything changed (a
/// transition to write). Counts the escape digit and the watchdog when they first act.
fn progress(
    shared: &Shared,
    call: &Call,
    record: &mut CallRecord,
    started_wall: Timestamp,
    started: Instant,
) -> bool {
    let before = record.clone();
    record.path = call.path().to_vec();
    record.steps = call.steps();
    record.variables = call
        .variables()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if call.escape_used() && !record.escape_used {
        shared
            .metrics
            .escape_presses
            .fetch_add(1, Ordering::Relaxed);
    }
    if call.watchdog_used() && !record.watchdog_used {
        shared
            .metrics
            .watchdog_interventions
            .fetch_add(1, Ordering::Relaxed);
    }
    record.escape_used = call.escape_used();
    record.watchdog_used = call.watchdog_used();
    if let Some((steps, at)) = call.human_offered()
        && record.human_offered_at.is_none()
    {
        let after = at.saturating_duration_since(started);
        record.steps_to_human = Some(steps);
        record.seconds_to_human = Some(after.as_secs_f64());
        record.human_offered_at = Some(
            started_wall
                .checked_add(after)
                .unwrap_or(started_wall)
                .to_string(),
        );
        shared.metrics.time_to_human.observe(after.as_secs_f64());
    }
    *record != before
}

/// Not a call to a line (an agent's feature code): plays the prompts and hangs up, or stops
/// when the phone hangs up first. No flow runs and no call is recorded.
async fn announce_and_hang_up(shared: &Arc<Shared>, setup: CallSetup, prompts: &[String]) {
    let CallSetup {
        id,
        call_id,
        line,
        socket,
        agreed,
        sip_host: setup_host,
        mut inputs,
        notify,
        ..
    } = setup;
    start_media(shared, id, socket, &agreed, setup_host, notify, false);
    play(
        shared,
        id,
        line.flows.prompts.frames(prompts, agreed.law),
        false,
        1,
    );
    let mut hung_up = false;
    let done = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(done);
    loop {
        tokio::select! {
            input = inputs.recv() => match input {
                Some(CallInput::Heard(Heard::PromptDone(1))) => break,
                Some(CallInput::Hangup) | None => {
                    hung_up = true;
                    break;
                }
                Some(CallInput::Shutdown) => break,
                Some(_) => {}
            },
            _ = &mut done => break,
        }
    }
    let_go(shared, id, call_id, !hung_up).await;
}

/// An agent's call to a colleague about her caller: bridged to his leg (`colleague`) until
/// either hangs up, or she hands the caller over to him (then we hang up, as the party
/// taking her place would, RFC 5589 §7). No flow, no call record: the caller's record
/// tells the transfer.
async fn consult(shared: &Arc<Shared>, setup: CallSetup, colleague: u64) {
    let CallSetup {
        id,
        call_id,
        socket,
        agreed,
        sip_host,
        mut inputs,
        notify,
        ..
    } = setup;
    start_media(shared, id, socket, &agreed, sip_host, notify, false);
    let _ = shared.pacer.send(PacerCommand::Bridge {
        a: id,
        b: colleague,
    });
    let mut hung_up = false;
    loop {
        match inputs.recv().await {
            Some(CallInput::Hangup) | None => {
                hung_up = true;
                break;
            }
            Some(CallInput::Media {
                remote,
                direction,
                srtp,
            }) => {
                sending(shared, id, remote, direction, None);
                rekey(shared, id, srtp);
            }
            Some(CallInput::AgentHungUp | CallInput::Shutdown | CallInput::MediaTimeout) => break,
            Some(_) => {}
        }
    }
    let_go(shared, id, call_id, !hung_up).await;
}

/// What a waiting caller hears now: their place and wait when one is due, and the callback
/// offer once they have waited long enough (then with every later announcement). Nothing while
/// an agent's phone rings for them.
async fn announcement(
    shared: &Shared,
    id: u64,
    q: &mut Waiting,
    record: &mut CallRecord,
    now: Instant,
) -> Option<Vec<String>> {
    let (reply, answer) = oneshot::channel();
    let _ = shared.sip.send(SipCommand::QueueStatus { id, reply }).await;
    let status = answer.await.ok().flatten();
    let standing = status.as_ref().map(|s| Standing {
        ahead: s.ahead,
        wait: s.wait,
    });
    let said = q.announce(now, standing)?;
    if let Some(s) = &status {
        tracing::debug!(
            ahead = s.ahead,
            wait_s = s.wait.map(|w| w.as_secs()),
            "announcing the caller's place"
        );
    }
    if said.offers {
        tracing::info!("offering a callback");
    }
    // What the caller hears is a promise: it is scored against the wait that follows.
    if let Some(told) = said.told {
        let _ = shared
            .sip
            .send(SipCommand::WaitTold { id, wait: told })
            .await;
        if record.waits_told.len() < crate::routing::audit::TOLD_PER_CALL {
            record.waits_told.push(WaitTold {
                queue: q.queue.clone(),
                at: Timestamp::now().to_string(),
                told_s: told.as_secs(),
                baseline_s: status.and_then(|s| s.baseline).map(|b| b.as_secs()),
            });
        }
    }
    Some(said.prompts)
}

/// The request a callback stores: who to call, for which queue, and what the caller already said.
fn callback_request(
    call: &Call,
    call_id: &str,
    caller: &str,
    queue: &str,
    flow: &str,
) -> CallbackRequest {
    CallbackRequest {
        call_id: call_id.to_string(),
        caller: caller.to_string(),
        queue: queue.to_string(),
        flow: flow.to_string(),
        requested_at: Timestamp::now().to_string(),
        path: call.path().to_vec(),
        variables: variables(call),
    }
}

/// The call's variables so far, in order.
fn variables(call: &Call) -> Vec<(String, String)> {
    call.variables()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The caller pressed the callback key: store the request, then turn their place in line into
/// a callback (not when the store fails, or an agent already rings for them: they keep
/// waiting).
async fn keep_place_as_callback(shared: &Arc<Shared>, id: u64, request: CallbackRequest) -> Kept {
    let queue = request.queue.clone();
    let row = match shared
        .saves
        .save(Vec::new(), move |s| s.add_callback(&request))
        .await
    {
        Ok(row) => {
            shared
                .events
                .publish(crate::status::events::Event::FollowUps);
            row
        }
        Err(e) => {
            tracing::error!(
                queue,
                "callback request NOT stored, the caller keeps waiting: {e}"
            );
            return Kept::NotSaved;
        }
    };
    let (reply, answer) = oneshot::channel();
    let _ = shared
        .sip
        .send(SipCommand::ToCallback { id, row, reply })
        .await;
    if answer.await.unwrap_or(false) {
        tracing::info!(queue, row, "the caller keeps their place as a callback");
        return Kept::Taken;
    }
    tracing::info!(
        queue,
        row,
        "callback not taken: an agent is already ringing"
    );
    let withdrawn = shared.saves.save(Vec::new(), move |s| {
        s.set_callback_state(row, CallbackState::Withdrawn, 0)
            .map(|()| row)
    });
    match withdrawn.await {
        Ok(_) => shared
            .events
            .publish(crate::status::events::Event::FollowUps),
        Err(e) => tracing::error!(row, "callback request not withdrawn: {e}"),
    }
    Kept::TooLate
}

/// The caller's newest follow-up still open (or failed within `[desk] returning_failed_days`):
/// the same number (E.164, as `[numbers]` reads it), else the same user at the same host.
async fn open_item(
    shared: &Arc<Shared>,
    flows: &crate::line::Flows,
    caller: &str,
) -> Option<crate::engine::OpenItem> {
    let numbering = flows.callbacks.numbering.clone();
    let number = numbering.e164(caller);
    let key = crate::store::caller_key(caller);
    if number.is_none() && key.is_none() {
        return None; // withheld: nobody to recognise
    }
    let days = i64::from(shared.config.desk.returning_failed_days);
    let since = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string();
    let store = Arc::clone(&shared.store);
    let found = tokio::task::spawn_blocking(move || {
        let same = |other: &str| match (&number, numbering.e164(other)) {
            (Some(a), Some(b)) => *a == b,
            _ => key.is_some() && crate::store::caller_key(other) == key,
        };
        store
            .lock()
            .map_err(|_| "the store lock is poisoned".to_string())
            .and_then(|s| s.open_followup_of(same, &since).map_err(|e| e.to_string()))
    })
    .await;
    match found {
        Ok(Ok(Some(f))) => {
            tracing::info!(
                follow_up = f.id,
                kind = f.kind.as_str(),
                state = f.state.as_str(),
                owner = f.owner.as_deref().unwrap_or(""),
                "a returning caller: they have an open follow-up"
            );
            Some(crate::engine::OpenItem {
                id: f.id,
                kind: f.kind.as_str().to_string(),
                state: f.state.as_str().to_string(),
                owner: f.owner,
                queue: f.queue,
                created_at: f.created_at,
            })
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::warn!("open follow-ups could not be read: {e}; the caller is not recognised");
            None
        }
        Err(e) => {
            tracing::warn!("open follow-ups could not be read: {e}");
            None
        }
    }
}

/// The caller no longer needs their follow-up: it is closed with that reason (kept), and the
/// pages are told. A probe's word closes nothing.
fn withdraw(shared: &Arc<Shared>, id: i64, probe: bool) {
    if probe {
        tracing::info!(
            follow_up = id,
            "a probe call withdrew a follow-up: nothing is closed"
        );
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let store = Arc::clone(&shared.store);
        let now = Timestamp::now().to_string();
        let done = tokio::task::spawn_blocking(move || -> Result<bool, String> {
            let s = store
                .lock()
                .map_err(|_| "the store lock is poisoned".to_string())?;
            let Some(before) = s.followup(id).map_err(|e| e.to_string())? else {
                return Ok(false);
            };
            let after = before
                .apply(
                    &crate::store::followup::Action::Withdraw,
                    "caller",
                    true,
                    &now,
                )
                .map_err(|e| e.to_string())?;
            s.change_followup(&before, &after)
                .map_err(|e| e.to_string())
        })
        .await;
        match done {
            Ok(Ok(true)) => {
                tracing::info!(follow_up = id, "follow-up withdrawn by its caller");
                shared
                    .events
                    .publish(crate::status::events::Event::FollowUps);
            }
            Ok(Ok(false)) => tracing::warn!(
                follow_up = id,
                "follow-up not withdrawn: it changed meanwhile"
            ),
            Ok(Err(e)) => tracing::warn!(follow_up = id, "follow-up not withdrawn: {e}"),
            Err(e) => tracing::error!(follow_up = id, "follow-up not withdrawn: {e}"),
        }
    });
}

/// A lookup under way: the fields it answered, or `None` when it failed.
type Asking = tokio::task::JoinHandle<Option<Vec<(String, String)>>>;

/// Asks a lookup endpoint in a task of its own: the fields it answered, or `None` (logged
/// with why; the engine takes `on_error`).
fn ask(
    shared: &Arc<Shared>,
    flows: &crate::line::Flows,
    endpoint: &str,
    params: Vec<(String, String)>,
) -> Asking {
    let shared = Arc::clone(shared);
    let name = endpoint.to_string();
    let config = flows.set.lookups.get(endpoint).cloned();
    let span = tracing::Span::current();
    let asking = async move {
        let Some(config) = config else {
            tracing::warn!(endpoint = name, "no such lookup endpoint: on_error");
            return None;
        };
        match shared.lookups.ask(&name, &config, &params).await {
            Ok(fields) => {
                tracing::info!(endpoint = name, "lookup answered");
                Some(fields)
            }
            Err(f) => {
                tracing::warn!(
                    endpoint = name,
                    reason = f.reason,
                    "lookup failed: {}; on_error",
                    f.detail
                );
                None
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(asking, span))
}

fn play(shared: &Shared, id: u64, items: Vec<Arc<[u8]>>, looped: bool, tag: u64) {
    let _ = shared.pacer.send(PacerCommand::Play {
        id,
        items,
        looped,
        tag,
    });
}

/// Hands the caller's leg to the media loop, sending where its SDP said (until the far end
/// is heard); `listen_keys` for a call whose keys count.
fn start_media(
    shared: &Shared,
    id: u64,
    socket: Arc<std::net::UdpSocket>,
    agreed: &Agreed,
    sip_host: std::net::IpAddr,
    notify: super::call_inputs::CallTx,
    listen_keys: bool,
) {
    let remote = SocketAddr::new(agreed.remote.0, agreed.remote.1);
    let _ = shared.pacer.send(PacerCommand::Add {
        id,
        socket,
        remote,
        sip_host,
        law: agreed.law,
        telephone_event: agreed.telephone_event,
        ssrc: super::random() as u32,
        sequence: super::random() as u16,
        timestamp: super::random() as u32,
        notify,
        keys: if listen_keys {
            super::pacer::Keys::Caller
        } else {
            super::pacer::Keys::None
        },
        srtp: agreed.srtp,
    });
    sending(shared, id, remote, agreed.direction, None);
}

/// A re-INVITE's SRTP keys for the leg: the media loop starts a new context when the far
/// end's key changed.
pub(super) fn rekey(shared: &Shared, id: u64, srtp: Option<crate::sip::sdp::Sdes>) {
    if let Some(keys) = srtp {
        let _ = shared.pacer.send(PacerCommand::Keys { id, keys });
    }
}

/// Where a leg's audio goes, and whether it is sent at all (not to a party on hold). The
/// `direction` is ours, as answered: `recvonly` or `inactive` means the far end holds the
/// call (it offered `sendonly` or `inactive`), and whoever it is bridged to hears the hold
/// music of the caller's queue (`queue`; `prompts/hold.wav` by default) meanwhile.
pub(super) fn sending(
    shared: &Shared,
    id: u64,
    remote: SocketAddr,
    direction: Direction,
    queue: Option<&str>,
) {
    let on = matches!(direction, Direction::SendRecv | Direction::SendOnly)
        && !remote.ip().is_unspecified()
        && remote.port() != 0;
    let holds = matches!(direction, Direction::RecvOnly | Direction::Inactive);
    let hold_music = holds.then(|| {
        let flows = shared.flows();
        let hold = flows.hold(queue);
        HoldMusic {
            pcmu: flows.prompts.frames(&hold, Law::Pcmu),
            pcma: flows.prompts.frames(&hold, Law::Pcma),
        }
    });
    let _ = shared.pacer.send(PacerCommand::Media {
        id,
        remote,
        sending: on,
        expects_media: matches!(direction, Direction::SendRecv | Direction::RecvOnly),
        hold_music,
    });
}

/// Who a call is: its SIP Call-ID, its record's id, the caller.
#[derive(Clone, Copy)]
struct CallIds<'a> {
    call_id: &'a str,
    uid: &'a str,
    caller: &'a str,
    /// A probe call: what it records is not kept.
    probe: bool,
}

/// Saves the recording (WAV, sidecar JSON, index row), then tells the engine.
async fn finish_voicemail(
    shared: &Arc<Shared>,
    id: u64,
    call: &mut Call<'_>,
    message: &mut Option<(String, Timestamp)>,
    ids: CallIds<'_>,
    now: Instant,
) -> Vec<Action> {
    let CallIds {
        call_id,
        uid,
        caller,
        probe,
    } = ids;
    let Some((mailbox, started)) = message.take() else {
        return Vec::new();
    };
    let (reply, recording) = oneshot::channel();
    let _ = shared.pacer.send(PacerCommand::TakeRecording { id, reply });
    let samples = match recording.await {
        Ok(recorder) => recorder.finish(),
        Err(_) => {
            // The media loop holds no recording for this call (it stopped): the message is
            // still saved, with where the caller came from, but silent.
            tracing::error!(
                mailbox,
                "the recording was lost: saving the message without audio"
            );
            Vec::new()
        }
    };
    if probe {
        tracing::info!(mailbox, "a probe call's recording is not kept");
        return call.handle(Event::Finished, now);
    }
    let dir = shared.data.join("voicemail").join(safe_name(&mailbox));
    let stamp = started.strftime("%Y%m%dT%H%M%SZ").to_string();
    // Unique by construction: the call's own record id (random, the records' key), and a
    // count for a second message in one call. Call-IDs are the caller's to choose and
    // collide once cleaned up.
    let nth = VOICEMAILS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = format!("{stamp}-{uid}-{nth}");
    let wav = dir.join(format!("{base}.wav"));
    let duration_ms = samples.len() as u64 / 8;
    let record = VoicemailRecord {
        call_id: call_id.to_string(),
        caller: caller.to_string(),
        mailbox: mailbox.clone(),
        file: wav.display().to_string(),
        recorded_at: started.to_string(),
        duration_ms,
    };
    let sidecar = serde_json::json!({
        "call_id": call_id,
        "caller": caller,
        "mailbox": mailbox,
        "time": started.to_string(),
        "duration_s": duration_ms as f64 / 1000.0,
        "file": format!("{base}.wav"),
        // How the caller got here, so whoever calls back needs ask nothing twice.
        "path": call.path(),
        "variables": call.variables(),
    });
    let json_path: PathBuf = dir.join(format!("{base}.json"));
    let text = serde_json::to_string_pretty(&sidecar).unwrap_or_default() + "\n";
    let saved = match wav_bytes(&samples).map_err(|e| format!("{}: {e}", wav.display())) {
        Ok(audio) => {
            let row = record.clone();
            let files = vec![(wav, audio), (json_path, text.into_bytes())];
            shared
                .saves
                .save(files, move |s| s.add_voicemail(&row))
                .await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => {
            tracing::info!(mailbox, duration_ms, file = record.file, "voicemail saved");
            shared
                .events
                .publish(crate::status::events::Event::FollowUps);
            call.handle(Event::Finished, now)
        }
        Err(e) => {
            tracing::error!(mailbox, "voicemail NOT saved: {e}");
            call.handle(Event::SaveFailed, now)
        }
    }
}

/// Messages recorded since start: with the call's id, a voicemail's unique name.
static VOICEMAILS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A file-name-safe version of a mailbox or Call-ID: no separators, no dot-dot.
fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() { "_".into() } else { out }
}

/// A flow's outcome, as the call's record keeps it.
fn recorded(outcome: Outcome) -> CallOutcome {
    match outcome {
        Outcome::Queue => CallOutcome::Queue,
        Outcome::Transfer => CallOutcome::Transfer,
        Outcome::Voicemail => CallOutcome::Voicemail,
        Outcome::Callback => CallOutcome::Callback,
        Outcome::Hangup => CallOutcome::Hangup,
        Outcome::CallerHangup => CallOutcome::CallerHangup,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_from_the_network_cannot_leave_the_voicemail_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "______etc_passwd");
        assert_eq!(safe_name("abc-123@host"), "abc-123_host");
        assert_eq!(safe_name(""), "_");
    }
}

//! The media loop: one 20 ms tick drives the RTP of every live call, so its cost does not
//! depend on timers or tasks per packet. Each tick, for each call, it reads what the caller
//! sent (non-blocking sockets, never registered with the reactor: no wake-up per packet),
//! turns RFC 4733 events and in-band tones into digits, and sends the next frame of what the
//! call hears. Frames come from the shared pre-encoded prompts and are built into the
//! [`Outbox`]'s buffers, which hand the kernel a chunk of legs' packets in one system call.
//! Between prompts a call gets silence, so its RTP clock and any NAT binding stay alive, as
//! on a classic PBX. A voicemail is recorded here too, and handed to the call task
//! when it ends: the call task hears only about digits, the end of a prompt and a recording
//! that is full, never about each packet. Two bridged legs (a caller and an agent) hear
//! each other through `media::bridge`: what one sends is decoded, re-encoded for the other's
//! codec (PCMU and PCMA legs talk to each other) and sent on the other's tick. Each leg's
//! quality is counted as it arrives (`media::rtcp`); its RTCP socket (the RTP port + 1) is
//! read as reports arrive, and every few seconds our report is sent.

use crate::media::leg::{MediaLeg, Outgoing, Taken, Told};
use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::call::CallInput;
use crate::engine::session::Heard;

use crate::media::g711::Law;
use crate::media::latch::Latch;
use crate::media::player::Playback;
use crate::media::recorder::Recorder;
use crate::media::rtcp::{self, Reception, ReportBlock, SenderReport};
use crate::media::rtp::{MAX_PACKET, SAMPLES_PER_PACKET, Stream};
use crate::media::srtp::Srtp;
use crate::media::stereo::{Side, Stereo};
use crate::sip::sdp::Sdes;
use crate::store::{CallQuality, LegQuality};

use super::outbox::{self, Outbox};
use super::rtp_io::{self, Batch, Poller};

pub const TICK: Duration = Duration::from_millis(20);

/// Which keys pressed on a leg are reported, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// None (a callback's caller, a transfer target).
    None,
    /// A caller's: RFC 4733, or in the audio when they offered no telephone-event; the
    /// leg's silence ends the call.
    Caller,
    /// An agent's phone: RFC 4733 only, as `AgentDigit` (the recording's pause keys).
    Agent,
}

/// Commands waiting for the media loop at most. The loop drains them all every tick (20 ms)
/// and never waits, so only a stopped loop could fill this.
pub const QUEUE: usize = 1 << 16;

use super::call_inputs::NotDelivered;

/// Where the media loop's commands are sent, without waiting (from the signalling task and
/// the call tasks alike).
#[derive(Clone, Debug)]
pub struct PacerTx(mpsc::Sender<PacerCommand>);

/// The media loop's command queue.
pub fn channel() -> (PacerTx, mpsc::Receiver<PacerCommand>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (PacerTx(tx), rx)
}

impl PacerTx {
    /// Queues a command; `Err` when the loop is gone or (never in practice) behind by a
    /// whole queue, which is logged.
    pub fn send(&self, command: PacerCommand) -> Result<(), NotDelivered> {
        match self.0.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::error!(
                    queue = QUEUE,
                    "the media loop is behind by a whole queue: a command is dropped"
                );
                Err(NotDelivered)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotDelivered),
        }
    }
}

pub enum PacerCommand {
    Add {
        id: u64,
        socket: Arc<UdpSocket>,
        remote: SocketAddr,
        /// The host the call's SIP came from: its audio may come from there too (NAT).
        sip_host: std::net::IpAddr,
        law: Law,
        /// The payload type the caller sends RFC 4733 events with, if any; without one,
        /// keys are listened for in the audio.
        telephone_event: Option<u8>,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        notify: super::call_inputs::CallTx,
        /// Which keys pressed on this leg are reported.
        keys: Keys,
        /// SRTP keys, when the leg's audio is encrypted.
        srtp: Option<Sdes>,
    },
    /// The far end re-keyed its SRTP (a new key in a re-INVITE).
    Keys {
        id: u64,
        keys: Sdes,
    },
    /// The two legs hear each other from now on; whatever played on them stops.
    Bridge {
        a: u64,
        b: u64,
    },
    /// Record the conversation on this (the caller's) leg from now on, whoever it is bridged
    /// to: 20 ms frames go to `sink` (a full sink drops them: never waits).
    RecordCall {
        id: u64,
        sink: std::sync::mpsc::SyncSender<Vec<i16>>,
        /// Set when a frame is dropped: the recording is incomplete.
        lost: Arc<std::sync::atomic::AtomicBool>,
        mono: bool,
    },
    /// Pause or resume a call's recording (silence is written meanwhile).
    PauseRecording {
        id: u64,
        paused: bool,
    },
    /// The leg and the one bridged to it no longer hear each other (the caller is passed
    /// on); both are silent until told otherwise.
    Unbridge {
        id: u64,
    },
    /// Record what the caller says into this recorder (voicemail); `RecordingFull` is sent
    /// when it holds all it may.
    Record {
        id: u64,
        recorder: Recorder,
    },
    /// Stop recording and hand the recording over.
    TakeRecording {
        id: u64,
        reply: oneshot::Sender<Recorder>,
    },
    /// Replaces what the call hears; `PromptDone(tag)` is sent when it ends.
    Play {
        id: u64,
        items: Vec<Arc<[u8]>>,
        looped: bool,
        tag: u64,
    },
    Stop {
        id: u64,
    },
    /// Where the call's audio goes, whether it may be sent at all (hold), and whether the far
    /// end should be sending (its silence then counts towards the media timeout). With
    /// `hold_music`, this leg's far end has put the call on hold: the leg bridged to it hears
    /// the music (in its own codec) instead of silence until a later `Media` without it.
    Media {
        id: u64,
        remote: SocketAddr,
        sending: bool,
        expects_media: bool,
        hold_music: Option<HoldMusic>,
    },
    /// How the audio went on the caller's leg `id` and on every leg bridged to it: asked
    /// as the call ends, before `Remove`.
    Quality {
        id: u64,
        reply: oneshot::Sender<Option<CallQuality>>,
    },
    /// The leg is over for good; its port stays bound a while longer (see [`LINGER`]).
    Remove {
        id: u64,
    },
    /// Stop the loop (server shutdown).
    Shutdown,
}

/// The hold music, encoded for either codec.
#[derive(Debug, Clone)]
pub struct HoldMusic {
    pub pcmu: Vec<Arc<[u8]>>,
    pub pcma: Vec<Arc<[u8]>>,
}

/// A recorded conversation: both sides lined up, and where the frames go.
struct CallRecording {
    stereo: Stereo,
    sink: std::sync::mpsc::SyncSender<Vec<i16>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

/// The tag of hold music played to a leg whose peer holds: no call task waits for its end.
const HOLD_TAG: u64 = u64::MAX;

/// Each leg sends its RTCP report this often (RFC 3550 §6.2: 5 s for a two-party call).
const REPORT_EVERY_S: u64 = 5;
/// RTCP datagrams read from one leg's socket in one pass, at most.
const RTCP_READS: usize = 8;
/// A leg's RTCP socket's key in the poller: the leg's id with this bit set.
const RTCP_KEY: u64 = 1 << 63;

/// A leg's call quality: what arrives from its far end, and what that end's RTCP says of
/// what we send it.
#[derive(Default)]
struct Quality {
    rx: Reception,
    reports_sent: u32,
    /// Our RTCP socket (the RTP port + 1); none for an SRTP leg (SRTCP is not spoken) or
    /// when the port is taken.
    socket: Option<UdpSocket>,
    /// The far end's last sender report: its NTP time (middle 32 bits) and when it came.
    their_report: Option<(u32, Instant)>,
    far: Option<ReportBlock>,
    rtt_ms: Option<f64>,
    /// The caller's leg this one was bridged to: it is told this leg's figures as it goes.
    reports_to: Option<u64>,
    /// On a caller's leg: the legs bridged to it, in order (asked at the end if still here).
    bridged: Vec<u64>,
    /// The figures of the legs bridged to this one that are gone, in the order they went.
    past: Vec<(u64, LegQuality)>,
}

impl Quality {
    fn figures(&self) -> LegQuality {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let expected = self.rx.expected();
        LegQuality {
            received: self.rx.received(),
            lost: self.rx.lost(),
            loss_pct: if expected == 0 {
                0.0
            } else {
                round(self.rx.lost() as f64 * 100.0 / expected as f64)
            },
            jitter_ms: round(self.rx.jitter_ms()),
            rtt_ms: self.rtt_ms.map(round),
            far_loss_pct: self.far.map(|b| round(b.fraction_lost() * 100.0)),
            far_jitter_ms: self.far.map(|b| round(b.jitter_ms())),
        }
    }

    /// A leg's RTCP socket beside its RTP port, unless its audio is encrypted.
    fn open_socket(rtp: &UdpSocket, srtp: bool) -> Option<UdpSocket> {
        if srtp {
            return None;
        }
        let a = rtp.local_addr().ok()?;
        let s = UdpSocket::bind(SocketAddr::new(a.ip(), a.port().checked_add(1)?)).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }
}

/// Now on the NTP clock (RFC 3550 §4), as sender reports carry it.
fn ntp_now() -> u64 {
    const FROM_1900: u64 = 2_208_988_800;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rtcp::ntp_from_micros(
        (since.as_secs() + FROM_1900) * 1_000_000 + u64::from(since.subsec_micros()),
    )
}

/// Reads what a leg's far end reported by RTCP, as it arrives (the round trip counts from
/// here); returns whether the socket was read empty.
fn read_rtcp(leg: &mut Leg, stats: &PacerStats) -> bool {
    let now = Instant::now();
    let ntp = rtcp::ntp_middle(ntp_now());
    let mut buf = [0u8; MAX_PACKET];
    let q = &mut leg.quality;
    let Some(socket) = &q.socket else {
        return true;
    };
    for _ in 0..RTCP_READS {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            return true;
        };
        // Only the far end's (its address is the one the RTP latch learnt).
        if from.ip() != leg.remote.ip() {
            continue;
        }
        let Some(got) = rtcp::parse(&buf[..n]) else {
            continue;
        };
        stats.rtcp_received.fetch_add(1, Ordering::Relaxed);
        if let Some((_, at)) = got.sender {
            q.their_report = Some((at, now));
        }
        if let Some(b) = got.blocks.iter().find(|b| b.ssrc == leg.stream.ssrc) {
            q.far = Some(*b);
            if let Some(rtt) = b.round_trip_ms(ntp) {
                q.rtt_ms = Some(rtt);
            }
        }
    }
    false
}

/// Sends the leg our RTCP report when it is its turn: the first within a second of the far
/// end being known (its next report then has our time in it), then every `REPORT_EVERY_S`.
/// Each leg's turn falls on its own tick (by its id), so the reports of many calls are
/// spread over the interval instead of sent in one burst.
fn send_report(id: u64, leg: &mut Leg, clock: u64, stats: &PacerStats) {
    const TICKS_PER_S: u64 = SILENCE_CHECK as u64;
    let phase = clock.wrapping_add(id);
    // Most ticks end here, before the leg's figures are touched.
    if !phase.is_multiple_of(TICKS_PER_S) {
        return;
    }
    let q = &mut leg.quality;
    let Some(socket) = &q.socket else {
        return;
    };
    let due = q.reports_sent == 0 || phase.is_multiple_of(TICKS_PER_S * REPORT_EVERY_S);
    if !due || !leg.media.latch.is_latched() {
        return;
    }
    let now = Instant::now();
    let ntp = ntp_now();
    let (lsr, dlsr) = q.their_report.map_or((0, 0), |(at, when)| {
        let held = now.saturating_duration_since(when).as_micros() as u64;
        (at, ((held << 16) / 1_000_000) as u32)
    });
    let report = SenderReport {
        ssrc: leg.stream.ssrc,
        ntp,
        rtp_timestamp: leg.stream.timestamp(),
        packets: leg.stream.sent().0,
        octets: leg.stream.sent().1,
        block: q.rx.report(lsr, dlsr),
        cname: "hotline",
    }
    .build();
    let to = SocketAddr::new(leg.remote.ip(), leg.remote.port().wrapping_add(1));
    if socket.send_to(&report, to).is_ok() {
        q.reports_sent += 1;
        stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
    }
}

struct Leg {
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    stream: Stream,
    /// What it sends: a playback, the bridged leg's voice, or silence (`media::leg`).
    outgoing: Outgoing,
    notify: super::call_inputs::CallTx,
    sending: bool,
    /// What it does with what the far end sends: whose packets count (symmetric RTP, RFC
    /// 4961), keys, the voice for the bridge and a recorder (`media::leg`).
    media: MediaLeg,
    /// The conversation recorded on a caller's leg (`RecordCall`).
    call_recording: Option<CallRecording>,
    /// The leg this one is bridged to.
    peer: Option<u64>,
    stream_law: Law,
    /// Whether the kernel drops the audio this leg does not use (see [`fit_filter`]).
    filtered: bool,
    /// SRTP: what we send is protected, what arrives must authenticate.
    srtp: Option<Box<SrtpLeg>>,
    quality: Quality,
}

/// A leg's two SRTP contexts, and the far end's key they were made with.
struct SrtpLeg {
    tx: Srtp,
    rx: Srtp,
    remote_key: [u8; crate::media::srtp::MASTER_LEN],
}

impl SrtpLeg {
    fn new(k: &Sdes) -> Box<SrtpLeg> {
        Box::new(SrtpLeg {
            tx: Srtp::new(k.suite, &k.local),
            rx: Srtp::new(k.suite, &k.remote),
            remote_key: k.remote,
        })
    }
}

impl Leg {
    /// Counts `elapsed` ticks of silence unless something arrived meanwhile; reports the
    /// leg once when the silence reaches `limit` (`MediaLeg::silence`).
    fn check_silence(&mut self, elapsed: u32, limit: u32) {
        if self.media.silence(elapsed, limit) {
            let _ = self.notify.send(CallInput::MediaTimeout);
        }
    }
}

pub use crate::status::PacerStats;

/// Starts the media loop on its own thread: a plain OS thread sleeping to absolute deadlines
/// keeps 20 ms far more exactly than the async timer wheel (1 ms granularity), and the loop
/// never awaits anything.
/// `media_timeout`: a caller's leg from which nothing arrives this long, while its far end
/// should be sending, is reported (`CallInput::MediaTimeout`); `None` never.
pub fn spawn(
    commands: mpsc::Receiver<PacerCommand>,
    stats: Arc<PacerStats>,
    media_timeout: Option<Duration>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let ticks = media_timeout.map(|t| (t.as_millis() / TICK.as_millis()).max(1) as u32);
    std::thread::Builder::new()
        .name("hotline-media".into())
        .spawn(move || run(commands, stats, ticks))
}

/// How often (in ticks) the legs' silence is checked: once a second.
const SILENCE_CHECK: u32 = 50;

/// Behind by more than this (the machine stalled), the loop starts its clock again rather
/// than sending a burst of frames.
const RESYNC: Duration = Duration::from_millis(200);

/// How long an ended leg's port stays bound, unread, with room for almost nothing. The far end
/// often sends for a moment after the call ends, until it has seen the BYE or the answer to
/// its own (seconds, when that answer is retransmitted). A closed port would answer each
/// such packet with an ICMP port-unreachable, and a port handed at once to the next call
/// (when the range is nearly full) would hear the end of the last one.
pub const LINGER: Duration = Duration::from_secs(2);

/// Between ticks, what arrived is read every this often: a key press reaches its call within
/// about this much, and a busy line costs few wake-ups.
const READ_GAP: Duration = Duration::from_millis(2);

fn run(
    mut commands: mpsc::Receiver<PacerCommand>,
    stats: Arc<PacerStats>,
    media_timeout: Option<u32>,
) {
    // Ordered by call: each call keeps its place in the tick, so its packets keep their
    // spacing as calls come and go.
    let mut legs: BTreeMap<u64, Leg> = BTreeMap::new();
    let mut outbox = Outbox::for_this_thread();
    tracing::debug!(batched_sends = outbox.batched(), "media loop started");
    let mut batch = Batch::default();
    let mut poller = Poller::default();
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    // Ended legs' sockets, until their LINGER is over, in the order they ended.
    let mut closing: VecDeque<(Instant, Arc<UdpSocket>)> = VecDeque::new();
    let mut start = Instant::now();
    // Arrival times (for each leg's jitter) count from here.
    let origin = start;
    let mut tick: u32 = 0;
    // Ticks since the loop started, never reset: the far ends' latches count in them.
    let mut clock: u64 = 0;
    loop {
        tick = tick.wrapping_add(1);
        clock += 1;
        let due = start + TICK * tick;
        // Until the tick is due, what arrives is read as it comes: a key pressed just after a
        // tick reaches its call task (and the agent's phone rings) without waiting for the
        // next one. After each read the loop pauses READ_GAP: on a busy line every wait finds
        // something at once, and reading packet by packet would cost a system call each.
        let mut received = 0;
        loop {
            let left = due.saturating_duration_since(Instant::now());
            if left <= READ_GAP {
                // The tick's own pass reads the rest.
                std::thread::sleep(left);
                break;
            }
            let wait_ms = (left - READ_GAP).as_millis() as i32;
            received += receive_pass(
                &mut legs,
                &mut poller,
                &mut batch,
                wait_ms,
                (clock, origin),
                &stats,
            );
            std::thread::sleep(READ_GAP.min(due.saturating_duration_since(Instant::now())));
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > RESYNC {
            start = now;
            tick = 0;
            stats.late_ticks.fetch_add(1, Ordering::Relaxed);
        } else if now - due > Duration::from_millis(5) {
            stats.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            match commands.try_recv() {
                Ok(PacerCommand::Shutdown) => return,
                Ok(c) => apply(&mut legs, &mut poller, &mut closing, c, clock, &stats),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        while closing.front().is_some_and(|(until, _)| *until <= now) {
            closing.pop_front();
        }
        if let Some(limit) = media_timeout.filter(|_| tick.is_multiple_of(SILENCE_CHECK)) {
            for leg in legs.values_mut() {
                leg.check_silence(SILENCE_CHECK, limit);
            }
        }
        received += receive_pass(
            &mut legs,
            &mut poller,
            &mut batch,
            0,
            (clock, origin),
            &stats,
        );
        relay(&mut legs, &mut pairs);
        // Sent in chunks with a read between them: on a busy line the sending takes a good
        // part of the tick, and a key press arriving meanwhile is read after one chunk rather
        // than after them all.
        let mut from = 0u64;
        loop {
            let mut last = None;
            for (key, leg) in legs.range_mut(from..).take(SEND_CHUNK) {
                last = Some(*key);
                send_frame(leg, &mut outbox);
                send_report(*key, leg, clock, &stats);
            }
            outbox.flush();
            match last.and_then(|k| k.checked_add(1)) {
                Some(next) => from = next,
                None => break,
            }
            received += receive_pass(
                &mut legs,
                &mut poller,
                &mut batch,
                0,
                (clock, origin),
                &stats,
            );
        }
        let (sent, failed) = outbox.take_counts();
        stats.packets.fetch_add(sent, Ordering::Relaxed);
        stats.send_errors.fetch_add(failed, Ordering::Relaxed);
        stats.received.fetch_add(received, Ordering::Relaxed);
    }
}

/// Legs sent to between two reads of what arrived, within a tick: one batch of sends.
const SEND_CHUNK: usize = outbox::CAPACITY;

/// Sends one leg its next 20 ms (prompt, relayed audio or silence), through `outbox`.
fn send_frame(leg: &mut Leg, outbox: &mut Outbox) {
    let (frame, finished) = leg
        .outgoing
        .next_frame(&mut leg.media.bridge, leg.stream_law);
    if leg.sending {
        let buf = outbox.buffer();
        let n = leg
            .stream
            .next_into(frame, SAMPLES_PER_PACKET as u32, buf)
            .and_then(|n| match &mut leg.srtp {
                Some(s) => s.tx.protect(buf, n),
                None => Some(n),
            });
        if let Some(n) = n {
            outbox.push(&leg.socket, leg.remote, n);
        }
    } else {
        leg.stream.skip(SAMPLES_PER_PACKET as u32);
    }
    if let Some(tag) = finished {
        let _ = leg.notify.send(CallInput::Heard(Heard::PromptDone(tag)));
    }
}

/// Reads every leg's socket that has packets waiting, waiting up to `wait_ms` for the first;
/// returns how many packets.
fn receive_pass(
    legs: &mut BTreeMap<u64, Leg>,
    poller: &mut Poller,
    batch: &mut Batch,
    wait_ms: i32,
    (now, origin): (u64, Instant),
    stats: &PacerStats,
) -> u64 {
    let mut received = 0;
    let mut wait_ms = wait_ms;
    let mut again = Vec::new();
    loop {
        let (ready, full) = poller.wait(wait_ms);
        wait_ms = 0;
        // When this read's packets arrived, on the RTP clock (within the few milliseconds
        // between reads).
        let arrival = (origin.elapsed().as_micros() as u64).saturating_mul(8) / 1000;
        for &key in ready {
            if key & RTCP_KEY != 0 {
                if let Some(leg) = legs.get_mut(&(key & !RTCP_KEY))
                    && !read_rtcp(leg, stats)
                {
                    again.push(key);
                }
                continue;
            }
            if let Some(leg) = legs.get_mut(&key) {
                let (n, emptied) = receive(leg, batch, (now, arrival), stats);
                received += n;
                if !emptied {
                    again.push(key);
                }
            }
        }
        for key in again.drain(..) {
            poller.again(key);
        }
        // More sockets were ready than one wait reports: the ones read are quiet now.
        if !full {
            return received;
        }
    }
}

/// Batches read from one socket in one pass at most: a flooding sender cannot hold the loop.
const READS_PER_PASS: usize = 4;

/// Reads what the caller sent since the last pass; returns how many packets, and whether the
/// socket was read empty (the poller reports a socket again only when something new comes).
fn receive(
    leg: &mut Leg,
    batch: &mut Batch,
    (now, arrival): (u64, u64),
    stats: &PacerStats,
) -> (u64, bool) {
    let mut received = 0;
    for _ in 0..READS_PER_PASS {
        rtp_io::receive(&leg.socket, batch);
        received += batch.len() as u64;
        let (refused, srtp_refused) = take_batch(leg, batch, (now, arrival));
        if refused > 0 {
            stats.refused.fetch_add(refused, Ordering::Relaxed);
        }
        if srtp_refused > 0 {
            stats
                .srtp_refused
                .fetch_add(srtp_refused, Ordering::Relaxed);
        }
        if !batch.is_full() {
            return (received, true);
        }
    }
    (received, false)
}

/// Handles what one read brought: keys, audio for the bridge, the recorder, the tone detector;
/// only from the far end (see `media::latch`). Returns how many packets were refused, and how
/// many of them failed SRTP's authentication.
fn take_batch(leg: &mut Leg, batch: &Batch, (now, arrival): (u64, u64)) -> (u64, u64) {
    let mut refused = 0;
    let mut srtp_refused = 0;
    // Only an SRTP leg's packets are copied (to be decrypted): a plain leg allocates nothing.
    let mut plain: Vec<u8> = Vec::new();
    for i in 0..batch.len() {
        let Some((bytes, from)) = batch.get(i) else {
            continue;
        };
        // SRTP: only what authenticates counts, and it counts decrypted.
        let bytes = match &mut leg.srtp {
            Some(s) => {
                plain.clear();
                plain.extend_from_slice(&bytes[..bytes.len().min(MAX_PACKET)]);
                match s.rx.unprotect(&mut plain) {
                    Some(n) => &plain[..n],
                    None => {
                        refused += 1;
                        srtp_refused += 1;
                        continue;
                    }
                }
            }
            None => bytes,
        };
        let notify = &leg.notify;
        let taken = leg
            .media
            .take(bytes, from, now, leg.peer.is_some(), &mut |told| {
                let _ = notify.send(match told {
                    Told::Digit(d) => CallInput::Heard(Heard::Digit(d)),
                    Told::AgentDigit(d) => CallInput::AgentDigit(d),
                    Told::RecordingFull => CallInput::RecordingFull,
                });
            });
        let Taken::Used {
            ssrc,
            sequence,
            timestamp,
            audio,
            moved,
        } = taken
        else {
            if taken == Taken::Refused {
                refused += 1;
            }
            continue;
        };
        if !leg.filtered {
            leg.quality
                .rx
                .on_packet(ssrc, sequence, timestamp, arrival, audio);
        }
        if moved || leg.remote != leg.media.latch.remote() {
            leg.remote = leg.media.latch.remote();
            fit_filter(leg);
        }
    }
    (refused, srtp_refused)
}

/// Most of what a caller sends is audio nobody listens to: in a menu or a queue only their
/// key presses count. Reading it anyway is most of the media loop's receiving, so while a leg
/// does not use its audio (not bridged, not recorded, no in-band key detection) the kernel
/// drops it before it is queued, keeping the key presses and one packet in
/// [`rtp_io::SAMPLED`]. Until the far end's first packet is seen (symmetric RTP) everything
/// is kept, so the leg latches on it at once.
fn fit_filter(leg: &mut Leg) {
    let drop = leg.media.latch.is_latched() && !leg.media.uses_audio(leg.peer.is_some());
    if drop == leg.filtered {
        return;
    }
    if drop {
        leg.filtered = rtp_io::drop_unheard_audio(&leg.socket, leg.media.telephone_event);
        if leg.filtered {
            // What the kernel drops now is not lost on the way.
            leg.quality.rx.skip_gap();
        }
    } else {
        rtp_io::keep_all_packets(&leg.socket);
        leg.filtered = false;
    }
}

/// Hands what each bridged leg heard to its peer.
fn relay(legs: &mut BTreeMap<u64, Leg>, pairs: &mut Vec<(u64, u64)>) {
    pairs.extend(legs.iter().filter_map(|(&id, l)| {
        l.peer
            .filter(|_| l.media.bridge.has_heard())
            .map(|p| (id, p))
    }));
    for (from, to) in pairs.drain(..) {
        let Some(mut heard) = legs.get_mut(&from).map(|l| l.media.bridge.take_heard()) else {
            continue;
        };
        // A recorded call: the caller's leg keeps the recording, of both sides.
        if let Some(r) = legs.get_mut(&from).and_then(|l| l.call_recording.as_mut()) {
            r.stereo.push(Side::Caller, &heard);
        } else if let Some(r) = legs.get_mut(&to).and_then(|l| l.call_recording.as_mut()) {
            r.stereo.push(Side::Agent, &heard);
        }
        if let Some(p) = legs.get_mut(&to) {
            p.media.bridge.receive(&mut heard);
        }
        if let Some(l) = legs.get_mut(&from) {
            l.media.bridge.give_back(heard);
        }
    }
    // Whole 20 ms of recorded calls go to their writers.
    for r in legs.values_mut().filter_map(|l| l.call_recording.as_mut()) {
        let mut frames = Vec::new();
        if r.stereo.take(&mut frames) == 0 {
            continue;
        }
        if r.sink.try_send(frames).is_err()
            && !r.lost.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("a call recording's writer falls behind: frames dropped");
        }
    }
}

fn apply(
    legs: &mut BTreeMap<u64, Leg>,
    poller: &mut Poller,
    closing: &mut VecDeque<(Instant, Arc<UdpSocket>)>,
    c: PacerCommand,
    clock: u64,
    stats: &PacerStats,
) {
    match c {
        PacerCommand::Add {
            id,
            socket,
            remote,
            sip_host,
            law,
            telephone_event,
            ssrc,
            sequence,
            timestamp,
            notify,
            keys,
            srtp,
        } => {
            let listen_keys = keys == Keys::Caller;
            poller.add(&socket, id);
            // The same leg again (new media): its figures go on, its RTCP socket too when
            // the port is the same.
            let mut quality = legs
                .get_mut(&id)
                .map(|l| std::mem::take(&mut l.quality))
                .unwrap_or_default();
            let rtcp_port = socket.local_addr().ok().map(|a| a.port().wrapping_add(1));
            let same = quality
                .socket
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .map(|a| a.port());
            if same.is_none() || same != rtcp_port || srtp.is_some() {
                if let Some(old) = quality.socket.take() {
                    poller.remove(&old);
                }
                quality.socket = Quality::open_socket(&socket, srtp.is_some());
                if let Some(s) = &quality.socket {
                    poller.add(s, id | RTCP_KEY);
                }
            }
            if srtp.is_some() {
                stats.srtp_legs.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(old) = legs.insert(
                id,
                Leg {
                    socket,
                    remote,
                    stream: Stream::new(ssrc, law.payload_type(), sequence, timestamp),
                    outgoing: Outgoing::new(law),
                    notify,
                    sending: true,
                    media: MediaLeg::new(
                        Latch::new(remote, sip_host, clock),
                        telephone_event.filter(|_| keys != Keys::None),
                        keys == Keys::Agent,
                        // In-band detection only for callers that offered no
                        // telephone-event (gateways that leave tones in the audio):
                        // decoding every packet of every call costs CPU.
                        listen_keys && telephone_event.is_none(),
                    )
                    .timed(listen_keys),
                    call_recording: None,
                    peer: None,
                    stream_law: law,
                    filtered: false,
                    srtp: srtp.as_ref().map(SrtpLeg::new),
                    quality,
                },
            ) {
                // Same id again: the new socket was added above, the old one goes. A socket
                // kept for the new leg keeps no filter of the old one.
                if old.filtered {
                    rtp_io::keep_all_packets(&old.socket);
                }
                if !Arc::ptr_eq(&old.socket, &legs[&id].socket) {
                    poller.remove(&old.socket);
                }
            }
        }
        PacerCommand::Play {
            id,
            items,
            looped,
            tag,
        } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.outgoing.play(Playback::new(items, looped), tag);
            }
        }
        PacerCommand::Stop { id } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.outgoing.stop();
            }
        }
        PacerCommand::Keys { id, keys } => {
            if let Some(leg) = legs.get_mut(&id)
                && leg
                    .srtp
                    .as_ref()
                    .is_none_or(|s| s.remote_key != keys.remote)
            {
                // What we send keeps its context (and so its rollover counter) when our key
                // is unchanged; what arrives starts afresh under the new key.
                let rx = Srtp::new(keys.suite, &keys.remote);
                match &mut leg.srtp {
                    Some(s) if s.tx.suite() == keys.suite => {
                        s.rx = rx;
                        s.remote_key = keys.remote;
                    }
                    _ => leg.srtp = Some(SrtpLeg::new(&keys)),
                }
            }
        }
        PacerCommand::Media {
            id,
            remote,
            sending,
            expects_media,
            hold_music,
        } => {
            let Some(leg) = legs.get_mut(&id) else {
                return;
            };
            leg.remote = remote;
            leg.sending = sending;
            leg.media.expect_media(expects_media);
            leg.media.latch.moved(remote, clock);
            fit_filter(leg);
            // The other side of a bridge hears music while this one holds, not silence.
            let Some(peer) = leg.peer.and_then(|p| legs.get_mut(&p)) else {
                return;
            };
            match hold_music {
                Some(music) => {
                    let items = match peer.stream_law {
                        Law::Pcmu => music.pcmu,
                        Law::Pcma => music.pcma,
                    };
                    if !items.is_empty() {
                        peer.outgoing.play(Playback::new(items, true), HOLD_TAG);
                    }
                }
                None => {
                    if peer.outgoing.playing() == Some(HOLD_TAG) {
                        peer.outgoing.stop();
                    }
                }
            }
        }
        PacerCommand::Record { id, recorder } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.media.recording = Some(recorder);
                fit_filter(leg);
            }
        }
        PacerCommand::TakeRecording { id, reply } => {
            if let Some(leg) = legs.get_mut(&id)
                && let Some(r) = leg.media.recording.take()
            {
                fit_filter(leg);
                let _ = reply.send(r);
            }
        }
        PacerCommand::Bridge { a, b } => {
            if legs.contains_key(&a) && legs.contains_key(&b) {
                // `a` is the caller's leg: the one the call's figures are asked of.
                if let Some(leg) = legs.get_mut(&b) {
                    leg.quality.reports_to = Some(a);
                }
                if let Some(caller) = legs.get_mut(&a)
                    && !caller.quality.bridged.contains(&b)
                {
                    caller.quality.bridged.push(b);
                }
                for (this, other) in [(a, b), (b, a)] {
                    if let Some(leg) = legs.get_mut(&this) {
                        leg.peer = Some(other);
                        leg.outgoing.stop();
                        leg.media.recording = None;
                        fit_filter(leg);
                    }
                }
            }
        }
        PacerCommand::RecordCall {
            id,
            sink,
            lost,
            mono,
        } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.call_recording = Some(CallRecording {
                    stereo: Stereo::new(mono),
                    sink,
                    lost,
                });
            }
        }
        PacerCommand::PauseRecording { id, paused } => {
            if let Some(r) = legs.get_mut(&id).and_then(|l| l.call_recording.as_mut()) {
                r.stereo.set_paused(paused);
            }
        }
        PacerCommand::Unbridge { id } => {
            let Some(other) = legs.get_mut(&id).and_then(|l| l.peer.take()) else {
                return;
            };
            for this in [id, other] {
                if let Some(leg) = legs.get_mut(&this) {
                    leg.peer = None;
                    leg.media.bridge.clear();
                    fit_filter(leg);
                }
            }
        }
        PacerCommand::Quality { id, reply } => {
            let q = legs.get(&id).map(|l| {
                let mut agents = l.quality.past.clone();
                for other in &l.quality.bridged {
                    if let Some(o) = legs.get(other)
                        && !agents.iter().any(|a| a.0 == *other)
                    {
                        agents.push((*other, o.quality.figures()));
                    }
                }
                CallQuality {
                    caller: l.quality.figures(),
                    agents: agents.into_iter().map(|a| a.1).collect(),
                }
            });
            let _ = reply.send(q);
        }
        PacerCommand::Remove { id } => {
            let gone = legs.remove(&id);
            if let Some(l) = &gone {
                if let Some(s) = &l.quality.socket {
                    poller.remove(s);
                }
                stats
                    .rtp_lost
                    .fetch_add(l.quality.rx.lost(), Ordering::Relaxed);
                if let Some(caller) = l.quality.reports_to.and_then(|c| legs.get_mut(&c)) {
                    let past = &mut caller.quality.past;
                    past.retain(|p| p.0 != id);
                    past.push((id, l.quality.figures()));
                }
                poller.remove(&l.socket);
                if rtp_io::queue_almost_nothing(&l.socket) {
                    closing.push_back((Instant::now() + LINGER, Arc::clone(&l.socket)));
                }
            }
            if let Some(peer) = gone.and_then(|l| l.peer)
                && let Some(p) = legs.get_mut(&peer)
            {
                p.peer = None;
                p.media.bridge.clear();
                fit_filter(p);
            }
        }
        PacerCommand::Shutdown => {}
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// What a far end sending one more packet to `port` hears back: `Ok(())` for nothing (the
    /// packet was taken quietly), an error for an ICMP port-unreachable.
    fn one_more_packet(port: u16) -> std::io::Result<()> {
        let far = UdpSocket::bind("127.0.0.1:0")?;
        far.connect(("127.0.0.1", port))?;
        far.set_read_timeout(Some(Duration::from_millis(200)))?;
        far.send(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])?;
        match far.recv(&mut [0u8; 64]) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn an_ended_call_keeps_its_port_a_while_and_takes_late_packets_quietly() {
        let (commands, rx) = channel();
        let pacer = spawn(rx, Arc::default(), None).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let port = socket.local_addr().unwrap().port();
        let (notify, _calls) = crate::server::call_inputs::channel();
        commands
            .send(PacerCommand::Add {
                id: 1,
                socket: Arc::new(socket),
                remote: "127.0.0.1:9".parse().unwrap(),
                sip_host: "127.0.0.1".parse().unwrap(),
                law: Law::Pcmu,
                telephone_event: Some(101),
                ssrc: 1,
                sequence: 1,
                timestamp: 1,
                notify,
                keys: Keys::Caller,
                srtp: None,
            })
            .unwrap();
        commands.send(PacerCommand::Remove { id: 1 }).unwrap();
        std::thread::sleep(TICK * 3);
        assert!(
            one_more_packet(port).is_ok(),
            "a late packet is dropped, not answered with port-unreachable"
        );
        assert!(
            UdpSocket::bind(("127.0.0.1", port)).is_err(),
            "the port is not handed out meanwhile"
        );
        std::thread::sleep(LINGER + TICK * 5);
        assert_eq!(
            one_more_packet(port).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionRefused),
            "after LINGER the port is closed"
        );
        commands.send(PacerCommand::Shutdown).unwrap();
        pacer.join().unwrap();
    }
}

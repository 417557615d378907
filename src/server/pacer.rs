//! The pacing tick: one 20 ms timer sends the next frame of every live call, so pacing does
//! not depend on how many calls there are (no timer or task per packet). Frames come from
//! the shared pre-encoded prompts; packets are built into one reused buffer and sent without
//! awaiting. Between prompts a call gets silence, so its RTP clock and any NAT binding stay
//! alive, as on a classic PBX.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::call::CallInput;
use crate::media::g711::Law;
use crate::media::player::Playback;
use crate::media::rtp::{MAX_PACKET, SAMPLES_PER_PACKET, Stream};

pub const TICK: Duration = Duration::from_millis(20);

pub enum PacerCommand {
    Add {
        id: u64,
        socket: Arc<UdpSocket>,
        remote: SocketAddr,
        law: Law,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        notify: mpsc::UnboundedSender<CallInput>,
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
    /// Where the call's audio goes, and whether it may be sent at all (hold).
    Media {
        id: u64,
        remote: SocketAddr,
        sending: bool,
    },
    Remove {
        id: u64,
    },
}

struct Leg {
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    stream: Stream,
    playing: Option<(Playback, u64)>,
    notify: mpsc::UnboundedSender<CallInput>,
    sending: bool,
    silence: [u8; SAMPLES_PER_PACKET],
}

/// What the pacing loop counts, for the metrics and the benchmark.
#[derive(Debug, Default)]
pub struct PacerStats {
    pub packets: AtomicU64,
    pub send_errors: AtomicU64,
    /// Ticks that ran more than 5 ms after their time.
    pub late_ticks: AtomicU64,
}

pub async fn run(mut commands: mpsc::UnboundedReceiver<PacerCommand>, stats: Arc<PacerStats>) {
    let mut legs: HashMap<u64, Leg> = HashMap::new();
    let mut interval = tokio::time::interval(TICK);
    // A late tick is caught up at once: the far end's jitter buffer absorbs a burst, while a
    // skipped frame would be a gap in the audio.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = [0u8; MAX_PACKET];
    loop {
        let scheduled = interval.tick().await;
        if tokio::time::Instant::now().duration_since(scheduled) > Duration::from_millis(5) {
            stats.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            match commands.try_recv() {
                Ok(c) => apply(&mut legs, c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        let mut sent = 0;
        for leg in legs.values_mut() {
            let mut finished = None;
            let frame: &[u8] = match &mut leg.playing {
                Some((playback, tag)) => match playback.next_frame() {
                    Some(f) => f,
                    None => {
                        finished = Some(*tag);
                        &leg.silence
                    }
                },
                None => &leg.silence,
            };
            if leg.sending {
                if let Some(n) = leg
                    .stream
                    .next_into(frame, SAMPLES_PER_PACKET as u32, &mut buf)
                {
                    match leg.socket.try_send_to(&buf[..n], leg.remote) {
                        Ok(_) => sent += 1,
                        Err(_) => {
                            stats.send_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            } else {
                leg.stream.skip(SAMPLES_PER_PACKET as u32);
            }
            if let Some(tag) = finished {
                leg.playing = None;
                let _ = leg.notify.send(CallInput::PromptDone(tag));
            }
        }
        stats.packets.fetch_add(sent, Ordering::Relaxed);
    }
}

fn apply(legs: &mut HashMap<u64, Leg>, c: PacerCommand) {
    match c {
        PacerCommand::Add {
            id,
            socket,
            remote,
            law,
            ssrc,
            sequence,
            timestamp,
            notify,
        } => {
            legs.insert(
                id,
                Leg {
                    socket,
                    remote,
                    stream: Stream::new(ssrc, law.payload_type(), sequence, timestamp),
                    playing: None,
                    notify,
                    sending: true,
                    silence: [law.encode(0); SAMPLES_PER_PACKET],
                },
            );
        }
        PacerCommand::Play {
            id,
            items,
            looped,
            tag,
        } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.playing = Some((Playback::new(items, looped), tag));
            }
        }
        PacerCommand::Stop { id } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.playing = None;
            }
        }
        PacerCommand::Media {
            id,
            remote,
            sending,
        } => {
            if let Some(leg) = legs.get_mut(&id) {
                leg.remote = remote;
                leg.sending = sending;
            }
        }
        PacerCommand::Remove { id } => {
            legs.remove(&id);
        }
    }
}

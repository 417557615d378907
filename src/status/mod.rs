//! What the running server shows, below both the server (which keeps it) and the HTTP API
//! (which reads it): the rows and the questions the API asks the signalling task, the live
//! events, the metrics, the disk's health and the call tasks' count. The server builds a
//! [`Status`] and hands it to whatever serves HTTP; neither imports the other.

pub mod caller;
pub mod events;
pub mod health;
pub mod metrics;
pub mod switches;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::line::Flows;
use crate::routing::Requested;
use crate::store::Store;

/// What the HTTP API reads of the running server, and where it sends its questions.
pub struct Status {
    /// The config the server started with.
    pub config: Config,
    /// The flows new calls get (swapped by a reload).
    pub flows: Arc<RwLock<Arc<Flows>>>,
    pub reload_status: Arc<Mutex<ReloadStatus>>,
    pub store: Arc<Mutex<Store>>,
    /// What the desk and the wall follow live (`GET /api/events`).
    pub events: Arc<events::Hub>,
    pub metrics: Arc<metrics::Metrics>,
    pub stats: Arc<Stats>,
    pub pacer: Arc<PacerStats>,
    /// Whether the data folder takes writes (`GET /health`, `/metrics`).
    pub disk: Arc<health::DiskHealth>,
    /// Call tasks still running.
    pub call_tasks: Arc<CallTasks>,
    /// Questions for the signalling task (which owns the routing core).
    pub queries: mpsc::Sender<ApiQuery>,
    /// The `[switches]`' positions, as flipped.
    pub switches: Arc<switches::Switches>,
}

impl Status {
    /// The flows new calls get now.
    pub fn flows(&self) -> Arc<Flows> {
        match self.flows.read() {
            Ok(f) => Arc::clone(&f),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// One agent, for `GET /api/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    /// offline | available | ringing | busy | wrap-up | not-ready
    pub state: &'static str,
    /// When the agent entered that state (RFC 3339, UTC), and how long ago.
    pub since: String,
    pub since_s: u64,
    /// Why the agent is not ready or offline: the reason given with the state change, or
    /// `no-phone`, `unreachable`, `registered`, `ring-no-answer`; null otherwise.
    pub reason: Option<String>,
    /// Whether a phone is registered for the agent.
    pub registered: bool,
    /// Registered, but no phone of hers answers its OPTIONS: she is not rung.
    pub unreachable: bool,
    /// Wrong passwords given for the agent's username within the lockout window, and the
    /// addresses locked out for it meanwhile.
    pub auth_failures: u32,
    pub locked_out: Vec<String>,
    /// The Call-ID of the caller the agent rings for or talks to.
    pub call: Option<String>,
    /// What the agent asked to be after the current call (`not-ready`, `available`,
    /// `offline`), with its reason.
    pub next_state: Option<NextState>,
    /// Seconds of wrap-up left, while in wrap-up.
    pub wrap_up_left_s: Option<u64>,
    /// Who the agent rings for or talks to.
    pub caller: Option<caller::CallerCard>,
    /// Whom she calls about her caller before handing them over (an attended transfer).
    pub consulting: Option<ConsultRow>,
}

/// An agent's call about her caller, as her desk shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsultRow {
    /// `agent:bob` or `tel:+34600111222`.
    pub to: String,
    /// They answered: the agent talks to them, the caller holds.
    pub answered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextState {
    pub state: &'static str,
    pub reason: Option<String>,
}

/// One queue, for `GET /api/queues`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    pub name: String,
    pub waiting: usize,
    pub longest_wait_s: f64,
    pub agents_available: usize,
    pub agents_logged_in: u32,
    /// Estimated wait for a caller joining now; `null` until calls have been handled.
    pub ewt_s: Option<f64>,
    /// Share of callers answered within `service_level_s`, of those who left the queue in
    /// the last hour.
    pub service_level: Option<f64>,
    pub service_level_s: u64,
    /// Spoken wait estimates against the waits callers then had, since the start.
    pub wait_estimates: WaitEstimateRow,
    /// The queue's agents by state (those logged out are not counted).
    pub agents: AgentCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentCounts {
    pub available: u32,
    pub ringing: u32,
    pub busy: u32,
    pub wrap_up: u32,
    pub not_ready: u32,
}

/// How a queue's announced waits held up (see `routing::audit`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WaitEstimateRow {
    /// Announcements whose caller has since been answered or left.
    pub scored: u64,
    pub mean_abs_error_s: Option<f64>,
    /// Callers who waited more than 1.5× what they were told.
    pub waited_over_1_5x: u64,
    /// The queue's recent average wait would have been closer on the same announcements.
    pub baseline_better: bool,
    #[serde(skip)]
    pub figures: crate::routing::audit::AuditFigures,
}

/// What the API asks the signalling task.
#[derive(Debug)]
pub enum ApiQuery {
    Agents(oneshot::Sender<Vec<AgentRow>>),
    Queues(oneshot::Sender<Vec<QueueRow>>),
    SetState {
        agent: String,
        state: Requested,
        reason: Option<String>,
        reply: oneshot::Sender<StateReply>,
    },
    /// Live calls and agents by state, for the metrics.
    Gauges(oneshot::Sender<Gauges>),
    /// The carrier trunks and their registrations.
    Trunks(oneshot::Sender<Vec<TrunkRow>>),
    /// The callers waiting for or talking to a human, longest waiting first.
    LiveCalls(oneshot::Sender<Vec<caller::LiveCall>>),
    /// An agent calls a caller back now (a follow-up on the desk): ring the agent, then dial
    /// the caller; or why not.
    CallBackNow {
        agent: String,
        caller: String,
        queue: String,
        call_id: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The desk's "talk first" button: call a colleague, a queue or a number about the
    /// agent's caller, who holds meanwhile: whom (`agent:bob`, `tel:+34…`), or the SIP status
    /// and words of why not.
    Consult {
        agent: String,
        to: String,
        reply: oneshot::Sender<Result<String, (u16, String)>>,
    },
    /// The desk's buttons while she talks to them: hand the caller over (`complete`), or
    /// have them back. Whom the caller went to, or why not.
    ConsultEnd {
        agent: String,
        complete: bool,
        reply: oneshot::Sender<Result<String, (u16, String)>>,
    },
    /// The desk's transfer button: pass the agent's caller on to a queue or an agent (by
    /// name): where they went (`queue:billing`, `agent:bob` while he rings), or the SIP
    /// status and words of why not.
    Transfer {
        agent: String,
        to: String,
        /// For whoever takes the caller next.
        note: Option<String>,
        reply: oneshot::Sender<Result<String, (u16, String)>>,
    },
    /// The desk's recording button: record, pause or toggle the agent's current call;
    /// whether it records now, or why not.
    Recording {
        agent: String,
        want: crate::media::recording_control::Want,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// The desk's login: the agent's id, or why not (with the SIP lockout's counters).
    Login {
        user: String,
        password: String,
        source: std::net::IpAddr,
        reply: oneshot::Sender<Result<LoggedIn, LoginRefused>>,
    },
}

/// Who logged in to the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub id: String,
    pub name: String,
    pub supervisor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong username or password.
    Wrong,
    /// Too many failures: refused unchecked until the window has passed.
    LockedOut,
}

/// The answer to a state change.
#[derive(Debug)]
pub enum StateReply {
    /// Done (a busy agent takes it after the call): the agent's new row.
    Done(AgentRow),
    NoSuchAgent,
    /// `available` for an agent with no registered phone: nothing could ring.
    NoPhone(AgentRow),
}

#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub active_calls: usize,
    /// SIP datagrams dropped because the signalling queue was full.
    pub sip_dropped: u64,
    /// The gate: messages dropped from banned sources and scanners, bans started, and
    /// addresses banned now.
    pub sip_banned_messages: u64,
    pub sip_bans: u64,
    pub sip_banned_addresses: usize,
    pub agents: Vec<(&'static str, usize)>,
    pub queues: Vec<QueueRow>,
    pub trunks: Vec<TrunkRow>,
}

/// One trunk as `/api/trunks` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrunkRow {
    pub name: String,
    pub proxy: String,
    pub register: bool,
    /// `registered`, `registering`, `failed`, `unregistered`, or `off` (not registering).
    pub state: &'static str,
    pub expires_s: Option<u32>,
    /// The carrier's refusal, when it refused.
    pub code: Option<u16>,
    pub retry_in_s: Option<u64>,
}

/// Counters the server keeps (metrics arrive with the HTTP API).
#[derive(Debug, Default)]
pub struct Stats {
    pub retransmissions: AtomicU64,
    /// Set when a stop begins: new calls get 503, `GET /health` says so.
    pub draining: std::sync::atomic::AtomicBool,
}

/// Counts the call tasks running; `idle()` resolves when none is.
#[derive(Debug, Default)]
pub struct CallTasks {
    live: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One running call task; dropping it counts it out.
pub struct CallTask(Arc<CallTasks>);

impl CallTasks {
    pub fn enter(self: &Arc<Self>) -> CallTask {
        self.live.fetch_add(1, Ordering::SeqCst);
        CallTask(Arc::clone(self))
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Resolves once no call task runs.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for CallTask {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What the pacing loop counts, for the metrics and the benchmark.
#[derive(Debug, Default)]
pub struct PacerStats {
    pub packets: AtomicU64,
    pub received: AtomicU64,
    /// RTP packets refused: from a source that is not the call's far end.
    pub refused: AtomicU64,
    pub send_errors: AtomicU64,
    /// Legs started with SRTP, and SRTP packets refused (failed authentication, replays).
    pub srtp_legs: AtomicU64,
    pub srtp_refused: AtomicU64,
    /// Ticks that ran more than 5 ms after their time.
    pub late_ticks: AtomicU64,
    /// RTP packets that never arrived (counted as each leg ends), and RTCP reports read and
    /// sent.
    pub rtp_lost: AtomicU64,
    pub rtcp_received: AtomicU64,
    pub rtcp_sent: AtomicU64,
}

/// The outcome of the last reload, for `GET /api/flows`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// RFC 3339, UTC.
    pub at: Option<String>,
    /// Why: `signal` or `file change`.
    pub trigger: Option<String>,
    pub ok: Option<bool>,
    pub message: Option<String>,
    /// The validator's report when the new set was refused.
    pub diagnostics: Option<String>,
}

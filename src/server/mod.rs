//! `hotline serve`: the tokio edge. It owns the sockets, the tasks and the clock, and wires the
//! pure cores together: the signalling task (SIP transactions and dialogs), one task per call
//! (the flow engine), and one pacing tick for all RTP.
#![allow(clippy::disallowed_methods)] // the one place the clock is read

pub mod call;
pub mod call_inputs;
mod dns;
mod http;
pub mod lookups;
mod outbox;
pub mod pacer;
pub(crate) mod recordings;
pub mod records;
pub mod reload;
mod rtp_io;
pub mod saves;
pub mod signalling;
mod stop;
pub(crate) mod tls;

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use crate::config::{Config, Loaded};
use crate::sip::transaction;
use crate::sip::transport::Transport;
use crate::store::Store;

pub use crate::line::Flows;
use crate::status::Status;
pub use crate::status::{CallTask, CallTasks, Stats, health, metrics};

/// The flow a call is answered by: the set it belongs to (kept for the whole call), and
/// which flow of it.
#[derive(Clone)]
pub struct Line {
    pub flows: Arc<Flows>,
    pub flow: usize,
    /// The Request-URI user dialled.
    pub dialled: String,
    /// When the INVITE came (RFC 3339).
    pub invited: String,
    /// Not a call to a line: an agent's feature code, answered with these prompts and hung
    /// up (no flow, no call record).
    pub announce: Option<Vec<String>>,
    /// Not a call to a line: an agent calling a colleague about her caller (an attended
    /// transfer's consultation), bridged to his leg (its media id) once he answers.
    pub consult: Option<u64>,
    /// `hotline probe` calling, authenticated by `HOTLINE_PROBE_TOKEN`: kept out of the
    /// compliance figures, never offered to an agent, leaves no message or callback behind.
    pub probe: bool,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("flow", &self.flow)
            .field("dialled", &self.dialled)
            .finish()
    }
}

/// What every task of the server shares.
pub struct Shared {
    /// The config the server started with. `[lines]`, `[callbacks]`, calendars, agents and
    /// queues follow reloads (in `Flows` and the signalling task); the rest needs a restart.
    pub config: Config,
    /// The file it came from (`None`: the embedded demo config), read again on a reload.
    pub config_file: Option<PathBuf>,
    flows: Arc<RwLock<Arc<Flows>>>,
    pub reload_status: Arc<Mutex<reload::ReloadStatus>>,
    pub records: records::Records,
    pub metrics: Arc<metrics::Metrics>,
    pub store: Arc<Mutex<Store>>,
    /// Voicemails and callback requests, durable before the caller is told.
    pub saves: saves::Saves,
    pub data: PathBuf,
    pub pacer: pacer::PacerTx,
    pub sip: mpsc::Sender<signalling::SipCommand>,
    pub ports: Ports,
    pub media_ip: IpAddr,
    pub tx_config: transaction::Config,
    pub stats: Arc<Stats>,
    /// Whether the data folder takes writes (`GET /health`, `/metrics`).
    pub disk: Arc<health::DiskHealth>,
    /// Call tasks still running: a drain waits for their final records.
    pub call_tasks: Arc<CallTasks>,
    /// What the desk and the wall follow live (`GET /api/events`).
    pub events: Arc<crate::status::events::Hub>,
    /// What a probe call's `X-Hotline-Probe` header must say (`HOTLINE_PROBE_TOKEN`); without
    /// it no call is taken for a probe.
    pub probe_token: Option<String>,
    /// The client of the flows' `lookup` nodes.
    pub lookups: lookups::Lookups,
    /// The `[switches]`' positions, as flipped.
    pub switches: Arc<crate::status::switches::Switches>,
}

impl Shared {
    /// The flow a call is answered by: the `[lines]` entry of its Request-URI user, else of
    /// its To user (a carrier may put its own account in the Request-URI), else `default`.
    /// Numbers match in any format, and the line is recorded in E.164.
    pub fn line_for(&self, user: &str, to_user: &str) -> Option<Line> {
        let flows = self.flows();
        let (dialled, name) = match flows.line_named(user) {
            Some(name) => (user, name),
            None => match flows.line_named(to_user) {
                Some(name) => (to_user, name),
                None => (user, flows.lines.get("default")?.as_str()),
            },
        };
        let flow = flows.set.flow_by_name(name)?;
        let dialled = flows.callbacks.numbering.key(dialled);
        Some(Line {
            flows,
            flow,
            dialled,
            invited: jiff::Timestamp::now().to_string(),
            announce: None,
            consult: None,
            probe: false,
        })
    }

    /// The answer to an agent's feature code: these prompts, then a hang-up.
    pub fn announcement(&self, user: &str, prompts: Vec<String>) -> Line {
        Line {
            flows: self.flows(),
            flow: 0,
            dialled: user.to_string(),
            invited: jiff::Timestamp::now().to_string(),
            announce: Some(prompts),
            consult: None,
            probe: false,
        }
    }

    /// An agent's call to a colleague (`user`) about her caller: no flow, no record.
    pub fn consultation(&self, user: &str) -> Line {
        Line {
            announce: None,
            consult: Some(0), // his leg's, once he answers
            ..self.announcement(user, Vec::new())
        }
    }

    /// The set new calls get.
    pub fn flows(&self) -> Arc<Flows> {
        match self.flows.read() {
            Ok(f) => Arc::clone(&f),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new set live for the calls that come next.
    pub fn set_flows(&self, flows: Flows) {
        let new = Arc::new(flows);
        match self.flows.write() {
            Ok(mut f) => *f = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// RTP ports handed out from a random place in the configured range (the next call's port
/// cannot be guessed from this one's), even numbers only (RFC 3550 §11 leaves the odd one to
/// RTCP).
pub struct Ports {
    address: IpAddr,
    low: u16,
    high: u16,
}

impl Ports {
    pub fn new(address: IpAddr, range: [u16; 2]) -> Ports {
        // The first even port of the range (the config refuses one without any).
        let low = range[0].max(1024).saturating_add(range[0] % 2) & !1;
        Ports {
            address,
            low,
            high: range[1].max(low),
        }
    }

    /// A bound non-blocking socket on a free port, or `None` when the range is exhausted.
    /// The media loop polls it each tick; it is never registered with the reactor.
    pub fn open(&self) -> Option<Arc<StdUdpSocket>> {
        let slots = u32::from((self.high - self.low) / 2 + 1);
        let start = (random() % u64::from(slots)) as u32;
        for n in 0..slots {
            let i = (start + n) % slots;
            let port = self.low + (i * 2) as u16;
            if let Ok(s) = StdUdpSocket::bind(SocketAddr::new(self.address, port))
                && s.set_nonblocking(true).is_ok()
            {
                return Some(Arc::new(s));
            }
        }
        None
    }
}

/// A random number for tags, branches and RTP SSRCs (unpredictable, not cryptographic).
pub fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Raises the soft limit on open files to the hard one (each call holds a socket, each agent
/// leg another), and says when even that caps the calls the RTP range could carry: the
/// 1,025th socket would otherwise fail as a misleading "no free RTP port".
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 here, not on every platform
fn raise_file_limit(config: &Config) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        let ports = u64::from((config.rtp.ports[1].saturating_sub(config.rtp.ports[0])) / 2 + 1);
        // A call with an agent holds two media sockets; leave room for SIP, HTTP and the store.
        let calls = (lim.rlim_cur as u64).saturating_sub(64) / 2;
        if calls < ports {
            tracing::warn!(
                open_files = lim.rlim_cur as u64,
                rtp_ports = ports,
                "the open-file limit caps the server at about {calls} calls with an agent, fewer than the RTP range allows: raise it (LimitNOFILE=, ulimit -Hn)"
            );
        } else {
            tracing::info!(open_files = lim.rlim_cur as u64, "open-file limit");
        }
    }
}

/// Hands memory freed after a flood back to the system: glibc keeps freed heap for reuse
/// otherwise, and a process that once held a flood's worth would look like it leaks.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long a stop waits for the calls it ended to write their final records.
const DRAIN_RECORDS: std::time::Duration = std::time::Duration::from_secs(20);

/// How long the tasks have to finish what they are doing once told to stop (a page's last
/// request, a reload being validated).
const TASKS_STOP: std::time::Duration = std::time::Duration::from_secs(10);
/// Commands waiting for the signalling task at most (from call tasks, reloads, lookups).
const SIGNALLING_QUEUE: usize = 16_384;
/// The API's questions waiting for the signalling task at most.
const API_QUEUE: usize = 1024;

/// Runs the server until `shutdown` resolves and the live calls have drained. `http` builds
/// what `[http] listen` serves (the API, the desk and the wall) from what the server shows.
pub async fn run(
    loaded: Loaded,
    flows: Flows,
    store: Store,
    http_app: impl FnOnce(Arc<Status>) -> axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let config = loaded.config;
    raise_file_limit(&config);
    tracing::info!(
        config = loaded
            .file
            .as_ref()
            .map_or("the embedded demo config".to_string(), |f| f
                .display()
                .to_string()),
        agents = config.agents.len(),
        queues = config.queues.len(),
        lines = config.lines.len(),
        rtp_ports = format!("{}-{}", config.rtp.ports[0], config.rtp.ports[1]),
        calls_at_most = (config.rtp.ports[1] - config.rtp.ports[0]) / 2 + 1,
        "config loaded"
    );
    let listen: SocketAddr = config.sip.listen.parse().map_err(|_| {
        ServeError::Config(format!(
            "[sip] listen = \"{}\" is not an address:port",
            config.sip.listen
        ))
    })?;
    let media_ip: IpAddr = config.rtp.address.parse().map_err(|_| {
        ServeError::Config(format!(
            "[rtp] address = \"{}\" is not an IP address",
            config.rtp.address
        ))
    })?;
    let advertised: IpAddr = config.sip.advertise.parse().unwrap_or(media_ip);
    // The SDP carries the address the caller can reach: the advertised one unless media
    // listens on a specific address.
    let sdp_ip = if media_ip.is_unspecified() {
        advertised
    } else {
        media_ip
    };
    let tls = if config.sip.tls_listen.is_empty() {
        None
    } else {
        let at: SocketAddr = config.sip.tls_listen.parse().map_err(|_| {
            ServeError::Config(format!(
                "[sip] tls_listen = \"{}\" is not an address:port",
                config.sip.tls_listen
            ))
        })?;
        let certificate = tls::load(&config.sip.tls_certificate, &config.sip.tls_key)
            .map_err(ServeError::Config)?;
        Some((at, certificate))
    };
    let (inbound_tx, inbound_rx) = crate::sip::transport::inbox();
    let transport = Transport::bind(listen, inbound_tx, config.gate(), tls)
        .await
        .map_err(|source| ServeError::Bind {
            addr: format!("{listen} (or [sip] tls_listen {})", config.sip.tls_listen),
            source,
        })?;
    let http = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: format!("[http] {}", config.http.listen),
            source,
        })?;
    let token = std::env::var(&config.http.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let (pacer_tx, pacer_rx) = pacer::channel();
    // Bounded (senders wait: call tasks, the API, lookups of hosts), and the signalling task
    // never waits on anyone, so a full queue slows its senders and blocks nothing.
    let (sip_tx, sip_rx) = mpsc::channel(SIGNALLING_QUEUE);
    let (queries_tx, queries_rx) = mpsc::channel(API_QUEUE);
    // Detached: each call task waits for its final record, so nothing is left to flush.
    let disk = Arc::new(health::DiskHealth::default());
    let (records, _writer) = records::Records::start(&config.paths.data, Arc::clone(&disk))
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let pacer_stats = Arc::new(pacer::PacerStats::default());
    let media_timeout = (config.rtp.timeout_s > 0)
        .then(|| std::time::Duration::from_secs(u64::from(config.rtp.timeout_s)));
    let pacer_thread = pacer::spawn(pacer_rx, Arc::clone(&pacer_stats), media_timeout)
        .map_err(|e| ServeError::Config(format!("cannot start the media thread: {e}")))?;
    let flips = store.switches().unwrap_or_else(|e| {
        tracing::warn!("the switches' last flips could not be read: {e}; as the config sets them");
        Vec::new()
    });
    let store = Arc::new(Mutex::new(store));
    let saves = saves::Saves::start(Arc::clone(&store), Arc::clone(&disk))
        .map_err(|e| ServeError::Config(format!("cannot start the saves writer: {e}")))?;
    let tx_config = transaction::Config {
        t1: std::time::Duration::from_millis(u64::from(config.sip.t1_ms.clamp(10, 10_000))),
        ..transaction::Config::default()
    };
    let metrics: Arc<crate::status::metrics::Metrics> = Arc::default();
    let shared = Arc::new(Shared {
        lookups: lookups::Lookups::new(Arc::clone(&metrics)),
        switches: Arc::new(crate::status::switches::Switches::new(flips)),
        ports: Ports::new(media_ip, config.rtp.ports),
        data: config.paths.data.clone(),
        config_file: loaded.file.clone(),
        config,
        flows: Arc::new(RwLock::new(Arc::new(flows))),
        reload_status: Arc::default(),
        records,
        metrics,
        store,
        saves,
        pacer: pacer_tx,
        sip: sip_tx,
        media_ip: sdp_ip,
        tx_config,
        stats: Arc::default(),
        disk,
        call_tasks: Arc::default(),
        events: Arc::default(),
        probe_token: std::env::var("HOTLINE_PROBE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty()),
    });
    let lines: Vec<String> = shared
        .config
        .lines
        .iter()
        .map(|(u, f)| format!("{u} -> {f}"))
        .collect();
    tracing::info!(
        "listening for SIP on udp and tcp {} (lines: {})",
        transport.local_addr(),
        lines.join(", ")
    );
    if let Some(at) = transport.tls_addr() {
        tracing::info!("listening for SIP over TLS on {at}");
    }
    if token.is_none() {
        tracing::info!(
            "HTTP API on {} (read-only: set {} to allow changes)",
            shared.config.http.listen,
            shared.config.http.token_env
        );
    } else {
        tracing::info!("HTTP API on {}", shared.config.http.listen);
    }
    let status = Arc::new(Status {
        config: shared.config.clone(),
        flows: Arc::clone(&shared.flows),
        reload_status: Arc::clone(&shared.reload_status),
        store: Arc::clone(&shared.store),
        events: Arc::clone(&shared.events),
        metrics: Arc::clone(&shared.metrics),
        stats: Arc::clone(&shared.stats),
        pacer: Arc::clone(&pacer_stats),
        disk: Arc::clone(&shared.disk),
        call_tasks: Arc::clone(&shared.call_tasks),
        queries: queries_tx,
        switches: Arc::clone(&shared.switches),
    });
    let (stop_all, stop) = stop::channel();
    let api_task = tokio::spawn(http::serve(http, http_app(status), stop.clone()));
    let reload_task = tokio::spawn(reload::watch(Arc::clone(&shared), stop.clone()));
    let purge_task = tokio::spawn(recordings::purge_daily(
        shared.data.clone(),
        shared.config.recording.retention_days,
        stop,
    ));
    signalling::Signalling::new(Arc::clone(&shared), transport)
        .run(inbound_rx, sip_rx, queries_rx, shutdown)
        .await;
    // Every call the drain ended writes its final record before the process exits.
    let left = shared.call_tasks.live();
    if left > 0 {
        tracing::info!(calls = left, "waiting for the ended calls' final records");
        if tokio::time::timeout(DRAIN_RECORDS, shared.call_tasks.idle())
            .await
            .is_err()
        {
            tracing::error!(
                calls = shared.call_tasks.live(),
                "calls still ending at exit: the next start marks them interrupted"
            );
        }
    }
    if !shared.records.flush().await {
        tracing::error!("call records NOT all saved at exit: the disk refused them");
    }
    // Every task is told, finishes what it is doing, and is awaited.
    stop_all.now();
    for (name, task) in [
        ("the HTTP API", api_task),
        ("the reload watcher", reload_task),
        ("the recordings' purge", purge_task),
    ] {
        if tokio::time::timeout(TASKS_STOP, task).await.is_err() {
            tracing::error!("{name} did not stop within {} s", TASKS_STOP.as_secs());
        }
    }
    let _ = shared.pacer.send(pacer::PacerCommand::Shutdown);
    let _ = tokio::task::spawn_blocking(move || pacer_thread.join()).await;
    tracing::info!(
        rtp_packets = pacer_stats.packets.load(Ordering::Relaxed),
        late_ticks = pacer_stats.late_ticks.load(Ordering::Relaxed),
        sip_retransmissions = shared.stats.retransmissions.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

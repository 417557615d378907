//! `hotline.toml`: the server's config (SPEC §4). With no file, the embedded demo config is
//! used so `hotline serve` in the repository root answers the demo line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::flow::calendar::Calendar;

/// The demo line's config, used when no `hotline.toml` exists.
pub const EMBEDDED: &str = include_str!("../examples/hotline.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: Sip,
    pub rtp: Rtp,
    pub http: Http,
    pub paths: Paths,
    pub lines: BTreeMap<String, String>,
    pub routing: Routing,
    pub callbacks: Callbacks,
    pub numbers: crate::numbers::Numbering,
    pub trunks: Vec<Trunk>,
    pub desk: Desk,
    pub recording: Recording,
    pub agents: Vec<Agent>,
    pub queues: Vec<Queue>,
    pub calendars: BTreeMap<String, CalendarConfig>,
    pub variables: Variables,
    /// `[lookups.NAME]`: where a flow's `lookup` nodes may ask who is calling.
    pub lookups: BTreeMap<String, crate::lookup::Endpoint>,
    /// `[switches.NAME]`: on/off positions the API flips and flows branch on.
    pub switches: BTreeMap<String, SwitchConfig>,
    /// `[tts]`: how text prompts (`{ say = "…" }`) are rendered.
    pub tts: crate::tts::Tts,
}

/// `[switches.NAME]`: a named on/off a supervisor flips (an outage message, a closure).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchConfig {
    /// What it is for, shown on the wall.
    pub description: String,
    /// Its position at start, and once a flip's expiry has passed (off).
    pub on: bool,
}

/// `[variables]`: how the built-in variables are read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Variables {
    /// Where `time` and `weekday` are read (`"Europe/Madrid"`); empty: the system's.
    pub timezone: String,
}

impl Variables {
    pub fn timezone(&self) -> Result<jiff::tz::TimeZone, String> {
        if self.timezone.is_empty() {
            return Ok(jiff::tz::TimeZone::system());
        }
        jiff::tz::TimeZone::get(&self.timezone).map_err(|_| {
            format!(
                "[variables] timezone = \"{}\": not a timezone (\"Europe/Madrid\", \"America/New_York\", \"UTC\")",
                self.timezone
            )
        })
    }
}

impl Config {
    /// The SIP gate's settings: `[sip]`'s, with every trunk's addresses trusted (a carrier
    /// sends many calls a second from one address: that is no flood).
    pub fn gate(&self) -> crate::sip::gate::GateConfig {
        let mut gate = self.sip.gate();
        for t in &self.trunks {
            gate.trusted.extend(
                t.addresses
                    .iter()
                    .filter_map(|a| a.parse::<std::net::IpAddr>().ok()),
            );
        }
        gate
    }

    /// Whom hotline may dial: `[callbacks]`, the trunks and how numbers are written.
    pub fn dial_policy(&self) -> crate::sip::dial::DialPolicy {
        let mut policy = self.callbacks.policy();
        policy.numbering = self.numbers.clone();
        policy.trunks = self
            .trunks
            .iter()
            .filter_map(Trunk::route)
            .map(|mut r| {
                r.caller_id = self.numbers.key(&r.caller_id);
                r
            })
            .collect();
        policy
    }

    /// The queues an agent serves: those whose skills it has every one of.
    pub fn queues_of(&self, agent: &str) -> Vec<String> {
        let Some(a) = self.agents.iter().find(|a| a.id == agent) else {
            return Vec::new();
        };
        self.queues
            .iter()
            .filter(|q| q.skills.iter().all(|s| a.skills.contains_key(s)))
            .map(|q| q.name.clone())
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: Sip::default(),
            rtp: Rtp::default(),
            http: Http::default(),
            paths: Paths::default(),
            lines: BTreeMap::from([("default".to_string(), "main".to_string())]),
            routing: Routing::default(),
            callbacks: Callbacks::default(),
            numbers: crate::numbers::Numbering::default(),
            trunks: Vec::new(),
            desk: Desk::default(),
            recording: Recording::default(),
            agents: Vec::new(),
            queues: Vec::new(),
            calendars: BTreeMap::new(),
            variables: Variables::default(),
            lookups: BTreeMap::new(),
            switches: BTreeMap::new(),
            tts: crate::tts::Tts::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    pub listen: String,
    pub domain: String,
    pub advertise: String,
    /// How long an incoming call rings (180) before it is answered: the window in which a
    /// caller's CANCEL is honoured. 0 answers at once.
    pub answer_after_ms: u32,
    /// On SIGINT/SIGTERM, how long live calls may go on before they are sent BYE.
    pub shutdown_grace_s: u32,
    /// Digest algorithms offered to agent phones, in order (`MD5`, `SHA-256`). The default is
    /// MD5 alone: every phone knows it, and some (baresip 1.0) give up on a 401 that carries
    /// more than one challenge.
    pub digest_algorithms: Vec<String>,
    /// Failed digest attempts from one (address, username) within `auth_failure_window_s`
    /// before that pair is refused outright until the window has passed.
    pub max_auth_failures: u32,
    /// Failed attempts for one username from all addresses together within the window
    /// before it is refused to every phone not known to have logged in (a guesser spread
    /// over many addresses); the phones that registered before keep getting in.
    pub max_auth_failures_per_user: u32,
    pub auth_failure_window_s: u32,
    /// Log every SIP message in and out, with its peer and transport (also
    /// `HOTLINE_SIP_TRACE=1`).
    pub trace: bool,
    /// RFC 3261's T1, the round-trip estimate every SIP timer scales with (Timer H, the wait
    /// for an ACK, is 64 × T1: 32 s at the default 500 ms).
    pub t1_ms: u32,
    /// Admission control: calls up at once, and new calls a second, beyond which an INVITE
    /// gets `503` with `Retry-After` at once (a load balancer tries elsewhere) instead of
    /// every call's audio suffering. 0: no limit.
    pub max_calls: u32,
    pub max_new_calls_per_s: u32,
    /// SIP messages a second one address may send (on average over 2 s) before it is banned
    /// for `ban_s`: its messages are then dropped unread. 0: no limit.
    pub max_messages_per_s_per_address: u32,
    pub ban_s: u32,
    /// Addresses never limited nor banned: a proxy, load balancer or trunk in front.
    pub trusted_addresses: Vec<String>,
    /// Requests whose User-Agent contains one of these (any case) are dropped unanswered and
    /// their source banned: the well-known SIP scanners. `[]` turns it off.
    pub drop_user_agents: Vec<String>,
    /// SIP over TLS (`sips:`, RFC 3261 §26.2): where it listens (`""`: no TLS), and the PEM
    /// certificate chain and private key it presents. Both files are read again on SIGHUP.
    pub tls_listen: String,
    pub tls_certificate: PathBuf,
    pub tls_key: PathBuf,
    /// Where an agent's phone registered over UDP gets its calls: `auto` (where its REGISTER
    /// came from when it is behind a NAT), `always` (there, whatever its Contact says) or
    /// `never` (its Contact).
    pub agents_nat: crate::sip::registrar::Nat,
    /// The longest registration granted to agents' phones, in seconds.
    pub max_expires: u32,
    /// Which agents' phones get an OPTIONS every `qualify_s`: `nat` (those reached through a
    /// NAT's mapping, which closes when nothing passes), `all`, or `off`.
    pub qualify: crate::sip::qualify::Mode,
    pub qualify_s: u32,
    /// The DNS servers carriers' proxies are looked up with (`"192.0.2.53"`,
    /// `"127.0.0.1:5353"`); none: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<String>,
}

impl Sip {
    /// `resolvers` as addresses (port 53 unless given); the config check refused the others.
    pub fn resolver_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.resolvers
            .iter()
            .filter_map(|r| resolver_address(r))
            .collect()
    }

    /// The SIP gate's settings: the per-address limit, its ban, trusted addresses, scanners.
    pub fn gate(&self) -> crate::sip::gate::GateConfig {
        crate::sip::gate::GateConfig {
            max_per_s: self.max_messages_per_s_per_address,
            ban: std::time::Duration::from_secs(u64::from(self.ban_s.max(1))),
            trusted: self
                .trusted_addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            scanners: self.drop_user_agents.clone(),
        }
    }
}

impl Default for Sip {
    fn default() -> Self {
        Sip {
            listen: "127.0.0.1:5060".into(),
            domain: "hotline.local".into(),
            advertise: "127.0.0.1".into(),
            answer_after_ms: 500,
            shutdown_grace_s: 30,
            digest_algorithms: vec!["MD5".into()],
            max_auth_failures: 5,
            max_auth_failures_per_user: 20,
            auth_failure_window_s: 60,
            trace: false,
            t1_ms: 500,
            // Below the measured knee of one core (about 3,000 calls, 500 new a second).
            max_calls: 2500,
            max_new_calls_per_s: 400,
            // A phone sends a few messages a second at most; a flood sends thousands.
            max_messages_per_s_per_address: 200,
            ban_s: 60,
            trusted_addresses: Vec::new(),
            drop_user_agents: [
                "friendly-scanner",
                "sipvicious",
                "sipcli",
                "sip-scan",
                "sipsak",
                "sundayddr",
                "iwar",
                "sivus",
                "vaxsipuseragent",
                "pplsip",
            ]
            .map(String::from)
            .to_vec(),
            tls_listen: String::new(),
            tls_certificate: PathBuf::new(),
            tls_key: PathBuf::new(),
            agents_nat: crate::sip::registrar::Nat::Auto,
            max_expires: crate::sip::registrar::MAX_EXPIRES,
            qualify: crate::sip::qualify::Mode::Nat,
            qualify_s: 30,
            resolvers: Vec::new(),
        }
    }
}

/// `"192.0.2.53"` or `"192.0.2.53:5353"` (`[2001:db8::53]:53`) as an address.
fn resolver_address(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(|ip| (ip, 53).into()))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rtp {
    pub address: String,
    pub ports: [u16; 2],
    /// A caller whose phone sends nothing (no RTP) this long, while it should, is hung up:
    /// its phone is gone, and the call would hold its port for ever. 0 never.
    pub timeout_s: u32,
    /// SRTP (SDES keys, RFC 4568): when it is used. See [`SrtpMode`].
    pub srtp: SrtpMode,
}

/// When a call's audio is SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrtpMode {
    /// Whenever the far end offers it; agents' phones registered over TLS are offered it
    /// (in the best-effort form a plain phone can ignore). Keys are never offered over a
    /// link in the clear.
    #[default]
    Optional,
    /// Agents' phones must use it: they are offered `RTP/SAVP` only, and a plain answer or
    /// a plain offer from an agent's phone is refused (488).
    Agents,
    /// Every call, callers too: a plain offer gets 488.
    All,
}

impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            address: "127.0.0.1".into(),
            ports: [20000, 29999],
            timeout_s: 60,
            srtp: SrtpMode::Optional,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: String,
    pub token_env: String,
    /// Whether the API's reads (agents, queues, calls, flows, metrics) answer anyone. When
    /// false they need the bearer token or a desk login, and an agent's login reads only
    /// their own calls.
    pub open_reads: bool,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:8080".into(),
            token_env: "HOTLINE_TOKEN".into(),
            open_reads: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub flows: PathBuf,
    pub prompts: PathBuf,
    pub data: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            flows: "flows".into(),
            prompts: "prompts".into(),
            data: "data".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    pub ready_on_register: bool,
    /// What an agent dials from their phone to toggle between available and not ready
    /// (digest-authenticated; answered with a short confirmation). Empty: none.
    pub ready_toggle_code: String,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            ready_on_register: true,
            ready_toggle_code: "*45".into(),
        }
    }
}

/// Whom a callback may dial (a caller's From is theirs to write): see `sip::dial`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Callbacks {
    /// SIP hosts at which a caller's own URI may be dialled back.
    pub domains: Vec<String>,
    /// A trunk through which callers' numbers are dialled (`sip:gw.example.com:5060`).
    pub gateway: Option<String>,
    /// Number prefixes the gateway may dial (`+34`, `+331`).
    pub numbers: Vec<String>,
}

impl Callbacks {
    pub fn policy(&self) -> crate::sip::dial::DialPolicy {
        crate::sip::dial::DialPolicy {
            domains: self.domains.clone(),
            gateway: self.gateway.clone().filter(|g| !g.trim().is_empty()),
            numbers: self.numbers.clone(),
            ..Default::default()
        }
    }
}

/// A carrier's SIP trunk (`[[trunks]]`; README, "Connecting a carrier"): where calls to
/// numbers go out, with what credentials and caller ID, and where its calls come in from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    pub name: String,
    /// Where calls (and the REGISTER) are sent: `sip:host[:port]`, `;transport=tcp` or
    /// `tls`, or `sips:host` (TLS, port 5061 unless given).
    pub proxy: String,
    /// For a TLS trunk: the PEM file of the certificates its carrier's is checked against
    /// (a private CA); default: the system's roots.
    #[serde(default)]
    pub ca_file: String,
    /// The carrier's domain in From, To and the registration; default: the proxy's host.
    #[serde(default)]
    pub domain: String,
    /// The credentials a 401/407 from the carrier is answered with.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Register `username@domain` to the carrier, refreshed before it expires.
    #[serde(default)]
    pub register: bool,
    #[serde(default = "Trunk::default_expires")]
    pub expires_s: u32,
    /// The numbers hotline may dial through it, as E.164 prefixes (`+34`, `+346`); none:
    /// it dials nothing.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// The addresses its calls come from: trusted by the flood limit, and their
    /// P-Asserted-Identity believed for the caller's number.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The number presented on calls hotline places through it (From and
    /// P-Asserted-Identity) when the caller's line is no number; default: `username`.
    #[serde(default)]
    pub caller_id: String,
    /// A transfer through it presents the caller's own number (unless they asked for
    /// privacy); `false`: `caller_id` always.
    #[serde(default = "Trunk::yes")]
    pub present_caller: bool,
}

impl Trunk {
    fn default_expires() -> u32 {
        600
    }

    fn yes() -> bool {
        true
    }

    /// What the dial policy needs of it; `None` when its proxy is no `sip:` URI (refused
    /// when the config is read).
    pub fn route(&self) -> Option<crate::sip::dial::Route> {
        let (proxy, proto, port_given) = self.proxy_target()?;
        let domain = if self.domain.trim().is_empty() {
            proxy.host.clone()
        } else {
            self.domain.trim().to_string()
        };
        let auth = (!self.username.is_empty()).then(|| crate::sip::digest::Secret {
            username: self.username.clone(),
            password: self.password.clone(),
        });
        let caller_id = if self.caller_id.is_empty() {
            self.username.clone()
        } else {
            self.caller_id.clone()
        };
        Some(crate::sip::dial::Route {
            name: self.name.clone(),
            host: proxy.host,
            port: proxy.port,
            domain,
            numbers: self.numbers.clone(),
            auth,
            caller_id,
            present_caller: self.present_caller,
            proto,
            port_given,
        })
    }

    /// Its proxy as a `sip:` target, and how it is reached: `sips:` and `;transport=tls` are
    /// TLS, on port 5061 unless one is given.
    fn proxy_target(&self) -> Option<(crate::sip::dial::Target, crate::sip::dial::Proto, bool)> {
        use crate::sip::dial::Proto;
        let p = self.proxy.trim();
        let (uri, sips) = match p.get(..5) {
            Some(s) if s.eq_ignore_ascii_case("sips:") => (format!("sip:{}", &p[5..]), true),
            _ => (p.to_string(), false),
        };
        let mut target = crate::sip::dial::sip_target(&uri)?;
        let proto = match (sips, transport_of(&uri)) {
            (true, None | Some("tls")) | (false, Some("tls")) => Proto::Tls {
                ca_file: (!self.ca_file.trim().is_empty()).then(|| self.ca_file.trim().into()),
            },
            (false, Some("tcp")) => Proto::Tcp,
            (false, None | Some("udp")) => Proto::Udp,
            _ => return None,
        };
        let hostport = uri[4..].rsplit_once('@').map_or(&uri[4..], |(_, h)| h);
        let hostport = hostport.split([';', '?']).next().unwrap_or_default();
        let port_given = hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if matches!(proto, Proto::Tls { .. }) && !port_given {
            target.port = 5061;
        }
        Some((target, proto, port_given))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub id: String,
    pub password: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub skills: BTreeMap<String, u32>,
    /// `agent` (the default) or `supervisor`: a supervisor also opens the wall and may change
    /// any agent's state. A supervisor with skills takes calls like any agent.
    #[serde(default)]
    pub role: Role,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    Agent,
    Supervisor,
}

/// `[recording]`: how the calls of queues with `record = "on"` are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Both sides in one file, the caller left and the agent right (`true`), or mixed
    /// into one channel.
    pub stereo: bool,
    /// Recordings older than this many days are deleted (each day, and at start).
    pub retention_days: u32,
    /// The keys an agent presses on her phone to pause the recording and to resume it (or,
    /// `on-demand`, to start it).
    pub pause_keys: String,
    /// A prompt the caller hears when their call starts being recorded ("this call is
    /// recorded"); none by default.
    pub announcement: Option<String>,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            stereo: true,
            retention_days: 90,
            pause_keys: "*7".into(),
            announcement: None,
        }
    }
}

/// Whether a queue's calls are recorded once an agent answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordMode {
    #[default]
    Off,
    On,
    /// Recorded once the agent asks (her phone's `pause_keys`, or the desk).
    OnDemand,
}

/// The humans' pages: what an agent may pick on the desk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Desk {
    /// Why an agent is not ready: the desk's choices (the API takes any short text).
    pub not_ready_reasons: Vec<String>,
    /// What an agent picks to sum a call up after it (saved on the call record with a note).
    pub wrap_up_codes: Vec<String>,
    /// How long a desk session lasts without being used.
    pub session_idle_h: u32,
    /// A voicemail or callback request not done within this many hours is overdue.
    pub follow_up_within_h: u32,
    /// A follow-up that failed this many days ago or less still makes its caller a returning
    /// one (an open one always does).
    pub returning_failed_days: u32,
}

impl Default for Desk {
    fn default() -> Self {
        Desk {
            not_ready_reasons: ["break", "lunch", "meeting", "training"]
                .map(String::from)
                .to_vec(),
            wrap_up_codes: ["resolved", "follow-up needed", "escalated", "wrong number"]
                .map(String::from)
                .to_vec(),
            session_idle_h: 12,
            follow_up_within_h: 24,
            returning_failed_days: 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub strategy: crate::routing::Strategy,
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_s: u32,
    #[serde(default = "default_wrap_up")]
    pub wrap_up_s: u32,
    /// An agent who missed, declined or was busy for a caller is offered that caller again
    /// after this long (as app_queue's `retry`); at least 1.
    #[serde(default = "default_retry")]
    pub retry_s: u32,
    /// A caller answered within this many seconds of joining counts for the service level.
    #[serde(default = "default_service_level")]
    pub service_level_s: u32,
    /// `on`: each call an agent answers is recorded (see `[recording]`); `off` (default).
    #[serde(default)]
    pub record: RecordMode,
    /// What this queue's callers hear while they wait or are held: a prompt name under
    /// `prompts/` (default `hold`).
    #[serde(default)]
    pub hold_music: Option<String>,
}

fn default_ring_timeout() -> u32 {
    15
}
fn default_wrap_up() -> u32 {
    10
}
fn default_retry() -> u32 {
    5
}
fn default_service_level() -> u32 {
    20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    pub timezone: String,
    #[serde(default)]
    pub open: BTreeMap<String, String>,
    /// Closed: a day (`2026-12-25`), every year (`01-06`), a range
    /// (`2026-08-10..2026-08-21`), each optionally for hours only (`12-24 14:00-24:00`).
    #[serde(default)]
    pub closed_dates: Vec<String>,
    /// Open outside the weekly hours, written as `closed_dates` are (an opening wins).
    #[serde(default)]
    pub open_dates: Vec<String>,
    /// An iCalendar file (`.ics`, beside the config) whose events are closed dates too.
    #[serde(default)]
    pub holidays_file: Option<PathBuf>,
}

/// The largest holidays file read (a country's holidays for decades is a few hundred KiB).
const MAX_ICS_BYTES: u64 = 4 << 20;

/// A regular text file of at most `max` bytes (never more is read; a device or a pipe is
/// refused, never waited on).
fn read_bounded(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {} MiB", max >> 20));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// A config file that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A parsed config with the calendars built and paths made absolute against its folder.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file it came from; `None` for the embedded defaults.
    pub file: Option<PathBuf>,
    pub calendars: HashMap<String, Calendar>,
    /// Where the built-in variables `time` and `weekday` are read.
    pub timezone: jiff::tz::TimeZone,
    /// What is allowed but probably a mistake (a queue no agent can serve), with its place.
    pub warnings: Vec<String>,
}

/// Where the keys that are checked after parsing stand in the file (for `file:line:col`).
#[derive(Debug, Default, Deserialize)]
struct Places {
    #[serde(default)]
    sip: Option<SipPlaces>,
    #[serde(default)]
    rtp: Option<RtpPlaces>,
    #[serde(default)]
    agents: Vec<AgentPlaces>,
    #[serde(default)]
    queues: Vec<QueuePlaces>,
    #[serde(default)]
    trunks: Vec<TrunkPlaces>,
    #[serde(default)]
    numbers: Option<toml::Spanned<toml::Value>>,
    #[serde(default)]
    recording: Option<RecordingPlaces>,
}

#[derive(Debug, Default, Deserialize)]
struct RecordingPlaces {
    pause_keys: Option<toml::Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
struct TrunkPlaces {
    name: Option<toml::Spanned<toml::Value>>,
    proxy: Option<toml::Spanned<toml::Value>>,
    ca_file: Option<toml::Spanned<toml::Value>>,
    password: Option<toml::Spanned<toml::Value>>,
    numbers: Option<toml::Spanned<toml::Value>>,
    addresses: Option<toml::Spanned<toml::Value>>,
    caller_id: Option<toml::Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct SipPlaces {
    advertise: Option<toml::Spanned<toml::Value>>,
    trusted_addresses: Option<toml::Spanned<toml::Value>>,
    tls_listen: Option<toml::Spanned<toml::Value>>,
    resolvers: Option<toml::Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct RtpPlaces {
    ports: Option<toml::Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
struct AgentPlaces {
    id: Option<toml::Spanned<toml::Value>>,
    password: Option<toml::Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
struct QueuePlaces {
    name: Option<toml::Spanned<toml::Value>>,
    hold_music: Option<toml::Spanned<toml::Value>>,
}

impl Loaded {
    /// `--config FILE`, else `hotline.toml` in the working directory, else nothing.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Loaded>, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from("hotline.toml");
                if !p.exists() {
                    return Ok(None);
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("{}: cannot read the config: {e}", path.display())))?;
        Loaded::parse(&text, Some(path)).map(Some)
    }

    /// The demo defaults, relative to the working directory.
    pub fn embedded() -> Loaded {
        // The embedded file is tested to parse; failing here is a build mistake.
        Loaded::parse(EMBEDDED, None).expect("the embedded config parses")
    }

    pub fn parse(text: &str, file: Option<PathBuf>) -> Result<Loaded, ConfigError> {
        let name = file
            .as_ref()
            .map_or("<embedded hotline.toml>".to_string(), |p| {
                p.display().to_string()
            });
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| crate::flow::source::Source::new(&name, text.to_string()).pos(s.start));
            let loc = at.map_or(String::new(), |p| format!(":{}:{}", p.line, p.column));
            ConfigError(format!("{name}{loc}: {}", e.message()))
        })?;
        let mut calendars = HashMap::new();
        for (cal_name, c) in &config.calendars {
            let open: Vec<(String, String)> =
                c.open.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            let mut closed = c.closed_dates.clone();
            if let Some(ics) = &c.holidays_file {
                let path = match file.as_ref().and_then(|f| f.parent()) {
                    Some(dir) if ics.is_relative() => dir.join(ics),
                    _ => ics.clone(),
                };
                let why = |e: String| {
                    ConfigError(format!(
                        "{name}: calendar \"{cal_name}\": holidays_file {}: {e}",
                        path.display()
                    ))
                };
                let text = read_bounded(&path, MAX_ICS_BYTES).map_err(why)?;
                let zone = jiff::tz::TimeZone::get(&c.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
                closed.extend(
                    crate::flow::calendar::closed_dates_from_ics(&text, &zone).map_err(why)?,
                );
            }
            let cal = Calendar::with_openings(&c.timezone, &open, &closed, &c.open_dates)
                .map_err(|e| ConfigError(format!("{name}: calendar \"{cal_name}\": {e}")))?;
            calendars.insert(cal_name.clone(), cal);
        }
        if config.sip.digest_algorithms.is_empty()
            || config
                .sip
                .digest_algorithms
                .iter()
                .any(|a| crate::sip::registrar::Algorithm::parse(a).is_none())
        {
            return Err(ConfigError(format!(
                "{name}: [sip] digest_algorithms: a list of \"MD5\" and/or \"SHA-256\""
            )));
        }
        let timezone = config
            .variables
            .timezone()
            .map_err(|e| ConfigError(format!("{name}: {e}")))?;
        let warnings = check(&config, text, &name)?;
        if let Some(dir) = file.as_ref().and_then(|f| f.parent()) {
            for p in [
                &mut config.paths.flows,
                &mut config.paths.prompts,
                &mut config.paths.data,
            ] {
                if p.is_relative() && !dir.as_os_str().is_empty() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(Loaded {
            config,
            file,
            calendars,
            timezone,
            warnings,
        })
    }

    /// Calendars that close on no day of the year from `today` (their holidays were typed
    /// for a year gone by, or never): what `validate` and `serve` warn of. A calendar open
    /// every minute of the week has none to keep.
    pub fn calendar_warnings(&self, today: jiff::civil::Date) -> Vec<String> {
        let mut names: Vec<&String> = self.calendars.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter(|n| {
                let c = &self.calendars[*n];
                !c.always_open() && !c.closes_within_a_year(today)
            })
            .map(|n| {
                format!(
                    "calendar \"{n}\" closes on no day in the 12 months from {today}: give its holidays as closed_dates, those that come back every year as \"MM-DD\" (\"12-25\")"
                )
            })
            .collect()
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.config.queues.iter().map(|q| q.name.clone()).collect()
    }
}

/// The checks serde cannot make: ranges, duplicates, empty secrets, unusable addresses.
/// Errors refuse the whole config; warnings are returned.
fn check(config: &Config, text: &str, name: &str) -> Result<Vec<String>, ConfigError> {
    let places: Places = toml::from_str(text).unwrap_or_default();
    let source = crate::flow::source::Source::new(name, text.to_string());
    let at = |span: Option<std::ops::Range<usize>>| {
        span.map_or(name.to_string(), |s| {
            let p = source.pos(s.start);
            format!("{name}:{}:{}", p.line, p.column)
        })
    };
    let span_of = |v: &Option<toml::Spanned<toml::Value>>| v.as_ref().map(toml::Spanned::span);
    let sip = places.sip.unwrap_or_default();
    let rtp = places.rtp.unwrap_or_default();
    for switch in config.switches.keys() {
        if !crate::flow::variables::valid_name(switch) {
            return Err(ConfigError(format!(
                "{name}: [switches.{switch}]: a switch's name is letters, digits and _, starting with a letter"
            )));
        }
    }
    for (lookup, endpoint) in &config.lookups {
        endpoint
            .check(lookup)
            .map_err(|e| ConfigError(format!("{name}: {e}")))?;
    }

    let [low, high] = config.rtp.ports;
    let first_even = low.saturating_add(low % 2);
    let why = if low > high {
        Some("the range is reversed")
    } else if low < 1024 {
        Some("ports below 1024 are reserved")
    } else if first_even > high {
        Some("the range holds no even port (one even port is used per call)")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(ConfigError(format!(
            "{}: [rtp] ports = [{low}, {high}]: {why}; give an even range within 1024-65535, such as [20000, 29999]",
            at(span_of(&rtp.ports))
        )));
    }
    match config.sip.advertise.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            return Err(ConfigError(format!(
                "{}: [sip] advertise = \"{ip}\": phones cannot send to an unspecified address; give the address they reach this server at",
                at(span_of(&sip.advertise))
            )));
        }
        _ => {}
    }
    let tls = &config.sip;
    if !tls.tls_listen.is_empty() {
        if tls.tls_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "{}: [sip] tls_listen = \"{}\": give an address and port, such as \"0.0.0.0:5061\"",
                at(span_of(&sip.tls_listen)),
                tls.tls_listen
            )));
        }
        if tls.tls_certificate.as_os_str().is_empty() || tls.tls_key.as_os_str().is_empty() {
            return Err(ConfigError(format!(
                "{}: [sip] tls_listen needs tls_certificate and tls_key (PEM files)",
                at(span_of(&sip.tls_listen))
            )));
        }
    }
    for a in &config.sip.trusted_addresses {
        if a.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError(format!(
                "{}: [sip] trusted_addresses: \"{a}\" is not an IP address",
                at(span_of(&sip.trusted_addresses))
            )));
        }
    }
    for r in &config.sip.resolvers {
        if resolver_address(r).is_none() {
            return Err(ConfigError(format!(
                "{}: [sip] resolvers: \"{r}\" is not a DNS server's address (\"192.0.2.53\" or \"192.0.2.53:5353\")",
                at(span_of(&sip.resolvers))
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in config.agents.iter().enumerate() {
        let place = places.agents.get(i);
        if !seen.insert(a.id.as_str()) {
            return Err(ConfigError(format!(
                "{}: agent id \"{}\" is given twice (it is the phone's digest username: one per agent)",
                at(place.and_then(|p| span_of(&p.id))),
                a.id
            )));
        }
        if a.id.trim().is_empty() {
            return Err(ConfigError(format!(
                "{}: an agent with an empty id",
                at(place.and_then(|p| span_of(&p.id)))
            )));
        }
        if a.password.is_empty() {
            return Err(ConfigError(format!(
                "{}: agent \"{}\" has an empty password: anyone could register as them",
                at(place.and_then(|p| span_of(&p.password).or_else(|| span_of(&p.id)))),
                a.id
            )));
        }
    }
    if let Err(e) = config.numbers.check() {
        return Err(ConfigError(format!(
            "{}: {e}",
            at(span_of(&places.numbers))
        )));
    }
    check_trunks(config, &places.trunks, &at)?;
    let keys = &config.recording.pause_keys;
    if keys.is_empty()
        || keys.len() > 4
        || !keys
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(ConfigError(format!(
            "{}: [recording] pause_keys = \"{}\": give 1 to 4 phone keys (0-9, *, #), such as \"*7\"",
            at(places
                .recording
                .as_ref()
                .and_then(|p| span_of(&p.pause_keys))),
            keys.chars().take(20).collect::<String>()
        )));
    }
    for (i, q) in config.queues.iter().enumerate() {
        if let Some(music) = &q.hold_music
            && (music.trim().is_empty() || crate::flow::load::prompt_name_escapes(music))
        {
            return Err(ConfigError(format!(
                "{}: queue \"{}\": hold_music = \"{music}\" is no prompt name: give one under prompts/ without its .wav, such as \"jazz\"",
                at(places.queues.get(i).and_then(|p| span_of(&p.hold_music))),
                q.name
            )));
        }
    }
    let mut warnings = Vec::new();
    for (i, q) in config.queues.iter().enumerate() {
        let served = config
            .agents
            .iter()
            .any(|a| q.skills.iter().all(|s| a.skills.contains_key(s)));
        if !served {
            warnings.push(format!(
                "{}: queue \"{}\" needs skills [{}] that no configured agent has all of: its callers will always go to on_timeout",
                at(places.queues.get(i).and_then(|p| span_of(&p.name))),
                q.name,
                q.skills.join(", ")
            ));
        }
    }
    Ok(warnings)
}

/// A URI's `transport` parameter, lowercased (`udp`, `tcp`, `tls`, or what it says).
fn transport_of(uri: &str) -> Option<&'static str> {
    let lower = uri.to_ascii_lowercase();
    let value = lower
        .split(';')
        .skip(1)
        .find_map(|p| p.strip_prefix("transport="))?;
    match value.trim() {
        "udp" => Some("udp"),
        "tcp" => Some("tcp"),
        "tls" => Some("tls"),
        _ => Some("other"),
    }
}

/// `[[trunks]]`: each with its place in the file when it is wrong.
fn check_trunks(
    config: &Config,
    places: &[TrunkPlaces],
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> String,
) -> Result<(), ConfigError> {
    let span_of = |v: &Option<toml::Spanned<toml::Value>>| v.as_ref().map(toml::Spanned::span);
    let mut names = std::collections::HashSet::new();
    for (i, t) in config.trunks.iter().enumerate() {
        let place = places.get(i);
        let here = |f: fn(&TrunkPlaces) -> &Option<toml::Spanned<toml::Value>>| {
            at(place.and_then(|p| span_of(f(p)).or_else(|| span_of(&p.name))))
        };
        let name = &t.name;
        if name.trim().is_empty() || !names.insert(name.as_str()) {
            return Err(ConfigError(format!(
                "{}: a trunk needs a name of its own (\"{name}\" is empty or given twice)",
                here(|p| &p.name)
            )));
        }
        let uri = t.proxy.trim().to_ascii_lowercase();
        if !uri.starts_with("sip:") && !uri.starts_with("sips:")
            || crate::sip::dial::sip_target(&uri.replacen("sips:", "sip:", 1)).is_none()
        {
            return Err(ConfigError(format!(
                "{}: trunk \"{name}\": proxy = \"{}\" is not a sip: or sips: URI with a host (such as \"sip:sip.carrier.example:5060\")",
                here(|p| &p.proxy),
                t.proxy
            )));
        }
        let Some((_, proto, _)) = t.proxy_target() else {
            return Err(ConfigError(format!(
                "{}: trunk \"{name}\": transport: UDP (the default), TCP (\";transport=tcp\") or TLS (\"sips:\" or \";transport=tls\")",
                here(|p| &p.proxy)
            )));
        };
        match (&proto, t.ca_file.trim()) {
            (crate::sip::dial::Proto::Tls { .. }, "") => {}
            (crate::sip::dial::Proto::Tls { .. }, file) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
                    .map_err(|e| e.to_string())
                    .and_then(|c| c.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string()));
                match certs {
                    Ok(c) if !c.is_empty() => {}
                    Ok(_) => {
                        return Err(ConfigError(format!(
                            "{}: trunk \"{name}\": ca_file = \"{file}\" holds no certificate (a PEM file with BEGIN CERTIFICATE)",
                            here(|p| &p.ca_file)
                        )));
                    }
                    Err(e) => {
                        return Err(ConfigError(format!(
                            "{}: trunk \"{name}\": ca_file = \"{file}\": {e}",
                            here(|p| &p.ca_file)
                        )));
                    }
                }
            }
            (_, "") => {}
            (_, _) => {
                return Err(ConfigError(format!(
                    "{}: trunk \"{name}\": ca_file is for a TLS trunk (proxy \"sips:…\" or \";transport=tls\")",
                    here(|p| &p.ca_file)
                )));
            }
        }
        if t.username.is_empty() != t.password.is_empty() || (t.register && t.username.is_empty()) {
            return Err(ConfigError(format!(
                "{}: trunk \"{name}\": username and password go together{}",
                here(|p| &p.password),
                if t.register {
                    " (register = true needs both)"
                } else {
                    ""
                }
            )));
        }
        if !(60..=86_400).contains(&t.expires_s) {
            return Err(ConfigError(format!(
                "{}: trunk \"{name}\": expires_s = {} is not between 60 and 86400",
                here(|p| &p.name),
                t.expires_s
            )));
        }
        for n in &t.numbers {
            let digits = n.strip_prefix('+').unwrap_or("x");
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(ConfigError(format!(
                    "{}: trunk \"{name}\": numbers: \"{n}\" is not a prefix of E.164 numbers (a + and digits, such as \"+34\")",
                    here(|p| &p.numbers)
                )));
            }
        }
        for a in &t.addresses {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError(format!(
                    "{}: trunk \"{name}\": addresses: \"{a}\" is not an IP address",
                    here(|p| &p.addresses)
                )));
            }
        }
        if !t.caller_id.is_empty() && config.numbers.e164(&t.caller_id).is_none() {
            return Err(ConfigError(format!(
                "{}: trunk \"{name}\": caller_id = \"{}\" is not a telephone number (with [numbers] country set, or written with +)",
                here(|p| &p.caller_id),
                t.caller_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunks_are_read_and_their_mistakes_named_with_their_place() {
        use crate::sip::dial::Proto;
        let ok = Loaded::parse(
            "[numbers]\ncountry = \"34\"\n\n[[trunks]]\nname = \"carrier\"\nproxy = \"sip:127.0.0.1:5099\"\nusername = \"line1\"\npassword = \"s\"\nregister = true\nnumbers = [\"+34\"]\naddresses = [\"127.0.0.9\"]\ncaller_id = \"910000000\"\n",
            Some("h.toml".into()),
        )
        .unwrap();
        let route = ok.config.trunks[0].route().unwrap();
        assert_eq!(
            (route.host.as_str(), route.port, route.domain.as_str()),
            ("127.0.0.1", 5099, "127.0.0.1")
        );
        assert!(
            ok.config
                .gate()
                .trusted
                .contains(&"127.0.0.9".parse().unwrap()),
            "a trunk's address is trusted by the flood limit"
        );
        let refused = |text: &str, wanted: &str, line: u32| {
            let e = Loaded::parse(text, Some("h.toml".into())).unwrap_err();
            assert!(e.0.contains(wanted), "{e}");
            assert!(e.0.starts_with(&format!("h.toml:{line}:")), "{e}");
        };
        let t = "[[trunks]]\nname = \"c\"\n";
        refused(
            &format!("{t}proxy = \"carrier\"\n"),
            "not a sip: or sips: URI",
            3,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\nusername = \"u\"\n"),
            "go together",
            2,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\nnumbers = [\"34\"]\n"),
            "not a prefix of E.164",
            4,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\naddresses = [\"c.example\"]\n"),
            "not an IP address",
            4,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\ncaller_id = \"910000000\"\n"),
            "not a telephone number",
            4,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\n\n{t}proxy = \"sip:d.example\"\n"),
            "given twice",
            6,
        );
        refused("[numbers]\ncountry = \"+34\"\n", "country calling code", 1);
        refused(
            &format!("{t}proxy = \"sip:c.example;transport=sctp\"\n"),
            "TLS (\"sips:\" or \";transport=tls\")",
            3,
        );
        refused(
            &format!("{t}proxy = \"sips:c.example;transport=tcp\"\n"),
            "transport: UDP (the default), TCP",
            3,
        );
        refused(
            &format!("{t}proxy = \"sip:c.example\"\nca_file = \"ca.pem\"\n"),
            "ca_file is for a TLS trunk",
            4,
        );
        refused(
            &format!("{t}proxy = \"sips:c.example\"\nca_file = \"/nowhere/ca.pem\"\n"),
            "ca_file = \"/nowhere/ca.pem\"",
            4,
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        refused(
            &format!(
                "{t}proxy = \"sips:c.example\"\nca_file = \"{}\"\n",
                empty.display()
            ),
            "holds no certificate",
            4,
        );
        let route = |proxy: &str| {
            Loaded::parse(&format!("{t}proxy = \"{proxy}\"\n"), Some("h.toml".into()))
                .unwrap()
                .config
                .trunks[0]
                .route()
                .unwrap()
        };
        let tcp = route("sip:c.example:5070;transport=TCP");
        assert_eq!(tcp.proto, Proto::Tcp);
        assert_eq!((tcp.host.as_str(), tcp.port), ("c.example", 5070));
        let tls = route("sips:c.example");
        assert_eq!(tls.proto, Proto::Tls { ca_file: None });
        assert_eq!((tls.host.as_str(), tls.port), ("c.example", 5061));
        let tls = route("sip:[2001:db8::1];transport=tls");
        assert_eq!((tls.host.as_str(), tls.port), ("2001:db8::1", 5061));
        let tls = route("sips:c.example:5071");
        assert_eq!(tls.port, 5071);
        assert_eq!(route("sip:c.example").proto, Proto::Udp);
    }

    #[test]
    fn mistakes_serde_cannot_see_are_refused_with_their_place() {
        let refused = |text: &str, wanted: &str, line: u32| {
            let e = Loaded::parse(text, Some("h.toml".into())).unwrap_err();
            assert!(e.0.contains(wanted), "{e}");
            assert!(e.0.starts_with(&format!("h.toml:{line}:")), "{e}");
        };
        refused("[rtp]\nports = [80, 90]\n", "below 1024", 2);
        refused(
            "[sip]\nresolvers = [\"dns.example\"]\n",
            "not a DNS server's address",
            2,
        );
        refused("[rtp]\nports = [30000, 20000]\n", "reversed", 2);
        refused("[rtp]\nports = [20001, 20001]\n", "no even port", 2);
        refused("[sip]\nadvertise = \"0.0.0.0\"\n", "unspecified", 2);
        refused(
            "[[agents]]\nid = \"a\"\npassword = \"x\"\n\n[[agents]]\nid = \"a\"\npassword = \"y\"\n",
            "given twice",
            6,
        );
        refused(
            "[[agents]]\nid = \"a\"\npassword = \"\"\n",
            "empty password",
            3,
        );
        let ok = Loaded::parse(
            "[rtp]\nports = [20001, 20002]\n\n[[agents]]\nid = \"a\"\npassword = \"x\"\nskills = { support = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\n\n[[queues]]\nname = \"vip\"\nskills = [\"vip\"]\n",
            Some("h.toml".into()),
        )
        .unwrap();
        assert_eq!(ok.warnings.len(), 1, "{:?}", ok.warnings);
        assert!(
            ok.warnings[0].starts_with("h.toml:14:"),
            "{:?}",
            ok.warnings
        );
        assert!(ok.warnings[0].contains("\"vip\""), "{:?}", ok.warnings);
    }

    #[test]
    fn recording_modes_and_pause_keys_are_read_and_bad_keys_named_with_their_place() {
        let ok = Loaded::parse(
            "[recording]\npause_keys = \"#9\"\nannouncement = \"recorded\"\n\n[[queues]]\nname = \"sales\"\nrecord = \"on-demand\"\n",
            Some("h.toml".into()),
        )
        .unwrap();
        assert_eq!(ok.config.queues[0].record, RecordMode::OnDemand);
        assert_eq!(ok.config.recording.pause_keys, "#9");
        assert_eq!(
            ok.config.recording.announcement.as_deref(),
            Some("recorded")
        );
        assert_eq!(Config::default().recording.pause_keys, "*7");
        for bad in ["", "*7a", "12345"] {
            let e = Loaded::parse(
                &format!("[http]\n\n[recording]\npause_keys = \"{bad}\"\n"),
                Some("h.toml".into()),
            )
            .unwrap_err();
            assert!(e.0.starts_with("h.toml:4:"), "{e}");
            assert!(e.0.contains("give 1 to 4 phone keys"), "{e}");
        }
    }

    #[test]
    fn embedded_config_parses_and_has_the_demo_queues() {
        let c = Loaded::embedded();
        assert!(!c.config.queues.is_empty());
        assert!(c.calendars.contains_key("business"));
        assert_eq!(
            c.config.lines.get("default").map(String::as_str),
            Some("main")
        );
    }

    #[test]
    fn unknown_keys_and_bad_calendars_are_reported_with_their_place() {
        let e = Loaded::parse("[sip]\nlisen = \"x\"\n", Some("h.toml".into())).unwrap_err();
        assert!(e.0.starts_with("h.toml:2:1"), "{e}");
        let e = Loaded::parse(
            "[calendars.b]\ntimezone = \"Nowhere/Town\"\n",
            Some("h.toml".into()),
        )
        .unwrap_err();
        assert!(e.0.contains("Nowhere/Town"), "{e}");
        // A queue's strategy is read as one, not checked after as a string.
        let e = Loaded::parse(
            "[[queues]]\nname = \"support\"\nstrategy = \"fastest\"\n",
            Some("h.toml".into()),
        )
        .unwrap_err();
        assert!(e.0.starts_with("h.toml:3:"), "{e}");
        assert!(
            e.0.contains("unknown strategy \"fastest\" (one of longest-idle,"),
            "{e}"
        );
        let ok = Loaded::parse(
            "[[queues]]\nname = \"support\"\nstrategy = \"ring-all\"\n",
            Some("h.toml".into()),
        )
        .unwrap();
        assert_eq!(
            ok.config.queues[0].strategy,
            crate::routing::Strategy::RingAll
        );
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = Loaded::parse(
            "[paths]\nflows = \"f\"\n",
            Some("/etc/hotline/h.toml".into()),
        )
        .unwrap();
        assert_eq!(c.config.paths.flows, PathBuf::from("/etc/hotline/f"));
        assert_eq!(
            c.config.paths.prompts,
            PathBuf::from("/etc/hotline/prompts")
        );
    }
}

//! The registrar (RFC 3261 §10) for agent phones, with digest authentication (RFC 7616, and
//! RFC 8760 for SHA-256 in SIP): qop=auth, nonces that expire (`stale=true`), nonce counts
//! that must rise (a replayed request is refused), and a limit on failed attempts per source
//! address and username: behind one NAT address, one phone's wrong password does not lock out
//! the office's other phones. An unknown user and a wrong password get the same answers (401,
//! then 403), so the registrar never tells which agent ids exist. Pure: the clock comes in as
//! `now`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use super::digest::Algorithm;
use super::digest::{Params as Credentials, hex};
use super::link::Link;
use super::wire::{self, Message, Start};

/// How long a nonce may be used; after that the phone is told `stale=true` and retries
/// without asking its user anything.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces remembered at once (oldest forgotten first): bounds memory under a flood.
pub const MAX_NONCES: usize = 10_000;
/// Failed attempts from one (address, username) within `FAILURE_WINDOW` before that pair is
/// refused outright (the defaults of `[sip] max_auth_failures` and `auth_failure_window_s`).
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failures for one username, from all addresses together, within the window that lock it
/// out for every phone not yet known to have logged in.
pub const MAX_FAILURES_PER_USER: u32 = 20;
/// A phone is known by the Call-ID of a REGISTER that authenticated (a phone keeps it from
/// one refresh to the next, RFC 3261 §10.2): this many remembered per agent.
const KNOWN_PHONES: usize = 8;
/// (address, username) pairs whose failures are remembered at once; past it the oldest is
/// forgotten, so a flood from many addresses never stops the counting of new ones.
pub const MAX_TRACKED_SOURCES: usize = 10_000;
/// A username longer than this is counted by its first characters (it is the caller's text).
const MAX_USERNAME: usize = 64;
/// A challenge no authenticated request followed within this long is logged: the phone gave
/// up on it (a wrong algorithm, a wrong realm, no password configured).
pub const UNANSWERED_AFTER: Duration = Duration::from_secs(30);
/// Unanswered challenges remembered at once, for that log.
const MAX_UNANSWERED: usize = 1_000;
/// Registration lifetimes: a phone asking for less gets 423, more is cut to the maximum.
pub const MIN_EXPIRES: u32 = 60;
pub const MAX_EXPIRES: u32 = 3600;
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Contacts one agent may register (a desk phone, a softphone, a mobile...).
pub const MAX_CONTACTS: usize = 8;

/// One registered contact of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI, where the agent's calls are addressed.
    pub uri: String,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// Where the agent's calls are sent: the Contact's address when it is an IP address over
    /// UDP, else (a host name, or a TCP connection the phone keeps open) where it came from.
    pub target: SocketAddr,
    pub link: Link,
    pub expires: Instant,
    /// When it was first registered.
    pub since: Instant,
}

/// A change in whether an agent has a phone registered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Registered(usize),
    Unregistered(usize),
}

/// What to answer a REGISTER with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    /// The agent, once authenticated.
    pub agent: Option<usize>,
    pub change: Option<Change>,
    /// Credentials were refused (or not looked at: the pair is locked out).
    pub refusal: Option<Refusal>,
}

impl Answer {
    fn new(status: u16, reason: &'static str) -> Answer {
        Answer {
            status,
            reason,
            headers: Vec::new(),
            agent: None,
            change: None,
            refusal: None,
        }
    }
}

pub struct User {
    pub id: String,
    pub password: String,
}

struct Nonce {
    issued: Instant,
    /// The highest nonce count used with it (RFC 7616 §3.4: a repeat is a replay).
    last_nc: u32,
    /// Whether a request came back with credentials for it.
    answered: bool,
}

struct Failures {
    count: u32,
    since: Instant,
}

/// Who is counted: a source address and the username it tried.
type Pair = (IpAddr, String);

/// How many failures lock a pair out, how many lock a username out from every address but
/// its known phones, and for how long they are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub max_failures: u32,
    pub max_failures_per_user: u32,
    pub window: Duration,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            max_failures: MAX_FAILURES,
            max_failures_per_user: MAX_FAILURES_PER_USER,
            window: FAILURE_WINDOW,
        }
    }
}

/// A refused attempt, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The username tried (cut to 64 characters).
    pub user: String,
    pub source: IpAddr,
    /// This failure reached the limit: the pair is locked out from now.
    pub locked_now: bool,
    /// This failure reached the username's limit across addresses: the username is locked
    /// out from now, for every phone not known to have logged in.
    pub user_locked_now: bool,
    /// The pair was already locked out: refused without checking the password.
    pub locked: bool,
}

/// A challenge that no authenticated request followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    /// The user the REGISTER was for (its To header).
    pub user: String,
    pub source: SocketAddr,
}

/// Where a phone registered over UDP is sent its calls (`[sip] agents_nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nat {
    /// Where its REGISTER came from when it is behind a NAT: its Contact names a private
    /// address other than that, or it asked for replies where it sends from (`rport`, RFC
    /// 3581) and its Contact is elsewhere. Otherwise its Contact.
    #[default]
    Auto,
    /// Always where its REGISTER came from, whatever its Contact says.
    Always,
    /// Always its Contact's address.
    Never,
}

pub struct Registrar {
    realm: String,
    nat: Nat,
    max_expires: u32,
    algorithms: Vec<Algorithm>,
    users: Vec<User>,
    secret: [u8; 16],
    issued: u64,
    nonces: HashMap<String, Nonce>,
    nonce_order: VecDeque<String>,
    lockout: Lockout,
    /// Agents removed from the config by a reload: they can no longer authenticate.
    retired: std::collections::HashSet<usize>,
    failures: HashMap<Pair, Failures>,
    /// Failures per agent from every address (only real usernames: one never configured can
    /// never log in, and counting it would be a table for an attacker to fill).
    user_failures: HashMap<usize, Failures>,
    /// Per agent, the Call-IDs its phones registered with successfully, newest last.
    known: Vec<VecDeque<String>>,
    /// The pairs in the order they were first counted, for forgetting the oldest; may hold
    /// pairs already forgotten (skipped), and is compacted when it outgrows the map.
    failure_order: VecDeque<Pair>,
    /// Challenges sent to a REGISTER without credentials: when, its nonce, who asked.
    unanswered: VecDeque<(Instant, String, Unanswered)>,
    bindings: Vec<Vec<Binding>>,
    expiry: BTreeSet<(Instant, usize, String)>,
}

impl Registrar {
    /// `secret` seeds the nonces: unpredictable values make them unguessable. `algorithms`
    /// are offered in that order (none given: SHA-256 then MD5, RFC 8760's preference).
    pub fn new(
        realm: &str,
        algorithms: &[Algorithm],
        users: Vec<User>,
        secret: [u8; 16],
    ) -> Registrar {
        let n = users.len();
        let algorithms = if algorithms.is_empty() {
            vec![Algorithm::Sha256, Algorithm::Md5]
        } else {
            algorithms.to_vec()
        };
        Registrar {
            algorithms,
            nat: Nat::Auto,
            max_expires: MAX_EXPIRES,
            realm: realm.to_string(),
            users,
            secret,
            issued: 0,
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            lockout: Lockout::default(),
            retired: std::collections::HashSet::new(),
            failures: HashMap::new(),
            user_failures: HashMap::new(),
            known: vec![VecDeque::new(); n],
            failure_order: VecDeque::new(),
            unanswered: VecDeque::new(),
            bindings: vec![Vec::new(); n],
            expiry: BTreeSet::new(),
        }
    }

    /// How many failures lock an (address, username) pair out, and for how long.
    pub fn with_lockout(mut self, lockout: Lockout) -> Registrar {
        self.lockout = Lockout {
            max_failures: lockout.max_failures.max(1),
            max_failures_per_user: lockout.max_failures_per_user.max(1),
            window: lockout.window.max(Duration::from_secs(1)),
        };
        self
    }

    /// Where phones behind a NAT are sent their calls, and the longest registration granted
    /// (a phone behind a NAT that re-registers often keeps its mapping open).
    pub fn with_nat(mut self, nat: Nat, max_expires: u32) -> Registrar {
        self.nat = nat;
        self.max_expires = max_expires.clamp(MIN_EXPIRES, MAX_EXPIRES);
        self
    }

    /// Per agent, the failed attempts counted now and the addresses locked out for them.
    pub fn failures(&self, agent: usize, now: Instant) -> (u32, Vec<IpAddr>) {
        let Some(user) = self.users.get(agent) else {
            return (0, Vec::new());
        };
        let mut count = 0;
        let mut locked = Vec::new();
        for ((ip, name), f) in &self.failures {
            if *name != user.id || now.saturating_duration_since(f.since) >= self.lockout.window {
                continue;
            }
            count += f.count;
            if f.count >= self.lockout.max_failures {
                locked.push(*ip);
            }
        }
        locked.sort();
        (count, locked)
    }

    /// Takes the agents of a reloaded config, matched by id (indices stay: new agents come
    /// after the others): a changed password applies from the next request, a removed agent
    /// can no longer authenticate and its phones are unregistered.
    pub fn set_users(&mut self, users: Vec<User>) -> Vec<Change> {
        let mut changes = Vec::new();
        for (i, u) in self.users.iter_mut().enumerate() {
            match users.iter().find(|n| n.id == u.id) {
                Some(n) => {
                    if u.password != n.password {
                        // A new password: no phone is known to have it yet.
                        self.known[i].clear();
                    }
                    u.password = n.password.clone();
                    self.retired.remove(&i);
                }
                None => {
                    self.retired.insert(i);
                    self.known[i].clear();
                    let gone = std::mem::take(&mut self.bindings[i]);
                    for b in &gone {
                        self.expiry.remove(&(b.expires, i, b.uri.clone()));
                    }
                    if !gone.is_empty() {
                        changes.push(Change::Unregistered(i));
                    }
                }
            }
        }
        for n in users {
            if !self.users.iter().any(|u| u.id == n.id) {
                self.users.push(n);
                self.bindings.push(Vec::new());
                self.known.push(VecDeque::new());
            }
        }
        changes
    }

    /// Puts back a binding stored before a restart (a UDP phone's: a TCP connection is gone
    /// with the process); the agent's change, if it had none.
    pub fn restore(&mut self, agent: usize, binding: Binding) -> Option<Change> {
        let list = self.bindings.get_mut(agent)?;
        if binding.link != Link::Udp
            || list.len() >= MAX_CONTACTS
            || list.iter().any(|b| b.uri == binding.uri)
        {
            return None;
        }
        let had = !list.is_empty();
        self.expiry
            .insert((binding.expires, agent, binding.uri.clone()));
        list.push(binding);
        (!had).then_some(Change::Registered(agent))
    }

    /// Drops the agent's contacts registered over `link` (a TCP or TLS connection that has
    /// closed: nothing reaches the phone through it any more); the change if none is left.
    pub fn drop_link(&mut self, agent: usize, link: Link) -> Option<Change> {
        let list = self.bindings.get_mut(agent)?;
        let before = list.len();
        let expiry = &mut self.expiry;
        list.retain(|b| {
            let keep = b.link != link;
            if !keep {
                expiry.remove(&(b.expires, agent, b.uri.clone()));
            }
            keep
        });
        (before > 0 && list.is_empty()).then_some(Change::Unregistered(agent))
    }

    /// The agent's registered contacts, newest first.
    pub fn bindings(&self, agent: usize) -> Vec<&Binding> {
        let mut b: Vec<&Binding> = self.bindings.get(agent).into_iter().flatten().collect();
        b.sort_by_key(|x| std::cmp::Reverse(x.since));
        b
    }

    pub fn is_registered(&self, agent: usize) -> bool {
        self.bindings.get(agent).is_some_and(|b| !b.is_empty())
    }

    /// When the next binding expires, or a challenge is due to be called unanswered.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let binding = self.expiry.first().map(|e| e.0);
        let challenge = self.unanswered.front().map(|u| u.0 + UNANSWERED_AFTER);
        binding.into_iter().chain(challenge).min()
    }

    /// The challenges that no authenticated request followed in time.
    pub fn unanswered(&mut self, now: Instant) -> Vec<Unanswered> {
        let mut out = Vec::new();
        while let Some(front) = self.unanswered.front() {
            if front.0 + UNANSWERED_AFTER > now {
                break;
            }
            if let Some((_, nonce, who)) = self.unanswered.pop_front()
                && self.nonces.get(&nonce).is_none_or(|n| !n.answered)
            {
                out.push(who);
            }
        }
        out
    }

    /// Drops the bindings whose time is up; the agents left with none.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(first) = self.expiry.first().cloned() {
            if first.0 > now {
                break;
            }
            self.expiry.remove(&first);
            let (_, agent, uri) = first;
            if let Some(list) = self.bindings.get_mut(agent) {
                let before = list.len();
                list.retain(|b| !(b.uri == uri && b.expires <= now));
                if before > 0 && list.is_empty() {
                    out.push(Change::Unregistered(agent));
                }
            }
        }
        out
    }

    /// Answers a REGISTER that came from `source` over `link`.
    pub fn register(
        &mut self,
        req: &Message,
        source: SocketAddr,
        link: Link,
        now: Instant,
    ) -> Answer {
        let agent = match self.authenticate(req, source, now) {
            Ok(agent) => agent,
            Err(answer) => return *answer,
        };
        let mut answer = self.bind(agent, req, source, link, now);
        answer.agent = Some(agent);
        answer
    }

    /// The agent a request (a REGISTER, or an agent's own INVITE such as a feature code)
    /// authenticates as, or what to answer it with: a challenge (401), a refusal (403,
    /// counted towards the lockout) or 400 for credentials that cannot be read.
    pub fn authenticate(
        &mut self,
        req: &Message,
        source: SocketAddr,
        now: Instant,
    ) -> Result<usize, Box<Answer>> {
        let Start::Request { uri, method } = &req.start else {
            return Err(Box::new(Answer::new(400, "Not A Request")));
        };
        let credentials = req
            .all("Authorization")
            .filter_map(Credentials::parse)
            .find(|c| c.get("realm") == Some(self.realm.as_str()));
        // Counted by the username the phone authenticates as, or (before it has) the user
        // it registers (To), or calls as (From).
        let claimed = if method == "REGISTER" { "To" } else { "From" };
        let to_user = req
            .get(claimed)
            .and_then(wire::parse_name_addr)
            .map(|na| super::dialog::uri_user(&na.uri).to_string())
            .unwrap_or_default();
        let user: String = credentials
            .as_ref()
            .and_then(|c| c.get("username"))
            .unwrap_or(&to_user)
            .chars()
            .take(MAX_USERNAME)
            .collect();
        let pair = (source.ip(), user);
        let agent = self.agent_named(&pair.1);
        // A phone that logged in before (its REGISTER's Call-ID) is let try even while a
        // guesser at its address, or everywhere, has the username locked out.
        let call_id = req.get("Call-ID").unwrap_or_default();
        let known = method == "REGISTER"
            && agent.is_some_and(|a| self.known[a].iter().any(|c| c == call_id));
        if !known && (self.locked_out(&pair, now) || self.user_locked_out(agent, now)) {
            let mut a = Answer::new(403, "Too Many Failed Attempts");
            a.refusal = Some(Refusal {
                user: pair.1,
                source: pair.0,
                locked_now: false,
                user_locked_now: false,
                locked: true,
            });
            return Err(Box::new(a));
        }
        let Some(c) = credentials else {
            let a = self.challenge(false, now);
            if let Some(nonce) = self.nonce_order.back().cloned() {
                if self.unanswered.len() >= MAX_UNANSWERED {
                    self.unanswered.pop_front();
                }
                let who = Unanswered {
                    user: pair.1.clone(),
                    source,
                };
                self.unanswered.push_back((now, nonce, who));
            }
            return Err(Box::new(a));
        };
        if let Some(nonce) = c.get("nonce")
            && let Some(n) = self.nonces.get_mut(nonce)
        {
            n.answered = true;
            // A phone answers at once: its challenge is among the last few sent.
            let len = self.unanswered.len();
            if let Some(i) = (len.saturating_sub(16)..len)
                .rev()
                .find(|&i| self.unanswered[i].1 == nonce)
            {
                self.unanswered.remove(i);
            }
        }
        let agent = match self.check(&c, method, uri, now) {
            Check::Ok(agent) => agent,
            Check::Stale => return Err(Box::new(self.challenge(true, now))),
            Check::Malformed(reason) => return Err(Box::new(Answer::new(400, reason))),
            Check::Refused => {
                let locked_now = self.failed(&pair, now);
                let user_locked_now = self.user_failed(agent, now);
                let mut a = Answer::new(403, "Forbidden");
                a.refusal = Some(Refusal {
                    user: pair.1,
                    source: pair.0,
                    locked_now,
                    user_locked_now,
                    locked: false,
                });
                return Err(Box::new(a));
            }
        };
        self.failures.remove(&pair);
        if method == "REGISTER" && !call_id.is_empty() && !known {
            let phones = &mut self.known[agent];
            if phones.len() >= KNOWN_PHONES {
                phones.pop_front();
            }
            phones.push_back(call_id.chars().take(256).collect());
        }
        Ok(agent)
    }

    /// A login by password (the desk's form): the same counters and lockouts as digest
    /// authentication, so a guesser gains nothing by switching from SIP to the web or back.
    /// The agent, or the refusal (with `locked` when refused unchecked).
    pub fn login(
        &mut self,
        username: &str,
        password: &str,
        source: IpAddr,
        now: Instant,
    ) -> Result<usize, Refusal> {
        let user: String = username.chars().take(MAX_USERNAME).collect();
        let pair = (source, user);
        let agent = self.agent_named(&pair.1);
        if self.locked_out(&pair, now) || self.user_locked_out(agent, now) {
            return Err(Refusal {
                user: pair.1,
                source,
                locked_now: false,
                user_locked_now: false,
                locked: true,
            });
        }
        let right = agent.is_some_and(|a| {
            let want = self.users[a].password.as_bytes();
            want.len() == password.len()
                && want
                    .iter()
                    .zip(password.as_bytes())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
        });
        match agent {
            Some(a) if right => {
                self.failures.remove(&pair);
                Ok(a)
            }
            _ => {
                let locked_now = self.failed(&pair, now);
                let user_locked_now = self.user_failed(agent, now);
                Err(Refusal {
                    user: pair.1,
                    source,
                    locked_now,
                    user_locked_now,
                    locked: false,
                })
            }
        }
    }

    /// The configured agent with this username, unless retired.
    fn agent_named(&self, username: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.id == username)
            .filter(|i| !self.retired.contains(i))
    }

    fn user_locked_out(&mut self, agent: Option<usize>, now: Instant) -> bool {
        let Some(agent) = agent else { return false };
        match self.user_failures.get(&agent) {
            Some(f) if now.saturating_duration_since(f.since) >= self.lockout.window => {
                self.user_failures.remove(&agent);
                false
            }
            Some(f) => f.count >= self.lockout.max_failures_per_user,
            None => false,
        }
    }

    /// Counts a failure against a real username; whether it locks the username out.
    fn user_failed(&mut self, agent: Option<usize>, now: Instant) -> bool {
        let Some(agent) = agent else { return false };
        let f = self.user_failures.entry(agent).or_insert(Failures {
            count: 0,
            since: now,
        });
        f.count += 1;
        f.count == self.lockout.max_failures_per_user
    }

    fn locked_out(&mut self, pair: &Pair, now: Instant) -> bool {
        match self.failures.get(pair) {
            Some(f) if now.saturating_duration_since(f.since) >= self.lockout.window => {
                self.failures.remove(pair);
                false
            }
            Some(f) => f.count >= self.lockout.max_failures,
            None => false,
        }
    }

    /// Counts a failure; whether it is the one that locks the pair out.
    fn failed(&mut self, pair: &Pair, now: Instant) -> bool {
        if !self.failures.contains_key(pair) {
            while self.failures.len() >= MAX_TRACKED_SOURCES {
                let Some(old) = self.failure_order.pop_front() else {
                    break;
                };
                self.failures.remove(&old);
            }
            if self.failure_order.len() >= 2 * MAX_TRACKED_SOURCES {
                let failures = &self.failures;
                self.failure_order.retain(|p| failures.contains_key(p));
            }
            self.failure_order.push_back(pair.clone());
        }
        let f = self.failures.entry(pair.clone()).or_insert(Failures {
            count: 0,
            since: now,
        });
        f.count += 1;
        f.count == self.lockout.max_failures
    }

    /// 401 with a fresh nonce, one challenge per algorithm in the configured order (RFC 8760
    /// §2.4).
    fn challenge(&mut self, stale: bool, now: Instant) -> Answer {
        let nonce = self.fresh_nonce(now);
        let mut a = Answer::new(401, "Unauthorized");
        for &alg in &self.algorithms {
            let mut v = format!(
                "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                self.realm,
                alg.name()
            );
            if stale {
                v.push_str(", stale=true");
            }
            a.headers.push(("WWW-Authenticate".into(), v));
        }
        a
    }

    fn fresh_nonce(&mut self, now: Instant) -> String {
        self.issued += 1;
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(self.issued.to_be_bytes());
        let nonce = hex(&h.finalize()[..16]);
        while self.nonce_order.len() >= MAX_NONCES {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        self.nonce_order.push_back(nonce.clone());
        self.nonces.insert(
            nonce.clone(),
            Nonce {
                issued: now,
                last_nc: 0,
                answered: false,
            },
        );
        nonce
    }

    fn check(&mut self, c: &Credentials, method: &str, req_uri: &str, now: Instant) -> Check {
        let (Some(username), Some(nonce), Some(uri), Some(response)) = (
            c.get("username"),
            c.get("nonce"),
            c.get("uri"),
            c.get("response"),
        ) else {
            return Check::Malformed("Incomplete Authorization Header");
        };
        let Some(algorithm) = Algorithm::parse(c.get("algorithm").unwrap_or("MD5"))
            .filter(|a| self.algorithms.contains(a))
        else {
            return Check::Refused;
        };
        let (Some(qop), Some(nc), Some(cnonce)) = (c.get("qop"), c.get("nc"), c.get("cnonce"))
        else {
            return Check::Refused; // we asked for qop=auth: without it there is no replay guard
        };
        if !qop.eq_ignore_ascii_case("auth") {
            return Check::Refused;
        }
        let Ok(nc_value) = u32::from_str_radix(nc, 16) else {
            return Check::Malformed("Malformed Nonce Count");
        };
        // The digest covers the URI it names. Phones disagree on which URI that is (the
        // Request-URI, or the address they sent to, as SIPp does), so it is not compared with
        // the Request-URI: the nonce and its count already stop a replay.
        let _ = req_uri;
        if !uri.to_ascii_lowercase().starts_with("sip") {
            return Check::Refused;
        }
        let Some(state) = self.nonces.get(nonce) else {
            // Not one of ours, or forgotten: a fresh challenge costs the phone nothing.
            return Check::Stale;
        };
        if now.saturating_duration_since(state.issued) > NONCE_LIFETIME {
            return Check::Stale;
        }
        // An unknown user is checked against a password nobody has, in the same time.
        let user = self
            .users
            .iter()
            .position(|u| u.id == username)
            .filter(|i| !self.retired.contains(i));
        let password = user.map_or("\u{0}no such user", |i| self.users[i].password.as_str());
        let ha1 = algorithm.hash(&format!("{username}:{}:{password}", self.realm));
        let ha2 = algorithm.hash(&format!("{method}:{uri}"));
        let expected = algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"));
        let matches = constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        );
        match user {
            Some(i) if matches => {
                if let Some(state) = self.nonces.get_mut(nonce) {
                    if nc_value <= state.last_nc {
                        return Check::Refused; // a replay
                    }
                    state.last_nc = nc_value;
                }
                Check::Ok(i)
            }
            _ => {
                // A wrong answer spends the nonce: each guess costs a fresh challenge, and
                // one nonce cannot carry a run of guesses.
                self.nonces.remove(nonce);
                Check::Refused
            }
        }
    }

    /// Adds, refreshes or removes the agent's bindings as the REGISTER asks, and lists them.
    fn bind(
        &mut self,
        agent: usize,
        req: &Message,
        source: SocketAddr,
        link: Link,
        now: Instant,
    ) -> Answer {
        let header_expires = match req.get("Expires") {
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => return Answer::new(400, "Malformed Expires Header"),
            },
            None => None,
        };
        let contacts: Vec<&str> = req.all("Contact").flat_map(wire::split_list).collect();
        let symmetric = req
            .get("Via")
            .and_then(|v| {
                wire::split_list(v)
                    .first()
                    .copied()
                    .and_then(wire::parse_via)
            })
            .is_some_and(|v| v.param("rport").is_some());
        let had = self.is_registered(agent);
        if contacts.iter().any(|c| c.trim() == "*") {
            // Remove all (RFC 3261 §10.3 step 6): only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return Answer::new(400, "Invalid Wildcard Contact");
            }
            for b in std::mem::take(&mut self.bindings[agent]) {
                self.expiry.remove(&(b.expires, agent, b.uri));
            }
        } else {
            let mut wanted = Vec::new();
            for c in &contacts {
                let Some(na) = wire::parse_name_addr(c) else {
                    return Answer::new(400, "Malformed Contact Header");
                };
                let expires = match na.param("expires") {
                    Some(v) => match v.parse::<u32>() {
                        Ok(n) => n,
                        Err(_) => return Answer::new(400, "Malformed Contact Expires"),
                    },
                    None => header_expires.unwrap_or(DEFAULT_EXPIRES),
                };
                if expires != 0 && expires < MIN_EXPIRES {
                    let mut a = Answer::new(423, "Interval Too Brief");
                    a.headers
                        .push(("Min-Expires".into(), MIN_EXPIRES.to_string()));
                    return a;
                }
                wanted.push((na.uri, expires.min(self.max_expires)));
            }
            for (uri, expires) in wanted {
                let list = &mut self.bindings[agent];
                let mut since = now;
                if let Some(i) = list.iter().position(|b| b.uri == uri) {
                    let b = list.remove(i);
                    since = b.since;
                    self.expiry.remove(&(b.expires, agent, b.uri));
                }
                if expires == 0 {
                    continue;
                }
                let list = &mut self.bindings[agent];
                if list.len() >= MAX_CONTACTS {
                    return Answer::new(403, "Too Many Contacts");
                }
                let at = now + Duration::from_secs(u64::from(expires));
                let target = match link {
                    Link::Udp => match (self.nat, contact_address(&uri)) {
                        (Nat::Always, _) | (_, None) => source,
                        (Nat::Never, Some(c)) => c,
                        // Behind NAT: the phone wrote its private address, which only answers
                        // where its REGISTER came from (the NAT's mapping).
                        (Nat::Auto, Some(c)) if c.ip() != source.ip() && is_private(c.ip()) => {
                            source
                        }
                        // It asked for answers where it sends from: that is where it listens.
                        (Nat::Auto, Some(c)) if c != source && symmetric => source,
                        (Nat::Auto, Some(c)) => c,
                    },
                    Link::Tcp(_) | Link::Tls(_) => source,
                };
                list.push(Binding {
                    uri: uri.clone(),
                    source,
                    target,
                    link,
                    expires: at,
                    since,
                });
                self.expiry.insert((at, agent, uri));
            }
        }
        let mut a = Answer::new(200, "OK");
        for b in &self.bindings[agent] {
            let left = b.expires.saturating_duration_since(now).as_secs();
            a.headers
                .push(("Contact".into(), format!("<{}>;expires={left}", b.uri)));
        }
        let has = self.is_registered(agent);
        a.change = match (had, has) {
            (false, true) => Some(Change::Registered(agent)),
            (true, false) => Some(Change::Unregistered(agent)),
            _ => None,
        };
        a
    }
}

enum Check {
    Ok(usize),
    Stale,
    Malformed(&'static str),
    Refused,
}

/// The IP address and port of a SIP URI's host part, when it is a literal address
/// (`sip:alice@192.0.2.4:5062;transport=udp` → 192.0.2.4:5062; no port → 5060).
pub fn contact_address(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split([';', '?']).next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        let (ip, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 5060,
        };
        return Some(SocketAddr::new(ip.parse().ok()?, port));
    }
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (host_port, 5060),
    };
    Some(SocketAddr::new(host.parse().ok()?, port))
}

/// An address that cannot be reached from outside its own network: RFC 1918, shared (CGNAT,
/// RFC 6598), link-local, IPv6 unique-local and link-local.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Equal bytes, in a time that does not tell how many matched (passwords, tokens).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;

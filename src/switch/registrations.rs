//! Registering to a carrier (`[[trunks]] register = true`): hotline is the phone here. A
//! REGISTER for the trunk's account goes out at start, its 401/407 is answered with the
//! trunk's credentials (once per realm, as for legs), a 423 takes the carrier's minimum, and
//! the binding is refreshed well before it expires. A refusal or no answer is retried with a
//! growing wait (RFC 5626 §4.5's shape: 30 s doubling up to 10 min), so a carrier that is down
//! is neither hammered nor forgotten. Each change of state is an [`Event::Registration`].

use core::net::SocketAddr;
use std::time::{Duration, Instant};

use super::leg::header;
use super::{Deadline, Event, Owner, Switch};
use crate::sip::digest::{self, Answered, Secret};
use crate::sip::link::Link;
use crate::sip::wire::{self, Message, Start};

/// Waits after the first failure, doubled after each next one up to the last.
pub const RETRY_FIRST: Duration = Duration::from_secs(30);
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// A carrier account hotline registers.
#[derive(Debug, Clone)]
pub struct Account {
    pub trunk: String,
    /// The REGISTER's Request-URI: `sip:domain`.
    pub registrar: String,
    /// The address of record: `sip:username@domain`.
    pub aor: String,
    /// The user in our Contact: calls for the account come to it.
    pub contact_user: String,
    pub link: Link,
    pub peer: SocketAddr,
    pub auth: Option<Secret>,
    /// The lifetime asked for, in seconds.
    pub expires: u32,
}

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A REGISTER is out, no answer yet.
    Registering,
    /// The carrier holds our binding for `expires` seconds (refreshed before then).
    Registered { expires: u32 },
    /// Refused (`code`) or unanswered (`None`); tried again in `retry_in`.
    Failed {
        code: Option<u16>,
        retry_in: Duration,
    },
    /// Unregistered (hotline is stopping).
    Unregistered,
}

pub(super) struct Registrant {
    account: Account,
    call_id: String,
    tag: String,
    cseq: u32,
    /// The REGISTER last sent (answered again on a challenge).
    sent: Option<Message>,
    answered: Answered,
    failures: u32,
    state: Registration,
    /// Our last REGISTER asked for expiry 0.
    leaving: bool,
}

/// When a binding granted for `expires` seconds is refreshed: at four fifths of it, and no
/// sooner than 5 s after.
fn refresh_after(expires: u32) -> Duration {
    Duration::from_secs(u64::from(expires).saturating_mul(4) / 5).max(Duration::from_secs(5))
}

fn retry_after(failures: u32) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(10));
    doubled.min(RETRY_MAX)
}

impl Switch {
    /// Starts keeping `account` registered: the first REGISTER goes out now.
    pub fn register(&mut self, account: Account, now: Instant) {
        let trunk = account.trunk.clone();
        let call_id = format!("{:016x}@hotline", self.entropy.next());
        let tag = format!("{:x}", self.entropy.next());
        self.registrations.insert(
            trunk.clone(),
            Registrant {
                account,
                call_id,
                tag,
                cseq: 0,
                sent: None,
                answered: Answered::default(),
                failures: 0,
                state: Registration::Registering,
                leaving: false,
            },
        );
        self.send_register(&trunk, now);
    }

    /// The trunk's connection was made again: its registration goes over `link` to `peer`,
    /// at once (whatever was pending on the old connection is forgotten). `false` when the
    /// trunk has no registration.
    pub fn reconnected(&mut self, trunk: &str, link: Link, peer: SocketAddr, now: Instant) -> bool {
        let Some(r) = self.registrations.get_mut(trunk) else {
            return false;
        };
        r.account.link = link;
        r.account.peer = peer;
        if r.leaving {
            return true;
        }
        self.deadlines
            .retain(|_, d| *d != Deadline::Register(trunk.to_string()));
        self.send_register(trunk, now);
        true
    }

    /// The link each registration goes over.
    pub fn registration_links(&self) -> Vec<(String, Link)> {
        self.registrations
            .iter()
            .map(|(t, r)| (t.clone(), r.account.link))
            .collect()
    }

    /// Where each registration stands, by trunk.
    pub fn registrations(&self) -> Vec<(String, Registration)> {
        let mut all: Vec<_> = self
            .registrations
            .iter()
            .map(|(t, r)| (t.clone(), r.state.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Takes every binding down (REGISTER with expiry 0): hotline is stopping, so calls for
    /// it should not be sent here any more.
    pub fn unregister_all(&mut self, now: Instant) {
        let trunks: Vec<String> = self.registrations.keys().cloned().collect();
        for trunk in trunks {
            if let Some(r) = self.registrations.get_mut(&trunk) {
                r.leaving = true;
                r.state = Registration::Unregistered;
            }
            self.deadlines
                .retain(|_, d| *d != Deadline::Register(trunk.clone()));
            self.send_register(&trunk, now);
        }
    }

    pub(super) fn send_register(&mut self, trunk: &str, now: Instant) {
        let branch = self.entropy.next();
        let Some(r) = self.registrations.get_mut(trunk) else {
            return;
        };
        r.cseq += 1;
        r.answered = Answered::default();
        let a = &r.account;
        let contact = match a.link {
            Link::Udp => format!(
                "<sip:{}@{}:{}>",
                a.contact_user,
                self.local.advertise,
                self.local.port_for(a.link)
            ),
            _ => format!(
                "<sip:{}@{}:{};transport={}>",
                a.contact_user,
                self.local.advertise,
                self.local.port_for(a.link),
                a.link.name().to_ascii_lowercase()
            ),
        };
        let expires = if r.leaving { 0 } else { a.expires };
        let req = Message {
            start: Start::Request {
                method: "REGISTER".into(),
                uri: a.registrar.clone(),
            },
            headers: vec![
                header("Via", &self.local.via(a.link, branch)),
                header("Max-Forwards", "70"),
                header("From", &format!("<{}>;tag={}", a.aor, r.tag)),
                header("To", &format!("<{}>", a.aor)),
                header("Call-ID", &r.call_id),
                header("CSeq", &format!("{} REGISTER", r.cseq)),
                header("Contact", &contact),
                header("Expires", &expires.to_string()),
                header("Allow", crate::sip::dialog::ALLOW),
                header("User-Agent", "hotline"),
            ],
            body: Vec::new(),
        };
        r.sent = Some(req.clone());
        if !r.leaving {
            r.state = match r.state {
                Registration::Registered { .. } => r.state.clone(),
                _ => Registration::Registering,
            };
        }
        let (link, peer) = (a.link, a.peer);
        let owner = Owner::Trunk(trunk.to_string(), r.cseq);
        self.send_request(&req, link, peer, owner, now);
    }

    /// The carrier's final answer to our REGISTER (`None`: no answer at all).
    pub(super) fn registration_answer(
        &mut self,
        trunk: &str,
        cseq: u32,
        resp: Option<&Message>,
        now: Instant,
    ) {
        if self.registrations.get(trunk).is_none_or(|r| r.cseq != cseq) {
            return; // an older REGISTER's: a newer one has been sent since
        }
        let code = resp.and_then(|m| match m.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        });
        if code.is_some_and(|c| c < 200) {
            return;
        }
        let (branch, cnonce) = (self.entropy.next(), self.entropy.next());
        let Some(r) = self.registrations.get_mut(trunk) else {
            return;
        };
        if r.leaving && !matches!(code, Some(401 | 407)) {
            return; // taking the binding down: nothing follows from the answer
        }
        let state = match (code, resp) {
            (Some(200..=299), Some(resp)) => {
                let granted = granted(resp, r.account.expires);
                r.failures = 0;
                Registration::Registered { expires: granted }
            }
            (Some(c @ (401 | 407)), Some(resp)) => {
                let again = digest::challenge_in(resp, c).and_then(|ch| {
                    let secret = r.account.auth.clone()?;
                    let sent = r.sent.as_ref()?;
                    if !r.answered.may_answer(c, &ch) {
                        return None;
                    }
                    let via = self.local.via(r.account.link, branch);
                    digest::authorized(sent, c, &ch, &secret, &via, &format!("{cnonce:016x}"))
                });
                if let Some(req) = again {
                    r.cseq += 1;
                    r.sent = Some(req.clone());
                    let (link, peer) = (r.account.link, r.account.peer);
                    let owner = Owner::Trunk(trunk.to_string(), r.cseq);
                    self.send_request(&req, link, peer, owner, now);
                    return;
                }
                if r.leaving {
                    return;
                }
                tracing::warn!(trunk, code = c, "the carrier refuses our credentials");
                r.failures += 1;
                Registration::Failed {
                    code: Some(c),
                    retry_in: retry_after(r.failures),
                }
            }
            (Some(423), Some(resp)) => {
                // Interval Too Brief: ask again at once for the carrier's minimum.
                let min = resp
                    .get("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > r.account.expires && *m <= 86_400);
                if let Some(min) = min {
                    r.account.expires = min;
                    return self.send_register(trunk, now);
                }
                r.failures += 1;
                Registration::Failed {
                    code: Some(423),
                    retry_in: retry_after(r.failures),
                }
            }
            _ => {
                r.failures += 1;
                Registration::Failed {
                    code,
                    retry_in: retry_after(r.failures),
                }
            }
        };
        let next = match &state {
            Registration::Registered { expires } => refresh_after(*expires),
            Registration::Failed { retry_in, .. } => *retry_in,
            _ => return,
        };
        r.state = state.clone();
        self.at(now + next, Deadline::Register(trunk.to_string()));
        self.event(
            Event::Registration {
                trunk: trunk.to_string(),
                state,
            },
            now,
        );
    }
}

/// The lifetime a 2xx grants: our Contact's `expires`, else the Expires header, else what
/// we asked for.
fn granted(resp: &Message, asked: u32) -> u32 {
    let from_contact = resp
        .all("Contact")
        .flat_map(wire::split_list)
        .filter_map(wire::parse_name_addr)
        .find_map(|c| {
            c.param("expires")
                .and_then(|e| e.trim().parse::<u32>().ok())
        });
    from_contact
        .or_else(|| resp.get("Expires").and_then(|e| e.trim().parse().ok()))
        .unwrap_or(asked)
        .clamp(1, 86_400)
}

//! RFC 3261 §17 transactions, sans IO: each takes messages and the time, and says what to send
//! and when it next needs the clock. Timers A–K are one enum over one table; the tests jump a
//! fake clock, so Timer B's 32 s runs in microseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire::{self, Message};

/// The timer values a deployment may tune (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Round-trip estimate: 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses: 4 s.
    pub t2: Duration,
    /// How long the network holds a message: 5 s.
    pub t4: Duration,
    /// TCP: no retransmissions, and no waiting for them.
    pub reliable: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            reliable: false,
        }
    }
}

/// The timers of RFC 3261 Table 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable): T1, doubling.
    A,
    /// INVITE transaction timeout (client): 64*T1.
    B,
    /// Wait for response retransmits after a failure (client INVITE): 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit (client, unreliable): T1 doubling, at most T2.
    E,
    /// Non-INVITE transaction timeout (client): 64*T1.
    F,
    /// INVITE final response retransmit (server, unreliable): T1 doubling, at most T2.
    G,
    /// Wait for ACK (server INVITE): 64*T1.
    H,
    /// Wait for ACK retransmits (server INVITE): T4 unreliable, 0 reliable.
    I,
    /// Wait for request retransmits (server non-INVITE): 64*T1 unreliable, 0 reliable.
    J,
    /// Wait for response retransmits (client non-INVITE): T4 unreliable, 0 reliable.
    K,
}

impl Timer {
    /// The first interval of each timer.
    pub fn initial(self, c: &Config) -> Duration {
        let unreliable = |d: Duration| if c.reliable { Duration::ZERO } else { d };
        match self {
            Timer::A | Timer::E | Timer::G => c.t1,
            Timer::B | Timer::F | Timer::H => c.t1 * 64,
            Timer::D => unreliable(Duration::from_secs(32)),
            Timer::I | Timer::K => unreliable(c.t4),
            Timer::J => unreliable(c.t1 * 64),
        }
    }

    /// The next interval of a retransmit timer; `None` for the one-shot timers.
    fn backoff(self, c: &Config, current: Duration) -> Option<Duration> {
        match self {
            Timer::A => Some(current * 2),
            Timer::E | Timer::G => Some((current * 2).min(c.t2)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    /// A 2xx was sent or received for an INVITE: it is retransmitted until ACKed (RFC 6026).
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServerInvite,
    ServerNonInvite,
    ClientInvite,
    ClientNonInvite,
}

/// What the transaction asks its owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes (first transmissions).
    Send(Arc<[u8]>),
    /// Send these bytes again (a retransmission; counted in metrics).
    Resend(Arc<[u8]>),
    /// A response for the owner (client transactions).
    Response(Box<Message>),
    /// The transaction gave up: no response (client) or no ACK (server). A client owner acts as
    /// on a 408.
    TimedOut,
}

/// One transaction, client or server.
#[derive(Debug)]
pub struct Transaction {
    kind: Kind,
    state: State,
    config: Config,
    /// What is retransmitted: the request (client) or the last response (server).
    message: Option<Arc<[u8]>>,
    /// An ACK built for a failure response (client INVITE), resent on response retransmits.
    ack: Option<Arc<[u8]>>,
    timers: Vec<(Timer, Instant, Duration)>,
}

impl Transaction {
    /// A server transaction for a request just received. An INVITE is answered `100 Trying`
    /// at once (§17.2.1), so the caller's phone stops retransmitting.
    pub fn server(request: &Message, config: Config, now: Instant) -> (Transaction, Vec<Output>) {
        let invite = request.method() == Some("INVITE");
        let mut t = Transaction {
            kind: if invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            config,
            message: None,
            ack: None,
            timers: Vec::new(),
        };
        let mut out = Vec::new();
        if invite {
            let trying = wire::response_to(request, 100, "Trying", None, &[], Vec::new());
            let bytes: Arc<[u8]> = trying.to_bytes().into();
            t.message = Some(Arc::clone(&bytes));
            out.push(Output::Send(bytes));
        }
        let _ = now;
        (t, out)
    }

    /// A client transaction sending `request` (already serialised).
    pub fn client(
        invite: bool,
        request: Vec<u8>,
        config: Config,
        now: Instant,
    ) -> (Transaction, Vec<Output>) {
        let bytes: Arc<[u8]> = request.into();
        let mut t = Transaction {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            config,
            message: Some(Arc::clone(&bytes)),
            ack: None,
            timers: Vec::new(),
        };
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !config.reliable {
            t.start(retransmit, now);
        }
        t.start(timeout, now);
        (t, vec![Output::Send(bytes)])
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// When `on_timer` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.1).min()
    }

    fn start(&mut self, timer: Timer, now: Instant) {
        let d = timer.initial(&self.config);
        self.timers.retain(|t| t.0 != timer);
        self.timers.push((timer, now + d, d));
    }

    fn stop(&mut self, timer: Timer) {
        self.timers.retain(|t| t.0 != timer);
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.clear();
    }

    /// The owner sends a response through this server transaction.
    pub fn respond(&mut self, code: u16, bytes: Vec<u8>, now: Instant) -> Vec<Output> {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return Vec::new();
        }
        let bytes: Arc<[u8]> = bytes.into();
        self.message = Some(Arc::clone(&bytes));
        match (self.kind, code) {
            (_, 100..=199) => self.state = State::Proceeding,
            (Kind::ServerInvite, 200..=299) => {
                // §13.3.1.4: the 2xx is retransmitted until the ACK arrives, at most 64*T1.
                self.state = State::Accepted;
                if !self.config.reliable {
                    self.start(Timer::G, now);
                }
                self.start(Timer::H, now);
            }
            (Kind::ServerInvite, _) => {
                self.state = State::Completed;
                if !self.config.reliable {
                    self.start(Timer::G, now);
                }
                self.start(Timer::H, now);
            }
            (Kind::ServerNonInvite, _) => {
                self.state = State::Completed;
                self.start(Timer::J, now);
                if self.config.reliable {
                    self.terminate();
                }
            }
            _ => return Vec::new(),
        }
        vec![Output::Send(bytes)]
    }

    /// A retransmission of the request, or the ACK, reached this server transaction.
    pub fn on_request(&mut self, is_ack: bool, now: Instant) -> Vec<Output> {
        if is_ack {
            if matches!(self.state, State::Completed | State::Accepted) {
                self.stop(Timer::G);
                self.stop(Timer::H);
                if self.state == State::Accepted {
                    // The ACK for a 2xx belongs to the dialog; the transaction is done.
                    self.terminate();
                } else {
                    self.state = State::Confirmed;
                    self.start(Timer::I, now);
                    if self.config.reliable {
                        self.terminate();
                    }
                }
            }
            return Vec::new();
        }
        match (self.state, &self.message) {
            // A retransmitted request gets the last response again; before any, nothing.
            (State::Proceeding | State::Completed | State::Accepted, Some(m)) => {
                vec![Output::Resend(Arc::clone(m))]
            }
            _ => Vec::new(),
        }
    }

    /// A response reached this client transaction.
    pub fn on_response(
        &mut self,
        response: Message,
        ack: impl FnOnce(&Message) -> Vec<u8>,
        now: Instant,
    ) -> Vec<Output> {
        let code = match response.start {
            wire::Start::Response { code, .. } => code,
            wire::Start::Request { .. } => return Vec::new(),
        };
        let mut out = Vec::new();
        match (self.kind, self.state, code) {
            (Kind::ClientInvite, State::Calling | State::Proceeding, 100..=199) => {
                // A phone that rings may ring as long as its user lets it (§17.1.1.2: Timer
                // B is for the Calling state only); the user's ring timeout ends it.
                self.state = State::Proceeding;
                self.stop(Timer::A);
                self.stop(Timer::B);
                out.push(Output::Response(Box::new(response)));
            }
            (Kind::ClientInvite, State::Calling | State::Proceeding, 200..=299) => {
                // The dialog ACKs a 2xx; retransmitted 2xx go to it too (RFC 6026 Accepted).
                self.state = State::Accepted;
                self.stop(Timer::A);
                self.stop(Timer::B);
                self.timers
                    .push((Timer::B, now + self.config.t1 * 64, self.config.t1 * 64));
                out.push(Output::Response(Box::new(response)));
            }
            (Kind::ClientInvite, State::Accepted, 200..=299) => {
                out.push(Output::Response(Box::new(response)))
            }
            (Kind::ClientInvite, State::Calling | State::Proceeding, _) => {
                let bytes: Arc<[u8]> = ack(&response).into();
                self.ack = Some(Arc::clone(&bytes));
                self.state = State::Completed;
                self.stop(Timer::A);
                self.stop(Timer::B);
                self.start(Timer::D, now);
                out.push(Output::Send(bytes));
                out.push(Output::Response(Box::new(response)));
                if self.config.reliable {
                    self.terminate();
                }
            }
            (Kind::ClientInvite, State::Completed, 300..) => {
                if let Some(a) = &self.ack {
                    out.push(Output::Resend(Arc::clone(a)));
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                out.push(Output::Response(Box::new(response)));
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding, _) => {
                self.state = State::Completed;
                self.stop(Timer::E);
                self.stop(Timer::F);
                self.start(Timer::K, now);
                if self.config.reliable {
                    self.terminate();
                }
                out.push(Output::Response(Box::new(response)));
            }
            _ => {}
        }
        out
    }

    /// The clock reached `poll_timeout()`: fire what is due.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let due: Vec<(Timer, Instant, Duration)> =
            self.timers.iter().copied().filter(|t| t.1 <= now).collect();
        for (timer, at, interval) in due {
            if self.state == State::Terminated {
                break;
            }
            self.timers.retain(|t| t.0 != timer);
            match timer {
                Timer::A | Timer::E | Timer::G => {
                    // Non-INVITE requests keep retransmitting in Proceeding, at T2 (§17.1.2.2).
                    let next = if timer == Timer::E && self.state == State::Proceeding {
                        self.config.t2
                    } else {
                        timer.backoff(&self.config, interval).unwrap_or(interval)
                    };
                    if let Some(m) = &self.message {
                        out.push(Output::Resend(Arc::clone(m)));
                    }
                    self.timers.push((timer, at + next, next));
                }
                Timer::B | Timer::F => {
                    // Timer B in Accepted is RFC 6026's Timer M: the end, not a failure.
                    if self.state != State::Accepted {
                        out.push(Output::TimedOut);
                    }
                    self.terminate();
                }
                Timer::H => {
                    out.push(Output::TimedOut);
                    self.terminate();
                }
                Timer::D | Timer::I | Timer::J | Timer::K => self.terminate(),
            }
        }
        out
    }
}

/// What identifies a transaction (§17.2.3): the branch when it is RFC 3261's (with the magic
/// cookie and something after it), else the RFC 2543 fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    Rfc2543 {
        uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        via: String,
        method: String,
    },
}

pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl Key {
    /// The key of a request, for server transactions. An ACK and a CANCEL match the INVITE's
    /// branch but are their own methods: `method` says which to look for.
    pub fn of(m: &Message, method: &str) -> Option<Key> {
        let top = m
            .get("Via")
            .and_then(|v| wire::split_list(v).first().copied())
            .and_then(wire::parse_via)?;
        let sent_by = format!(
            "{}:{}",
            top.host.to_ascii_lowercase(),
            top.port.unwrap_or(5060)
        );
        match top.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len() => {
                Some(Key::Branch {
                    branch: b.to_string(),
                    sent_by,
                    method: method.to_string(),
                })
            }
            _ => {
                let uri = match &m.start {
                    wire::Start::Request { uri, .. } => uri.clone(),
                    wire::Start::Response { .. } => String::new(),
                };
                let from_tag = m
                    .get("From")
                    .and_then(wire::parse_name_addr)
                    .and_then(|n| n.param("tag").map(str::to_string))
                    .unwrap_or_default();
                let (cseq, _) = m.get("CSeq").and_then(wire::parse_cseq)?;
                Some(Key::Rfc2543 {
                    uri,
                    from_tag,
                    call_id: m.get("Call-ID")?.to_string(),
                    cseq,
                    via: sent_by,
                    method: method.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;

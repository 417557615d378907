//! Call control without IO: the switch. In this part it owns the calls hotline places (legs,
//! `leg.rs`) and their SIP transactions, in the shape of a sans-IO protocol core:
//! `handle(Input, now)` takes what arrived, `poll_output()` hands back what to send and what
//! happened, `poll_timeout()` says when to call again. No sockets, no clock, no tasks (the
//! addresses it names are `core::net`'s plain values): tags, branches, Call-IDs and SRTP keys
//! come from an injected [`Entropy`], RTP ports from the driver, time from the caller. `server/` drives it; `tests/switch.rs` drives it with
//! scripted phones on a virtual clock.
//!
//! Each user of legs has its own file and owns its own state: `agents.rs` an agent's phones
//! ringing together, `callbacks.rs` calling a caller back (attempts, spacing, giving up),
//! `transfers.rs` a transfer target's ring time. Each turns what happened to its legs into
//! what it means ([`Event`]). Which agent takes which caller stays with the router
//! (`crate::routing`), which the server drives beside the switch, as `tests/switch.rs` does.

pub mod admission;
pub mod agents;
pub mod callbacks;
pub mod leg;
pub mod phones;
pub mod queueing;
pub mod registrations;
pub mod status;
pub mod transfers;
pub mod uas;

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::srtp::MASTER_LEN;
use crate::sip::dialog::Dialog;
use crate::sip::digest;
use crate::sip::link::Link;
use crate::sip::sdp;
use crate::sip::transaction::{self, Key, Transaction};
use crate::sip::wire::{self, Message, Method, Start};

pub use agents::{Phone, Ring};
pub use callbacks::CallbackMiss;
pub use leg::{Context, Dial, Leg, Party, Phase, Redirect};
use leg::{State, header};
pub use registrations::{Account, Registration};
pub use transfers::TransferFailure;

/// Randomness, injected: the server's is the operating system's, a test's is a counter.
pub trait Entropy: Send {
    /// A fresh 64-bit value (tags, branches, Call-IDs, SDP session ids).
    fn next(&mut self) -> u64;
    /// A fresh SRTP master key and salt (secret: a secure source in the server).
    fn key(&mut self) -> [u8; MASTER_LEN];
}

/// Where we are: what our Via, Contact and SDP say.
#[derive(Debug, Clone)]
pub struct Local {
    /// The host phones reach us at (`[sip] advertise`).
    pub advertise: String,
    /// Our SIP port over UDP and TCP.
    pub port: u16,
    /// Our SIP port over TLS, when it listens.
    pub tls_port: Option<u16>,
    /// The address our SDP offers for media.
    pub media_ip: IpAddr,
    /// The transaction timers (T1, T2, T4); `reliable` is set per link.
    pub timers: transaction::Config,
}

impl Local {
    pub(crate) fn port_for(&self, link: Link) -> u16 {
        match (link, self.tls_port) {
            (Link::Tls(_), Some(p)) => p,
            _ => self.port,
        }
    }

    /// Our Contact for requests sent over `link`.
    pub fn contact(&self, link: Link) -> String {
        let (adv, port) = (&self.advertise, self.port_for(link));
        match link {
            Link::Udp => format!("<sip:hotline@{adv}:{port}>"),
            Link::Tcp(_) => format!("<sip:hotline@{adv}:{port};transport=tcp>"),
            Link::Tls(_) => format!("<sip:hotline@{adv}:{port};transport=tls>"),
        }
    }

    fn via(&self, link: Link, branch: u64) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch={}{branch:x};rport",
            link.name(),
            self.advertise,
            self.port_for(link),
            transaction::MAGIC_COOKIE,
        )
    }
}

/// What the switch is told.
#[derive(Debug)]
pub enum Input {
    /// A SIP message for one of our legs (see [`Switch::owns`]), read from `peer` over `link`.
    Message {
        msg: Message,
        link: Link,
        peer: SocketAddr,
    },
    /// `poll_timeout()`'s time has come.
    Timeout,
}

/// What the switch asks of its driver, or tells it.
#[derive(Debug)]
pub enum Output {
    /// Send these bytes; `resend` marks a retransmission.
    Transmit {
        link: Link,
        peer: SocketAddr,
        bytes: Arc<[u8]>,
        resend: bool,
    },
    /// Something happened to a leg: its user decides what it means.
    Event(Event),
    /// Open a TCP connection to `peer` for this leg's INVITE, too big for UDP (RFC 3261
    /// §18.1.1); tell [`Switch::connected`] how it went.
    Connect { leg: String, peer: SocketAddr },
}

/// A request bigger than this goes over TCP where it was to go over UDP (RFC 3261
/// §18.1.1: 1300 bytes when the path MTU is unknown).
pub const UDP_LIMIT: usize = 1300;
/// How long a phone whose transfer succeeded has to hang up before we do.
const TRANSFEROR_WAIT: Duration = Duration::from_secs(10);
/// How long an INVITE waits for its TCP connection before it goes over UDP after all.
const CONNECT_WAIT: Duration = Duration::from_secs(4);

/// Why a leg reached no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// No answer at all to our INVITE (Timer B).
    NoResponse,
    /// A 2xx we cannot use: no Contact to reach it, or no media we share (we hung up again).
    Unusable,
}

/// What happened to a leg.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The far end answered, with this media; the leg is up and acknowledged.
    Answered { leg: String, agreed: sdp::Agreed },
    /// A final refusal while it rang (486 busy, 603 decline, 6xx, 404...).
    Refused { leg: String, code: u16 },
    /// It reached no one.
    Unreached { leg: String, why: Unreached },
    /// The far end hung up (BYE) a leg that was up.
    HungUp { leg: String },
    /// The far end asked us to call someone else in its place (REFER, RFC 3515: a blind
    /// transfer from an agent's phone): `to` is its Refer-To URI. With `replaces`, an
    /// attended transfer (RFC 3891): put this leg's far side through to whoever is on that
    /// dialog instead. It was answered 202; its user says how it goes with
    /// [`Switch::notify`].
    Referred {
        leg: String,
        to: String,
        replaces: Option<crate::sip::replaces::Replaces>,
    },
    /// The far end's re-INVITE moved, held or resumed its media, or rekeyed it.
    Media {
        leg: String,
        media: u64,
        remote: SocketAddr,
        direction: sdp::Direction,
        srtp: Option<sdp::Sdes>,
    },
    /// The leg is gone from the switch (after any event above): `up` says whether it had media.
    Closed { leg: String, media: u64, up: bool },
    /// One of the agent's phones answered (the others are being cancelled).
    AgentAnswered {
        ring: Ring,
        leg: String,
        agreed: sdp::Agreed,
    },
    /// The agent did not take the caller: a phone declined for all (`code`), or every phone
    /// refused or was not reached. A phone that rang out is the routing's to decide.
    AgentDeclined { ring: Ring, code: Option<u16> },
    /// The transfer target answered: bridge it to the caller's `call`.
    TransferAnswered {
        call: u64,
        leg: String,
        agreed: sdp::Agreed,
    },
    /// The transfer did not connect: the caller's flow goes on.
    TransferFailed { call: u64, why: TransferFailure },
    /// The caller answered their callback (this was call `attempts` to them).
    CallbackAnswered {
        id: u64,
        leg: String,
        agreed: sdp::Agreed,
        attempts: u32,
    },
    /// The caller was not reached; the callback is tried again in `retry_in`.
    CallbackLater {
        id: u64,
        attempts: u32,
        why: CallbackMiss,
        retry_in: std::time::Duration,
    },
    /// The caller was not reached `attempts` times: the callback is given up.
    CallbackFailed {
        id: u64,
        attempts: u32,
        why: CallbackMiss,
    },
    /// A callback's retry time has come: back in line.
    CallbackDue { id: u64 },
    /// A carrier registration changed state.
    Registration { trunk: String, state: Registration },
    /// The phone an OPTIONS asked answered it (with anything), or never did.
    Pong { phone: String, reached: bool },
}

impl Event {
    /// The leg a phone-level event is about (`None` for what a leg's user says).
    pub fn leg(&self) -> Option<&str> {
        match self {
            Event::Answered { leg, .. }
            | Event::Refused { leg, .. }
            | Event::Unreached { leg, .. }
            | Event::HungUp { leg }
            | Event::Referred { leg, .. }
            | Event::Media { leg, .. }
            | Event::Closed { leg, .. }
            | Event::AgentAnswered { leg, .. }
            | Event::TransferAnswered { leg, .. }
            | Event::CallbackAnswered { leg, .. } => Some(leg),
            Event::AgentDeclined { .. }
            | Event::TransferFailed { .. }
            | Event::CallbackLater { .. }
            | Event::CallbackFailed { .. }
            | Event::CallbackDue { .. }
            | Event::Registration { .. }
            | Event::Pong { .. } => None,
        }
    }

    /// The leg of an event a leg's user turns into its own (an answer, a refusal, a miss, or
    /// the leg gone).
    fn of_a_leg(&self) -> Option<String> {
        match self {
            Event::Answered { leg, .. }
            | Event::Refused { leg, .. }
            | Event::Unreached { leg, .. }
            | Event::Closed { leg, .. } => Some(leg.clone()),
            _ => None,
        }
    }
}

/// The switch's own timers, besides its transactions'.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deadline {
    TransferRing(String),
    CallbackRing(String),
    CallbackRetry(u64),
    /// A registration's refresh or retry is due.
    Register(String),
    /// A leg's INVITE waited for its TCP connection long enough.
    Connect(String),
    /// A phone whose transfer succeeded has had its time to hang up.
    Transferor(String),
    /// A leg we cancelled has had 64·T1 to answer its INVITE (RFC 3261 §9.1): given up.
    Cancelled(String),
}

struct Tx {
    tx: Transaction,
    link: Link,
    peer: SocketAddr,
    owner: Owner,
}

/// Whom a client transaction's outcome is for.
#[derive(Debug, Clone)]
enum Owner {
    /// Nobody waits on it (a CANCEL, a BYE, a server transaction).
    Nobody,
    /// The leg whose INVITE it carries.
    Leg(String),
    /// The trunk whose REGISTER it carries, with its CSeq number (an answer to an older one
    /// than the registration's last is stale).
    Trunk(String, u32),
    /// The phone an OPTIONS asks (`ping`).
    Ping(String),
}

/// The legs hotline places, and their transactions.
pub struct Switch {
    local: Local,
    entropy: Box<dyn Entropy>,
    legs: HashMap<String, Leg>,
    rings: agents::Rings,
    transfers: transfers::Transfers,
    callbacks: callbacks::Callbacks,
    registrations: BTreeMap<String, registrations::Registrant>,
    transactions: HashMap<Key, Tx>,
    timers: BTreeMap<(Instant, u64), Key>,
    deadlines: BTreeMap<(Instant, u64), Deadline>,
    timer_seq: u64,
    out: VecDeque<Output>,
    started: u64,
    /// Legs' INVITEs too big for UDP, waiting for their TCP connection.
    parked: HashMap<String, Message>,
}

impl Switch {
    pub fn new(local: Local, entropy: Box<dyn Entropy>) -> Switch {
        Switch {
            local,
            entropy,
            legs: HashMap::new(),
            rings: agents::Rings::default(),
            transfers: transfers::Transfers::default(),
            callbacks: callbacks::Callbacks::default(),
            registrations: BTreeMap::new(),
            transactions: HashMap::new(),
            timers: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            timer_seq: 0,
            out: VecDeque::new(),
            started: 0,
            parked: HashMap::new(),
        }
    }

    pub fn local(&self) -> &Local {
        &self.local
    }

    /// Places a call: the INVITE goes out at once. Returns the leg's id (its Call-ID).
    pub fn place(&mut self, dial: Dial, now: Instant) -> String {
        let call_id = format!(
            "{:016x}{:08x}@hotline",
            self.entropy.next(),
            self.entropy.next() as u32
        );
        let session = self.entropy.next() & 0xFFFF_FFFF;
        let fresh = leg::Fresh {
            call_id: call_id.clone(),
            tag: format!("{:x}", self.entropy.next()),
            via: self.local.via(dial.link, self.entropy.next()),
            contact: self.local.contact(dial.link),
            offer: sdp::describe(
                session,
                1,
                self.local.media_ip,
                dial.rtp_port,
                None,
                dial.srtp,
            ),
        };
        let invite = leg::invite(&dial, &fresh);
        self.send_request(
            &invite,
            dial.link,
            dial.peer,
            Owner::Leg(call_id.clone()),
            now,
        );
        self.legs.insert(
            call_id.clone(),
            Leg {
                id: call_id.clone(),
                invite,
                link: dial.link,
                peer: dial.peer,
                media: dial.media,
                state: State::Ringing,
                rtp_port: dial.rtp_port,
                session,
                sdp_version: 1,
                law: None,
                srtp: None,
                reinvite: None,
                offer_pending: false,
                auth: dial.auth,
                answered: Default::default(),
                redirect: dial.redirect,
                redirects: 0,
                udp_only: false,
                refer: None,
            },
        );
        call_id
    }

    pub fn leg(&self, id: &str) -> Option<&Leg> {
        self.legs.get(id)
    }

    pub fn phase(&self, id: &str) -> Option<Phase> {
        self.legs.get(id).map(Leg::phase)
    }

    /// Every leg's id.
    pub fn leg_ids(&self) -> Vec<String> {
        self.legs.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// Whether a BYE or CANCEL of ours still waits for its answer (a drain lets them finish).
    pub fn requests_pending(&self) -> bool {
        self.transactions.values().any(|t| {
            t.tx.kind() == transaction::Kind::ClientNonInvite
                && matches!(
                    t.tx.state(),
                    transaction::State::Trying | transaction::State::Proceeding
                )
        })
    }

    /// Transactions started since last asked (for the metrics).
    pub fn take_started(&mut self) -> u64 {
        std::mem::take(&mut self.started)
    }

    /// Stops a leg that rings: CANCEL (RFC 3261 §9.1). `elsewhere`: another phone answered
    /// (RFC 3326), so phones log no missed call. The leg stays until the INVITE's final answer.
    pub fn cancel(&mut self, id: &str, elsewhere: bool, now: Instant) {
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        if !matches!(leg.state, State::Ringing) {
            return;
        }
        if self.parked.remove(id).is_some() {
            // Never sent: nothing to cancel.
            return self.close(id, now);
        }
        leg.state = State::Cancelled;
        let give_up = now + self.local.timers.t1 * 64;
        let mut cancel = leg::same_transaction(&leg.invite, "CANCEL", None);
        if elsewhere {
            cancel.headers.push(header(
                "Reason",
                "SIP;cause=200;text=\"Call completed elsewhere\"",
            ));
        }
        let (link, peer) = (leg.link, leg.peer);
        self.send_request(&cancel, link, peer, Owner::Nobody, now);
        self.at(give_up, Deadline::Cancelled(id.to_string()));
    }

    /// The phone answered neither our CANCEL nor its INVITE: the INVITE is considered
    /// cancelled and the leg is gone (a late answer is then nobody's, and dropped).
    fn give_up_cancelled(&mut self, id: &str, now: Instant) {
        if !self
            .legs
            .get(id)
            .is_some_and(|l| matches!(l.state, State::Cancelled))
        {
            return;
        }
        self.transactions.retain(|_, t| {
            !(matches!(&t.owner, Owner::Leg(l) if l == id)
                && t.tx.kind() == transaction::Kind::ClientInvite)
        });
        self.close(id, now);
    }

    /// Ends a leg: BYE when it is up (it is gone at once), CANCEL while it rings.
    pub fn hang_up(&mut self, id: &str, now: Instant) {
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        match &mut leg.state {
            State::Ringing => self.cancel(id, false, now),
            State::Cancelled => {}
            State::Up { dialog, hop, .. } => {
                let (link, peer) = *hop;
                let via = self.local.via(link, self.entropy.next());
                let bye = dialog.request("BYE", &via, &self.local.contact(link));
                self.send_request(&bye, link, peer, Owner::Nobody, now);
                self.close(id, now);
            }
        }
    }

    /// Asks a phone whether it is there (OPTIONS, RFC 3261 §11) at `uri`, sent to `peer`;
    /// its outcome is an [`Event::Pong`] for `phone`.
    pub fn ping(&mut self, phone: &str, uri: &str, link: Link, peer: SocketAddr, now: Instant) {
        let (branch, tag, call) = (
            self.entropy.next(),
            self.entropy.next(),
            self.entropy.next(),
        );
        let req = Message {
            start: Start::Request {
                method: "OPTIONS".into(),
                uri: uri.to_string(),
            },
            headers: vec![
                header("Via", &self.local.via(link, branch)),
                header("Max-Forwards", "70"),
                header(
                    "From",
                    &format!("<sip:hotline@{}>;tag={tag:x}", self.local.advertise),
                ),
                header("To", &format!("<{uri}>")),
                header("Call-ID", &format!("{call:016x}@hotline")),
                header("CSeq", "1 OPTIONS"),
                header("Contact", &self.local.contact(link)),
                header("Accept", "application/sdp"),
                header("User-Agent", "hotline"),
            ],
            body: Vec::new(),
        };
        self.send_request(&req, link, peer, Owner::Ping(phone.to_string()), now);
    }

    /// Whether a message read off the network is the switch's: an answer to a request it
    /// sent, or a request inside one of its legs' dialogs (or a retransmission of one).
    pub fn owns(&self, msg: &Message) -> bool {
        match &msg.start {
            Start::Response { .. } => {
                let Some(method) = msg.method_kind() else {
                    return false;
                };
                Key::of(msg, method.as_str()).is_some_and(|k| self.transactions.contains_key(&k))
                    || (method == Method::Invite
                        && msg
                            .get("Call-ID")
                            .is_some_and(|c| self.legs.contains_key(c)))
            }
            Start::Request { method, .. } => {
                let ours = msg
                    .get("Call-ID")
                    .is_some_and(|c| self.legs.contains_key(c));
                let in_dialog = msg
                    .get("To")
                    .and_then(wire::parse_name_addr)
                    .is_some_and(|n| n.param("tag").is_some());
                let key_method = if method == "ACK" { "INVITE" } else { method };
                (ours && in_dialog)
                    || Key::of(msg, key_method).is_some_and(|k| self.transactions.contains_key(&k))
            }
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Message { msg, link, peer } => match &msg.start {
                Start::Response { .. } => self.on_response(msg, now),
                Start::Request { .. } => self.on_request(msg, link, peer, now),
            },
            Input::Timeout => self.on_timeout(now),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When `handle(Input::Timeout, ..)` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.timers.first_key_value().map(|(k, _)| k.0);
        let own = self.deadlines.first_key_value().map(|(k, _)| k.0);
        tx.into_iter().chain(own).min()
    }

    fn at(&mut self, when: Instant, what: Deadline) {
        self.timer_seq += 1;
        self.deadlines.insert((when, self.timer_seq), what);
    }

    /// An event for the leg's user; a ring's legs go through the ring first (`agents.rs`).
    fn event(&mut self, e: Event, now: Instant) {
        let passed = self
            .ring_event(e, now)
            .and_then(|e| self.transfer_event(e))
            .and_then(|e| self.callback_event(e, now));
        if let Some(e) = passed {
            self.out.push_back(Output::Event(e));
        }
    }

    fn transmit(&mut self, link: Link, peer: SocketAddr, bytes: Arc<[u8]>, resend: bool) {
        self.out.push_back(Output::Transmit {
            link,
            peer,
            bytes,
            resend,
        });
    }

    /// A transaction's outputs, as ours; returns the responses it passes up and whether it
    /// timed out.
    fn emit(
        &mut self,
        link: Link,
        peer: SocketAddr,
        outputs: Vec<transaction::Output>,
    ) -> (Vec<Message>, bool) {
        let mut responses = Vec::new();
        let mut timed_out = false;
        for o in outputs {
            match o {
                transaction::Output::Send(b) => self.transmit(link, peer, b, false),
                transaction::Output::Resend(b) => self.transmit(link, peer, b, true),
                transaction::Output::Response(m) => responses.push(*m),
                transaction::Output::TimedOut => timed_out = true,
            }
        }
        (responses, timed_out)
    }

    fn tx_config(&self, link: Link) -> transaction::Config {
        let mut c = self.local.timers;
        c.reliable = link.is_reliable();
        c
    }

    fn schedule(&mut self, key: &Key) {
        let Some(e) = self.transactions.get(key) else {
            return;
        };
        if e.tx.is_terminated() {
            self.transactions.remove(key);
            return;
        }
        if let Some(at) = e.tx.poll_timeout() {
            self.timer_seq += 1;
            self.timers.insert((at, self.timer_seq), key.clone());
        }
    }

    fn send_request(
        &mut self,
        req: &Message,
        link: Link,
        peer: SocketAddr,
        owner: Owner,
        now: Instant,
    ) {
        if let Owner::Leg(id) = &owner
            && link == Link::Udp
            && req.method() == Some("INVITE")
            && req.to_bytes().len() > UDP_LIMIT
            && !self.legs.get(id).is_some_and(|l| l.udp_only)
        {
            self.parked.insert(id.clone(), req.clone());
            self.at(now + CONNECT_WAIT, Deadline::Connect(id.clone()));
            self.out.push_back(Output::Connect {
                leg: id.clone(),
                peer,
            });
            return;
        }
        self.send_now(req, link, peer, owner, now);
    }

    /// A leg's INVITE too big for UDP has its TCP connection (`Some`), or none could be
    /// made in time: it goes over UDP after all, as do the leg's next ones (§18.1.1).
    pub fn connected(&mut self, id: &str, link: Option<Link>, now: Instant) {
        let Some(mut invite) = self.parked.remove(id) else {
            return; // gone, or sent already
        };
        let branch = self.entropy.next();
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        match link {
            Some(link) => {
                let via = self.local.via(link, branch);
                for h in &mut invite.headers {
                    if h.name.eq_ignore_ascii_case("Via") {
                        h.value = via.clone();
                        break;
                    }
                }
                for h in &mut invite.headers {
                    if h.name.eq_ignore_ascii_case("Contact") {
                        h.value = self.local.contact(link);
                    }
                }
                tracing::info!(leg = id, "too big for UDP: the INVITE goes over TCP");
                leg.link = link;
            }
            None => {
                tracing::info!(
                    leg = id,
                    "no TCP connection for a big INVITE: sent over UDP"
                );
                leg.udp_only = true;
            }
        }
        leg.invite = invite.clone();
        let (link, peer) = (leg.link, leg.peer);
        self.send_now(&invite, link, peer, Owner::Leg(id.to_string()), now);
    }

    fn send_now(
        &mut self,
        req: &Message,
        link: Link,
        peer: SocketAddr,
        owner: Owner,
        now: Instant,
    ) {
        let method = req.method().unwrap_or_default().to_string();
        let Some(key) = Key::of(req, &method) else {
            return;
        };
        let (tx, out) = Transaction::client(
            method == "INVITE",
            req.to_bytes(),
            self.tx_config(link),
            now,
        );
        self.track(
            key,
            Tx {
                tx,
                link,
                peer,
                owner,
            },
            out,
        );
    }

    /// Keeps a new transaction, sends its first message and schedules its timer.
    fn track(&mut self, key: Key, tx: Tx, out: Vec<transaction::Output>) {
        let (link, peer) = (tx.link, tx.peer);
        self.started += 1;
        self.transactions.insert(key.clone(), tx);
        self.emit(link, peer, out);
        self.schedule(&key);
    }

    fn on_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Deadline::TransferRing(leg) => self.transfer_rang_out(&leg, now),
                Deadline::CallbackRing(leg) => self.callback_rang_out(&leg, now),
                Deadline::CallbackRetry(id) => self.callback_due(id),
                Deadline::Register(trunk) => self.send_register(&trunk, now),
                Deadline::Connect(leg) => self.connected(&leg, None, now),
                Deadline::Transferor(leg) => self.hang_up(&leg, now),
                Deadline::Cancelled(leg) => self.give_up_cancelled(&leg, now),
            }
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            let Some(e) = self.transactions.get_mut(&key) else {
                continue;
            };
            if e.tx.poll_timeout().is_none_or(|t| t > now) {
                continue; // superseded by a later timer of the same transaction
            }
            let (link, peer, owner) = (e.link, e.peer, e.owner.clone());
            let out = e.tx.on_timer(now);
            let (_, timed_out) = self.emit(link, peer, out);
            self.schedule(&key);
            if timed_out {
                match owner {
                    Owner::Leg(leg) => self.unreached(&leg, Unreached::NoResponse, now),
                    Owner::Trunk(trunk, cseq) => self.registration_answer(&trunk, cseq, None, now),
                    Owner::Ping(phone) => self.event(
                        Event::Pong {
                            phone,
                            reached: false,
                        },
                        now,
                    ),
                    Owner::Nobody => {}
                }
            }
        }
    }

    fn on_response(&mut self, msg: Message, now: Instant) {
        let Some(method) = msg.method_kind() else {
            return;
        };
        let Some(key) = Key::of(&msg, method.as_str()) else {
            return;
        };
        let leg = msg
            .get("Call-ID")
            .filter(|c| method == Method::Invite && self.legs.contains_key(*c))
            .map(str::to_string);
        let Some(entry) = self.transactions.get_mut(&key) else {
            // A 2xx retransmitted after its transaction ended: the leg ACKs it again.
            if let Some(leg) = leg {
                self.leg_response(&leg, msg, now);
            }
            return;
        };
        // The ACK a failure answer needs (the transaction sends it only for those).
        let failure_ack = |r: &Message| match leg.as_ref().and_then(|l| self.legs.get(l)) {
            Some(l) => leg::same_transaction(&l.invite, "ACK", r.get("To")).to_bytes(),
            None => Vec::new(),
        };
        let (link, peer, owner) = (entry.link, entry.peer, entry.owner.clone());
        let out = entry.tx.on_response(msg, failure_ack, now);
        let (responses, _) = self.emit(link, peer, out);
        self.schedule(&key);
        for r in responses {
            match &owner {
                Owner::Leg(leg) => self.leg_response(leg, r, now),
                Owner::Trunk(trunk, cseq) => self.registration_answer(trunk, *cseq, Some(&r), now),
                // Any final answer: the phone is there.
                Owner::Ping(phone) if matches!(r.start, Start::Response { code, .. } if code >= 200) => {
                    self.event(
                        Event::Pong {
                            phone: phone.clone(),
                            reached: true,
                        },
                        now,
                    )
                }
                Owner::Ping(_) | Owner::Nobody => {}
            }
        }
    }

    /// An answer to a leg's INVITE.
    fn leg_response(&mut self, id: &str, resp: Message, now: Instant) {
        let Start::Response { code, .. } = resp.start else {
            return;
        };
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        match (code, &leg.state) {
            (100..=199, _) => {}
            (200..=299, State::Up { ack, hop, .. }) => {
                // A retransmitted 2xx: our ACK was lost.
                let ((link, peer), ack) = (*hop, Arc::clone(ack));
                self.transmit(link, peer, ack, true);
            }
            (200..=299, _) => {
                let cancelled = matches!(leg.state, State::Cancelled);
                let Ok(dialog) = Dialog::from_answer(&leg.invite, &resp) else {
                    tracing::info!(leg = id, "a 2xx to our INVITE has no usable Contact");
                    return self.unreached(id, Unreached::Unusable, now);
                };
                let (link, peer) = leg::in_dialog_hop(&leg.invite, &dialog, leg.link, leg.peer);
                if peer != leg.peer {
                    tracing::debug!(leg = id, %peer, "in-dialog requests go to the far end's route");
                }
                let via = self.local.via(link, self.entropy.next());
                let ack: Arc<[u8]> = dialog.ack(&via).to_bytes().into();
                leg.state = State::Up {
                    dialog: Box::new(dialog),
                    hop: (link, peer),
                    ack: Arc::clone(&ack),
                };
                let ours = String::from_utf8_lossy(&leg.invite.body).into_owned();
                self.out.push_back(Output::Transmit {
                    link,
                    peer,
                    bytes: ack,
                    resend: false,
                });
                if cancelled {
                    // Answered as we cancelled: hang up at once.
                    return self.hang_up(id, now);
                }
                match sdp::read_answer(&ours, &String::from_utf8_lossy(&resp.body)) {
                    Ok(agreed) => {
                        leg.law = Some(agreed.law);
                        leg.srtp = agreed.srtp;
                        self.event(
                            Event::Answered {
                                leg: id.to_string(),
                                agreed,
                            },
                            now,
                        );
                    }
                    Err(e) => {
                        tracing::info!(leg = id, "a 2xx to our INVITE has no usable media: {e}");
                        self.event(
                            Event::Unreached {
                                leg: id.to_string(),
                                why: Unreached::Unusable,
                            },
                            now,
                        );
                        self.hang_up(id, now);
                    }
                }
            }
            (_, State::Ringing) => {
                // A redirect or a challenge may be tried again; anything else is a refusal.
                let (redirect, auth) = (leg.redirect.is_some(), leg.auth.is_some());
                let tried_again = match code {
                    300..=399 if redirect => self.follow_redirect(id, &resp, now),
                    401 | 407 if auth => self.answer_challenge(id, code, &resp, now),
                    _ => false,
                };
                if !tried_again {
                    self.event(
                        Event::Refused {
                            leg: id.to_string(),
                            code,
                        },
                        now,
                    );
                    self.close(id, now);
                }
            }
            (_, State::Cancelled) => self.close(id, now),
            // A failure after the 2xx: the dialog stands (only BYE ends it).
            (_, State::Up { .. }) => {}
        }
    }

    /// Sends the leg's INVITE again with credentials for the challenge in `resp`; `false`
    /// when it cannot or must not be answered: nothing we support, a realm already answered
    /// (a wrong password: never a loop) unless its nonce went stale, or too many challenges.
    fn answer_challenge(&mut self, id: &str, code: u16, resp: &Message, now: Instant) -> bool {
        let Some(ch) = digest::challenge_in(resp, code) else {
            tracing::info!(leg = id, code, "a challenge we cannot answer");
            return false;
        };
        let (branch, cnonce) = (self.entropy.next(), self.entropy.next());
        let Some(leg) = self.legs.get_mut(id) else {
            return false;
        };
        if !leg.answered.may_answer(code, &ch) {
            tracing::info!(
                leg = id,
                code,
                realm = ch.realm,
                "challenged again after our answer: the credentials are refused"
            );
            return false;
        }
        let Some(secret) = leg.auth.clone() else {
            return false;
        };
        let via = self.local.via(leg.link, branch);
        let Some(invite) = digest::authorized(
            &leg.invite,
            code,
            &ch,
            &secret,
            &via,
            &format!("{cnonce:016x}"),
        ) else {
            return false;
        };
        leg.invite = invite.clone();
        let (link, peer) = (leg.link, leg.peer);
        self.send_request(&invite, link, peer, Owner::Leg(id.to_string()), now);
        true
    }

    /// Sends the leg's INVITE to the first contact of a `3xx` the dial policy allows through
    /// the same next hop; `false` when none is (the redirect is a refusal) or the leg was
    /// redirected too often. A redirect never dials what the operator did not allow.
    fn follow_redirect(&mut self, id: &str, resp: &Message, now: Instant) -> bool {
        let branch = self.entropy.next();
        let Some(leg) = self.legs.get_mut(id) else {
            return false;
        };
        let Some(redirect) = leg.redirect.clone() else {
            return false;
        };
        if leg.redirects >= leg::MAX_REDIRECTS {
            tracing::info!(leg = id, "redirected too often: not followed");
            return false;
        }
        let contacts = resp
            .all("Contact")
            .flat_map(wire::split_list)
            .filter_map(wire::parse_name_addr)
            .map(|c| c.uri)
            .take(8);
        let mut allowed = None;
        for contact in contacts {
            match redirect.policy.target(&contact) {
                Ok(t) if t.host.eq_ignore_ascii_case(&redirect.host) && t.port == redirect.port => {
                    allowed = Some(t.uri);
                    break;
                }
                Ok(t) => tracing::info!(
                    leg = id,
                    contact = leg::clean(&contact),
                    "a redirect elsewhere than {}:{} is not followed",
                    t.host,
                    t.port
                ),
                Err(why) => tracing::info!(leg = id, "a redirect is not followed: {why}"),
            }
        }
        let Some(uri) = allowed else {
            return false;
        };
        let via = self.local.via(leg.link, branch);
        let Some(invite) = leg::redirected(&leg.invite, &uri, &via) else {
            return false;
        };
        tracing::info!(leg = id, to = uri, "following a redirect");
        leg.redirects += 1;
        leg.answered = Default::default();
        leg.invite = invite.clone();
        let (link, peer) = (leg.link, leg.peer);
        self.send_request(&invite, link, peer, Owner::Leg(id.to_string()), now);
        true
    }

    /// A leg reached no one: its user hears why while it rang, and the leg is gone.
    fn unreached(&mut self, id: &str, why: Unreached, now: Instant) {
        if self
            .legs
            .get(id)
            .is_some_and(|l| matches!(l.state, State::Ringing))
        {
            self.event(
                Event::Unreached {
                    leg: id.to_string(),
                    why,
                },
                now,
            );
        }
        self.close(id, now);
    }

    fn close(&mut self, id: &str, now: Instant) {
        if let Some(leg) = self.legs.remove(id) {
            self.event(
                Event::Closed {
                    leg: leg.id,
                    media: leg.media,
                    up: matches!(leg.state, State::Up { .. }),
                },
                now,
            );
        }
    }

    /// A request inside a leg's dialog, or a retransmission of one.
    fn on_request(&mut self, req: Message, link: Link, peer: SocketAddr, now: Instant) {
        let Some(method) = req.method_kind() else {
            return;
        };
        if method == Method::Ack {
            return self.on_ack(&req, now);
        }
        let Some(key) = Key::of(&req, method.as_str()) else {
            return;
        };
        if let Some(e) = self.transactions.get_mut(&key) {
            let (l, p) = (e.link, e.peer);
            let out = e.tx.on_request(false, now);
            self.emit(l, p, out);
            return;
        }
        let (tx, out) = Transaction::server(&req, self.tx_config(link), now);
        self.track(
            key.clone(),
            Tx {
                tx,
                link,
                peer,
                owner: Owner::Nobody,
            },
            out,
        );

        let call_id = req.get("Call-ID").unwrap_or_default().to_string();
        let checked = self
            .legs
            .get_mut(&call_id)
            .and_then(|l| match &mut l.state {
                State::Up { dialog, .. } if dialog.matches(&req) => {
                    Some(dialog.accept_cseq(&req).map(|()| dialog.local_tag.clone()))
                }
                _ => None,
            });
        let local_tag = match checked {
            Some(Ok(t)) => t,
            Some(Err(r)) => {
                return self.respond(&key, &req, r.status, r.reason, None, &[], "", now);
            }
            None => {
                let reason = "Call/Transaction Does Not Exist";
                return self.respond(&key, &req, 481, reason, None, &[], "", now);
            }
        };
        let tag = Some(local_tag.as_str());
        match method {
            Method::Bye => {
                self.respond(&key, &req, 200, "OK", tag, &[], "", now);
                self.event(
                    Event::HungUp {
                        leg: call_id.clone(),
                    },
                    now,
                );
                self.close(&call_id, now);
            }
            Method::Info | Method::Options => {
                self.respond(&key, &req, 200, "OK", tag, &[], "", now)
            }
            Method::Invite => self.reinvite(key, req, &call_id, &local_tag, now),
            Method::Cancel => {
                // Our answer to any re-INVITE went out at once: nothing is left to cancel.
                let invite = Key::of(&req, "INVITE");
                let (code, reason) = match invite.filter(|k| self.transactions.contains_key(k)) {
                    Some(_) => (200, "OK"),
                    None => (481, "Call/Transaction Does Not Exist"),
                };
                self.respond(&key, &req, code, reason, tag, &[], "", now);
            }
            Method::Other(m) if m == "REFER" => self.referred(&key, &req, &call_id, tag, now),
            Method::Ack | Method::Register | Method::Other(_) => {
                let allow = [("Allow".to_string(), leg::ALLOW.to_string())];
                self.respond(&key, &req, 501, "Not Implemented", tag, &allow, "", now);
            }
        }
    }

    /// A REFER inside a leg (RFC 3515): one Refer-To, a URI we can read, and a `Replaces`
    /// in it we can read if it has one (an attended transfer); answered 202, and its user
    /// told.
    fn referred(&mut self, key: &Key, req: &Message, id: &str, tag: Option<&str>, now: Instant) {
        let refer_to: Vec<&str> = req.all("Refer-To").flat_map(wire::split_list).collect();
        let to = match refer_to.as_slice() {
            [one] => wire::parse_name_addr(one).map(|n| n.uri),
            _ => None,
        };
        let Some(to) = to else {
            let reason = "Bad Refer-To";
            return self.respond(key, req, 400, reason, tag, &[], "", now);
        };
        let Ok((to, replaces)) = crate::sip::replaces::split_uri(&to) else {
            let reason = "Bad Replaces";
            return self.respond(key, req, 400, reason, tag, &[], "", now);
        };
        let cseq = req
            .get("CSeq")
            .and_then(wire::parse_cseq)
            .map_or(0, |c| c.0);
        if let Some(leg) = self.legs.get_mut(id) {
            leg.refer = Some(cseq);
        }
        self.respond(key, req, 202, "Accepted", tag, &[], "", now);
        self.event(
            Event::Referred {
                leg: id.to_string(),
                to: leg::clean(&to),
                replaces,
            },
            now,
        );
    }

    /// Tells the phone that sent a REFER how the transfer goes (a NOTIFY with a `sipfrag`
    /// status line, RFC 3515 §2.4.5): `100` while it is tried, then the final status, which
    /// ends the subscription.
    pub fn notify(&mut self, id: &str, code: u16, reason: &str, now: Instant) {
        let branch = self.entropy.next();
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        let (Some(cseq), State::Up { dialog, hop, .. }) = (leg.refer, &mut leg.state) else {
            return;
        };
        let (link, peer) = *hop;
        let via = self.local.via(link, branch);
        let mut notify = dialog.request("NOTIFY", &via, &self.local.contact(link));
        let state = if code >= 200 {
            "terminated;reason=noresource".to_string()
        } else {
            "active;expires=60".to_string()
        };
        notify.headers.extend([
            header("Event", &format!("refer;id={cseq}")),
            header("Subscription-State", &state),
            header("Content-Type", "message/sipfrag;version=2.0"),
        ]);
        notify.body = format!("SIP/2.0 {code} {reason}\r\n").into_bytes();
        if code >= 200 {
            leg.refer = None;
        }
        self.send_request(&notify, link, peer, Owner::Nobody, now);
        if (200..300).contains(&code) {
            // The phone hangs up itself once told (RFC 5589 §6); one that does not is.
            self.at(now + TRANSFEROR_WAIT, Deadline::Transferor(id.to_string()));
        }
    }

    /// A re-INVITE from the phone we called: hold, resume, its media moved, or a session
    /// refresh (RFC 3264 §8). The leg keeps its codec; an offer without it gets 488 and
    /// changes nothing. Without an offer, our current SDP is the offer (its answer, in the ACK,
    /// changes nothing on our side).
    fn reinvite(&mut self, key: Key, req: Message, id: &str, local_tag: &str, now: Instant) {
        let fresh_key = self.entropy.key();
        let media_ip = self.local.media_ip;
        let contact = [("Contact".to_string(), String::new())];
        let Some(leg) = self.legs.get_mut(id) else {
            return;
        };
        let body = String::from_utf8_lossy(&req.body).to_string();
        let mut media_event = None;
        if leg.offer_pending && !body.trim().is_empty() {
            // Their new offer crossed ours (in our 2xx, whose ACK has not come).
            let retry = [("Retry-After".to_string(), "1".to_string())];
            return self.respond(
                &key,
                &req,
                491,
                "Request Pending",
                Some(local_tag),
                &retry,
                "",
                now,
            );
        }
        let answer = if body.trim().is_empty() {
            leg.offer_pending = true;
            Ok(String::from_utf8_lossy(&leg.invite.body).to_string())
        } else {
            let keying = sdp::Keying {
                local: fresh_key,
                required: false,
            };
            sdp::renegotiate(&body, leg.law, &keying, leg.srtp).map(|(offer, agreed)| {
                leg.sdp_version += 1;
                let remote = SocketAddr::new(agreed.remote.0, agreed.remote.1);
                leg.srtp = agreed.srtp;
                tracing::info!(leg = id, %remote, direction = ?agreed.direction, "the far end's re-INVITE: media updated");
                let media = leg.media;
                let answer = sdp::describe(
                    leg.session,
                    leg.sdp_version,
                    media_ip,
                    leg.rtp_port,
                    Some((&offer, &agreed)),
                    sdp::OfferSrtp::No,
                );
                media_event = Some(Event::Media {
                    leg: id.to_string(),
                    media,
                    remote,
                    direction: agreed.direction,
                    srtp: agreed.srtp,
                });
                answer
            })
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(leg = id, "re-INVITE on a leg refused: {e}");
                let tag = Some(local_tag);
                return self.respond(&key, &req, 488, "Not Acceptable Here", tag, &[], "", now);
            }
        };
        leg.reinvite = Some(key.clone());
        let mut extra = contact;
        extra[0].1 = self.local.contact(leg.link);
        self.respond(&key, &req, 200, "OK", Some(local_tag), &extra, &answer, now);
        if let Some(e) = media_event {
            self.event(e, now);
        }
    }

    /// The ACK of a failure we sent shares its INVITE's branch; the ACK of our 2xx to a
    /// re-INVITE finds it through the dialog.
    fn on_ack(&mut self, ack: &Message, now: Instant) {
        let by_branch = Key::of(ack, "INVITE").filter(|k| self.transactions.contains_key(k));
        let by_dialog = || {
            let leg = self.legs.get(ack.get("Call-ID")?)?;
            match &leg.state {
                State::Up { dialog, .. } if dialog.matches(ack) => leg.reinvite.clone(),
                _ => None,
            }
        };
        let Some(key) = by_branch.or_else(by_dialog) else {
            return;
        };
        if let Some(leg) = ack.get("Call-ID").and_then(|c| self.legs.get_mut(c))
            && leg.reinvite.as_ref() == Some(&key)
        {
            leg.offer_pending = false;
        }
        if let Some(e) = self.transactions.get_mut(&key) {
            e.tx.on_request(true, now);
        }
        self.schedule(&key);
    }

    /// Answers a request through its server transaction.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        key: &Key,
        req: &Message,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(String, String)],
        body: &str,
        now: Instant,
    ) {
        let fresh;
        let to_tag = match to_tag {
            Some(t) => Some(t),
            None => {
                fresh = format!("{:x}", self.entropy.next());
                Some(fresh.as_str())
            }
        };
        let resp = wire::our_response(req, code, reason, to_tag, extra, body.as_bytes().to_vec());
        let Some(entry) = self.transactions.get_mut(key) else {
            return;
        };
        let (link, peer) = (entry.link, entry.peer);
        let out = entry.tx.respond(code, resp.to_bytes(), now);
        self.emit(link, peer, out);
        self.schedule(key);
    }
}

//! A call hotline places — a *leg*: to an agent's phone, to a caller being called back, to a
//! transfer target. What every such call has in common lives here, once: the INVITE (with what
//! the caller already told the line), the ACK of its answer, CANCEL, BYE, and the one
//! sanitizer every header value from a caller or a flow goes through. Pure: no IO, no clock.

use core::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::media::g711::Law;
use crate::sip::dialog::Dialog;
use crate::sip::digest::{Answered, Secret};
use crate::sip::link::Link;
use crate::sip::sdp;
use crate::sip::transaction::Key;
use crate::sip::wire::{self, Header, Message, Start};

/// Who a leg calls and what its INVITE says.
#[derive(Debug, Clone)]
pub struct Dial {
    /// The Request-URI: the phone's registered contact, or the address dialled.
    pub uri: String,
    /// The To URI: the agent's address of record, or `uri`.
    pub to: String,
    /// Who the called phone shows as calling.
    pub from: Party,
    /// Also say so in `P-Asserted-Identity` (to our own agents' phones, which trust us).
    pub assert_identity: bool,
    pub link: Link,
    pub peer: SocketAddr,
    /// The RTP port opened for the leg: the driver opens it, the core only names it.
    pub rtp_port: u16,
    pub srtp: sdp::OfferSrtp,
    /// What the caller already told the line; none toward a caller being called back.
    pub context: Option<Context>,
    /// The leg's id in the media loop.
    pub media: u64,
    /// What answers a `401`/`407` on the way (a trunk's credentials); none: a challenge is
    /// a refusal.
    pub auth: Option<Secret>,
    /// Which `3xx` redirects may be followed; none: a redirect is a refusal.
    pub redirect: Option<Redirect>,
}

/// How a leg follows a `3xx`: only to what the dial policy allows, and only through the same
/// next hop it was sent to (the trunk's proxy: no new lookup, no new destination), a few
/// times at most.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub policy: Arc<crate::sip::dial::DialPolicy>,
    /// The host and port the leg was sent to, as the policy names them.
    pub host: String,
    pub port: u16,
}

/// The methods a phone may send inside a call we placed.
pub(super) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER";

/// Redirects one leg follows at most.
pub(super) const MAX_REDIRECTS: u8 = 3;

impl Dial {
    /// A call to an address hotline dials itself (a callback's caller, a transfer target):
    /// over UDP, plain RTP, from `from`; the driver fills in the RTP port and media id.
    pub fn to_address(uri: &str, peer: SocketAddr, from: Party, context: Option<Context>) -> Dial {
        Dial {
            uri: uri.to_string(),
            to: uri.to_string(),
            from,
            assert_identity: false,
            link: Link::Udp,
            peer,
            rtp_port: 0,
            srtp: sdp::OfferSrtp::No,
            context,
            media: 0,
            auth: None,
            redirect: None,
        }
    }
}

/// Where a leg's requests inside its dialog go (RFC 3261 §12.2.1.1): the first Record-Route
/// entry when the far end put one, else the remote target (the answer's Contact) when the
/// leg was dialled there directly. The next hop the INVITE took is kept when the leg went
/// through an outbound proxy (a trunk: its proxy stays on the path, as carriers expect), when
/// the phone is reached at its NAT's address (its Contact names a private address, or not
/// the one it registered from), when the hop is a name the core cannot resolve, or when it
/// asks for a transport other than UDP (a connection hotline does not have).
pub(super) fn in_dialog_hop(
    invite: &Message,
    dialog: &Dialog,
    link: Link,
    peer: SocketAddr,
) -> (Link, SocketAddr) {
    let keep = (link, peer);
    let dialled = match &invite.start {
        Start::Request { uri, .. } => crate::sip::registrar::contact_address(uri),
        Start::Response { .. } => None,
    };
    if !dialog.is_routed() && dialled != Some(peer) {
        return keep;
    }
    let uri = dialog.next_hop_uri();
    let Some(addr) = crate::sip::registrar::contact_address(&uri) else {
        return keep;
    };
    let private = crate::sip::registrar::is_private;
    let udp = uri
        .split('?')
        .next()
        .unwrap_or_default()
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("transport"))
        .is_none_or(|(_, t)| t.eq_ignore_ascii_case("udp"));
    if addr == peer
        || addr.port() == 0
        || addr.ip().is_unspecified()
        || (private(addr.ip()) && !private(peer.ip()))
        || !udp
        || !uri.to_ascii_lowercase().starts_with("sip:")
    {
        return keep;
    }
    (Link::Udp, addr)
}

/// A display name and a URI, as a From shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub display: String,
    pub uri: String,
}

/// What the caller already told the line, on the INVITE (`X-Hotline-*`): the human who
/// answers never asks again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub caller: String,
    pub queue: Option<String>,
    pub path: Vec<String>,
    pub waited: Option<Duration>,
    /// An agent calling this caller back: the attempt (1 = the first).
    pub callback_attempt: Option<u32>,
    pub variables: Vec<(String, String)>,
    /// The agent who passed the caller on (a transfer), if one did, and her note.
    pub transferred_by: Option<String>,
    pub transfer_note: Option<String>,
}

/// Where a leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Our INVITE is out, no final answer yet.
    Ringing,
    /// We sent CANCEL; its final answer only needs acknowledging.
    Cancelled,
    /// Answered and acknowledged: media flows.
    Up,
}

pub(super) enum State {
    Ringing,
    Cancelled,
    Up {
        dialog: Box<Dialog>,
        /// Where in-dialog requests (ACK, BYE) go: [`in_dialog_hop`].
        hop: (Link, SocketAddr),
        /// Sent again for each retransmitted 2xx (our ACK was lost).
        ack: Arc<[u8]>,
    },
}

/// One call we placed.
pub struct Leg {
    pub id: String,
    pub invite: Message,
    pub link: Link,
    pub peer: SocketAddr,
    pub media: u64,
    pub(super) state: State,
    pub(super) rtp_port: u16,
    /// Our SDP's session id and version, raised with each answer to a re-INVITE.
    pub(super) session: u64,
    pub(super) sdp_version: u64,
    /// The codec and SRTP keys agreed on answer; a re-INVITE keeps the codec.
    pub(super) law: Option<Law>,
    pub(super) srtp: Option<sdp::Sdes>,
    /// The far end's last re-INVITE, whose 2xx its ACK confirms.
    pub(super) reinvite: Option<Key>,
    /// Our 2xx to an offerless re-INVITE carried an offer, whose answer comes in the ACK: a
    /// new offer before then crosses it (glare, RFC 3261 §14.2) and gets 491.
    pub(super) offer_pending: bool,
    /// A TCP connection for a big INVITE could not be made: the next ones go over UDP too.
    pub(super) udp_only: bool,
    /// The CSeq of the far end's REFER whose progress we owe it (NOTIFY `Event: refer;id=`).
    pub(super) refer: Option<u32>,
    pub(super) auth: Option<Secret>,
    pub(super) answered: Answered,
    pub(super) redirect: Option<Redirect>,
    pub(super) redirects: u8,
}

impl Leg {
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Ringing => Phase::Ringing,
            State::Cancelled => Phase::Cancelled,
            State::Up { .. } => Phase::Up,
        }
    }

    /// The codec the leg runs on, once answered.
    pub fn law(&self) -> Option<Law> {
        self.law
    }
}

/// The fresh values one INVITE needs (injected, so tests are deterministic).
pub(super) struct Fresh {
    pub call_id: String,
    pub tag: String,
    pub via: String,
    pub contact: String,
    pub offer: String,
}

/// The one INVITE every leg hotline places is built by.
pub(super) fn invite(dial: &Dial, fresh: &Fresh) -> Message {
    let from = format!("\"{}\" <{}>", display(&dial.from.display), dial.from.uri);
    let mut headers = vec![
        header("Via", &fresh.via),
        header("Max-Forwards", "70"),
        header("From", &format!("{from};tag={}", fresh.tag)),
    ];
    if dial.assert_identity {
        headers.push(header("P-Asserted-Identity", &from));
    }
    headers.extend([
        header("To", &format!("<{}>", dial.to)),
        header("Call-ID", &fresh.call_id),
        header("CSeq", "1 INVITE"),
        header("Contact", &fresh.contact),
        header("Allow", ALLOW),
        header("User-Agent", "hotline"),
    ]);
    if let Some(c) = &dial.context {
        headers.extend(context_headers(c));
    }
    headers.push(header("Content-Type", "application/sdp"));
    Message {
        start: Start::Request {
            method: "INVITE".into(),
            uri: dial.uri.clone(),
        },
        headers,
        body: fresh.offer.clone().into_bytes(),
    }
}

/// The INVITE again to `uri` after a redirect (RFC 3261 §8.1.3.4): the same Call-ID, From
/// and To, the next CSeq, the top Via given, and no credentials (the new target asks anew).
pub(super) fn redirected(invite: &Message, uri: &str, via: &str) -> Option<Message> {
    let (n, _) = invite.get("CSeq").and_then(wire::parse_cseq)?;
    let mut again = invite.clone();
    again.start = Start::Request {
        method: "INVITE".into(),
        uri: uri.to_string(),
    };
    again.headers.retain(|h| {
        !h.name.eq_ignore_ascii_case("Authorization")
            && !h.name.eq_ignore_ascii_case("Proxy-Authorization")
    });
    for h in &mut again.headers {
        if h.name.eq_ignore_ascii_case("Via") {
            h.value = via.to_string();
        } else if h.name.eq_ignore_ascii_case("CSeq") {
            h.value = format!("{} INVITE", n.saturating_add(1));
        }
    }
    Some(again)
}

/// What the caller already told the line, as headers.
pub fn context_headers(c: &Context) -> Vec<Header> {
    let mut headers = vec![header("X-Hotline-Caller", &clean(&c.caller))];
    if let Some(q) = &c.queue {
        headers.push(header("X-Hotline-Queue", &clean(q)));
    }
    headers.push(header("X-Hotline-Path", &clean(&c.path.join(" "))));
    if let Some(w) = c.waited {
        headers.push(header("X-Hotline-Waited", &w.as_secs().to_string()));
    }
    if let Some(attempt) = c.callback_attempt {
        // The agent calls this person back: we dial them once the agent answers.
        headers.push(header("X-Hotline-Callback", &clean(&c.caller)));
        headers.push(header("X-Hotline-Callback-Attempt", &attempt.to_string()));
    }
    if let Some(by) = &c.transferred_by {
        headers.push(header("X-Hotline-Transferred-By", &clean(by)));
    }
    if let Some(note) = &c.transfer_note {
        let note: String = clean(note).chars().take(500).collect();
        headers.push(header("X-Hotline-Transfer-Note", &note));
    }
    for (name, value) in &c.variables {
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(64)
            .collect();
        headers.push(header(&format!("X-Hotline-Var-{name}"), &clean(value)));
    }
    headers
}

/// CANCEL or a failure's ACK for our INVITE (§9.1, §17.1.1.3): its Request-URI, top Via
/// (same branch), From, Call-ID, CSeq number and Route; `to` from the response for an ACK.
pub(super) fn same_transaction(invite: &Message, method: &str, to: Option<&str>) -> Message {
    let uri = match &invite.start {
        Start::Request { uri, .. } => uri.clone(),
        Start::Response { .. } => String::new(),
    };
    let n = invite
        .get("CSeq")
        .and_then(wire::parse_cseq)
        .map_or(1, |c| c.0);
    let mut headers = Vec::new();
    if let Some(v) = invite.get("Via") {
        headers.push(header("Via", v));
    }
    headers.push(header("Max-Forwards", "70"));
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.get(name) {
            headers.push(header(name, v));
        }
    }
    if let Some(t) = to.or_else(|| invite.get("To")) {
        headers.push(header("To", t));
    }
    headers.push(header("CSeq", &format!("{n} {method}")));
    for r in invite.all("Route") {
        headers.push(header("Route", r));
    }
    Message {
        start: Start::Request {
            method: method.into(),
            uri,
        },
        headers,
        body: Vec::new(),
    }
}

pub(super) fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// A header value from what callers typed or flows named: printable, one line, bounded.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(512).collect()
}

/// A display name inside quotes: `clean`, without the quote and backslash that would end it.
pub fn display(s: &str) -> String {
    clean(s)
        .chars()
        .filter(|c| *c != '"' && *c != '\\')
        .take(64)
        .collect::<String>()
        .trim()
        .to_string()
}

//! Whose audio a call takes. RTP ports are on the open internet, and any packet claims to be
//! the caller: taken blindly, the first packet from anywhere would steer a call's audio (its
//! prompts, and what is recorded) to whoever sent it. So the far end is learnt only from
//! where the call says it is: the address its SDP gave, or the first packet from the SDP's
//! host or the host its SIP came from (a phone behind NAT sends from the NAT's address:
//! symmetric RTP, RFC 4961). Afterwards a new source takes over only when it keeps sending
//! and the one before has gone quiet — a phone that changed networks — as Asterisk's
//! `strictrtp` and rtpengine do; the SDP's own address always may. Key presses (RFC 4733) may
//! come from another port of the far end's host, as some phones and gateways send them.
//! Pure: time is the media loop's ticks.

use std::net::{IpAddr, SocketAddr};

/// How long the current source must have been quiet before another may take over: 1 s of
/// 20 ms ticks.
pub const QUIET_TICKS: u64 = 50;
/// Packets in a row a new source must send (after the quiet) to take over.
pub const TAKE_OVER_PACKETS: u32 = 10;

/// What a packet may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the far end: audio and keys.
    Media,
    /// From the far end's host, another port: its key presses only.
    KeysOnly,
    /// From a stranger: dropped (and counted).
    Refused,
}

#[derive(Debug, Clone)]
pub struct Latch {
    signalled: SocketAddr,
    /// The host the call's signalling came from.
    sip_host: IpAddr,
    current: Option<SocketAddr>,
    heard_at: u64,
    /// A source asking to take over, and its packets in a row.
    candidate: Option<(SocketAddr, u32)>,
}

impl Latch {
    pub fn new(signalled: SocketAddr, sip_host: IpAddr, now: u64) -> Latch {
        Latch {
            signalled,
            sip_host,
            current: None,
            heard_at: now,
            candidate: None,
        }
    }

    /// A re-INVITE moved the media: its address is learnt again, as at the start.
    pub fn moved(&mut self, signalled: SocketAddr, now: u64) {
        *self = Latch::new(signalled, self.sip_host, now);
    }

    /// Where the call's audio is sent: the far end once heard, else where its SDP said.
    pub fn remote(&self) -> SocketAddr {
        self.current.unwrap_or(self.signalled)
    }

    /// Whether a source has been learnt.
    pub fn is_latched(&self) -> bool {
        self.current.is_some()
    }

    /// Judges a packet from `from` at tick `now`.
    pub fn on_packet(&mut self, from: SocketAddr, now: u64) -> Verdict {
        if self.current == Some(from) || from == self.signalled {
            return self.latch(from, now);
        }
        let known_host = from.ip() == self.signalled.ip() || from.ip() == self.sip_host;
        let Some(current) = self.current else {
            return if known_host {
                self.latch(from, now)
            } else {
                Verdict::Refused
            };
        };
        let count = match self.candidate {
            Some((c, n)) if c == from => n + 1,
            _ => 1,
        };
        self.candidate = Some((from, count));
        let quiet = now.saturating_sub(self.heard_at) >= QUIET_TICKS;
        if quiet && count >= TAKE_OVER_PACKETS {
            return self.latch(from, now);
        }
        if current.ip() == from.ip() {
            Verdict::KeysOnly
        } else {
            Verdict::Refused
        }
    }

    fn latch(&mut self, from: SocketAddr, now: u64) -> Verdict {
        self.current = Some(from);
        self.heard_at = now;
        self.candidate = None;
        Verdict::Media
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_far_end_is_the_signalled_address_or_its_sip_host() {
        // Behind NAT: the SDP's private address never sends; the NAT's (the SIP host) does.
        let nat: IpAddr = "203.0.113.9".parse().unwrap();
        let mut l = Latch::new(at("10.0.0.5:4000"), nat, 0);
        // A stranger spraying the port before the phone speaks learns nothing.
        assert_eq!(l.on_packet(at("198.51.100.66:5000"), 1), Verdict::Refused);
        assert!(!l.is_latched());
        assert_eq!(l.remote(), at("10.0.0.5:4000"));
        assert_eq!(l.on_packet(at("203.0.113.9:61000"), 3), Verdict::Media);
        assert_eq!(l.remote(), at("203.0.113.9:61000"));
        assert_eq!(l.on_packet(at("198.51.100.66:5000"), 4), Verdict::Refused);
        assert_eq!(l.remote(), at("203.0.113.9:61000"));
        // The signalled address itself always may.
        assert_eq!(l.on_packet(at("10.0.0.5:4000"), 5), Verdict::Media);
        assert_eq!(l.remote(), at("10.0.0.5:4000"));
    }

    #[test]
    fn an_attacker_cannot_take_a_call_that_is_talking() {
        let phone = at("192.0.2.10:4000");
        let attacker = at("198.51.100.66:5000");
        let mut l = Latch::new(phone, phone.ip(), 0);
        for t in 0..500 {
            assert_eq!(l.on_packet(phone, t), Verdict::Media);
            for _ in 0..5 {
                assert_eq!(l.on_packet(attacker, t), Verdict::Refused);
            }
        }
        assert_eq!(l.remote(), phone);
        // Keys from another port of the phone's host count; its audio does not steer.
        assert_eq!(l.on_packet(at("192.0.2.10:4002"), 501), Verdict::KeysOnly);
        assert_eq!(l.remote(), phone);
    }

    #[test]
    fn a_phone_that_changed_networks_is_followed_once_the_old_address_is_quiet() {
        let old = at("192.0.2.10:4000");
        let new = at("192.0.2.77:4000");
        let mut l = Latch::new(old, old.ip(), 0);
        l.on_packet(old, 1);
        // The old address falls quiet at tick 1; the new one sends every tick.
        let mut t = 2;
        while l.remote() == old {
            l.on_packet(new, t);
            t += 1;
            assert!(
                t < 1 + QUIET_TICKS + u64::from(TAKE_OVER_PACKETS) + 2,
                "never followed"
            );
        }
        assert!(t > 1 + QUIET_TICKS, "not before the old one was quiet: {t}");
        // A re-INVITE starts learning again.
        l.moved(at("192.0.2.99:6000"), t);
        assert_eq!(l.on_packet(at("192.0.2.99:6000"), t + 1), Verdict::Media);
    }
}

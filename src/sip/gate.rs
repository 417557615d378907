//! The gate every SIP message passes before it is read further: a source sending more than
//! its share is banned for a while (Kamailio's `pike` shape), and known scanners are dropped
//! without an answer, so a scanner learns nothing and a flood from one address costs the
//! line nothing but the read. Pure: time is passed in.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses tracked at once; the oldest are forgotten first (never the banned ones while
/// their ban runs, unless every tracked one is banned).
const MAX_SOURCES: usize = 50_000;
/// Rates are measured over this long.
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Messages a second one address may send on average over 2 s; 0 = no limit.
    pub max_per_s: u32,
    pub ban: Duration,
    /// Addresses never limited nor banned (a proxy or trunk in front of hotline).
    pub trusted: Vec<IpAddr>,
    /// User-Agent substrings (lower case) whose requests are dropped unanswered.
    pub scanners: Vec<String>,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Dropped: the source is banned (`now` when this message started the ban).
    Banned {
        now: bool,
    },
    /// Dropped: a scanner's User-Agent; its source is banned from now.
    Scanner,
}

struct Source {
    window_start: Instant,
    count: u32,
    banned_until: Option<Instant>,
}

pub struct Gate {
    config: GateConfig,
    sources: HashMap<IpAddr, Source>,
    order: VecDeque<IpAddr>,
}

impl Gate {
    pub fn new(mut config: GateConfig) -> Gate {
        for s in &mut config.scanners {
            *s = s.to_ascii_lowercase();
        }
        Gate {
            config,
            sources: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Judges one message from `ip` with this User-Agent (if it could be read).
    pub fn check(&mut self, ip: IpAddr, user_agent: Option<&str>, now: Instant) -> Verdict {
        if self.config.trusted.contains(&ip) {
            return Verdict::Pass;
        }
        let scanner = user_agent.is_some_and(|ua| self.is_scanner(ua));
        if self.config.max_per_s == 0 && !scanner {
            return Verdict::Pass;
        }
        let ban = self.config.ban;
        let limit = self
            .config
            .max_per_s
            .saturating_mul(WINDOW.as_secs() as u32);
        let source = self.source(ip, now);
        if let Some(until) = source.banned_until {
            if now < until {
                return if scanner {
                    Verdict::Scanner
                } else {
                    Verdict::Banned { now: false }
                };
            }
            source.banned_until = None;
            source.window_start = now;
            source.count = 0;
        }
        if scanner {
            source.banned_until = Some(now + ban);
            return Verdict::Scanner;
        }
        if now.saturating_duration_since(source.window_start) >= WINDOW {
            source.window_start = now;
            source.count = 0;
        }
        source.count += 1;
        if source.count > limit {
            source.banned_until = Some(now + ban);
            return Verdict::Banned { now: true };
        }
        Verdict::Pass
    }

    /// Whether this User-Agent is a known scanner's.
    pub fn is_scanner(&self, user_agent: &str) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        self.config.scanners.iter().any(|s| ua.contains(s.as_str()))
    }

    /// Bans `ip` from now (a scanner seen after its first message); whether it was not
    /// banned already.
    pub fn ban(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.config.trusted.contains(&ip) {
            return false;
        }
        let ban = self.config.ban;
        let source = self.source(ip, now);
        let fresh = source.banned_until.is_none_or(|t| now >= t);
        source.banned_until = Some(now + ban);
        fresh
    }

    /// Whether `ip` is banned now (a new TCP connection from it is refused).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.banned_until)
            .is_some_and(|t| now < t)
    }

    /// Addresses banned now.
    pub fn banned(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|t| now < t))
            .count()
    }

    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        if !self.sources.contains_key(&ip) {
            let mut tries = self.order.len();
            while self.sources.len() >= MAX_SOURCES && tries > 0 {
                tries -= 1;
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                // A running ban is kept: moved to the back, unless nothing else can go.
                let banned = self
                    .sources
                    .get(&old)
                    .and_then(|s| s.banned_until)
                    .is_some_and(|t| now < t);
                if banned && tries > 0 {
                    self.order.push_back(old);
                } else {
                    self.sources.remove(&old);
                }
            }
            if self.sources.len() >= MAX_SOURCES
                && let Some(old) = self.order.pop_front()
            {
                self.sources.remove(&old);
            }
            self.order.push_back(ip);
        }
        self.sources.entry(ip).or_insert(Source {
            window_start: now,
            count: 0,
            banned_until: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new(GateConfig {
            max_per_s: 10,
            ban: Duration::from_secs(60),
            trusted: vec!["10.0.0.1".parse().unwrap()],
            scanners: vec!["friendly-scanner".into(), "SIPVicious".into()],
        })
    }

    #[allow(clippy::disallowed_methods)] // an origin only: the gate is given every time
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_flooding_source_is_banned_for_a_while_and_others_are_not() {
        let (mut g, t) = (gate(), t0());
        let flooder: IpAddr = "192.0.2.9".parse().unwrap();
        let phone: IpAddr = "198.51.100.1".parse().unwrap();
        // 20 messages in 2 s are allowed (10 a second on average), the 21st bans.
        for i in 0..20 {
            assert_eq!(
                g.check(flooder, None, t + Duration::from_millis(i)),
                Verdict::Pass
            );
        }
        assert_eq!(g.check(flooder, None, t), Verdict::Banned { now: true });
        assert_eq!(g.check(flooder, None, t), Verdict::Banned { now: false });
        assert!(g.is_banned(flooder, t + Duration::from_secs(59)));
        assert_eq!(g.check(phone, Some("baresip"), t), Verdict::Pass);
        assert_eq!(g.banned(t), 1);
        // The ban expires, and the source starts afresh.
        let later = t + Duration::from_secs(60);
        assert!(!g.is_banned(flooder, later));
        assert_eq!(g.check(flooder, None, later), Verdict::Pass);
        // A steady 10 a second never trips it.
        for i in 0..200u64 {
            let at = later + Duration::from_secs(3) + Duration::from_millis(i * 100);
            assert_eq!(g.check(phone, None, at), Verdict::Pass);
        }
    }

    #[test]
    fn scanners_are_dropped_and_banned_and_trusted_addresses_never_limited() {
        let (mut g, t) = (gate(), t0());
        let scanner: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(
            g.check(scanner, Some("friendly-scanner"), t),
            Verdict::Scanner
        );
        assert_eq!(
            g.check(scanner, Some("sipvicious 0.3"), t),
            Verdict::Scanner,
            "matched whatever the case"
        );
        assert_eq!(
            g.check(scanner, Some("Zoiper"), t),
            Verdict::Banned { now: false }
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            assert_eq!(g.check(proxy, Some("friendly-scanner"), t), Verdict::Pass);
        }
    }

    #[test]
    fn the_table_is_bounded_and_keeps_running_bans() {
        let (mut g, t) = (gate(), t0());
        let banned: IpAddr = "192.0.2.1".parse().unwrap();
        g.check(banned, Some("friendly-scanner"), t);
        for i in 0..(MAX_SOURCES as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            g.check(ip, None, t);
        }
        assert!(g.sources.len() <= MAX_SOURCES);
        assert!(g.is_banned(banned, t), "the running ban survived the churn");
    }
}

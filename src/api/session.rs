//! Desk logins, for the pages and the API alike: a random token in an HttpOnly cookie names a
//! session, which knows the agent, whether they are a supervisor, and the token their page
//! sends back with every change (CSRF). Pure: the time is passed in, the tokens are made by
//! the caller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Sessions kept at most; the one unused longest goes first.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub agent: String,
    pub name: String,
    pub supervisor: bool,
    /// What the page must send in `X-CSRF-Token` with every change.
    pub csrf: String,
    last_used: Instant,
}

pub struct Sessions {
    by_token: HashMap<String, Session>,
    idle: Duration,
}

impl Sessions {
    /// Sessions that end after `idle` unused.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            by_token: HashMap::new(),
            idle,
        }
    }

    /// A new session under `token`.
    pub fn open(
        &mut self,
        token: String,
        csrf: String,
        agent: &str,
        name: &str,
        supervisor: bool,
        now: Instant,
    ) {
        if self.by_token.len() >= MAX_SESSIONS {
            self.by_token
                .retain(|_, s| now.saturating_duration_since(s.last_used) < self.idle);
            if self.by_token.len() >= MAX_SESSIONS
                && let Some(oldest) = self
                    .by_token
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(t, _)| t.clone())
            {
                self.by_token.remove(&oldest);
            }
        }
        self.by_token.insert(
            token,
            Session {
                agent: agent.to_string(),
                name: name.to_string(),
                supervisor,
                csrf,
                last_used: now,
            },
        );
    }

    /// The session a cookie names, if it is still open; using it keeps it open.
    pub fn get(&mut self, token: &str, now: Instant) -> Option<Session> {
        let s = self.by_token.get_mut(token)?;
        if now.saturating_duration_since(s.last_used) >= self.idle {
            self.by_token.remove(token);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // a fake clock's origin
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_session_lasts_while_used_and_ends_at_logout() {
        let t = origin();
        let hour = Duration::from_secs(3600);
        let mut s = Sessions::new(hour);
        s.open("tok".into(), "c".into(), "alice", "Alice", false, t);
        assert_eq!(s.get("tok", t + hour / 2).unwrap().agent, "alice");
        // Used half an hour in: still open an hour after the start.
        assert!(s.get("tok", t + hour + hour / 4).is_some());
        assert!(s.get("other", t).is_none());
        // Unused for the idle time: gone.
        assert!(s.get("tok", t + 3 * hour).is_none());
        assert!(s.is_empty());
        s.open("tok2".into(), "c".into(), "bob", "Bob", true, t);
        s.close("tok2");
        assert!(s.get("tok2", t).is_none());
    }

    #[test]
    fn a_flood_of_logins_keeps_the_table_bounded() {
        let t = origin();
        let mut s = Sessions::new(Duration::from_secs(3600));
        s.open("first".into(), "c".into(), "alice", "Alice", false, t);
        for n in 0..MAX_SESSIONS {
            let at = t + Duration::from_millis(n as u64 + 1);
            s.open(format!("t{n}"), "c".into(), "bob", "Bob", false, at);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get("first", t).is_none(), "the one unused longest went");
        assert!(s.get(&format!("t{}", MAX_SESSIONS - 1), t).is_some());
    }
}

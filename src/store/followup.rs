//! Follow-ups, never a black hole: every voicemail and every callback request is an item with
//! a state (new → taken by an agent → done, or failed with a reason), an owner and an age
//! against the line's deadline. `FollowUp::apply` is the one place a state changes (pure); the
//! store writes what it returns only if nobody changed the item in between.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Voicemail,
    Callback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Voicemail => "voicemail",
            Kind::Callback => "callback",
        }
    }

    fn parse(s: &str) -> Kind {
        if s == "callback" {
            Kind::Callback
        } else {
            Kind::Voicemail
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    New,
    Taken,
    Done,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Taken => "taken",
            State::Done => "done",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "new" => State::New,
            "taken" => State::Taken,
            "done" => State::Done,
            "failed" => State::Failed,
            _ => return None,
        })
    }

    /// Still someone's to do.
    pub fn is_open(self) -> bool {
        matches!(self, State::New | State::Taken)
    }
}

/// One follow-up, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub id: i64,
    pub kind: Kind,
    /// The voicemail's or the callback request's row.
    #[serde(skip)]
    pub item: i64,
    pub call_id: String,
    pub caller: String,
    /// The queue whose agents see it (a mailbox is served by the queue of its name).
    pub queue: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub state: State,
    pub owner: Option<String>,
    /// Why it failed, or how it was done when not by a person ("withdrawn by the caller").
    pub reason: Option<String>,
    pub changed_at: String,
}

/// What someone does to a follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// "Mine": a new item becomes the agent's.
    Take,
    /// Back to new, for someone else.
    Release,
    Done,
    Fail {
        reason: String,
    },
    /// Its caller said they no longer need it: done, with that reason, whoever had it.
    Withdraw,
}

impl Action {
    pub fn parse(action: &str, reason: Option<String>) -> Option<Action> {
        Some(match action {
            "take" => Action::Take,
            "release" => Action::Release,
            "done" => Action::Done,
            "fail" => Action::Fail {
                reason: reason
                    .map(|r| {
                        r.trim()
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(200)
                            .collect()
                    })
                    .filter(|r: &String| !r.is_empty())?,
            },
            _ => return None,
        })
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("it is {0} already")]
    Closed(&'static str),
    #[error("{0} has taken it")]
    TakenBy(String),
    #[error("take it first")]
    NotTaken,
}

impl FollowUp {
    /// The item after `who` does `action` (a supervisor may act on anyone's), or why not.
    pub fn apply(
        &self,
        action: &Action,
        who: &str,
        supervisor: bool,
        now: &str,
    ) -> Result<FollowUp, Refused> {
        if *action == Action::Withdraw {
            // A failed item the caller still counted as theirs may be withdrawn too.
            if !self.state.is_open() && self.state != State::Failed {
                return Err(Refused::Closed(self.state.as_str()));
            }
            let mut next = self.clone();
            next.changed_at = now.to_string();
            next.state = State::Done;
            next.reason = Some(crate::flow::node::WITHDRAWN_REASON.to_string());
            return Ok(next);
        }
        if !self.state.is_open() {
            return Err(Refused::Closed(self.state.as_str()));
        }
        let someone_else = self
            .owner
            .as_deref()
            .filter(|o| self.state == State::Taken && *o != who && !supervisor);
        if let Some(o) = someone_else {
            return Err(Refused::TakenBy(o.to_string()));
        }
        let mut next = self.clone();
        next.changed_at = now.to_string();
        match action {
            Action::Take => {
                next.state = State::Taken;
                next.owner = Some(who.to_string());
            }
            Action::Release => {
                if self.state != State::Taken {
                    return Err(Refused::NotTaken);
                }
                next.state = State::New;
                next.owner = None;
            }
            Action::Withdraw => {}
            Action::Done | Action::Fail { .. } => {
                // Done straight from new: whoever did it owns it.
                if self.state == State::New {
                    next.owner = Some(who.to_string());
                }
                (next.state, next.reason) = match action {
                    Action::Fail { reason } => (State::Failed, Some(reason.clone())),
                    _ => (State::Done, None),
                };
            }
        }
        Ok(next)
    }

    /// Seconds from its creation to `now` (RFC 3339 both), 0 if either cannot be read.
    pub fn age_s(&self, now: jiff::Timestamp) -> u64 {
        self.created_at
            .parse::<jiff::Timestamp>()
            .map(|t| now.duration_since(t).as_secs().max(0) as u64)
            .unwrap_or(0)
    }
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS followups (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    item INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    queue TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    owner TEXT,
    reason TEXT,
    changed_at TEXT NOT NULL,
    UNIQUE (kind, item)
);
CREATE INDEX IF NOT EXISTS followups_state ON followups(state);
-- Voicemails and callbacks kept before follow-ups existed become new ones.
INSERT OR IGNORE INTO followups (kind, item, call_id, caller, queue, created_at, changed_at)
  SELECT 'voicemail', id, call_id, caller, mailbox, recorded_at, recorded_at FROM voicemails;
INSERT OR IGNORE INTO followups (kind, item, call_id, caller, queue, created_at, changed_at)
  SELECT 'callback', id, call_id, caller, queue, requested_at, requested_at FROM callbacks
  WHERE state IN ('pending', 'manual');
";

pub(super) const SELECT: &str = "SELECT id, kind, item, call_id, caller, queue, created_at, state, owner, reason, changed_at FROM followups";

pub(super) fn from_row(r: &rusqlite::Row) -> rusqlite::Result<FollowUp> {
    Ok(FollowUp {
        id: r.get(0)?,
        kind: Kind::parse(&r.get::<_, String>(1)?),
        item: r.get(2)?,
        call_id: r.get(3)?,
        caller: r.get(4)?,
        queue: r.get(5)?,
        created_at: r.get(6)?,
        state: State::parse(&r.get::<_, String>(7)?).unwrap_or(State::New),
        owner: r.get(8)?,
        reason: r.get(9)?,
        changed_at: r.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> FollowUp {
        FollowUp {
            id: 1,
            kind: Kind::Voicemail,
            item: 1,
            call_id: "c1".into(),
            caller: "sip:ana@example.com".into(),
            queue: "support".into(),
            created_at: "2026-12-06T10:00:00Z".into(),
            state: State::New,
            owner: None,
            reason: None,
            changed_at: "2026-12-06T10:00:00Z".into(),
        }
    }

    #[test]
    fn new_taken_done_and_nobody_else_may_touch_a_taken_one() {
        let t = "2026-12-06T11:00:00Z";
        let taken = item().apply(&Action::Take, "alice", false, t).unwrap();
        assert_eq!(
            (taken.state, taken.owner.as_deref()),
            (State::Taken, Some("alice"))
        );
        assert_eq!(taken.changed_at, t);
        assert_eq!(
            taken.apply(&Action::Done, "bob", false, t),
            Err(Refused::TakenBy("alice".into()))
        );
        assert_eq!(
            taken.apply(&Action::Take, "bob", false, t),
            Err(Refused::TakenBy("alice".into()))
        );
        // A supervisor may: it stays alice's.
        let done = taken.apply(&Action::Done, "sam", true, t).unwrap();
        assert_eq!(
            (done.state, done.owner.as_deref()),
            (State::Done, Some("alice"))
        );
        assert_eq!(
            done.apply(&Action::Take, "alice", false, t),
            Err(Refused::Closed("done"))
        );
        let back = taken.apply(&Action::Release, "alice", false, t).unwrap();
        assert_eq!((back.state, back.owner), (State::New, None));
        assert_eq!(
            item().apply(&Action::Release, "alice", false, t),
            Err(Refused::NotTaken)
        );
    }

    #[test]
    fn a_failure_needs_a_reason_and_done_from_new_names_who_did_it() {
        assert_eq!(Action::parse("fail", None), None);
        assert_eq!(Action::parse("fail", Some("  ".into())), None);
        let fail = Action::parse("fail", Some("number out of service".into())).unwrap();
        let failed = item().apply(&fail, "bob", false, "t").unwrap();
        assert_eq!(failed.state, State::Failed);
        assert_eq!(failed.owner.as_deref(), Some("bob"));
        assert_eq!(failed.reason.as_deref(), Some("number out of service"));
        assert_eq!(Action::parse("delete", None), None);
    }

    #[test]
    fn its_age_counts_from_when_it_came() {
        let now: jiff::Timestamp = "2026-12-06T12:30:00Z".parse().unwrap();
        assert_eq!(item().age_s(now), 9000);
    }
}

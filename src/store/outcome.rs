//! How a call ended up and who ended it, as its record keeps them: typed here, and the same
//! words as ever in the database, the API's JSON and `hotline report`.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Where a call ended up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    /// Still going.
    #[default]
    Live,
    Queue,
    Transfer,
    Voicemail,
    Callback,
    /// The flow hung up.
    Hangup,
    CallerHangup,
    /// The server stopped under it (found at the next start).
    Interrupted,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 8] = [
        CallOutcome::Live,
        CallOutcome::Queue,
        CallOutcome::Transfer,
        CallOutcome::Voicemail,
        CallOutcome::Callback,
        CallOutcome::Hangup,
        CallOutcome::CallerHangup,
        CallOutcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Live => "live",
            CallOutcome::Queue => "queue",
            CallOutcome::Transfer => "transfer",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::Callback => "callback",
            CallOutcome::Hangup => "hangup",
            CallOutcome::CallerHangup => "caller-hangup",
            CallOutcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<CallOutcome> {
        CallOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// A live human was offered: the caller reached a queue or a transfer.
    pub fn offers_human(self) -> bool {
        matches!(self, CallOutcome::Queue | CallOutcome::Transfer)
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    Caller,
    /// The agent, or the transfer target, hung up.
    Agent,
    /// The flow ended it.
    Line,
    /// The server stopped, and the drain's grace ran out.
    Shutdown,
    /// The caller's audio stopped for `[rtp] timeout_s`.
    NoMedia,
    /// The server stopped under it without ending it.
    Interrupted,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        EndReason::Caller,
        EndReason::Agent,
        EndReason::Line,
        EndReason::Shutdown,
        EndReason::NoMedia,
        EndReason::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Caller => "caller",
            EndReason::Agent => "agent",
            EndReason::Line => "line",
            EndReason::Shutdown => "shutdown",
            EndReason::NoMedia => "no-media",
            EndReason::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

macro_rules! text_column {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        /// A word this version does not know (a newer version's, or a damaged row) is an
        /// error naming it, not a silent guess.
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                <$t>::parse(s)
                    .ok_or_else(|| FromSqlError::Other(format!("unknown {} \"{s}\"", $what).into()))
            }
        }
    };
}

text_column!(CallOutcome, "call outcome");
text_column!(EndReason, "end reason");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_round_trip_and_an_unknown_one_is_refused() {
        for o in CallOutcome::ALL {
            assert_eq!(CallOutcome::parse(o.as_str()), Some(o));
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
        }
        for r in EndReason::ALL {
            assert_eq!(EndReason::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(CallOutcome::parse("Queue"), None);
        assert_eq!(EndReason::parse("hangup"), None);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let bad: rusqlite::Result<CallOutcome> =
            conn.query_row("SELECT 'teleported'", [], |r| r.get(0));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown call outcome \"teleported\"")
        );
        let good: CallOutcome = conn
            .query_row("SELECT 'caller-hangup'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(good, CallOutcome::CallerHangup);
    }
}

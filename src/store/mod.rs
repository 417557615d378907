//! Durable records in SQLite (`data/hotline.db`, WAL mode): callback requests, the index of
//! voicemails, and one record per finished call. A write returns only once SQLite has committed it, so a caller never hears a
//! confirmation for something a crash could lose.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A caller's request to be called back, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    pub call_id: String,
    /// The number (or SIP URI) to dial back.
    pub caller: String,
    pub queue: String,
    pub flow: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
    /// How the caller got here and what they typed: the agent who calls back asks nothing twice.
    pub path: Vec<String>,
    pub variables: Vec<(String, String)>,
}

/// A stored callback still to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCallback {
    pub row: i64,
    pub request: CallbackRequest,
    /// Dial attempts that reached no one so far.
    pub attempts: u32,
}

/// Where a callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackState {
    /// Waiting for its turn (or being dialled).
    Pending,
    /// The caller answered and was bridged to an agent.
    Done,
    /// Every attempt went unanswered.
    Failed,
    /// The caller changed their mind before it was confirmed (e.g. an agent was already ringing).
    Withdrawn,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Done => "done",
            CallbackState::Failed => "failed",
            CallbackState::Withdrawn => "withdrawn",
        }
    }
}

/// A recorded message, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailRecord {
    pub call_id: String,
    pub caller: String,
    pub mailbox: String,
    pub file: String,
    pub recorded_at: String,
    pub duration_ms: u64,
}

/// One finished call, as `GET /api/calls` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRecord {
    pub id: String,
    pub from: String,
    pub line: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub ended: String,
    /// Node names alternating with the caller's actions.
    pub path: Vec<String>,
    pub outcome: String,
    /// Steps and seconds until a live human was offered (a queue or transfer), if one was.
    pub steps_to_human: Option<u32>,
    pub seconds_to_human: Option<f64>,
    /// The agent who answered, if one did.
    pub agent: Option<String>,
}

pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    queue TEXT NOT NULL,
    flow TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE TABLE IF NOT EXISTS voicemails (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    file TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    line TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    path TEXT NOT NULL,
    outcome TEXT NOT NULL,
    steps_to_human INTEGER,
    seconds_to_human REAL,
    agent TEXT
);
";

impl Store {
    /// Opens (creating) `dir/hotline.db`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path: PathBuf = dir.join("hotline.db");
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let conn = Connection::open(&path).map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before we answer (NORMAL may lose the last one on power loss).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Columns added after the first release: older databases gain them in place.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('callbacks')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, definition) in [
            ("path", "TEXT NOT NULL DEFAULT '[]'"),
            ("variables", "TEXT NOT NULL DEFAULT '[]'"),
            ("attempts", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!(
                    "ALTER TABLE callbacks ADD COLUMN {name} {definition}"
                ))?;
            }
        }
        Ok(Store { conn })
    }

    /// Stores a request; its row id names it from then on.
    pub fn add_callback(&self, r: &CallbackRequest) -> Result<i64, StoreError> {
        let path = serde_json::to_string(&r.path).unwrap_or_else(|_| "[]".into());
        let variables = serde_json::to_string(&r.variables).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO callbacks (call_id, caller, queue, flow, requested_at, path, variables) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.call_id, r.caller, r.queue, r.flow, r.requested_at, path, variables],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Callbacks still to be made, oldest request first.
    pub fn pending_callbacks(&self) -> Result<Vec<PendingCallback>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, call_id, caller, queue, flow, requested_at, path, variables, attempts FROM callbacks WHERE state = 'pending' ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let path: String = r.get(6)?;
            let variables: String = r.get(7)?;
            Ok(PendingCallback {
                row: r.get(0)?,
                request: CallbackRequest {
                    call_id: r.get(1)?,
                    caller: r.get(2)?,
                    queue: r.get(3)?,
                    flow: r.get(4)?,
                    requested_at: r.get(5)?,
                    path: serde_json::from_str(&path).unwrap_or_default(),
                    variables: serde_json::from_str(&variables).unwrap_or_default(),
                },
                attempts: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a callback's progress.
    pub fn set_callback_state(
        &self,
        row: i64,
        state: CallbackState,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE callbacks SET state = ?1, attempts = ?2 WHERE id = ?3",
            params![state.as_str(), attempts, row],
        )?;
        Ok(())
    }

    pub fn add_voicemail(&self, v: &VoicemailRecord) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO voicemails (call_id, caller, mailbox, file, recorded_at, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![v.call_id, v.caller, v.mailbox, v.file, v.recorded_at, v.duration_ms as i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn add_call(&self, c: &CallRecord) -> Result<i64, StoreError> {
        let path = serde_json::to_string(&c.path).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO calls (call_id, caller, line, started, ended, path, outcome, steps_to_human, seconds_to_human, agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![c.id, c.from, c.line, c.started, c.ended, path, c.outcome, c.steps_to_human, c.seconds_to_human, c.agent],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The last `limit` calls, newest first.
    pub fn calls(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT call_id, caller, line, started, ended, path, outcome, steps_to_human, seconds_to_human, agent FROM calls ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            let path: String = r.get(5)?;
            Ok(CallRecord {
                id: r.get(0)?,
                from: r.get(1)?,
                line: r.get(2)?,
                started: r.get(3)?,
                ended: r.get(4)?,
                path: serde_json::from_str(&path).unwrap_or_default(),
                outcome: r.get(6)?,
                steps_to_human: r.get(7)?,
                seconds_to_human: r.get(8)?,
                agent: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn voicemails(&self) -> Result<Vec<VoicemailRecord>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT call_id, caller, mailbox, file, recorded_at, duration_ms FROM voicemails ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(VoicemailRecord {
                call_id: r.get(0)?,
                caller: r.get(1)?,
                mailbox: r.get(2)?,
                file: r.get(3)?,
                recorded_at: r.get(4)?,
                duration_ms: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_survives_closing_and_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let r = CallbackRequest {
            call_id: "c1".into(),
            caller: "sip:ana@example.com".into(),
            queue: "support".into(),
            flow: "main".into(),
            requested_at: "2026-11-22T10:00:00Z".into(),
            path: vec!["main.welcome".into(), "0".into(), "main.agents".into()],
            variables: vec![("account".into(), "1234".into())],
        };
        let store = Store::open(dir.path()).unwrap();
        let row = store.add_callback(&r).unwrap();
        let other = store.add_callback(&r).unwrap();
        store
            .set_callback_state(other, CallbackState::Done, 1)
            .unwrap();
        store
            .set_callback_state(row, CallbackState::Pending, 2)
            .unwrap();
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(
            again.pending_callbacks().unwrap(),
            vec![PendingCallback {
                row,
                request: r,
                attempts: 2
            }],
            "the done one is no longer pending"
        );
    }

    #[test]
    fn a_database_from_before_the_callback_context_gains_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("hotline.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE callbacks (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, caller TEXT NOT NULL, queue TEXT NOT NULL, flow TEXT NOT NULL, requested_at TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending');
             INSERT INTO callbacks (call_id, caller, queue, flow, requested_at) VALUES ('old', 'sip:ana@example.com', 'support', 'main', '2026-11-01T10:00:00Z');",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path()).unwrap();
        let pending = store.pending_callbacks().unwrap();
        assert_eq!(pending.len(), 1, "the old request is kept");
        assert_eq!(pending[0].request.call_id, "old");
        assert!(pending[0].request.path.is_empty());
        assert_eq!(pending[0].attempts, 0);
    }

    #[test]
    fn call_records_come_back_newest_first_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let record = |n: u32| CallRecord {
            id: format!("c{n}"),
            from: "sip:ana@example.com".into(),
            line: "main".into(),
            started: "2026-11-22T10:00:00Z".into(),
            ended: "2026-11-22T10:01:00Z".into(),
            path: vec!["main.welcome".into(), "0".into(), "main.agents".into()],
            outcome: "queue".into(),
            steps_to_human: Some(n),
            seconds_to_human: Some(1.5),
            agent: (n == 2).then(|| "alice".to_string()),
        };
        for n in 1..=3 {
            store.add_call(&record(n)).unwrap();
        }
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.calls(2).unwrap(), vec![record(3), record(2)]);
    }

    #[test]
    fn an_unusable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = Store::open(&file).err().unwrap();
        assert!(e.to_string().contains("hotline.db"), "{e}");
    }
}

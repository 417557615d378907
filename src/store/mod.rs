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
        Ok(Store { conn })
    }

    pub fn add_callback(&self, r: &CallbackRequest) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO callbacks (call_id, caller, queue, flow, requested_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.call_id, r.caller, r.queue, r.flow, r.requested_at],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn pending_callbacks(&self) -> Result<Vec<CallbackRequest>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT call_id, caller, queue, flow, requested_at FROM callbacks WHERE state = 'pending' ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(CallbackRequest {
                call_id: r.get(0)?,
                caller: r.get(1)?,
                queue: r.get(2)?,
                flow: r.get(3)?,
                requested_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        };
        Store::open(dir.path()).unwrap().add_callback(&r).unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.pending_callbacks().unwrap(), vec![r]);
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

//! Durable records in SQLite (`data/hotline.db`, WAL mode): callback requests and the index of
//! voicemails. A write returns only once SQLite has committed it, so a caller never hears a
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
    fn an_unusable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = Store::open(&file).err().unwrap();
        assert!(e.to_string().contains("hotline.db"), "{e}");
    }
}

//! Durable records in SQLite (`data/hotline.db`, WAL mode): callback requests, the index of
//! voicemails, and one record per finished call. A write returns only once SQLite has committed it, so a caller never hears a
//! confirmation for something a crash could lose.

pub mod followup;
pub mod outcome;
pub mod report;

pub use outcome::{CallOutcome, EndReason};

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

/// Writes whole files so that a reader or a crash sees each either absent or complete: the
/// bytes go to a hidden temporary file beside each, are synced, the files are renamed into
/// place, and their folders synced once (so the renames are durable too). A write that fails
/// leaves no temporary file behind.
pub fn write_durably(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
    write_durably_each(&[files]).pop().unwrap_or(Ok(()))
}

/// Several independent sets of files made durable together, each set as by [`write_durably`]
/// (one failing does not stop the others), with each folder synced once for all of them: the
/// voicemail writer commits the messages that arrived while it wrote in one go.
pub fn write_durably_each(sets: &[&[(&Path, &[u8])]]) -> Vec<std::io::Result<()>> {
    let mut dirs: Vec<&Path> = Vec::new();
    let results = sets
        .iter()
        .map(|files| {
            let mut temps = Vec::new();
            let result = write_set(files, &mut temps);
            if result.is_err() {
                for temp in &temps {
                    let _ = std::fs::remove_file(temp);
                }
            } else {
                for (path, _) in *files {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
            }
            result
        })
        .collect();
    for dir in dirs {
        // Not every OS can sync a folder; the files themselves are synced regardless.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    results
}

/// Writes and syncs each file's temporary, then renames them all into place; `temps` holds
/// the temporaries made, for the caller to remove on an error.
fn write_set(files: &[(&Path, &[u8])], temps: &mut Vec<PathBuf>) -> std::io::Result<()> {
    use std::io::Write;
    for (path, bytes) in files {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!(".{}.part", name.to_string_lossy()));
        let mut f = std::fs::File::create(&temp)?;
        temps.push(temp);
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    for (temp, (path, _)) in temps.iter().zip(files) {
        std::fs::rename(temp, path)?;
    }
    Ok(())
}

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
    /// Not dialled: the `[callbacks]` policy does not allow the caller's number or host; a
    /// human calls them back.
    Manual,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Pending => "pending",
            CallbackState::Done => "done",
            CallbackState::Failed => "failed",
            CallbackState::Withdrawn => "withdrawn",
            CallbackState::Manual => "manual",
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

/// One call, as `GET /api/calls` shows it: written when the call is answered and again at
/// each of its transitions, so a crash loses at most the last one.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRecord {
    /// The caller's Call-ID.
    pub id: String,
    pub from: String,
    /// The line dialled: the Request-URI user.
    pub line: String,
    /// The flow that answered, and its version (a hash of the flow file).
    pub flow: String,
    pub flow_version: String,
    /// RFC 3339, UTC. `started` is when the INVITE came, `answered` when we answered it.
    pub started: String,
    pub answered: Option<String>,
    /// When the caller entered a queue or a transfer: a live human was offered.
    pub human_offered_at: Option<String>,
    /// When an agent (or the transfer target) answered.
    pub agent_answered_at: Option<String>,
    /// Unset while the call is live.
    pub ended: Option<String>,
    /// Node names alternating with the caller's actions.
    pub path: Vec<String>,
    /// Steps the caller took through the flow.
    pub steps: u32,
    /// `live` until the call ends; `interrupted` when the server stopped under it.
    pub outcome: CallOutcome,
    /// Steps and seconds until a live human was offered (a queue or transfer), if one was.
    pub steps_to_human: Option<u32>,
    pub seconds_to_human: Option<f64>,
    pub escape_used: bool,
    pub watchdog_used: bool,
    /// The agent who answered (or the transfer target), if one did.
    pub agent: Option<String>,
    /// What the caller entered, by variable name.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Who ended the call: `caller`, `agent`, `line` (the flow), `shutdown`, `interrupted`.
    pub end_reason: Option<EndReason>,
    /// Every wait the caller was told while queued, to audit the estimates (`hotline report`).
    #[serde(default)]
    pub waits_told: Vec<WaitTold>,
    /// Placed by `hotline probe` (authenticated): left out of `hotline report`.
    #[serde(default)]
    pub probe: bool,
    /// What the agent noted after the call (shown only to them, supervisors and the API's
    /// token holder).
    #[serde(default)]
    pub wrap_up: Option<WrapUp>,
    /// Every time an agent passed the caller on, in order.
    #[serde(default)]
    pub transfers: Vec<Transfer>,
    /// The conversation's recording, when its queue records.
    #[serde(default)]
    pub recording: Option<RecordingMeta>,
    /// How the audio went on each leg, once the call ended.
    #[serde(default)]
    pub quality: Option<CallQuality>,
}

/// A call's audio quality (RFC 3550): the caller's leg, and each leg bridged to it (the
/// agents, a transfer's target), in the order they left.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallQuality {
    pub caller: LegQuality,
    #[serde(default)]
    pub agents: Vec<LegQuality>,
}

/// One leg: what arrived from its far end (packets, lost, interarrival jitter), and what
/// that end said by RTCP of what we sent it (its loss and jitter, and the round trip).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LegQuality {
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub jitter_ms: f64,
    /// From its RTCP receiver reports, when it sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far_loss_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far_jitter_ms: Option<f64>,
}

/// A call's recording: where it is (relative to the data folder), how long, and whether
/// everything is in it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordingMeta {
    pub file: String,
    /// Unset while the call is live.
    pub seconds: Option<f64>,
    /// `false` when the disk refused a write or the writer fell behind: the file ends early
    /// or has gaps.
    pub complete: bool,
    /// How long the agent paused it (silence in the file).
    #[serde(default)]
    pub paused_s: f64,
}

/// An agent passing the caller on (a blind transfer from the agent's phone or desk).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// RFC 3339, UTC.
    pub at: String,
    /// The agent who passed the caller on.
    pub by: String,
    /// Where to: `queue:<name>`, `agent:<id>`, `tel:<number>`.
    pub to: String,
    /// What she wrote for whoever takes the caller next (the desk's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An agent's wrap-up of a call: a code from `[desk] wrap_up_codes` and a free note.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WrapUp {
    pub code: String,
    pub note: String,
    /// Who wrote it, and when (RFC 3339, UTC).
    pub by: String,
    pub at: String,
}

/// One queue announcement of the expected wait, as the caller heard it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WaitTold {
    pub queue: String,
    /// RFC 3339, UTC: when it was said.
    pub at: String,
    /// What was said, in seconds ("about 4 minutes" = 240; "less than a minute" = 60).
    pub told_s: u64,
    /// What the queue's recent average wait (less what the caller had waited) said then.
    pub baseline_s: Option<u64>,
}

/// A time given as RFC 3339 or a plain date (`2026-11-22`, midnight UTC), as the store
/// compares it (UTC, RFC 3339).
pub fn utc_time(s: &str) -> Option<String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.to_string());
    }
    let date = s.parse::<jiff::civil::Date>().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().to_string())
}

/// Who a caller's URI names, to find their earlier calls: `user@host` (the host in lower
/// case, without port or parameters), or the number of a `tel:` URI; none for an anonymous
/// caller or one with no user.
pub fn caller_key(uri: &str) -> Option<String> {
    let lower = uri.trim().to_ascii_lowercase();
    let rest = ["sips:", "sip:", "tel:"]
        .iter()
        .find_map(|s| lower.starts_with(s).then(|| &uri.trim()[s.len()..]))?;
    let rest = rest.split([';', '?', '>']).next().unwrap_or("");
    let key = match rest.split_once('@') {
        Some((user, host)) => {
            let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
            if user.is_empty() || host.is_empty() {
                return None;
            }
            format!("{user}@{host}")
        }
        None => rest.to_string(),
    };
    let anonymous = key.to_ascii_lowercase().starts_with("anonymous");
    (!key.is_empty() && !anonymous).then_some(key)
}

/// Which calls `GET /api/calls` and `hotline report` look at. Times are RFC 3339 and compare
/// with `started`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CallFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub outcome: Option<String>,
    pub line: Option<String>,
    pub flow: Option<String>,
    pub from: Option<String>,
    pub agent: Option<String>,
}

pub struct Store {
    conn: Connection,
}

/// A registered phone as stored: addresses as text, expiry in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    pub uri: String,
    pub source: String,
    pub target: String,
    pub expires_at: i64,
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
CREATE TABLE IF NOT EXISTS switches (
    name TEXT PRIMARY KEY,
    on_ INTEGER NOT NULL,
    until TEXT,
    by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    agent TEXT NOT NULL,
    uri TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (agent, uri)
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    line TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    path TEXT NOT NULL,
    outcome TEXT NOT NULL,
    steps_to_human INTEGER,
    seconds_to_human REAL,
    agent TEXT
);
";

/// Columns of `calls` added after the first release: older databases gain them in place.
const CALL_COLUMNS: [(&str, &str); 17] = [
    ("uid", "TEXT"),
    ("flow", "TEXT NOT NULL DEFAULT ''"),
    ("flow_version", "TEXT NOT NULL DEFAULT ''"),
    ("answered", "TEXT"),
    ("human_offered_at", "TEXT"),
    ("agent_answered_at", "TEXT"),
    ("steps", "INTEGER NOT NULL DEFAULT 0"),
    ("escape_used", "INTEGER NOT NULL DEFAULT 0"),
    ("watchdog_used", "INTEGER NOT NULL DEFAULT 0"),
    ("variables", "TEXT NOT NULL DEFAULT '{}'"),
    ("end_reason", "TEXT"),
    ("waits_told", "TEXT NOT NULL DEFAULT '[]'"),
    ("probe", "INTEGER NOT NULL DEFAULT 0"),
    ("wrap_up", "TEXT"),
    ("transfers", "TEXT NOT NULL DEFAULT '[]'"),
    ("recording", "TEXT"),
    ("quality", "TEXT"),
];

const CALL_SELECT: &str = "SELECT call_id, caller, line, flow, flow_version, started, answered, human_offered_at, agent_answered_at, ended, path, steps, outcome, steps_to_human, seconds_to_human, escape_used, watchdog_used, agent, variables, end_reason, waits_told, probe, wrap_up, transfers, recording, quality FROM calls";

fn call_from_row(r: &rusqlite::Row) -> rusqlite::Result<CallRecord> {
    let path: String = r.get(10)?;
    let variables: String = r.get(18)?;
    Ok(CallRecord {
        id: r.get(0)?,
        from: r.get(1)?,
        line: r.get(2)?,
        flow: r.get(3)?,
        flow_version: r.get(4)?,
        started: r.get(5)?,
        answered: r.get(6)?,
        human_offered_at: r.get(7)?,
        agent_answered_at: r.get(8)?,
        ended: r.get(9)?,
        path: serde_json::from_str(&path).unwrap_or_default(),
        steps: r.get(11)?,
        outcome: r.get(12)?,
        steps_to_human: r.get(13)?,
        seconds_to_human: r.get(14)?,
        escape_used: r.get(15)?,
        watchdog_used: r.get(16)?,
        agent: r.get(17)?,
        variables: serde_json::from_str(&variables).unwrap_or_default(),
        end_reason: r.get(19)?,
        waits_told: serde_json::from_str(&r.get::<_, String>(20)?).unwrap_or_default(),
        probe: r.get(21)?,
        wrap_up: r
            .get::<_, Option<String>>(22)?
            .and_then(|w| serde_json::from_str(&w).ok()),
        transfers: serde_json::from_str(&r.get::<_, String>(23)?).unwrap_or_default(),
        recording: r
            .get::<_, Option<String>>(24)?
            .and_then(|w| serde_json::from_str(&w).ok()),
        quality: r
            .get::<_, Option<String>>(25)?
            .and_then(|w| serde_json::from_str(&w).ok()),
    })
}

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
        let ended_required: bool = conn.query_row(
            "SELECT \"notnull\" FROM pragma_table_info('calls') WHERE name = 'ended'",
            [],
            |r| r.get(0),
        )?;
        if ended_required {
            // The first release wrote calls only once ended: now a live call has no end yet.
            conn.execute_batch(&format!(
                "BEGIN;
                 ALTER TABLE calls RENAME TO calls_v1;
                 {SCHEMA}
                 INSERT INTO calls (id, call_id, caller, line, started, ended, path, outcome, steps_to_human, seconds_to_human, agent)
                   SELECT id, call_id, caller, line, started, ended, path, outcome, steps_to_human, seconds_to_human, agent FROM calls_v1;
                 DROP TABLE calls_v1;
                 COMMIT;"
            ))?;
        }
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('calls')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, definition) in CALL_COLUMNS {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!("ALTER TABLE calls ADD COLUMN {name} {definition}"))?;
            }
        }
        conn.execute_batch(
            "CREATE UNIQUE INDEX IF NOT EXISTS calls_uid ON calls(uid);
             CREATE INDEX IF NOT EXISTS calls_started ON calls(started);",
        )?;
        conn.execute_batch(followup::SCHEMA)?;
        Ok(Store { conn })
    }

    /// An agent's registered phones now (UDP ones: a TCP connection does not outlive us),
    /// replacing what was stored for the agent. Run inside the saves writer's transaction.
    pub fn set_registrations(
        &self,
        agent: &str,
        bindings: &[StoredBinding],
    ) -> Result<i64, StoreError> {
        self.conn
            .execute("DELETE FROM registrations WHERE agent = ?1", params![agent])?;
        for b in bindings {
            self.conn.execute(
                "INSERT OR REPLACE INTO registrations (agent, uri, source, target, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![agent, b.uri, b.source, b.target, b.expires_at],
            )?;
        }
        Ok(0)
    }

    /// A switch's last flip, kept so it outlives a restart.
    pub fn set_switch(
        &self,
        name: &str,
        flip: &crate::status::switches::Flip,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO switches (name, on_, until, by, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, flip.on, flip.until, flip.by, flip.at],
        )?;
        Ok(())
    }

    /// Every switch's last flip.
    pub fn switches(&self) -> Result<Vec<(String, crate::status::switches::Flip)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, on_, until, by, at FROM switches ORDER BY name")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    crate::status::switches::Flip {
                        on: r.get(1)?,
                        until: r.get(2)?,
                        by: r.get(3)?,
                        at: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The registrations still valid at `now` (Unix seconds); expired ones are dropped.
    pub fn registrations(&self, now: i64) -> Result<Vec<(String, StoredBinding)>, StoreError> {
        self.conn.execute(
            "DELETE FROM registrations WHERE expires_at <= ?1",
            params![now],
        )?;
        let mut st = self.conn.prepare(
            "SELECT agent, uri, source, target, expires_at FROM registrations ORDER BY agent, uri",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    StoredBinding {
                        uri: r.get(1)?,
                        source: r.get(2)?,
                        target: r.get(3)?,
                        expires_at: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Stores a request; its row id names it from then on.
    pub fn add_callback(&self, r: &CallbackRequest) -> Result<i64, StoreError> {
        let path = serde_json::to_string(&r.path).unwrap_or_else(|_| "[]".into());
        let variables = serde_json::to_string(&r.variables).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            "INSERT INTO callbacks (call_id, caller, queue, flow, requested_at, path, variables) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.call_id, r.caller, r.queue, r.flow, r.requested_at, path, variables],
        )?;
        let row = self.conn.last_insert_rowid();
        self.add_followup(
            followup::Kind::Callback,
            row,
            &r.call_id,
            &r.caller,
            &r.queue,
            &r.requested_at,
        )?;
        Ok(row)
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
        // Its follow-up follows: what the dialler did, or a person's turn (manual).
        let (next, reason) = match state {
            CallbackState::Pending => return Ok(()),
            CallbackState::Done => ("done", "called back".to_string()),
            CallbackState::Failed => ("failed", format!("no answer after {attempts} attempts")),
            CallbackState::Withdrawn => ("done", "withdrawn by the caller".to_string()),
            CallbackState::Manual => (
                "new",
                "not dialled automatically: call them back by hand".to_string(),
            ),
        };
        self.conn.execute(
            "UPDATE followups SET state = ?1, reason = ?2, changed_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             WHERE kind = 'callback' AND item = ?3 AND state IN ('new', 'taken')",
            params![next, reason, row],
        )?;
        Ok(())
    }

    /// Runs `f` in one transaction: what it wrote is committed together (one sync for many
    /// rows), or, when the commit fails, none of it is.
    pub fn in_transaction<T>(&mut self, f: impl FnOnce(&Store) -> T) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN")?;
        let out = f(self);
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(out)
    }

    pub fn add_voicemail(&self, v: &VoicemailRecord) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO voicemails (call_id, caller, mailbox, file, recorded_at, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![v.call_id, v.caller, v.mailbox, v.file, v.recorded_at, v.duration_ms as i64],
        )?;
        let row = self.conn.last_insert_rowid();
        self.add_followup(
            followup::Kind::Voicemail,
            row,
            &v.call_id,
            &v.caller,
            &v.mailbox,
            &v.recorded_at,
        )?;
        Ok(row)
    }

    /// Every voicemail and callback request is a follow-up from the moment it is stored (in
    /// the same transaction as the item).
    fn add_followup(
        &self,
        kind: followup::Kind,
        item: i64,
        call_id: &str,
        caller: &str,
        queue: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO followups (kind, item, call_id, caller, queue, created_at, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![kind.as_str(), item, call_id, caller, queue, at],
        )?;
        Ok(())
    }

    /// The open follow-ups (oldest first), then those closed since `since`, at most `limit`.
    pub fn followups(
        &self,
        since: &str,
        limit: u32,
    ) -> Result<Vec<followup::FollowUp>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "{} WHERE state IN ('new', 'taken') OR changed_at >= ?1
             ORDER BY state NOT IN ('new', 'taken'), created_at LIMIT ?2",
            followup::SELECT
        ))?;
        let rows = st.query_map(params![since, limit], followup::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The follow-ups that came since `since` (all of them without), oldest first.
    pub fn followups_since(
        &self,
        since: Option<&str>,
    ) -> Result<Vec<followup::FollowUp>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "{} WHERE created_at >= ?1 ORDER BY created_at",
            followup::SELECT
        ))?;
        let rows = st.query_map(params![since.unwrap_or("")], followup::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn followup(&self, id: i64) -> Result<Option<followup::FollowUp>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("{} WHERE id = ?1", followup::SELECT))?;
        let mut rows = st.query_map(params![id], followup::from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// Writes `after` only if the item is still as `before` (nobody changed it meanwhile).
    pub fn change_followup(
        &self,
        before: &followup::FollowUp,
        after: &followup::FollowUp,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE followups SET state = ?1, owner = ?2, reason = ?3, changed_at = ?4
             WHERE id = ?5 AND state = ?6 AND owner IS ?7",
            params![
                after.state.as_str(),
                after.owner,
                after.reason,
                after.changed_at,
                before.id,
                before.state.as_str(),
                before.owner,
            ],
        )?;
        Ok(n == 1)
    }

    /// The newest follow-up of a caller that is still open, or failed since `failed_since`
    /// (RFC 3339): `same` says whether an item's caller is this one.
    pub fn open_followup_of(
        &self,
        same: impl Fn(&str) -> bool,
        failed_since: &str,
    ) -> Result<Option<followup::FollowUp>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "{} WHERE state IN ('new', 'taken') OR (state = 'failed' AND changed_at >= ?1)
             ORDER BY created_at DESC",
            followup::SELECT
        ))?;
        let mut rows = st.query_map(params![failed_since], followup::from_row)?;
        for row in rows.by_ref() {
            let row = row?;
            if same(&row.caller) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// A voicemail's file and length in milliseconds.
    pub fn voicemail_file(&self, row: i64) -> Result<Option<(String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT file, duration_ms FROM voicemails WHERE id = ?1")?;
        let mut rows = st.query_map(params![row], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.next().transpose()?)
    }

    /// `synchronous = NORMAL`: in WAL mode a commit survives the process being killed; only a
    /// power loss may take the last ones. For the call records' connection.
    pub fn relax_sync(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    /// Writes the current state of calls, each under its own key (`uid`, unique per call),
    /// all in one transaction: the writer batches what piled up while it wrote.
    pub fn save_calls(&mut self, calls: &[(String, CallRecord)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO calls (uid, call_id, caller, line, flow, flow_version, started, answered, human_offered_at, agent_answered_at, ended, path, steps, outcome, steps_to_human, seconds_to_human, escape_used, watchdog_used, agent, variables, end_reason, waits_told, probe, transfers, recording, quality)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)
                 ON CONFLICT(uid) DO UPDATE SET answered = excluded.answered, human_offered_at = excluded.human_offered_at, agent_answered_at = excluded.agent_answered_at, ended = excluded.ended, path = excluded.path, steps = excluded.steps, outcome = excluded.outcome, steps_to_human = excluded.steps_to_human, seconds_to_human = excluded.seconds_to_human, escape_used = excluded.escape_used, watchdog_used = excluded.watchdog_used, agent = excluded.agent, variables = excluded.variables, end_reason = excluded.end_reason, waits_told = excluded.waits_told, transfers = excluded.transfers, recording = excluded.recording, quality = excluded.quality",
            )?;
            for (uid, c) in calls {
                let path = serde_json::to_string(&c.path).unwrap_or_else(|_| "[]".into());
                let variables = serde_json::to_string(&c.variables).unwrap_or_else(|_| "{}".into());
                let waits_told =
                    serde_json::to_string(&c.waits_told).unwrap_or_else(|_| "[]".into());
                let transfers = serde_json::to_string(&c.transfers).unwrap_or_else(|_| "[]".into());
                let recording = c
                    .recording
                    .as_ref()
                    .and_then(|r| serde_json::to_string(r).ok());
                let quality = c
                    .quality
                    .as_ref()
                    .and_then(|q| serde_json::to_string(q).ok());
                st.execute(params![
                    uid,
                    c.id,
                    c.from,
                    c.line,
                    c.flow,
                    c.flow_version,
                    c.started,
                    c.answered,
                    c.human_offered_at,
                    c.agent_answered_at,
                    c.ended,
                    path,
                    c.steps,
                    c.outcome,
                    c.steps_to_human,
                    c.seconds_to_human,
                    c.escape_used,
                    c.watchdog_used,
                    c.agent,
                    variables,
                    c.end_reason,
                    waits_told,
                    c.probe,
                    transfers,
                    recording,
                    quality,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Calls left live by a server that stopped without ending them (killed, crashed, power
    /// lost) are marked `interrupted`, ended at their last recorded moment. Returns how many.
    pub fn mark_interrupted(&self) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE calls SET outcome = ?1, end_reason = ?1,
               ended = COALESCE(agent_answered_at, human_offered_at, answered, started)
             WHERE ended IS NULL",
            params![CallOutcome::Interrupted.as_str()],
        )?)
    }

    /// Writes the wrap-up of the newest call with this Call-ID, when `agent` (if given) is the
    /// one who answered it. Whether a call was found. The call's own record writes never
    /// touch it.
    pub fn set_wrap_up(
        &self,
        call_id: &str,
        agent: Option<&str>,
        wrap_up: &WrapUp,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(wrap_up).unwrap_or_else(|_| "null".into());
        let n = self.conn.execute(
            "UPDATE calls SET wrap_up = ?1 WHERE id = (
               SELECT id FROM calls WHERE call_id = ?2 AND (?3 IS NULL OR agent = ?3)
               ORDER BY id DESC LIMIT 1)",
            params![json, call_id, agent],
        )?;
        Ok(n > 0)
    }

    /// The calls from the same caller as `uri` (the same user at the same host, whatever the
    /// port or parameters) since `since`, newest first, at most `limit`.
    pub fn calls_from(
        &self,
        uri: &str,
        since: &str,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let Some(key) = caller_key(uri) else {
            return Ok(Vec::new());
        };
        let pattern = format!(
            "%{}%",
            key.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let mut st = self.conn.prepare(&format!(
            "{CALL_SELECT} WHERE started >= ?1 AND caller LIKE ?2 ESCAPE '\\' ORDER BY id DESC LIMIT 500"
        ))?;
        let rows = st.query_map(params![since, pattern], call_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            if caller_key(&r.from).as_deref() == Some(key.as_str()) {
                out.push(r);
                if out.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The newest call with this Call-ID.
    pub fn call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "{CALL_SELECT} WHERE call_id = ?1 ORDER BY id DESC LIMIT 1"
        ))?;
        let mut rows = st.query_map(params![call_id], call_from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// The last `limit` calls matching `filter`, newest first.
    pub fn calls(&self, filter: &CallFilter, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let mut sql = format!("{CALL_SELECT} WHERE 1 = 1");
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
        for (column, op, value) in [
            ("started", ">=", &filter.since),
            ("started", "<", &filter.until),
            ("outcome", "=", &filter.outcome),
            ("line", "=", &filter.line),
            ("flow", "=", &filter.flow),
            ("caller", "=", &filter.from),
            ("agent", "=", &filter.agent),
        ] {
            if let Some(v) = value {
                args.push(v);
                sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
            }
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(args.as_slice(), call_from_row)?;
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
    fn registrations_are_kept_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let phone = |uri: &str, expires_at| StoredBinding {
            uri: uri.into(),
            source: "127.0.0.1:5070".into(),
            target: "127.0.0.1:5070".into(),
            expires_at,
        };
        {
            let s = Store::open(dir.path()).unwrap();
            s.set_registrations(
                "alice",
                &[phone("sip:a@desk", 2000), phone("sip:a@soft", 1000)],
            )
            .unwrap();
            s.set_registrations("bob", &[phone("sip:b@desk", 2000)])
                .unwrap();
            // Bob unregisters: his rows go.
            s.set_registrations("bob", &[]).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.registrations(1500).unwrap(),
            vec![("alice".to_string(), phone("sip:a@desk", 2000))]
        );
    }

    /// A voicemail and a callback request are follow-ups as soon as they are stored; a change
    /// is written only over the state it was made from; the dialler's outcome closes a
    /// callback's, and a callback nobody may dial stays a person's to do.
    #[test]
    fn voicemails_and_callbacks_are_follow_ups_changed_only_from_what_was_seen() {
        use followup::{Action, Kind, State};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_voicemail(&VoicemailRecord {
                call_id: "v1".into(),
                caller: "sip:ana@example.com".into(),
                mailbox: "support".into(),
                file: "data/voicemail/support/x.wav".into(),
                recorded_at: "2026-12-06T10:00:00Z".into(),
                duration_ms: 4200,
            })
            .unwrap();
        let request = |id: &str| CallbackRequest {
            call_id: id.into(),
            caller: "sip:bo@example.com".into(),
            queue: "sales".into(),
            flow: "main".into(),
            requested_at: "2026-12-06T10:05:00Z".into(),
            path: Vec::new(),
            variables: Vec::new(),
        };
        let failing = store.add_callback(&request("cb1")).unwrap();
        let manual = store.add_callback(&request("cb2")).unwrap();
        let all = store.followups("2026-12-06T00:00:00Z", 100).unwrap();
        assert_eq!(all.len(), 3);
        let vm = &all[0];
        assert_eq!(
            (vm.kind, vm.state, vm.queue.as_str()),
            (Kind::Voicemail, State::New, "support")
        );
        assert_eq!(
            store.voicemail_file(vm.item).unwrap(),
            Some(("data/voicemail/support/x.wav".to_string(), 4200))
        );
        let taken = vm
            .apply(&Action::Take, "alice", false, "2026-12-06T10:10:00Z")
            .unwrap();
        assert!(store.change_followup(vm, &taken).unwrap());
        // Bob's page still showed it new: his change is not written over alice's.
        let bobs = vm
            .apply(&Action::Take, "bob", false, "2026-12-06T10:11:00Z")
            .unwrap();
        assert!(!store.change_followup(vm, &bobs).unwrap());
        assert_eq!(
            store.followup(vm.id).unwrap().unwrap().owner.as_deref(),
            Some("alice")
        );
        store
            .set_callback_state(failing, CallbackState::Failed, 3)
            .unwrap();
        store
            .set_callback_state(manual, CallbackState::Manual, 0)
            .unwrap();
        let again = Store::open(dir.path()).unwrap();
        let all = again.followups("2026-12-06T00:00:00Z", 100).unwrap();
        assert_eq!(all.len(), 3, "reopening adds none twice");
        let by_call = |id: &str| all.iter().find(|f| f.call_id == id).unwrap().clone();
        assert_eq!(by_call("cb1").state, State::Failed);
        assert_eq!(
            by_call("cb1").reason.as_deref(),
            Some("no answer after 3 attempts")
        );
        assert_eq!(by_call("cb2").state, State::New);
        assert!(by_call("cb2").reason.unwrap().contains("by hand"));
        // Closed ones older than the window are left out; open ones never are.
        let later = again.followups("2099-01-01T00:00:00Z", 100).unwrap();
        assert_eq!(later.len(), 2);
    }

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

    pub(crate) fn record(n: u32) -> CallRecord {
        CallRecord {
            id: format!("c{n}"),
            from: "sip:ana@example.com".into(),
            line: "main".into(),
            flow: "main".into(),
            flow_version: "0123456789ab".into(),
            started: format!("2026-11-22T10:0{n}:00Z"),
            answered: Some(format!("2026-11-22T10:0{n}:00.2Z")),
            human_offered_at: Some(format!("2026-11-22T10:0{n}:05Z")),
            agent_answered_at: (n == 2).then(|| "2026-11-22T10:02:09Z".to_string()),
            ended: Some(format!("2026-11-22T10:0{n}:30Z")),
            path: vec!["main.welcome".into(), "0".into(), "main.agents".into()],
            steps: 2,
            outcome: CallOutcome::Queue,
            steps_to_human: Some(n),
            seconds_to_human: Some(1.5),
            escape_used: n == 1,
            watchdog_used: false,
            agent: (n == 2).then(|| "alice".to_string()),
            variables: [("account".to_string(), "1234".to_string())].into(),
            end_reason: Some(EndReason::Caller),
            waits_told: (n == 2)
                .then(|| WaitTold {
                    queue: "support".into(),
                    at: "2026-11-22T10:02:06Z".into(),
                    told_s: 60,
                    baseline_s: Some(42),
                })
                .into_iter()
                .collect(),
            probe: false,
            wrap_up: None,
            transfers: Vec::new(),
            recording: None,
            quality: None,
        }
    }

    #[test]
    fn call_records_come_back_newest_first_limited_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let rows: Vec<_> = (1..=3).map(|n| (format!("u{n}"), record(n))).collect();
        store.save_calls(&rows).unwrap();
        let again = Store::open(dir.path()).unwrap();
        let all = CallFilter::default();
        assert_eq!(again.calls(&all, 2).unwrap(), vec![record(3), record(2)]);
        let alice = CallFilter {
            agent: Some("alice".into()),
            ..CallFilter::default()
        };
        assert_eq!(again.calls(&alice, 10).unwrap(), vec![record(2)]);
        let window = CallFilter {
            since: Some("2026-11-22T10:02:00Z".into()),
            until: Some("2026-11-22T10:03:00Z".into()),
            ..CallFilter::default()
        };
        assert_eq!(again.calls(&window, 10).unwrap(), vec![record(2)]);
    }

    #[test]
    fn a_callers_earlier_calls_are_found_whatever_their_port() {
        assert_eq!(
            caller_key("sip:ana@Example.com:5062;transport=tcp").as_deref(),
            Some("ana@example.com")
        );
        assert_eq!(
            caller_key("tel:+34600111222").as_deref(),
            Some("+34600111222")
        );
        assert_eq!(caller_key("sip:anonymous@anonymous.invalid"), None);
        assert_eq!(caller_key("mailto:x@y"), None);
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut other = record(3);
        other.from = "sip:anabel@example.com".into();
        let mut ported = record(2);
        ported.from = "sip:ana@example.com:5099".into();
        store
            .save_calls(&[
                ("u1".into(), record(1)),
                ("u2".into(), ported.clone()),
                ("u3".into(), other),
            ])
            .unwrap();
        let found = store
            .calls_from("sip:ana@example.com:7000", "2026-11-22T00:00:00Z", 10)
            .unwrap();
        assert_eq!(found, vec![ported, record(1)]);
        let later = store
            .calls_from("sip:ana@example.com", "2026-11-22T10:02:00Z", 10)
            .unwrap();
        assert_eq!(later.len(), 1);
        assert!(
            store
                .calls_from("sip:%@example.com", "2026-01-01", 10)
                .unwrap()
                .is_empty()
        );
    }

    /// The agent who answered writes the wrap-up; nobody else's name does; the call's later
    /// record writes keep it.
    #[test]
    fn a_wrap_up_is_kept_by_the_call_and_written_only_by_its_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.save_calls(&[("u2".into(), record(2))]).unwrap();
        let w = WrapUp {
            code: "resolved".into(),
            note: "new card sent".into(),
            by: "alice".into(),
            at: "2026-11-22T10:03:00Z".into(),
        };
        assert!(!store.set_wrap_up("c2", Some("bob"), &w).unwrap());
        assert!(!store.set_wrap_up("nope", None, &w).unwrap());
        assert!(store.set_wrap_up("c2", Some("alice"), &w).unwrap());
        store.save_calls(&[("u2".into(), record(2))]).unwrap();
        let got = store.call("c2").unwrap().unwrap();
        assert_eq!(got.wrap_up.as_ref(), Some(&w));
        assert_eq!(store.call("nope").unwrap(), None);
    }

    #[test]
    fn a_call_is_updated_in_place_and_one_left_live_is_marked_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut live = record(1);
        live.ended = None;
        live.end_reason = None;
        live.agent_answered_at = None;
        live.outcome = CallOutcome::Live;
        live.path.truncate(1);
        store.save_calls(&[("a".into(), live.clone())]).unwrap();
        live.path = record(1).path;
        store.save_calls(&[("a".into(), live.clone())]).unwrap();
        store.save_calls(&[("b".into(), record(2))]).unwrap();
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.mark_interrupted().unwrap(), 1, "only the live one");
        let calls = again.calls(&CallFilter::default(), 10).unwrap();
        assert_eq!(calls.len(), 2, "one row per call, however often written");
        assert_eq!(calls[0], record(2), "the finished call is untouched");
        assert_eq!(calls[1].outcome, CallOutcome::Interrupted);
        assert_eq!(calls[1].end_reason, Some(EndReason::Interrupted));
        assert_eq!(
            calls[1].path,
            record(1).path,
            "its last transition was kept"
        );
        assert_eq!(
            calls[1].ended, live.human_offered_at,
            "ended at its last known moment"
        );
    }

    #[test]
    fn a_database_from_before_live_call_records_is_rebuilt_with_its_calls() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("hotline.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE calls (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, caller TEXT NOT NULL, line TEXT NOT NULL, started TEXT NOT NULL, ended TEXT NOT NULL, path TEXT NOT NULL, outcome TEXT NOT NULL, steps_to_human INTEGER, seconds_to_human REAL, agent TEXT);
             INSERT INTO calls (call_id, caller, line, started, ended, path, outcome) VALUES ('old', 'sip:ana@example.com', 'main', '2026-11-01T10:00:00Z', '2026-11-01T10:01:00Z', '[\"main.welcome\"]', 'hangup');",
        )
        .unwrap();
        drop(conn);
        let mut store = Store::open(dir.path()).unwrap();
        let mut live = record(1);
        live.ended = None;
        store.save_calls(&[("new".into(), live)]).unwrap();
        let calls = store.calls(&CallFilter::default(), 10).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].id, "old");
        assert_eq!(calls[1].path, vec!["main.welcome".to_string()]);
        assert_eq!(calls[0].ended, None, "a live call has no end yet");
    }

    #[test]
    fn an_unusable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = Store::open(&file).err().unwrap();
        assert!(e.to_string().contains("hotline.db"), "{e}");
    }

    #[test]
    fn a_durable_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.json");
        write_durably(&[(&file, b"first, longer text")]).unwrap();
        write_durably(&[(&file, b"second")]).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m.json")]);
        assert!(write_durably(&[(&dir.path().join("no/such/dir/x"), b"x")]).is_err());
    }

    #[test]
    fn sets_written_together_fail_alone_and_a_failed_set_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
        let missing = dir.path().join("no/such/dir/a.json");
        let ok: &[(&Path, &[u8])] = &[(&a, b"a")];
        let half: &[(&Path, &[u8])] = &[(&b, b"b"), (&missing, b"{}")];
        let results = write_durably_each(&[half, ok]);
        assert!(results[0].is_err());
        assert!(results[1].is_ok());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        // b.wav's own write worked, but its set did not: neither it nor its temporary stays.
        assert_eq!(names, vec![std::ffi::OsString::from("a.wav")]);
    }
}

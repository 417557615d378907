//! The call records' writer: one thread with its own SQLite connection takes each call's state
//! at every transition, in order, and commits what piled up in one transaction. A call task
//! never waits on the disk to move on; it waits only for its last record, so a call listed as
//! ended in the API is on disk. Records the disk refuses (full) are kept, bounded, and
//! written again every few seconds until it takes them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::health::DiskHealth;
use crate::store::{CallRecord, Store, StoreError};

/// At most this many new records gathered into one transaction.
const BATCH: usize = 256;
/// Records the disk refused are kept for at most this many calls (the newest state of each),
/// and tried again this often.
const MAX_PENDING: usize = 100_000;
const RETRY: Duration = Duration::from_secs(2);

enum Write {
    Record {
        uid: String,
        record: Box<CallRecord>,
        done: Option<oneshot::Sender<bool>>,
    },
    /// Answered once everything sent before it is committed (or cannot be, yet).
    Flush(oneshot::Sender<bool>),
}

/// Where call tasks hand their records.
#[derive(Clone)]
pub struct Records {
    tx: mpsc::Sender<Write>,
}

impl Records {
    /// Opens a connection to the database in `data` and starts the writer. Calls the last run
    /// left live are marked interrupted first.
    pub fn start(
        data: &Path,
        health: Arc<DiskHealth>,
    ) -> Result<(Records, std::thread::JoinHandle<()>), StoreError> {
        let store = Store::open(data)?;
        // Transitions are many: committed for a process crash (WAL), synced at checkpoints.
        // Voicemails and callbacks keep their own connection with a sync on every commit.
        store.relax_sync()?;
        let interrupted = store.mark_interrupted()?;
        if interrupted > 0 {
            tracing::warn!(
                calls = interrupted,
                "calls left live by the last run are marked interrupted"
            );
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hotline-records".into())
            .spawn(move || Writer::new(store, health).run(&rx))
            .map_err(|e| StoreError::Open {
                path: data.display().to_string(),
                message: format!("cannot start the records writer: {e}"),
            })?;
        Ok((Records { tx }, thread))
    }

    /// Records the call's state now; does not wait.
    pub fn save(&self, uid: &str, record: &CallRecord) {
        let _ = self.tx.send(Write::Record {
            uid: uid.to_string(),
            record: Box::new(record.clone()),
            done: None,
        });
    }

    /// Records the call's state and returns once it is committed: false if it could not be
    /// yet (the disk refused it: it is kept and written again when the disk takes it).
    pub async fn save_and_wait(&self, uid: &str, record: &CallRecord) -> bool {
        let (done, committed) = oneshot::channel();
        let sent = self.tx.send(Write::Record {
            uid: uid.to_string(),
            record: Box::new(record.clone()),
            done: Some(done),
        });
        sent.is_ok() && committed.await.unwrap_or(false)
    }

    /// Returns once every record sent so far is committed; false if some could not be.
    pub async fn flush(&self) -> bool {
        let (done, committed) = oneshot::channel();
        self.tx.send(Write::Flush(done)).is_ok() && committed.await.unwrap_or(false)
    }
}

struct Writer {
    store: Store,
    health: Arc<DiskHealth>,
    /// Records not yet committed, the newest state of each call.
    rows: HashMap<String, CallRecord>,
    /// When the disk last refused them (the next try is `RETRY` later).
    refused_at: Option<Instant>,
    dropped: u64,
}

impl Writer {
    fn new(store: Store, health: Arc<DiskHealth>) -> Writer {
        Writer {
            store,
            health,
            rows: HashMap::new(),
            refused_at: None,
            dropped: 0,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Write>) {
        loop {
            let first = if self.rows.is_empty() {
                match rx.recv() {
                    Ok(w) => Some(w),
                    Err(_) => return,
                }
            } else {
                match rx.recv_timeout(RETRY) {
                    Ok(w) => Some(w),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.commit();
                        return;
                    }
                }
            };
            let mut waiting: Vec<oneshot::Sender<bool>> = Vec::new();
            let mut flush = false;
            let mut next = first;
            let mut taken = 0;
            while let Some(w) = next {
                match w {
                    Write::Record { uid, record, done } => {
                        // A call written twice keeps only its latest state.
                        self.keep(uid, *record);
                        waiting.extend(done);
                    }
                    Write::Flush(done) => {
                        waiting.push(done);
                        flush = true;
                    }
                }
                taken += 1;
                next = if taken < BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            // While the disk refuses, try again only every RETRY (or when asked to flush):
            // the callers waiting are told at once that their record is not on disk yet.
            let due = self
                .refused_at
                .is_none_or(|t| t.elapsed() >= RETRY || flush);
            let ok = if due { self.commit() } else { false };
            for w in waiting {
                let _ = w.send(ok);
            }
        }
    }

    fn keep(&mut self, uid: String, record: CallRecord) {
        if self.rows.len() >= MAX_PENDING && !self.rows.contains_key(&uid) {
            // Bounded: a disk that never comes back must not take the memory too. The
            // oldest tenth goes at once (one sort, not a search per record); each still has
            // its earlier state on disk, if any.
            let mut by_age: Vec<(String, String)> = self
                .rows
                .iter()
                .map(|(u, r)| (r.started.clone(), u.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, u) in by_age.into_iter().take(MAX_PENDING / 10) {
                self.rows.remove(&u);
                self.dropped += 1;
            }
            tracing::error!(
                dropped = self.dropped,
                "call records dropped: more than {MAX_PENDING} wait for the disk"
            );
        }
        self.rows.insert(uid, record);
    }

    /// Writes every record kept; returns whether they are all on disk.
    fn commit(&mut self) -> bool {
        if self.rows.is_empty() {
            return true;
        }
        let rows: Vec<(String, CallRecord)> = self.rows.drain().collect();
        match self.store.save_calls(&rows) {
            Ok(()) => {
                if self.refused_at.take().is_some() {
                    tracing::info!(calls = rows.len(), "call records written after a retry");
                }
                self.health.succeeded();
                self.health.set_pending_records(0);
                true
            }
            Err(e) => {
                if self.refused_at.is_none() {
                    tracing::error!(
                        calls = rows.len(),
                        "call records NOT saved, kept to be written again: {e}"
                    );
                }
                self.health.failed("call records", &e.to_string());
                self.refused_at = Some(Instant::now());
                self.rows.extend(rows);
                self.health.set_pending_records(self.rows.len());
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: String) -> CallRecord {
        CallRecord {
            started,
            ..CallRecord::default()
        }
    }

    #[test]
    fn records_waiting_for_the_disk_are_bounded_and_the_oldest_go_first() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let mut w = Writer::new(store, Arc::default());
        for i in 0..MAX_PENDING + 1 {
            w.keep(format!("u{i}"), record(format!("2026-12-02T10:{i:08}Z")));
        }
        assert!(w.rows.len() <= MAX_PENDING);
        assert!(
            w.rows.contains_key(&format!("u{MAX_PENDING}")),
            "the newest is kept"
        );
        assert!(!w.rows.contains_key("u0"), "the oldest went");
        assert_eq!(w.dropped, (MAX_PENDING / 10) as u64);
        // A call written again keeps one row: its newest state.
        let n = w.rows.len();
        w.keep(
            format!("u{MAX_PENDING}"),
            record("2026-12-02T11:00:00Z".into()),
        );
        assert_eq!(w.rows.len(), n);
    }
}

//! The call records' writer: one thread with its own SQLite connection takes each call's state
//! at every transition, in order, and commits what piled up in one transaction. A call task
//! never waits on the disk to move on; it waits only for its last record, so a call listed as
//! ended in the API is on disk.

use std::path::Path;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::store::{CallRecord, Store, StoreError};

/// At most this many records in one transaction.
const BATCH: usize = 256;

enum Write {
    Record {
        uid: String,
        record: Box<CallRecord>,
        done: Option<oneshot::Sender<bool>>,
    },
}

/// Where call tasks hand their records.
#[derive(Clone)]
pub struct Records {
    tx: mpsc::Sender<Write>,
}

impl Records {
    /// Opens a connection to the database in `data` and starts the writer. Calls the last run
    /// left live are marked interrupted first.
    pub fn start(data: &Path) -> Result<(Records, std::thread::JoinHandle<()>), StoreError> {
        let mut store = Store::open(data)?;
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
            .spawn(move || write_all(&mut store, rx))
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

    /// Records the call's state and returns once it is committed (false if it could not be).
    pub async fn save_and_wait(&self, uid: &str, record: &CallRecord) -> bool {
        let (done, committed) = oneshot::channel();
        let sent = self.tx.send(Write::Record {
            uid: uid.to_string(),
            record: Box::new(record.clone()),
            done: Some(done),
        });
        sent.is_ok() && committed.await.unwrap_or(false)
    }
}

fn write_all(store: &mut Store, rx: mpsc::Receiver<Write>) {
    let mut rows: Vec<(String, CallRecord)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<bool>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(Write::Record { uid, record, done }) = next {
            // A call written twice in one batch keeps only its latest state.
            match rows.iter_mut().find(|(u, _)| *u == uid) {
                Some(row) => row.1 = *record,
                None => rows.push((uid, *record)),
            }
            waiting.extend(done);
            next = if rows.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let ok = match store.save_calls(&rows) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(calls = rows.len(), "call records NOT saved: {e}");
                false
            }
        };
        rows.clear();
        for w in waiting.drain(..) {
            let _ = w.send(ok);
        }
    }
}

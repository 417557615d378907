//! The saves writer: one thread makes durable what a caller is told was kept — a voicemail's
//! WAV and JSON files and its row, a callback request — before the caller hears so. What
//! arrives while it writes is committed together: the files synced, each folder synced once,
//! the rows in one transaction. One thread, not a task per save: on a busy line hundreds of
//! messages a second each waiting on the disk would otherwise be hundreds of threads, and
//! every one of them, woken, would take the core from the media loop (a key press waited
//! 100 ms for it at 3,000 calls).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::health::DiskHealth;
use crate::store::{Store, StoreError};

/// At most this many saves committed together.
const BATCH: usize = 64;

/// What a save does in the store, once its files are on disk: returns the row it wrote.
type RowWrite = Box<dyn FnOnce(&Store) -> Result<i64, StoreError> + Send>;

struct Save {
    files: Vec<(PathBuf, Vec<u8>)>,
    row: RowWrite,
    done: oneshot::Sender<Result<i64, String>>,
}

/// Where call tasks hand what must be durable before the caller is told.
#[derive(Clone)]
pub struct Saves {
    tx: mpsc::Sender<Save>,
}

impl Saves {
    /// Starts the writer on `store` (shared with the readers: the API and the callbacks).
    pub fn start(store: Arc<Mutex<Store>>, health: Arc<DiskHealth>) -> std::io::Result<Saves> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hotline-saves".into())
            .spawn(move || write_all(&store, &health, rx))?;
        Ok(Saves { tx })
    }

    /// Queues a row write with no file and nobody waiting for it (a registration's refresh):
    /// it is committed in order with the other saves; a failure is logged.
    pub fn submit(
        &self,
        what: &'static str,
        row: impl FnOnce(&Store) -> Result<i64, StoreError> + Send + 'static,
    ) {
        let (done, saved) = oneshot::channel();
        let sent = self.tx.send(Save {
            files: Vec::new(),
            row: Box::new(row),
            done,
        });
        if sent.is_err() {
            return tracing::warn!(what, "not saved: the saves writer has stopped");
        }
        tokio::spawn(async move {
            if let Ok(Err(e)) = saved.await {
                tracing::warn!(what, "not saved: {e}");
            }
        });
    }

    /// Writes `files` durably (their folders made as needed), then runs `row` on the store,
    /// committed; returns its row id once both are on disk, or why not (then nothing of it
    /// is in the store).
    pub async fn save(
        &self,
        files: Vec<(PathBuf, Vec<u8>)>,
        row: impl FnOnce(&Store) -> Result<i64, StoreError> + Send + 'static,
    ) -> Result<i64, String> {
        let (done, saved) = oneshot::channel();
        self.tx
            .send(Save {
                files,
                row: Box::new(row),
                done,
            })
            .map_err(|_| "the saves writer has stopped".to_string())?;
        saved
            .await
            .unwrap_or_else(|_| Err("the saves writer has stopped".to_string()))
    }
}

fn write_all(store: &Mutex<Store>, health: &DiskHealth, rx: mpsc::Receiver<Save>) {
    let mut batch: Vec<Save> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        write_batch(store, health, std::mem::take(&mut batch));
    }
}

fn write_batch(store: &Mutex<Store>, health: &DiskHealth, batch: Vec<Save>) {
    let mut ready = Vec::with_capacity(batch.len());
    for save in batch {
        match make_folders(&save.files) {
            Ok(()) => ready.push(save),
            Err(e) => {
                health.failed("a voicemail's folder", &e);
                let _ = save.done.send(Err(e));
            }
        }
    }
    let files: Vec<Vec<(&Path, &[u8])>> = ready
        .iter()
        .map(|s| {
            s.files
                .iter()
                .map(|(p, b)| (p.as_path(), b.as_slice()))
                .collect()
        })
        .collect();
    let sets: Vec<&[(&Path, &[u8])]> = files.iter().map(Vec::as_slice).collect();
    let written = crate::store::write_durably_each(&sets);
    drop(files);
    let mut rows = Vec::new();
    let mut replies = Vec::new();
    for (save, w) in ready.into_iter().zip(written) {
        match w {
            Ok(()) => {
                rows.push(save.row);
                let paths: Vec<PathBuf> = save.files.into_iter().map(|(p, _)| p).collect();
                replies.push((save.done, paths));
            }
            Err(e) => {
                let folder = save.files.first().and_then(|(p, _)| p.parent());
                let folder = folder.unwrap_or(Path::new(".")).display();
                health.failed("a voicemail", &e.to_string());
                let _ = save.done.send(Err(format!("{folder}: {e}")));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let results = match store.lock() {
        Ok(mut s) => s
            .in_transaction(|s| rows.into_iter().map(|r| r(s)).collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
        Err(_) => Err("the store lock is poisoned".to_string()),
    };
    let results: Vec<Result<i64, String>> = match results {
        Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect(),
        Err(e) => replies.iter().map(|_| Err(e.clone())).collect(),
    };
    for ((done, paths), r) in replies.into_iter().zip(results) {
        match &r {
            Ok(_) => health.succeeded(),
            Err(e) => {
                // No row points to a missing file, and no file is left without its row.
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
                health.failed("a voicemail or callback row", e);
            }
        }
        let _ = done.send(r);
    }
}

/// Makes each folder the files go in, once (a message's WAV and JSON share theirs).
fn make_folders(files: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    let mut made: Option<&Path> = None;
    for (path, _) in files {
        let dir = path.parent().unwrap_or(Path::new("."));
        if made != Some(dir) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            made = Some(dir);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VoicemailRecord;

    fn message(dir: &Path, name: &str) -> (Vec<(PathBuf, Vec<u8>)>, VoicemailRecord) {
        let wav = dir.join(format!("{name}.wav"));
        let record = VoicemailRecord {
            call_id: name.into(),
            caller: "sip:bob@example.com".into(),
            mailbox: "support".into(),
            file: wav.display().to_string(),
            recorded_at: "2026-11-23T10:00:00Z".into(),
            duration_ms: 1000,
        };
        let files = vec![
            (wav, format!("audio of {name}").into_bytes()),
            (dir.join(format!("{name}.json")), b"{}".to_vec()),
        ];
        (files, record)
    }

    fn queued(
        files: Vec<(PathBuf, Vec<u8>)>,
        record: VoicemailRecord,
    ) -> (Save, oneshot::Receiver<Result<i64, String>>) {
        let (done, saved) = oneshot::channel();
        let save = Save {
            files,
            row: Box::new(move |s: &Store| s.add_voicemail(&record)),
            done,
        };
        (save, saved)
    }

    #[test]
    fn messages_saved_together_each_get_their_files_and_row_and_a_bad_one_fails_alone() {
        let data = tempfile::tempdir().unwrap();
        let store = Mutex::new(Store::open(data.path()).unwrap());
        let mailbox = data.path().join("voicemail/support");
        // A file where the other message's folder should be: its folder cannot be made.
        std::fs::write(data.path().join("blocked"), "x").unwrap();
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        for (dir, name) in [
            (mailbox.clone(), "first"),
            (data.path().join("blocked/box"), "bad"),
            (mailbox.clone(), "second"),
        ] {
            let (files, record) = message(&dir, name);
            let (save, saved) = queued(files, record);
            batch.push(save);
            replies.push(saved);
        }
        write_batch(&store, &DiskHealth::default(), batch);
        let results: Vec<_> = replies
            .into_iter()
            .map(|mut r| r.try_recv().unwrap())
            .collect();
        let (first, second) = (results[0].clone().unwrap(), results[2].clone().unwrap());
        assert_ne!(first, second, "each message has its own row");
        assert!(
            results[1].as_ref().unwrap_err().contains("blocked"),
            "{results:?}"
        );
        let rows = store.lock().unwrap().voicemails().unwrap();
        let calls: Vec<_> = rows.iter().map(|v| v.call_id.as_str()).collect();
        assert_eq!(calls, ["first", "second"]);
        assert_eq!(
            std::fs::read(mailbox.join("second.wav")).unwrap(),
            b"audio of second"
        );
        let mut names: Vec<_> = std::fs::read_dir(&mailbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["first.json", "first.wav", "second.json", "second.wav"],
            "no temporary file is left"
        );
    }

    #[tokio::test]
    async fn a_save_returns_once_its_row_is_committed() {
        let data = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(data.path()).unwrap()));
        let saves = Saves::start(Arc::clone(&store), Arc::default()).unwrap();
        let (files, record) = message(&data.path().join("voicemail/sales"), "m1");
        let row = saves
            .save(files, move |s| s.add_voicemail(&record))
            .await
            .unwrap();
        // Another connection to the same database sees it: it is committed, not pending.
        let reader = Store::open(data.path()).unwrap();
        assert_eq!(reader.voicemails().unwrap().len(), 1);
        assert!(row > 0);
        let failed = saves
            .save(Vec::new(), |_| {
                Err(StoreError::Open {
                    path: "x".into(),
                    message: "refused".into(),
                })
            })
            .await;
        assert!(failed.unwrap_err().contains("refused"));
    }
}

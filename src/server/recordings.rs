//! Call recordings on disk: each recorded call is a WAV file under
//! `<data>/recordings/<day>/`, written by its own blocking task as the media loop hands it
//! 20 ms frames, its header brought up to date every second — a crash loses a second, not
//! the call. A write that fails (a full disk) stops the file where it is and marks it
//! incomplete; the call goes on. Old days are deleted after `[recording] retention_days`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Frames queued for one writer, at most (10 s): beyond, frames are dropped and the
/// recording is incomplete.
pub const QUEUED_FRAMES: usize = 500;
/// The header is brought up to date after this many frames (1 s).
const FLUSH_EVERY: u32 = 50;

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub seconds: f64,
    /// Every frame the media loop had is in the file.
    pub complete: bool,
}

/// Where a call's recording goes: `<data>/recordings/<YYYY-MM-DD>/<uid>.wav`, and that
/// path relative to `<data>` (as the call record keeps it).
pub fn path_for(data: &Path, day: &str, uid: &str) -> (PathBuf, String) {
    let relative = format!("recordings/{day}/{uid}.wav");
    (data.join(&relative), relative)
}

/// A recording being written.
pub struct Recording {
    /// Where the media loop sends frames; dropping every sender ends the file.
    pub sink: mpsc::SyncSender<Vec<i16>>,
    /// Set by the media loop when the sink had no room for a frame.
    pub lost: Arc<AtomicBool>,
    pub task: tokio::task::JoinHandle<Written>,
}

/// Starts writing `file` (8 kHz, 16-bit, `channels`); the task ends when the sink is
/// dropped, with what it wrote.
pub fn start(file: PathBuf, channels: u16) -> Recording {
    let (sink, rx) = mpsc::sync_channel::<Vec<i16>>(QUEUED_FRAMES);
    let lost = Arc::new(AtomicBool::new(false));
    let l = Arc::clone(&lost);
    let task = tokio::task::spawn_blocking(move || {
        let mut w = write(&file, channels, &rx);
        w.complete &= !l.load(Ordering::Relaxed);
        w
    });
    Recording { sink, lost, task }
}

fn write(file: &Path, channels: u16, frames: &mpsc::Receiver<Vec<i16>>) -> Written {
    let spec = hound::WavSpec {
        channels,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let opened = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|()| hound::WavWriter::create(file, spec).map_err(|e| e.to_string()));
    let mut writer = match opened {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(file = %file.display(), "cannot record the call: {e}");
            None
        }
    };
    let mut complete = writer.is_some();
    let mut samples: u64 = 0;
    let mut since_flush = 0;
    while let Ok(frame) = frames.recv() {
        let Some(w) = writer.as_mut() else {
            continue; // keep draining: the media loop never waits on a dead writer
        };
        let wrote = frame
            .iter()
            .try_for_each(|s| w.write_sample(*s))
            .and_then(|()| {
                since_flush += 1;
                if since_flush >= FLUSH_EVERY {
                    since_flush = 0;
                    w.flush()
                } else {
                    Ok(())
                }
            });
        match wrote {
            Ok(()) => samples += frame.len() as u64,
            Err(e) => {
                tracing::error!(file = %file.display(), "the call's recording stops here: {e}");
                complete = false;
                let _ = writer.take().map(hound::WavWriter::finalize);
            }
        }
    }
    if let Some(w) = writer
        && let Err(e) = w.finalize()
    {
        tracing::error!(file = %file.display(), "the call's recording did not close: {e}");
        complete = false;
    }
    Written {
        seconds: samples as f64 / f64::from(channels.max(1)) / 8000.0,
        complete,
    }
}

/// The day folders under `<data>/recordings` older than `days` days before `today`
/// (`YYYY-MM-DD`), to delete; none when `days` is 0 (kept for ever).
pub fn expired(names: &[String], today: jiff::civil::Date, days: u32) -> Vec<String> {
    if days == 0 {
        return Vec::new();
    }
    let Ok(oldest) = today.checked_sub(jiff::Span::new().days(i64::from(days))) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|n| n.parse::<jiff::civil::Date>().is_ok_and(|d| d < oldest))
        .cloned()
        .collect()
}

/// Deletes the recordings older than `days` days; returns how many days were deleted.
pub fn purge(data: &Path, today: jiff::civil::Date, days: u32) -> usize {
    let dir = data.join("recordings");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let mut deleted = 0;
    for name in expired(&names, today, days) {
        match std::fs::remove_dir_all(dir.join(&name)) {
            Ok(()) => {
                tracing::info!(day = name, "recordings past their retention deleted");
                deleted += 1;
            }
            Err(e) => tracing::error!(day = name, "cannot delete old recordings: {e}"),
        }
    }
    deleted
}

/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Deletes the recordings past their retention at start, then every day.
pub async fn purge_daily(data: PathBuf, days: u32, mut stop: super::stop::Stop) {
    loop {
        let data = data.clone();
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let _ = tokio::task::spawn_blocking(move || purge(&data, today, days)).await;
        tokio::select! {
            _ = stop.requested() => return,
            _ = tokio::time::sleep(PURGE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_written_as_a_wav_of_the_calls_length() {
        let dir = tempfile::tempdir().unwrap();
        let (file, relative) = path_for(dir.path(), "2026-12-07", "abc");
        assert_eq!(relative, "recordings/2026-12-07/abc.wav");
        let r = start(file.clone(), 2);
        for i in 0..100 {
            r.sink.send(vec![i as i16; 320]).unwrap();
        }
        drop(r.sink);
        let written = r.task.await.unwrap();
        assert_eq!(
            written,
            Written {
                seconds: 2.0,
                complete: true
            }
        );
        let wav = hound::WavReader::open(&file).unwrap();
        assert_eq!(wav.spec().channels, 2);
        assert_eq!(wav.len(), 32_000);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_made_is_incomplete_and_the_sender_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recordings"), "a file, not a folder").unwrap();
        let (file, _) = path_for(dir.path(), "2026-12-07", "abc");
        let r = start(file, 2);
        for _ in 0..(QUEUED_FRAMES * 2) {
            r.sink.send(vec![0; 320]).unwrap();
        }
        drop(r.sink);
        assert_eq!(
            r.task.await.unwrap(),
            Written {
                seconds: 0.0,
                complete: false
            }
        );
    }

    #[test]
    fn days_past_the_retention_are_the_ones_deleted() {
        let names: Vec<String> = ["2026-09-07", "2026-09-08", "2026-12-06", "notes"]
            .map(String::from)
            .to_vec();
        let today: jiff::civil::Date = "2026-12-07".parse().unwrap();
        assert_eq!(expired(&names, today, 90), ["2026-09-07"]);
        assert_eq!(expired(&names, today, 1), ["2026-09-07", "2026-09-08"]);
        assert!(expired(&names, today, 0).is_empty());
    }

    #[test]
    fn the_purge_deletes_old_days_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        for day in ["2026-08-01", "2026-12-06"] {
            let (file, _) = path_for(dir.path(), day, "call");
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"RIFF").unwrap();
        }
        let today: jiff::civil::Date = "2026-12-07".parse().unwrap();
        assert_eq!(purge(dir.path(), today, 90), 1);
        assert!(!dir.path().join("recordings/2026-08-01").exists());
        assert!(dir.path().join("recordings/2026-12-06/call.wav").exists());
        assert_eq!(purge(dir.path(), today, 90), 0);
    }
}

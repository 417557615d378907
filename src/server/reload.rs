//! Safe flow changes on a live line: on SIGHUP, or when a file in the flows folder changes, the
//! whole set is loaded and validated again. It goes live only without errors; otherwise the
//! running set stays and the diagnostics are logged and shown by `GET /api/flows`. A call keeps
//! the set it started with until it ends (it holds its own `Arc`), and each flow's version, a
//! hash of its file, is recorded on its calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{Flows, Shared};
use crate::config::Loaded;

/// How often the flows folder is looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A flow file's version: the first 12 hex digits of the SHA-256 of its text.
pub fn version_of(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The outcome of the last reload, for `GET /api/flows`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// RFC 3339, UTC.
    pub at: Option<String>,
    /// Why: `signal` or `file change`.
    pub trigger: Option<String>,
    pub ok: Option<bool>,
    pub message: Option<String>,
    /// The validator's report when the new set was refused.
    pub diagnostics: Option<String>,
}

/// What the flows folder looks like: each TOML file's name, length and modification time.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| {
            let meta = e.metadata().ok();
            (
                e.path(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    files.sort();
    files
}

/// Watches for SIGHUP and for changes in the flows folder until the server stops.
pub async fn watch(shared: Arc<Shared>) {
    let dir = shared.config.paths.flows.clone();
    let mut seen = fingerprint(&dir);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        let trigger = tokio::select! {
            _ = signalled => "signal",
            _ = tick.tick() => {
                let now = fingerprint(&dir);
                if now == seen {
                    continue;
                }
                // Let an editor finish writing (several files, or write-then-rename).
                tokio::time::sleep(Duration::from_millis(200)).await;
                "file change"
            }
        };
        seen = fingerprint(&dir);
        reload(&shared, trigger).await;
    }
}

/// Loads the flows again and puts them live if they validate.
pub async fn reload(shared: &Arc<Shared>, trigger: &str) {
    let loaded = Loaded {
        config: shared.config.clone(),
        file: None,
        calendars: shared.flows().calendars.clone(),
        warnings: Vec::new(),
    };
    let result = tokio::task::spawn_blocking(move || crate::cli::load_flows(&loaded)).await;
    let mut status = ReloadStatus {
        at: Some(jiff::Timestamp::now().to_string()),
        trigger: Some(trigger.to_string()),
        ..ReloadStatus::default()
    };
    match result {
        Ok(Ok(flows)) => {
            let before = shared.flows();
            let changed = changes(&before, &flows);
            tracing::info!(
                trigger,
                changed = changed.join(", "),
                "flows reloaded: new calls get the new versions, calls in progress keep theirs"
            );
            for w in &flows.warnings {
                tracing::warn!("{w}");
            }
            shared.set_flows(flows);
            status.ok = Some(true);
            status.message = Some(if changed.is_empty() {
                "no flow changed".to_string()
            } else {
                format!("changed: {}", changed.join(", "))
            });
        }
        Ok(Err(refused)) => {
            tracing::error!(
                trigger,
                "flows NOT reloaded, the running ones stay: {}\n{}",
                refused.message,
                refused.diagnostics
            );
            status.ok = Some(false);
            status.message = Some(refused.message);
            status.diagnostics = Some(refused.diagnostics);
        }
        Err(e) => {
            tracing::error!("flows NOT reloaded: {e}");
            status.ok = Some(false);
            status.message = Some(e.to_string());
        }
    }
    if let Ok(mut s) = shared.reload_status.lock() {
        *s = status;
    }
}

/// `name old -> new` for each flow whose version changed, was added or removed.
fn changes(before: &Flows, after: &Flows) -> Vec<String> {
    let versions = |f: &Flows| -> Vec<(String, String)> {
        f.set
            .flows
            .iter()
            .zip(&f.versions)
            .map(|(flow, v)| (flow.name.clone(), v.clone()))
            .collect()
    };
    let (b, a) = (versions(before), versions(after));
    let mut out = Vec::new();
    for (name, v) in &a {
        match b.iter().find(|(n, _)| n == name) {
            Some((_, old)) if old == v => {}
            Some((_, old)) => out.push(format!("{name} {old} -> {v}")),
            None => out.push(format!("{name} new {v}")),
        }
    }
    for (name, v) in &b {
        if !a.iter().any(|(n, _)| n == name) {
            out.push(format!("{name} removed (was {v})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_short_stable_and_changes_with_the_text() {
        let v = version_of("[flow]\nentry = \"a\"\n");
        assert_eq!(v.len(), 12);
        assert_eq!(v, version_of("[flow]\nentry = \"a\"\n"));
        assert_ne!(v, version_of("[flow]\nentry = \"b\"\n"));
        // SHA-256 of the empty string begins e3b0c44298fc.
        assert_eq!(version_of(""), "e3b0c44298fc");
    }
}

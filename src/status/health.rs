//! Whether the data folder can be written: the records and saves writers report every
//! commit here, so a full or failing disk is logged once (not once per call), shown in
//! `/metrics` and `GET /health`, and callers are not asked to record into nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug)]
pub struct DiskHealth {
    ok: AtomicBool,
    failures: AtomicU64,
    /// The last failure, while the disk is failing.
    problem: Mutex<Option<String>>,
    /// Call records waiting to be written again.
    pending_records: AtomicU64,
}

impl Default for DiskHealth {
    fn default() -> Self {
        DiskHealth {
            ok: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            problem: Mutex::new(None),
            pending_records: AtomicU64::new(0),
        }
    }
}

impl DiskHealth {
    /// A write to the data folder failed: `what` could not be saved, for `why`.
    pub fn failed(&self, what: &str, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = Some(format!("{what}: {why}"));
        }
        if self.ok.swap(false, Ordering::Relaxed) {
            tracing::error!(
                what,
                "the data folder cannot be written ({why}): voicemail and callbacks are refused \
                 until it can, call records are kept and written again (logged once)"
            );
        }
    }

    /// A write to the data folder succeeded.
    pub fn succeeded(&self) {
        if !self.ok.swap(true, Ordering::Relaxed) {
            if let Ok(mut p) = self.problem.lock() {
                *p = None;
            }
            tracing::info!("the data folder can be written again");
        }
    }

    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the disk is failing, while it is.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    pub fn set_pending_records(&self, n: usize) {
        self.pending_records.store(n as u64, Ordering::Relaxed);
    }

    pub fn pending_records(&self) -> u64 {
        self.pending_records.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::DiskHealth;

    #[test]
    fn a_failure_is_kept_until_a_write_succeeds() {
        let h = DiskHealth::default();
        assert!(h.ok() && h.problem().is_none());
        h.failed("voicemail", "No space left on device");
        h.failed("call records", "disk full");
        assert!(!h.ok());
        assert_eq!(h.failures(), 2);
        assert_eq!(h.problem().as_deref(), Some("call records: disk full"));
        h.succeeded();
        assert!(h.ok() && h.problem().is_none());
        assert_eq!(h.failures(), 2, "the count is a counter");
    }
}

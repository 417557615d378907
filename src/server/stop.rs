//! Shutdown, as every task hears it: told once, each task finishes what it is doing (a
//! request being answered, a reload being checked, a purge under way) and returns, and is
//! awaited — none is cut off mid-way.

use tokio::sync::watch;

/// What the server holds to tell every task to stop.
pub struct StopAll(watch::Sender<bool>);

/// What a task holds to hear it.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

pub fn channel() -> (StopAll, Stop) {
    let (tx, rx) = watch::channel(false);
    (StopAll(tx), Stop(rx))
}

impl StopAll {
    pub fn now(&self) {
        let _ = self.0.send(true);
    }
}

impl Stop {
    /// Resolves once the stop is told (at once when it was already).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

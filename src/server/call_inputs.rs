//! A call task's inputs: a bounded queue that never loses how the call ends.
//!
//! Whoever tells a call task something (the signalling task, the media loop, the API) does so
//! without waiting, so nothing that drives many calls can be held up by one. A call whose
//! queue is full (its task stuck behind a slow save while its caller floods keys) loses the
//! surplus, logged and counted; never the news that ends it (the caller hung up, the shutdown,
//! the media gone, the agent hung up), which goes on a path of its own that holds at most one
//! of each, and is read after every input sent before it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use super::call::CallInput;

/// Inputs waiting for a call task at most (a key, a prompt's end, an agent's answer...).
pub const CAPACITY: usize = 256;

/// Where a call's inputs are sent; cloned by each sender.
#[derive(Clone, Debug)]
pub struct CallTx {
    inputs: mpsc::Sender<CallInput>,
    shared: Arc<Shared>,
}

/// Where the call task reads them.
#[derive(Debug)]
pub struct CallRx {
    inputs: mpsc::Receiver<CallInput>,
    shared: Arc<Shared>,
    received: u64,
    inputs_open: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// Inputs queued so far.
    sent: AtomicU64,
    /// Inputs lost to a full queue.
    lost: AtomicU64,
    ends: Mutex<Ends>,
    /// Wakes the call task when an end is told.
    wake: Notify,
}

/// The ends told, each with how many inputs were sent before it.
#[derive(Debug, Default)]
struct Ends {
    /// The kinds told (one bit each): each goes at most once.
    told: u8,
    queue: VecDeque<(CallInput, u64)>,
}

impl Shared {
    fn ends(&self) -> MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The input could not be queued: the call is gone, or its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDelivered;

pub fn channel() -> (CallTx, CallRx) {
    let (inputs_tx, inputs) = mpsc::channel(CAPACITY);
    let shared = Arc::new(Shared::default());
    (
        CallTx {
            inputs: inputs_tx,
            shared: Arc::clone(&shared),
        },
        CallRx {
            inputs,
            shared,
            received: 0,
            inputs_open: true,
        },
    )
}

/// The bit of an input that ends the call, `None` for any other.
fn end_bit(input: &CallInput) -> Option<u8> {
    match input {
        CallInput::Hangup => Some(1),
        CallInput::Shutdown => Some(2),
        CallInput::MediaTimeout => Some(4),
        CallInput::AgentHungUp => Some(8),
        _ => None,
    }
}

impl CallTx {
    /// Queues `input` for the call, without waiting.
    pub fn send(&self, input: CallInput) -> Result<(), NotDelivered> {
        if let Some(bit) = end_bit(&input) {
            if self.inputs.is_closed() {
                return Err(NotDelivered);
            }
            let mut ends = self.shared.ends();
            if ends.told & bit == 0 {
                ends.told |= bit;
                let after = self.shared.sent.load(Ordering::Acquire);
                ends.queue.push_back((input, after));
                drop(ends);
                self.shared.wake.notify_one();
            }
            return Ok(());
        }
        match self.inputs.try_send(input) {
            Ok(()) => {
                self.shared.sent.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(input)) => {
                let lost = self.shared.lost.fetch_add(1, Ordering::Relaxed) + 1;
                if lost == 1 || lost.is_power_of_two() {
                    tracing::warn!(
                        lost,
                        ?input,
                        "a call's inputs are full (its task is behind): input dropped"
                    );
                }
                Err(NotDelivered)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotDelivered),
        }
    }
}

impl CallRx {
    /// The next input: in the order sent, an end after every input sent before it; `None`
    /// once every sender is gone and all is read. Cancel-safe (used in `select!`): an end
    /// told while a dropped call waited is found by the next.
    pub async fn recv(&mut self) -> Option<CallInput> {
        loop {
            {
                let mut ends = self.shared.ends();
                let due = ends
                    .queue
                    .front()
                    .is_some_and(|(_, after)| *after <= self.received || !self.inputs_open);
                if due {
                    return ends.queue.pop_front().map(|(input, _)| input);
                }
            }
            if !self.inputs_open {
                return None;
            }
            tokio::select! {
                biased;
                input = self.inputs.recv() => match input {
                    Some(input) => {
                        self.received += 1;
                        return Some(input);
                    }
                    None => self.inputs_open = false,
                },
                () = self.shared.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::session::Heard;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_full_queue_drops_keys_but_never_the_hang_up_which_comes_after_what_was_sent_first() {
        let (tx, mut rx) = channel();
        for _ in 0..CAPACITY {
            assert_eq!(tx.send(CallInput::Heard(Heard::Digit('5'))), Ok(()));
        }
        assert_eq!(
            tx.send(CallInput::Heard(Heard::Digit('6'))),
            Err(NotDelivered),
            "full"
        );
        assert_eq!(tx.send(CallInput::Hangup), Ok(()), "an end always goes");
        rt().block_on(async {
            for _ in 0..CAPACITY {
                assert!(matches!(
                    rx.recv().await,
                    Some(CallInput::Heard(Heard::Digit('5')))
                ));
            }
            assert!(matches!(rx.recv().await, Some(CallInput::Hangup)));
        });
    }

    #[test]
    fn each_end_goes_once_and_in_order_with_the_inputs() {
        let (tx, mut rx) = channel();
        tx.send(CallInput::Heard(Heard::AgentAnswered {
            agent: "alice".into(),
            record: crate::config::RecordMode::Off,
        }))
        .expect("queued");
        tx.send(CallInput::AgentHungUp).expect("queued");
        tx.send(CallInput::AgentHungUp).expect("told already: fine");
        tx.send(CallInput::Heard(Heard::Digit('1')))
            .expect("queued");
        tx.send(CallInput::Hangup).expect("queued");
        drop(tx);
        rt().block_on(async {
            assert!(matches!(
                rx.recv().await,
                Some(CallInput::Heard(Heard::AgentAnswered { .. }))
            ));
            assert!(matches!(rx.recv().await, Some(CallInput::AgentHungUp)));
            assert!(matches!(
                rx.recv().await,
                Some(CallInput::Heard(Heard::Digit('1')))
            ));
            assert!(matches!(rx.recv().await, Some(CallInput::Hangup)));
            assert!(rx.recv().await.is_none(), "every sender gone, all read");
        });
    }

    #[test]
    fn a_call_task_gone_is_not_delivered_to() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(
            tx.send(CallInput::Heard(Heard::Digit('1'))),
            Err(NotDelivered)
        );
        assert_eq!(tx.send(CallInput::Hangup), Err(NotDelivered));
    }

    #[test]
    fn an_end_told_while_the_task_waits_wakes_it() {
        let (tx, mut rx) = channel();
        rt().block_on(async {
            let waiting = tokio::spawn(async move { rx.recv().await });
            tokio::task::yield_now().await;
            tx.send(CallInput::Shutdown).expect("told");
            let got = waiting.await.expect("the task ends");
            assert!(matches!(got, Some(CallInput::Shutdown)), "{got:?}");
        });
    }
}

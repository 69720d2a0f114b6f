//! A one-way flag that tasks can wait on: set once, never cleared. Used for "this
//! connection is draining" and "this connection's calls are cancelled", which every
//! stream of a connection may await from its context.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A flag set at most once; waiters wake when it is set. No allocation of its own, and
/// waiters queue inside tokio's `Notify` (one node per waiting future, held by that
/// future: the queue is bounded by the futures that exist).
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Sets the flag and wakes every waiter; later calls do nothing.
    pub(crate) fn set(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    /// Whether the flag is set.
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Completes once the flag is set (at once if it already is).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a set() between the check and the await
            // still wakes us.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_when_set_and_late_waiters_return_at_once() {
        let signal = Arc::new(Signal::default());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        signal.set();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), signal.wait())
            .await
            .expect("already set");
    }
}

//! The resident stream: one stream future per connection that, still pending after its
//! first poll, stays in the connection's task instead of being spawned.
//!
//! A spawned stream costs two task hops per message it answers: h2, in the connection
//! task, wakes the stream's task with the request; that task queues the reply and wakes
//! the connection task again to write it. A resident stream is polled by the connection
//! task itself, right after the read that woke it and before the writer hands h2 what
//! is queued, so a ping-pong message is read, answered and written in one wake-up of
//! one task (grpc-go spends a goroutine per stream and both hops; so do tonic and
//! hyper, whose stream task writes through h2's locks and wakes the connection task).
//!
//! One slot, not a set: the streams of a connection beyond the first waiting one run in
//! their own tasks as before, so a connection with many long calls still spreads them
//! over the runtime's threads. The resident is polled only when its own waker fired
//! (a flag, set by a waker that also wakes the connection task), and its polls are
//! timed like the inline first polls (`dispatch`): a resident poll that takes longer
//! than the inline limit moves it into its own task at once.
//!
//! ```text
//!   Empty --(first poll pending, slot free)--> Held { woken }
//!     ^                                          | woken: polled in the connection task
//!     |                                          |
//!     +---- Ready; one slow poll (moved out to its own task); the connection ends
//!           or trips the slow-poll state (moved out: the call ends as a spawned
//!           stream would) ---------------------------------------------------+
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use super::dispatch::StreamFuture;

/// The waker every poll of a resident (and of a first poll that may become one) runs
/// with: it marks the resident as woken and wakes the connection task.
struct ResidentWake {
    woken: AtomicBool,
    /// The connection task's waker: its `gate`'s, which does not change.
    conn: Waker,
}

impl Wake for ResidentWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the first wake since the last poll wakes the connection task (whose
        // gate holds the wake while the task runs).
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.conn.wake_by_ref();
        }
    }
}

/// The connection's resident slot (see the module doc).
pub(crate) struct Resident {
    wake: Arc<ResidentWake>,
    /// `wake` as a `Waker`, built once.
    waker: Waker,
    future: Option<StreamFuture>,
}

/// What polling a stream in the connection task came to.
pub(crate) enum Polled {
    /// Done, or moved into its own task.
    Gone,
    /// Pending and kept as the resident.
    Kept,
    /// Pending, and the slot is taken: the caller spawns it.
    Pending(StreamFuture),
}

impl Resident {
    /// A slot for the connection whose task polls with `cx` (its gate's waker, which
    /// does not change: the resident's waker wakes it).
    pub(crate) fn new(cx: &Context<'_>) -> Resident {
        let wake = Arc::new(ResidentWake {
            woken: AtomicBool::new(false),
            conn: cx.waker().clone(),
        });
        Resident {
            waker: Waker::from(wake.clone()),
            wake,
            future: None,
        }
    }

    /// Whether a stream is resident and its waker fired since its last poll.
    pub(crate) fn is_woken(&self) -> bool {
        self.future.is_some() && self.wake.woken.load(Ordering::Acquire)
    }

    /// Whether a stream is resident.
    pub(crate) fn is_held(&self) -> bool {
        self.future.is_some()
    }

    /// The first poll of a new stream, with the resident's waker while the slot is
    /// free (so that, pending, it can stay) and with the connection task's otherwise.
    pub(crate) fn poll_first(&mut self, mut stream: StreamFuture, cx: &mut Context<'_>) -> Polled {
        if self.future.is_some() {
            return match poll_caught(&mut stream, cx) {
                Some(Poll::Pending) => Polled::Pending(stream),
                _ => Polled::Gone,
            };
        }
        self.wake.woken.store(false, Ordering::Release);
        let mut own = Context::from_waker(&self.waker);
        match poll_caught(&mut stream, &mut own) {
            Some(Poll::Pending) => {
                self.future = Some(stream);
                Polled::Kept
            }
            _ => Polled::Gone,
        }
    }

    /// Polls the resident if its waker fired since its last poll. `Some(true)` when it
    /// was polled and is still resident, `Some(false)` when it was polled and ended,
    /// `None` when it was not polled.
    pub(crate) fn poll_woken(&mut self) -> Option<bool> {
        let stream = self.future.as_mut()?;
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut own = Context::from_waker(&self.waker);
        match poll_caught(stream, &mut own) {
            Some(Poll::Pending) => Some(true),
            _ => {
                self.future = None;
                Some(false)
            }
        }
    }

    /// Moves the resident into its own task (it computes for long, or the connection
    /// is ending and the call must end as a spawned one would: seeing its
    /// cancellation, not dropped mid-way). Outside a runtime it is dropped.
    pub(crate) fn move_out(&mut self) {
        if let Some(stream) = self.future.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                // The new task polls it at once and registers its own wakers.
                runtime.spawn(stream);
            }
        }
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        self.move_out();
    }
}

/// Polls `stream`; `None` if it panicked (outside the handler, whose own panics become
/// INTERNAL). A panicked future is dropped, never polled again, so AssertUnwindSafe
/// holds.
fn poll_caught(stream: &mut StreamFuture, cx: &mut Context<'_>) -> Option<Poll<()>> {
    catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll(cx))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::gate::tests::CountWake;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// A future that counts its polls and is ready at the `ready_at`-th.
    struct Counted {
        polls: Arc<AtomicUsize>,
        ready_at: usize,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Counted {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if n >= self.ready_at {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn counted(ready_at: usize) -> (StreamFuture, Arc<AtomicUsize>, Arc<Mutex<Option<Waker>>>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let waker = Arc::new(Mutex::new(None));
        let future = Box::pin(Counted {
            polls: polls.clone(),
            ready_at,
            waker: waker.clone(),
        });
        (future, polls, waker)
    }

    #[test]
    fn a_pending_first_poll_stays_and_is_polled_only_when_woken() {
        let conn = Arc::new(CountWake(AtomicUsize::new(0)));
        let conn_waker = Waker::from(conn.clone());
        let mut cx = Context::from_waker(&conn_waker);
        let mut slot = Resident::new(&cx);
        let (future, polls, waker) = counted(3);
        assert!(matches!(slot.poll_first(future, &mut cx), Polled::Kept));
        assert!(slot.is_held());
        assert_eq!(slot.poll_woken(), None, "not woken: not polled");
        assert_eq!(polls.load(Ordering::SeqCst), 1);

        // Woken twice before the connection task gets to it: one wake of that task,
        // one poll.
        let registered = waker.lock().unwrap().clone().unwrap();
        registered.wake_by_ref();
        registered.wake_by_ref();
        assert_eq!(conn.0.load(Ordering::SeqCst), 1);
        assert_eq!(slot.poll_woken(), Some(true));
        assert_eq!(polls.load(Ordering::SeqCst), 2);

        waker.lock().unwrap().clone().unwrap().wake();
        assert_eq!(slot.poll_woken(), Some(false), "ready at the third");
        assert!(!slot.is_held());
    }

    #[test]
    fn a_second_pending_stream_is_handed_back_while_the_slot_is_taken() {
        let conn_waker = Waker::noop();
        let mut cx = Context::from_waker(conn_waker);
        let mut slot = Resident::new(&cx);
        let (first, _, _) = counted(10);
        let (second, _, _) = counted(10);
        let (third, _, _) = counted(1);
        assert!(matches!(slot.poll_first(first, &mut cx), Polled::Kept));
        assert!(matches!(
            slot.poll_first(second, &mut cx),
            Polled::Pending(_)
        ));
        assert!(matches!(slot.poll_first(third, &mut cx), Polled::Gone));
    }

    #[test]
    fn a_panicking_resident_ends_only_itself() {
        let conn_waker = Waker::noop();
        let mut cx = Context::from_waker(conn_waker);
        let mut slot = Resident::new(&cx);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut first = true;
        let future: StreamFuture = Box::pin(std::future::poll_fn(move |cx| {
            if std::mem::take(&mut first) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let _ = &tx;
            panic!("outside the handler")
        }));
        assert!(matches!(slot.poll_first(future, &mut cx), Polled::Kept));
        assert_eq!(slot.poll_woken(), Some(false));
        assert!(!slot.is_held());
        assert!(rx.recv().is_err(), "the panicked future was dropped");
    }

    #[tokio::test]
    async fn a_resident_moved_out_runs_to_completion_in_its_own_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut cx = Context::from_waker(Waker::noop());
        let mut slot = Resident::new(&cx);
        let future: StreamFuture = Box::pin(async move {
            let _ = rx.await;
            let _ = done_tx.send(());
        });
        assert!(matches!(slot.poll_first(future, &mut cx), Polled::Kept));
        drop(slot);
        tx.send(()).unwrap();
        done_rx
            .await
            .expect("the moved-out stream ran to completion");
    }
}

//! The dispatch seam: how a connection runs the future that serves one stream.
//!
//! A stream's future is first polled inside the connection's task. A small unary call
//! (request already buffered, handler that does not wait) finishes in that one poll:
//! its reply joins the control buffer beside the others accepted in the same wake-up
//! and leaves with them in one flush, with no task spawned and no task hop. A future
//! that is still pending after the poll stays in the connection's task as its resident
//! stream if that slot is free (`resident`: one per connection, polled there when it is
//! woken, moved out at its first slow poll); otherwise it is spawned as its own task,
//! so handlers that wait (on I/O, timers, the client's next message) run in parallel on
//! a multi-threaded runtime, as grpc-go runs each stream in its own goroutine.
//!
//! What inline polling risks is a handler that computes for long before it returns:
//! it would hold up the connection's I/O. So the connection times each inline poll,
//! and after a second one that ran longer than [`INLINE_POLL_LIMIT`] within
//! [`SLOW_WINDOW`] polls it spawns the next [`SPAWN_AFTER_SLOW`] streams without polling
//! them first, then tries inline again. One slow poll alone is not enough: the clock
//! is wall time, and on a virtual machine whose host takes the CPU away (steal time;
//! 20% on the benchmark host) an ordinary 5 us poll now and then measures 100 us or
//! more. Tripping on each of those spawned about one call in six for no reason (the
//! spawned ones cost a task each and leave outside the batch); a handler that really
//! computes for long is slow on every call and trips at its second.
//!
//! Measured with h2load (8 connections x 50 streams, 10 B unary, server on one core):
//! see BENCHMARKS.md, "Optimizations made".
//!
//! ```text
//!                       slow poll (> INLINE_POLL_LIMIT)
//!   Inline { None } -----------------------------------> Inline { Some(0) }
//!     ^    ^                                              |   |  fast poll: n += 1
//!     |    +---------- n == SLOW_WINDOW ------------------+   |
//!     |                                                       | slow poll
//!     |                                                       v
//!     +-------------- left == 0 --------------- Spawn { left: SPAWN_AFTER_SLOW }
//!                                                 each stream: left -= 1
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use super::resident::{Polled, Resident};

/// An inline poll longer than this means the connection's handlers compute for long
/// before they wait; 100 us is about thirty small unary calls' worth of server work.
pub(crate) const INLINE_POLL_LIMIT: Duration = Duration::from_micros(100);
/// Streams spawned without an inline poll after a slow one, before inline polling is
/// tried again.
pub(crate) const SPAWN_AFTER_SLOW: u32 = 256;
/// Polls within which a second slow poll trips [`Dispatch::Spawn`]: a handler slow on
/// one call in this many or more is caught; a preempted poll now and then is not.
pub(crate) const SLOW_WINDOW: u32 = 32;

/// The future that serves one stream.
pub(crate) type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// Set while this thread polls a stream inside its connection's task.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the stream being polled runs inside its connection's task (a first poll
/// or the resident's): its writes can go to h2 at once, where the writer would make
/// them later in the same wake-up, with no other task contending for h2's lock. Only
/// a hint: h2's send calls are right from any task.
pub(crate) fn in_connection_task() -> bool {
    INLINE.with(Cell::get)
}

/// Runs `poll` with the thread marked as polling inside a connection's task.
fn inline<R>(poll: impl FnOnce() -> R) -> R {
    INLINE.with(|inline| inline.set(true));
    let _mark = InlinePoll;
    poll()
}

/// Clears the mark `inline` set when dropped.
struct InlinePoll;

impl Drop for InlinePoll {
    fn drop(&mut self) {
        // Also on a panic unwinding out of the poll (the stream's future catches its
        // own; this is for the connection's).
        INLINE.with(|inline| inline.set(false));
    }
}

/// How the next stream is dispatched (the state machine drawn in the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Poll each new stream once in the connection task; spawn it if still pending.
    /// `recent_slow`: polls since the last slow one, if that was within
    /// [`SLOW_WINDOW`].
    Inline { recent_slow: Option<u32> },
    /// Spawn each new stream at once, `left` more times, then go back to `Inline`.
    Spawn { left: u32 },
    /// Always spawn (the server was configured so).
    AlwaysSpawn,
}

impl Dispatch {
    /// The initial state for a connection.
    pub(crate) fn new(inline: bool) -> Dispatch {
        if inline {
            Dispatch::INLINE
        } else {
            Dispatch::AlwaysSpawn
        }
    }

    /// Runs `stream`: polls it once with `cx` (the connection task's context) or spawns
    /// it, as the state says. Pending after that poll, it stays as the connection's
    /// `resident` when that slot is free (see `resident`) and is spawned otherwise.
    pub(crate) fn run(
        &mut self,
        stream: StreamFuture,
        resident: &mut Option<Box<Resident>>,
        cx: &mut Context<'_>,
    ) {
        match *self {
            Dispatch::Inline { .. } => {}
            Dispatch::Spawn { left } => {
                *self = match left {
                    0 | 1 => Dispatch::INLINE,
                    n => Dispatch::Spawn { left: n - 1 },
                };
                tokio::spawn(stream);
                return;
            }
            Dispatch::AlwaysSpawn => {
                tokio::spawn(stream);
                return;
            }
        }
        let slot = resident.get_or_insert_with(|| Box::new(Resident::new(cx)));
        let started = Instant::now();
        let polled = inline(|| slot.poll_first(stream, cx));
        self.after_inline_poll(started.elapsed());
        if let Polled::Pending(stream) = polled {
            // Wakers registered during the poll point at the connection task; the new
            // task polls the future at once and registers its own.
            tokio::spawn(stream);
        }
        self.after_resident_poll(slot);
    }

    /// Polls the resident stream, if its waker fired, timed like a first poll. One
    /// slow poll moves it into its own task at once: it is the one stream that would
    /// hold up the connection again and again (a first poll does so once).
    pub(crate) fn poll_resident(&mut self, resident: &mut Option<Box<Resident>>) {
        let Some(slot) = resident else {
            return;
        };
        if !slot.is_woken() {
            return;
        }
        let started = Instant::now();
        if inline(|| slot.poll_woken()).is_some() {
            let took = started.elapsed();
            self.after_inline_poll(took);
            if took > INLINE_POLL_LIMIT {
                slot.move_out();
            } else {
                self.after_resident_poll(slot);
            }
        }
    }

    /// A connection whose polls tripped [`Dispatch::Spawn`] computes for long in its
    /// handlers: its resident, if one is left, moves into its own task too.
    fn after_resident_poll(&self, slot: &mut Resident) {
        if matches!(self, Dispatch::Spawn { .. }) && slot.is_held() {
            slot.move_out();
        }
    }

    /// Inline with no slow poll in the window.
    const INLINE: Dispatch = Dispatch::Inline { recent_slow: None };

    /// The transition after an inline poll that took `took`.
    fn after_inline_poll(&mut self, took: Duration) {
        let Dispatch::Inline { recent_slow } = *self else {
            return;
        };
        *self = match (took > INLINE_POLL_LIMIT, recent_slow) {
            (true, Some(_)) => Dispatch::Spawn {
                left: SPAWN_AFTER_SLOW,
            },
            (true, None) => Dispatch::Inline {
                recent_slow: Some(0),
            },
            (false, Some(n)) if n + 1 < SLOW_WINDOW => Dispatch::Inline {
                recent_slow: Some(n + 1),
            },
            (false, _) => Dispatch::INLINE,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_slow_inline_poll_spawns_the_next_streams() {
        let mut d = Dispatch::new(true);
        d.after_inline_poll(Duration::from_micros(5));
        assert_eq!(d, Dispatch::INLINE);
        d.after_inline_poll(INLINE_POLL_LIMIT * 2);
        assert_eq!(
            d,
            Dispatch::Inline {
                recent_slow: Some(0)
            },
            "one slow poll (a preempted one, say) is not enough"
        );
        d.after_inline_poll(Duration::from_micros(5));
        d.after_inline_poll(INLINE_POLL_LIMIT * 2);
        assert_eq!(
            d,
            Dispatch::Spawn {
                left: SPAWN_AFTER_SLOW
            }
        );
    }

    #[test]
    fn slow_polls_further_apart_than_the_window_stay_inline() {
        let mut d = Dispatch::new(true);
        for _ in 0..3 {
            d.after_inline_poll(INLINE_POLL_LIMIT * 2);
            for _ in 0..SLOW_WINDOW {
                d.after_inline_poll(Duration::from_micros(5));
            }
            assert_eq!(d, Dispatch::INLINE);
        }
    }

    #[tokio::test]
    async fn only_polls_inside_the_connection_task_count_as_inline() {
        use std::sync::{Arc, Mutex};
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut slot = None;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stream = |seen: Arc<Mutex<Vec<bool>>>,
                      wait: Option<tokio::sync::oneshot::Receiver<()>>|
         -> StreamFuture {
            Box::pin(async move {
                seen.lock().unwrap().push(in_connection_task());
                if let Some(wait) = wait {
                    let _ = wait.await;
                    seen.lock().unwrap().push(in_connection_task());
                }
            })
        };
        let mut d = Dispatch::new(true);
        // A first poll, then the resident's poll when woken: both inside.
        let (tx, rx) = tokio::sync::oneshot::channel();
        d.run(stream(seen.clone(), Some(rx)), &mut slot, &mut cx);
        assert!(!in_connection_task(), "cleared after the poll");
        let _ = tx.send(());
        d.poll_resident(&mut slot);
        // A spawned stream runs in a task of its own: outside.
        let mut spawning = Dispatch::new(false);
        spawning.run(stream(seen.clone(), None), &mut slot, &mut cx);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(*seen.lock().unwrap(), [true, true, false]);
    }

    #[tokio::test]
    async fn states_step_back_to_inline_after_the_spawned_streams() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut slot = None;
        let mut d = Dispatch::Spawn { left: 2 };
        d.run(Box::pin(async {}), &mut slot, &mut cx);
        assert_eq!(d, Dispatch::Spawn { left: 1 });
        d.run(Box::pin(async {}), &mut slot, &mut cx);
        assert_eq!(d, Dispatch::INLINE);
        let mut always = Dispatch::new(false);
        always.run(Box::pin(async {}), &mut slot, &mut cx);
        assert_eq!(always, Dispatch::AlwaysSpawn);
    }

    #[tokio::test]
    async fn a_pending_stream_stays_resident_and_the_next_one_is_spawned() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut slot = None;
        let mut d = Dispatch::new(true);
        let (resident_tx, resident_rx) = tokio::sync::oneshot::channel::<()>();
        d.run(
            Box::pin(async move {
                let _ = resident_rx.await;
            }),
            &mut slot,
            &mut cx,
        );
        assert!(
            slot.as_ref().is_some_and(|s| s.is_held()),
            "kept in the slot"
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        d.run(
            Box::pin(async move {
                let _ = rx.await;
                let _ = done_tx.send(());
            }),
            &mut slot,
            &mut cx,
        );
        // Pending after the inline poll, slot taken: the spawned task finishes it once
        // woken.
        tx.send(()).unwrap();
        done_rx.await.expect("the spawned stream ran to completion");
        resident_tx.send(()).unwrap();
        d.poll_resident(&mut slot);
        assert!(
            slot.as_ref().is_some_and(|s| !s.is_held()),
            "the resident ended"
        );
    }

    #[tokio::test]
    async fn a_slow_resident_poll_moves_it_into_its_own_task() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut slot = None;
        let mut d = Dispatch::new(true);
        let (step_tx, mut step_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        d.run(
            Box::pin(async move {
                // Computes for long after its first message, then waits for another.
                step_rx.recv().await;
                std::thread::sleep(INLINE_POLL_LIMIT * 3);
                step_rx.recv().await;
                let _ = done_tx.send(());
            }),
            &mut slot,
            &mut cx,
        );
        assert!(slot.as_ref().is_some_and(|s| s.is_held()));
        step_tx.send(()).unwrap();
        d.poll_resident(&mut slot);
        assert!(
            slot.as_ref().is_some_and(|s| !s.is_held()),
            "one slow poll moved it out"
        );
        // Its own task finishes it.
        step_tx.send(()).unwrap();
        done_rx
            .await
            .expect("the moved-out stream ran to completion");
    }

    #[tokio::test]
    async fn a_panicking_stream_future_does_not_unwind_into_the_connection() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut slot = None;
        let mut d = Dispatch::new(true);
        d.run(
            Box::pin(async { panic!("outside the handler") }),
            &mut slot,
            &mut cx,
        );
        // We got here, and the next stream is still served.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        d.run(
            Box::pin(async move {
                let _ = tx.send(());
            }),
            &mut slot,
            &mut cx,
        );
        rx.await.expect("the stream after the panic ran");
    }
}

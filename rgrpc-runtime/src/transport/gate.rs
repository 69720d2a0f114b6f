//! The waker gate of a connection task, either side: wakes that arrive while the task
//! is running, from work it will look at before it sleeps, do not make tokio poll it
//! once more for nothing.
//!
//! The connection task wakes itself all the time: every reply or request it hands h2
//! makes h2 wake the connection's task (h2 expects the handles to live in other
//! tasks), every reply an inline or resident call queues wakes the writer, every read
//! that completes a resident call's message wakes that call. Each of those sets
//! tokio's "notified" bit while the task runs, and tokio polls the task again right
//! after: one whole poll of the driver and h2 per wake-up, doing nothing. In c=1
//! ping-pong that was 2.9 driver polls per message on each side (BENCHMARKS.md,
//! sessions 23 and 26).
//!
//! While the task runs (between [`Gate::begin`] and [`Gate::end`]) a wake through the
//! gate's waker only marks the gate; asleep, it wakes the task. The mark is cleared
//! just before a poll of h2 ([`Gate::rearm`]), because that poll picks up all that h2
//! woke for; whatever is polled with the gate's waker after that is polled after the
//! rearm too. So a mark left at `end` is a wake that came after everything it could
//! be for was polled, and only then is the task woken again.
//!
//! - Server (`server::Driver`): everything is polled with the gate's waker; each round
//!   rearms before its h2 poll, then polls the resident and the writer after it.
//! - Client (`client::Driver`): only h2 is; the writer is polled first, with the
//!   task's own waker, so a caller's request queued after the writer's poll wakes the
//!   task past the gate and is never lost.
//!
//! ```text
//!   asleep --begin--> awake (mark cleared) --rearm: mark cleared, h2 polled--> awake
//!     ^                  | wake: marked                                       |
//!     |                  v                                                    |
//!     +---end: marked? wake the task once more----------------------------------+
//!   asleep: a wake wakes the task
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

struct GateWake {
    /// The task is between `begin` and `end`.
    awake: AtomicBool,
    /// A wake came while awake, since the last `rearm`.
    marked: AtomicBool,
    /// The task's own waker, refreshed at `begin` when it changes.
    task: Mutex<Waker>,
}

impl GateWake {
    fn task(&self) -> std::sync::MutexGuard<'_, Waker> {
        // Replacing or waking a waker cannot leave it half-written.
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Wake for GateWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst both ways: a wake stores `marked` then loads `awake`; `end` stores
        // `awake` then loads `marked`; so at least one of them sees the other's store
        // and the wake is not lost.
        self.marked.store(true, Ordering::SeqCst);
        if !self.awake.load(Ordering::SeqCst) {
            self.task().wake_by_ref();
        }
    }
}

/// One connection task's gate (see the module doc).
pub(crate) struct Gate {
    wake: Arc<GateWake>,
    /// `wake` as a `Waker`, built once: what the driver polls with.
    waker: Waker,
    /// The task waker `wake` holds, kept here too so that `begin` compares without
    /// taking the lock (it rarely changes: a task keeps its waker).
    task: Waker,
}

impl Gate {
    /// A gate for the task that polls with `cx`.
    pub(crate) fn new(cx: &Context<'_>) -> Gate {
        let wake = Arc::new(GateWake {
            awake: AtomicBool::new(false),
            marked: AtomicBool::new(false),
            task: Mutex::new(cx.waker().clone()),
        });
        Gate {
            waker: Waker::from(wake.clone()),
            wake,
            task: cx.waker().clone(),
        }
    }

    /// One wake-up of the task whose context is `cx`: `poll` runs between
    /// [`Gate::begin`] and [`Gate::end`], with the gate made at the first wake-up from
    /// the task's context and kept in `slot`.
    pub(crate) fn awake<R>(
        slot: &mut Option<Gate>,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>, &Gate) -> R,
    ) -> R {
        let gate = slot.get_or_insert_with(|| Gate::new(cx));
        gate.begin(cx);
        let polled = poll(cx, gate);
        gate.end(cx);
        polled
    }

    /// The task has woken (its context is `cx`); poll with [`Gate::waker`] from here.
    pub(crate) fn begin(&mut self, cx: &Context<'_>) {
        if !self.task.will_wake(cx.waker()) {
            self.task = cx.waker().clone();
            *self.wake.task() = cx.waker().clone();
        }
        self.wake.marked.store(false, Ordering::SeqCst);
        self.wake.awake.store(true, Ordering::SeqCst);
    }

    /// The gate's waker: what the task polls with between `begin` and `end`.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// h2 is about to be polled: it will see what it was woken for.
    pub(crate) fn rearm(&self) {
        self.wake.marked.store(false, Ordering::SeqCst);
    }

    /// The task is about to sleep: a wake since the last `rearm` wakes it once more.
    pub(crate) fn end(&self, cx: &Context<'_>) {
        self.wake.awake.store(false, Ordering::SeqCst);
        if self.wake.marked.swap(false, Ordering::SeqCst) {
            cx.waker().wake_by_ref();
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wakes (also `resident`'s tests).
    pub(crate) struct CountWake(pub(crate) AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_while_awake_are_held_until_the_end_and_cleared_by_rearm() {
        let count = Arc::new(CountWake(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let cx = Context::from_waker(&task);
        let wakes = || count.0.load(Ordering::SeqCst);
        let mut gate = Gate::new(&cx);

        // Asleep: a wake goes through.
        gate.waker.wake_by_ref();
        assert_eq!(wakes(), 1);

        // Awake: held; a rearm (h2 polled after it) clears it; none left at the end.
        gate.begin(&cx);
        let gated = gate.waker().clone();
        gated.wake_by_ref();
        assert_eq!(wakes(), 1);
        gate.rearm();
        gate.end(&cx);
        assert_eq!(wakes(), 1);

        // Awake: a wake after the last rearm wakes the task at the end, once.
        gate.begin(&cx);
        let gated = gate.waker().clone();
        gate.rearm();
        gated.wake_by_ref();
        gated.wake_by_ref();
        assert_eq!(wakes(), 1);
        gate.end(&cx);
        assert_eq!(wakes(), 2);

        // Asleep again: straight through.
        gated.wake();
        assert_eq!(wakes(), 3);
    }

    #[test]
    fn a_new_task_waker_replaces_the_old_one() {
        let first = Arc::new(CountWake(AtomicUsize::new(0)));
        let second = Arc::new(CountWake(AtomicUsize::new(0)));
        let first_waker = Waker::from(first.clone());
        let second_waker = Waker::from(second.clone());
        let mut gate = Gate::new(&Context::from_waker(&first_waker));
        let cx = Context::from_waker(&second_waker);
        gate.begin(&cx);
        gate.end(&cx);
        gate.waker.wake_by_ref();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}

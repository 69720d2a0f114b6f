//! Giving memory back after connections close.
//!
//! glibc's allocator keeps the memory of freed connections (h2 state, buffers, handler
//! tasks) in its per-thread arenas instead of returning it to the system: measured in
//! tests/hostile.rs, 2000 connections and 5000 abandoned streams left about 49 MiB of
//! RSS behind after all of them had closed, and `malloc_trim(0)` brought it back to
//! within 1 MiB of the start. So once a burst of closes is over (no connection has
//! closed for [`QUIET`]), the server asks glibc to return its free memory, on a
//! blocking thread so no connection waits for it. Steady churn never trims (the memory
//! is reused as it is freed), nor do a few sporadic closes (a burst is at least
//! [`MIN_BURST`] closes since the last trim), and trims are at least [`MIN_INTERVAL`]
//! apart: `malloc_trim` walks every arena under its lock, so allocations elsewhere may
//! wait for it while it runs. No call pays anything (one atomic add per closed
//! connection). Elsewhere than glibc this is a no-op: other allocators (musl, mimalloc,
//! jemalloc) return memory on their own terms.
//!
//! ```text
//!  Idle ──connection closed──▶ Waiting ──QUIET without a close──▶ trim ──▶ Idle
//!                               │  ▲                     │ fewer than MIN_BURST
//!                               └──┘ another close:      │ closes since the last
//!                                    wait QUIET again    ▼ trim: no trim, Idle
//!  (a trim within MIN_INTERVAL of the last one waits for the rest of it first)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long closes must have stopped before trimming.
const QUIET: Duration = Duration::from_secs(1);
/// Closes since the last trim that make a burst worth trimming after: a health probe's
/// connection every few seconds frees little and should not trim each time.
const MIN_BURST: u64 = 64;
/// The least time between two trims.
const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Shared by a server's accept loop; cheap to call on every closed connection.
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    /// Connections closed so far; the waiting task compares it across QUIET.
    closes: AtomicU64,
    /// A task is waiting (state Waiting); at most one per server.
    waiting: AtomicBool,
    /// `closes` at the last trim, and when it ran; only the waiting task uses it.
    last_trim: Mutex<Option<(u64, Instant)>>,
    /// Trims started (read by the tests).
    trims: AtomicU64,
}

impl Trimmer {
    /// A connection has closed: trim once the closes stop.
    pub(crate) fn connection_closed(self: &Arc<Self>) {
        self.closes.fetch_add(1, Ordering::Relaxed);
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return;
        }
        if self.waiting.swap(true, Ordering::AcqRel) {
            return;
        }
        let trimmer = self.clone();
        tokio::spawn(async move {
            loop {
                let seen = trimmer.closes.load(Ordering::Relaxed);
                tokio::time::sleep(QUIET).await;
                if trimmer.closes.load(Ordering::Relaxed) == seen {
                    break;
                }
            }
            let closes = trimmer.closes.load(Ordering::Relaxed);
            let last = *trimmer.last_trim.lock().unwrap_or_else(|e| e.into_inner());
            let (closes_then, at) = last.unzip();
            if closes - closes_then.unwrap_or(0) >= MIN_BURST {
                if let Some(at) = at {
                    tokio::time::sleep_until(at + MIN_INTERVAL).await;
                }
                *trimmer.last_trim.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((closes, Instant::now()));
                trimmer.trims.fetch_add(1, Ordering::Relaxed);
                trimmer.waiting.store(false, Ordering::Release);
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            } else {
                trimmer.waiting.store(false, Ordering::Release);
            }
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it takes glibc's arena locks itself
    // and only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    async fn settle() {
        tokio::time::sleep(QUIET * 3).await;
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_burst_trims_and_trims_are_spaced() {
        let trimmer = Arc::new(Trimmer::default());
        let trims = || trimmer.trims.load(Ordering::Relaxed);
        // A few sporadic closes: no trim.
        for _ in 0..MIN_BURST - 1 {
            trimmer.connection_closed();
        }
        settle().await;
        assert_eq!(trims(), 0);
        // They count towards the next burst: one more close makes it.
        trimmer.connection_closed();
        settle().await;
        assert_eq!(trims(), 1);
        // A second burst right after waits for MIN_INTERVAL.
        let began = Instant::now();
        for _ in 0..MIN_BURST {
            trimmer.connection_closed();
        }
        settle().await;
        assert_eq!(trims(), 1);
        tokio::time::sleep(MIN_INTERVAL).await;
        assert_eq!(trims(), 2);
        assert!(began.elapsed() >= MIN_INTERVAL - QUIET * 3);
    }
}

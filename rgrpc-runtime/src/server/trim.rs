//! Giving memory back after connections close.
//!
//! glibc's allocator keeps the memory of freed connections (h2 state, buffers, handler
//! tasks) in its per-thread arenas instead of returning it to the system: measured in
//! tests/hostile.rs, 2000 connections and 5000 abandoned streams left about 49 MiB of
//! RSS behind after all of them had closed, and `malloc_trim(0)` brought it back to
//! within 1 MiB of the start. So once a burst of closes is over (no connection has
//! closed for [`QUIET`]), the server asks glibc to return its free memory, on a
//! blocking thread so no connection waits for it. Steady churn never trims (the memory
//! is reused as it is freed); no call pays anything (one atomic add per closed
//! connection). Elsewhere than glibc this is a no-op: other allocators (musl, mimalloc,
//! jemalloc) return memory on their own terms.
//!
//! ```text
//!  Idle ──connection closed──▶ Waiting ──QUIET without a close──▶ trim ──▶ Idle
//!                               │  ▲
//!                               └──┘ another close: wait QUIET again
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long closes must have stopped before trimming.
const QUIET: Duration = Duration::from_secs(1);

/// Shared by a server's accept loop; cheap to call on every closed connection.
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    /// Connections closed so far; the waiting task compares it across QUIET.
    closes: AtomicU64,
    /// A task is waiting (state Waiting); at most one per server.
    waiting: AtomicBool,
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
            trimmer.waiting.store(false, Ordering::Release);
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
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

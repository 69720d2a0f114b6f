//! The replay buffer's accounting (gRFC A6 "Memory Management (Buffering)"): what a
//! call keeps of its sent messages so that another attempt can send them again is
//! bounded per call (`per_rpc_buffer_limit_in_bytes`, default 256 KiB) and per channel
//! (`retry_buffer_size_in_bytes`, default 16 MiB). A message that would pass either
//! bound commits the call to its current attempt: what it kept is released, nothing
//! more is kept, and no further attempt is made. Memory never grows past the two
//! bounds, whatever the number of calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A6's suggested per-call limit.
pub(crate) const DEFAULT_PER_CALL_BYTES: usize = 256 * 1024;
/// A6's suggested channel-wide limit.
pub(crate) const DEFAULT_PER_CHANNEL_BYTES: usize = 16 * 1024 * 1024;

/// One channel's budget, shared by its calls.
#[derive(Debug)]
pub(crate) struct ChannelBudget {
    used: AtomicUsize,
    limit: usize,
    per_call: usize,
}

impl ChannelBudget {
    pub(crate) fn new(per_call: usize, limit: usize) -> Arc<ChannelBudget> {
        Arc::new(ChannelBudget {
            used: AtomicUsize::new(0),
            limit,
            per_call,
        })
    }

    /// Bytes kept by all calls now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// One call's share: released when the call commits or ends (on drop).
#[derive(Debug)]
pub(crate) struct CallBudget {
    channel: Arc<ChannelBudget>,
    kept: usize,
    committed: bool,
}

impl CallBudget {
    pub(crate) fn new(channel: Arc<ChannelBudget>) -> CallBudget {
        CallBudget {
            channel,
            kept: 0,
            committed: false,
        }
    }

    /// Accounts `bytes` more to keep; `false` (and the call is committed, its share
    /// released) when that would pass the call's or the channel's bound.
    pub(crate) fn keep(&mut self, bytes: usize) -> bool {
        if self.committed {
            return false;
        }
        let fits_call = self.kept + bytes <= self.channel.per_call;
        let fits_channel = fits_call
            && self
                .channel
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    (used + bytes <= self.channel.limit).then_some(used + bytes)
                })
                .is_ok();
        if fits_channel {
            self.kept += bytes;
            return true;
        }
        self.commit();
        false
    }

    /// No more attempts: release what was kept.
    pub(crate) fn commit(&mut self) {
        if !self.committed {
            self.committed = true;
            self.channel.used.fetch_sub(self.kept, Ordering::AcqRel);
            self.kept = 0;
        }
    }

    /// Whether the call has committed to its current attempt.
    pub(crate) fn is_committed(&self) -> bool {
        self.committed
    }
}

impl Drop for CallBudget {
    fn drop(&mut self) {
        self.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_past_its_own_bound_commits_and_releases_what_it_kept() {
        let channel = ChannelBudget::new(100, 1000);
        let mut call = CallBudget::new(channel.clone());
        assert!(call.keep(60));
        assert!(call.keep(40));
        assert_eq!(channel.used(), 100);
        assert!(!call.keep(1));
        assert!(call.is_committed());
        assert_eq!(channel.used(), 0);
        // Committed stays committed.
        assert!(!call.keep(0));
    }

    #[test]
    fn the_channel_bound_is_shared_and_comes_back_when_calls_end() {
        let channel = ChannelBudget::new(100, 150);
        let mut a = CallBudget::new(channel.clone());
        let mut b = CallBudget::new(channel.clone());
        assert!(a.keep(100));
        assert!(!b.keep(60), "past the channel's 150");
        assert!(b.is_committed());
        assert_eq!(channel.used(), 100);
        drop(a);
        assert_eq!(channel.used(), 0);
        let mut c = CallBudget::new(channel.clone());
        assert!(c.keep(100));
        assert_eq!(channel.used(), 100);
    }
}

//! Retry throttling per channel (gRFC A6 "Throttling Retry Attempts and Hedged RPCs"):
//! a token count that starts at `maxTokens`, loses 1 for every call that fails with a
//! retryable (or non-fatal) status or a pushback that says stop, gains `tokenRatio`
//! for every call that succeeds, and allows retries and hedges only while it is above
//! `maxTokens / 2`. So a failing backend is not stormed: once about half the budget
//! is gone, calls fail at their first attempt until successes refill it.
//!
//! Lock-free: the count is kept in thousandths (A6 supports three decimal places of
//! `tokenRatio`) in one atomic.

use std::sync::atomic::{AtomicU32, Ordering};

use super::policy::ThrottlingConfig;

/// One channel's throttle.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// Tokens in thousandths, 0..=max.
    tokens: AtomicU32,
    /// `maxTokens` in thousandths.
    max: u32,
    /// `tokenRatio` in thousandths.
    ratio: u32,
}

impl Throttle {
    pub(crate) fn new(config: ThrottlingConfig) -> Throttle {
        let max = config.max_tokens * 1000;
        Throttle {
            tokens: AtomicU32::new(max),
            max,
            ratio: config.token_ratio_milli,
        }
    }

    /// Whether a retry or a further hedge may be sent now: tokens above half the maximum.
    pub(crate) fn allows_retry(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.max / 2
    }

    /// A call failed in a way that counts (retryable or non-fatal status, or a
    /// pushback that says stop): one token less, not below zero.
    pub(crate) fn failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// A call succeeded: `tokenRatio` more, not above the maximum.
    pub(crate) fn success(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(self.ratio).min(self.max))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max_tokens: u32, ratio_milli: u32) -> Throttle {
        Throttle::new(ThrottlingConfig {
            max_tokens,
            token_ratio_milli: ratio_milli,
        })
    }

    #[test]
    fn a_huge_ratio_fills_the_bucket_without_overflowing() {
        // tokenRatio 1e9 parses to u32::MAX thousandths.
        let t = throttle(10, u32::MAX);
        t.failure();
        t.success();
        t.success();
        assert!(t.allows_retry());
    }

    #[test]
    fn retries_stop_at_half_the_tokens_and_resume_on_successes() {
        // A6's example: maxTokens 10, tokenRatio 0.1.
        let t = throttle(10, 100);
        for _ in 0..4 {
            t.failure();
            assert!(t.allows_retry());
        }
        // 10 - 5 = 5: "less than or equal to the threshold" stops retries.
        t.failure();
        assert!(!t.allows_retry());
        // 5 + 0.1 > 5: retries again.
        t.success();
        assert!(t.allows_retry());
    }

    #[test]
    fn the_count_stays_between_zero_and_the_maximum() {
        let t = throttle(3, 500);
        for _ in 0..100 {
            t.failure();
        }
        assert_eq!(t.tokens.load(Ordering::Relaxed), 0);
        // 0 -> 1.5 is still not above 1.5; one more success is.
        for _ in 0..3 {
            t.success();
        }
        assert!(!t.allows_retry());
        t.success();
        assert!(t.allows_retry());
        for _ in 0..100 {
            t.success();
        }
        assert_eq!(t.tokens.load(Ordering::Relaxed), 3000);
    }
}

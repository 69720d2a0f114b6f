//! Reconnect backoff, as grpc's `doc/connection-backoff.md` specifies it: pure, with the
//! randomness passed in so the bounds are unit-tested.
//!
//! ```text
//! ConnectWithBackoff()
//!   current_backoff = INITIAL_BACKOFF
//!   current_deadline = now() + INITIAL_BACKOFF
//!   while (TryConnect(Max(current_deadline, now() + MIN_CONNECT_TIMEOUT)) != SUCCESS)
//!     SleepUntil(current_deadline)
//!     current_backoff = Min(current_backoff * MULTIPLIER, MAX_BACKOFF)
//!     current_deadline = now() + current_backoff + UniformRandom(-JITTER * current_backoff, JITTER * current_backoff)
//! ```

use std::time::Duration;

/// The backoff parameters (connection-backoff.md's constants are the defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BackoffConfig {
    /// INITIAL_BACKOFF: 1 second.
    pub initial: Duration,
    /// MULTIPLIER: 1.6.
    pub multiplier: f64,
    /// JITTER: 0.2.
    pub jitter: f64,
    /// MAX_BACKOFF: 120 seconds.
    pub max: Duration,
    /// MIN_CONNECT_TIMEOUT: 20 seconds.
    pub min_connect_timeout: Duration,
}

impl Default for BackoffConfig {
    fn default() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
            min_connect_timeout: Duration::from_secs(20),
        }
    }
}

/// The backoff of one subchannel: how long to wait after each failed attempt.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    /// The un-jittered backoff of the next wait; `None` before the first failure.
    current: Option<Duration>,
}

impl Backoff {
    /// A fresh backoff (the next failure waits about INITIAL_BACKOFF).
    pub(crate) fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            config,
            current: None,
        }
    }

    /// A connection succeeded: start over.
    pub(crate) fn reset(&mut self) {
        self.current = None;
    }

    /// How long one connection attempt may take: at least MIN_CONNECT_TIMEOUT, and
    /// at least the current backoff.
    pub(crate) fn connect_timeout(&self) -> Duration {
        let current = self.current.unwrap_or(self.config.initial);
        current.max(self.config.min_connect_timeout)
    }

    /// The wait after a failed attempt; `unit` is uniform in [0, 1) (the jitter).
    pub(crate) fn next_delay(&mut self, unit: f64) -> Duration {
        let backoff = match self.current {
            None => self.config.initial,
            Some(current) => current.mul_f64(self.config.multiplier).min(self.config.max),
        };
        self.current = Some(backoff);
        let spread = (unit.clamp(0.0, 1.0) * 2.0 - 1.0) * self.config.jitter;
        backoff.mul_f64((1.0 + spread).max(0.0))
    }
}

/// A uniform value in [0, 1) from the standard library's per-process random keys (no
/// dependency; jitter needs spread, not cryptographic quality).
pub(crate) fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_multiplier_within_the_jitter_up_to_the_max() {
        let mut b = Backoff::new(BackoffConfig::default());
        let mut expected = 1.0f64;
        for attempt in 0..20 {
            for unit in [0.0, 0.5, 0.999] {
                let mut probe = b.clone();
                let d = probe.next_delay(unit).as_secs_f64();
                assert!(
                    d >= expected * 0.8 - 1e-9 && d <= expected * 1.2 + 1e-9,
                    "attempt {attempt}: {d} not within 20% of {expected}"
                );
            }
            let mid = b.next_delay(0.5).as_secs_f64();
            assert!((mid - expected).abs() < 1e-6, "{mid} vs {expected}");
            expected = (expected * 1.6).min(120.0);
        }
        // Capped: 120 s +-20%.
        assert!(b.next_delay(0.999) <= Duration::from_secs(144));
    }

    #[test]
    fn a_success_starts_over_and_the_connect_timeout_is_at_least_twenty_seconds() {
        let mut b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.connect_timeout(), Duration::from_secs(20));
        for _ in 0..15 {
            b.next_delay(0.5);
        }
        assert_eq!(b.connect_timeout(), Duration::from_secs(120));
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let values: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.iter().any(|v| (v - values[0]).abs() > 1e-9));
    }
}

//! Retry policy: exponential backoff with full jitter.
//!
//! The delay before retry `n` (1-based) is `u * min(max_delay, initial * 2^(n-1))` with `u` drawn
//! uniformly from `[0, 1)` ("full jitter"), so many init containers that fail together do not retry
//! together. The jitter source is injected, so tests fix it and check the delays without sleeping.

use std::sync::Arc;
use std::time::Duration;

/// A source of uniform numbers in `[0, 1)`.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The process-wide random jitter.
pub fn random_jitter() -> Jitter {
    Arc::new(rand::random::<f64>)
}

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The upper bound of the first delay.
    pub initial: Duration,
    /// The upper bound of every delay.
    pub max_delay: Duration,
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry), for a jitter draw `u`.
    pub fn delay(&self, retry: u32, u: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let ceiling = self
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        ceiling.mul_f64(u.clamp(0.0, 1.0))
    }
}

/// The retry state of one operation.
pub struct Backoff {
    policy: RetryPolicy,
    jitter: Jitter,
    attempts: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy, jitter: Jitter) -> Self {
        Self {
            policy,
            jitter,
            attempts: 0,
        }
    }

    /// Records the start of an attempt.
    pub fn start_attempt(&mut self) {
        self.attempts += 1;
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a transient failure: how long to wait before the next attempt, or `None` when the
    /// attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        Some(self.policy.delay(self.attempts, (self.jitter)()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_attempts: 4,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = policy();
        let full: Vec<_> = (1..=5).map(|n| p.delay(n, 1.0)).collect();
        assert_eq!(
            full,
            [10, 20, 40, 50, 50].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn full_jitter_scales_the_whole_delay() {
        let p = policy();
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(20));
        assert_eq!(p.delay(1, 0.25), Duration::from_micros(2500));
        // Out-of-range draws are clamped, never longer than the ceiling.
        assert_eq!(p.delay(2, 7.0), Duration::from_millis(20));
    }

    #[test]
    fn huge_retry_numbers_do_not_overflow() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(u32::MAX, 1.0), p.max_delay);
    }

    #[test]
    fn backoff_stops_after_max_attempts_and_uses_the_injected_jitter() {
        let draws = std::sync::Mutex::new(vec![0.5, 1.0, 0.1]);
        let jitter: Jitter = Arc::new(move || draws.lock().map(|mut d| d.remove(0)).unwrap_or(0.0));
        let mut b = Backoff::new(policy(), jitter);
        let mut delays = Vec::new();
        loop {
            b.start_attempt();
            match b.next_delay() {
                Some(d) => delays.push(d),
                None => break,
            }
        }
        assert_eq!(b.attempts(), 4);
        assert_eq!(
            delays,
            vec![
                Duration::from_millis(5),
                Duration::from_millis(20),
                Duration::from_millis(4)
            ]
        );
    }
}

//! How long a failed job waits before its next attempt.

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Exponential backoff with jitter: attempt `n` failed, so attempt `n + 1` waits
/// `min(cap, base × factor^(n-1))`, less a random part of up to `jitter` of it (so that jobs
/// that failed together do not come back together).
///
/// The default is `base` 1 s, `factor` 2, `cap` 1 h and `jitter` 0.5 (each delay between half
/// and all of its exponential value): 1 s, 2 s, 4 s, ... about an hour, then hourly. With a
/// factor of at least 2 and a jitter of at most 0.5, every delay is at least the previous one.
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_queue::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1)).jitter(0.0);
/// let delays: Vec<_> = (1..=6).map(|attempt| backoff.delay(attempt)).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    cap: Duration,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), 2.0, Duration::from_secs(60 * 60))
    }
}

impl Backoff {
    /// Delays starting at `base`, multiplied by `factor` per failed attempt (at least 1), never
    /// above `cap`; the default jitter of 0.5.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_secs(5), 3.0, Duration::from_secs(600));
    /// let first = backoff.delay(1);
    /// assert!(first >= Duration::from_millis(2_500) && first <= Duration::from_secs(5));
    /// ```
    pub fn new(base: Duration, factor: f64, cap: Duration) -> Self {
        let factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        Self {
            base,
            factor,
            cap,
            jitter: 0.5,
        }
    }

    /// Takes up to `fraction` (0 to 1) of each delay away at random; 0 for exact delays.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Backoff;
    ///
    /// let exact = Backoff::default().jitter(0.0);
    /// assert_eq!(exact.delay(3), Duration::from_secs(4));
    /// ```
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The exponential delay after failed attempt `attempt` (1 for the first), before jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Backoff;
    ///
    /// assert_eq!(Backoff::default().nominal(40), Duration::from_secs(3600));
    /// ```
    pub fn nominal(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = self.base.as_secs_f64() * self.factor.powi(exponent);
        if !scaled.is_finite() || scaled >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::try_from_secs_f64(scaled.max(0.0)).unwrap_or(self.cap)
        }
    }

    /// The delay after failed attempt `attempt`, with jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_secs(2), 2.0, Duration::from_secs(60));
    /// let delay = backoff.delay(2);
    /// assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        let scale = 1.0 - self.jitter * random_fraction();
        Duration::try_from_secs_f64(nominal.as_secs_f64() * scale)
            .map_or(nominal, |delay| delay.min(nominal))
    }

    /// The cap: the longest any delay gets.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Backoff;
    ///
    /// assert_eq!(Backoff::default().cap(), Duration::from_secs(3600));
    /// ```
    pub fn cap(&self) -> Duration {
        self.cap
    }
}

/// A number in `[0, 1)`, random enough for jitter: std's per-instance random hash keys over a
/// counter (no dependency, no `unsafe`).
fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits as a fraction, exactly representable in an f64.
    #[allow(clippy::cast_precision_loss)]
    let fraction = (bits >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_jitter_stays_in_range() {
        let backoff = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(2));
        let mut previous_max = Duration::ZERO;
        for attempt in 1..=12 {
            let nominal = backoff.nominal(attempt);
            for _ in 0..50 {
                let delay = backoff.delay(attempt);
                assert!(
                    delay <= nominal && delay >= nominal / 2,
                    "{attempt}: {delay:?}"
                );
                // factor 2, jitter 0.5: never shorter than the previous attempt's longest.
                assert!(delay >= previous_max.min(backoff.cap() / 2));
            }
            previous_max = nominal;
        }
        assert_eq!(backoff.nominal(u32::MAX), Duration::from_secs(2));
        assert_eq!(backoff.nominal(0), Duration::from_millis(100));
        let unbounded = Backoff::new(Duration::from_secs(1), 10.0, Duration::MAX);
        assert_eq!(unbounded.nominal(u32::MAX), Duration::MAX);
        let exact = Backoff::new(Duration::from_secs(1), 10.0, Duration::MAX).jitter(0.0);
        assert_eq!(exact.delay(30), Duration::MAX);
        assert!(unbounded.delay(30) <= Duration::MAX);
    }

    #[test]
    fn odd_settings_stay_sane() {
        let backoff = Backoff::new(Duration::from_secs(1), f64::NAN, Duration::from_secs(5))
            .jitter(f64::INFINITY);
        assert_eq!(backoff.delay(10), Duration::from_secs(1));
        let shrinking = Backoff::new(Duration::from_secs(1), 0.1, Duration::from_secs(5));
        assert_eq!(shrinking.nominal(5), Duration::from_secs(1));
        let fractions: Vec<f64> = (0..100).map(|_| random_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.windows(2).any(|w| w[0] != w[1]));
    }
}

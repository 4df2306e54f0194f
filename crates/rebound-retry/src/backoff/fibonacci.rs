//! Fibonacci backoff: `initial × 1, 1, 2, 3, 5, 8, ...`, capped.

use std::time::Duration;

use super::error::{PolicyError, check_common};
use super::jitter::{Jitter, rng};
use super::{DelayCount, scale_capped};

/// Builds a [`Fibonacci`] backoff.
///
/// # Default
///
/// 3 attempts, 100 ms first delay, capped at 5 s, no jitter.
///
/// ```
/// use rebound_retry::FibonacciBuilder;
/// use std::time::Duration;
/// let v: Vec<_> = FibonacciBuilder::new()
///     .with_initial_delay(Duration::from_millis(10))
///     .with_max_delay(Duration::from_millis(40))
///     .with_max_attempts(7)
///     .build()?
///     .collect();
/// let ms = Duration::from_millis;
/// assert_eq!(v, [ms(10), ms(10), ms(20), ms(30), ms(40), ms(40)]);
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FibonacciBuilder {
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Default for FibonacciBuilder {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: Some(3),
            jitter: Jitter::None,
            seed: None,
        }
    }
}

impl FibonacciBuilder {
    /// The default policy (see `# Default`).
    ///
    /// ```
    /// # use rebound_retry::FibonacciBuilder;
    /// assert_eq!(FibonacciBuilder::new().build()?.count(), 2);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// The first delay (and the unit of the sequence).
        ///
        /// ```
        /// # use rebound_retry::FibonacciBuilder; use std::time::Duration;
        /// let b = FibonacciBuilder::new().with_initial_delay(Duration::from_millis(3)).build()?;
        /// assert_eq!(b.nominal(4), Duration::from_millis(9));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_initial_delay(delay: Duration) => initial_delay = delay;

        /// The cap on every delay.
        ///
        /// ```
        /// # use rebound_retry::FibonacciBuilder; use std::time::Duration;
        /// let b = FibonacciBuilder::new().with_max_delay(Duration::from_millis(250)).build()?;
        /// assert_eq!(b.nominal(40), Duration::from_millis(250));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_max_delay(delay: Duration) => max_delay = delay;

        /// Total attempts, the first included; 0 is rejected by `build`.
        ///
        /// ```
        /// # use rebound_retry::FibonacciBuilder;
        /// assert_eq!(FibonacciBuilder::new().with_max_attempts(4).build()?.count(), 3);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_max_attempts(attempts: u32) => max_attempts = Some(attempts);

        /// No attempt limit.
        ///
        /// ```
        /// # use rebound_retry::FibonacciBuilder;
        /// assert_eq!(FibonacciBuilder::new().forever().build()?.take(9).count(), 9);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        forever() => max_attempts = None;

        /// The jitter mode ([`Jitter::Decorrelated`] acts as full jitter here).
        ///
        /// ```
        /// # use rebound_retry::{FibonacciBuilder, Jitter};
        /// let b = FibonacciBuilder::new().with_jitter(Jitter::Equal).build()?;
        /// assert_eq!(b.count(), 2);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_jitter(jitter: Jitter) => jitter = jitter;

        /// No jitter (the default).
        ///
        /// ```
        /// # use rebound_retry::FibonacciBuilder; use std::time::Duration;
        /// let mut b = FibonacciBuilder::new().without_jitter().build()?;
        /// assert_eq!(b.next(), Some(Duration::from_millis(100)));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        without_jitter() => jitter = Jitter::None;

        /// Seeds the jitter's random generator.
        ///
        /// ```
        /// # use rebound_retry::{FibonacciBuilder, Jitter};
        /// let b = || FibonacciBuilder::new().with_jitter(Jitter::Full).with_seed(4).build();
        /// assert_eq!(b()?.collect::<Vec<_>>(), b()?.collect::<Vec<_>>());
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_seed(seed: u64) => seed = Some(seed);
    }

    /// Checks the settings and builds the backoff.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] when the max delay is below the initial delay or max
    /// attempts is 0.
    ///
    /// ```
    /// # use rebound_retry::FibonacciBuilder; use std::time::Duration;
    /// assert!(FibonacciBuilder::new().with_max_delay(Duration::ZERO).build().is_err());
    /// ```
    pub fn build(self) -> Result<Fibonacci, PolicyError> {
        check_common(self.initial_delay, self.max_delay, self.max_attempts)?;
        Ok(Fibonacci {
            initial_delay: self.initial_delay,
            max_delay: self.max_delay,
            jitter: self.jitter,
            count: DelayCount::new(self.max_attempts),
            rng: rng(self.seed, self.jitter),
        })
    }
}

/// Fibonacci backoff: delays grow by the Fibonacci sequence, capped.
///
/// ```
/// # use rebound_retry::FibonacciBuilder;
/// assert_eq!(FibonacciBuilder::new().build().unwrap().count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Fibonacci {
    initial_delay: Duration,
    max_delay: Duration,
    jitter: Jitter,
    count: DelayCount,
    rng: fastrand::Rng,
}

impl Fibonacci {
    /// The delay before retry `n` (`n = 0` is treated as 1), capped, without
    /// jitter. Never panics or overflows, for any `n`.
    ///
    /// ```
    /// # use rebound_retry::FibonacciBuilder; use std::time::Duration;
    /// let b = FibonacciBuilder::new().build()?;
    /// assert_eq!(b.nominal(5), Duration::from_millis(500));
    /// assert_eq!(b.nominal(u32::MAX), Duration::from_secs(5));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn nominal(&self, n: u32) -> Duration {
        if self.initial_delay.is_zero() {
            return Duration::ZERO;
        }
        // The factor grows at least by 1.6 per step, so it passes any cap
        // (at most ~1.8e28 ns over a unit of at least 1 ns) within ~140 steps.
        let cap_factor = self.max_delay.as_nanos() as f64 / self.initial_delay.as_nanos() as f64;
        let (mut current, mut next) = (1.0_f64, 1.0_f64);
        for _ in 1..n.max(1) {
            if current >= cap_factor {
                return self.max_delay;
            }
            (current, next) = (next, current + next);
        }
        scale_capped(self.initial_delay, current, self.max_delay)
    }
}

impl Iterator for Fibonacci {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let n = self.count.next()?;
        Some(self.jitter.apply(self.nominal(n), &mut self.rng))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.count.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_fibonacci_times_initial() {
        let b = FibonacciBuilder::new()
            .with_initial_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_secs(1))
            .build()
            .unwrap();
        let v: Vec<u128> = (1..=8).map(|n| b.nominal(n).as_millis()).collect();
        assert_eq!(v, [1, 1, 2, 3, 5, 8, 13, 21]);
        assert_eq!(b.nominal(0).as_millis(), 1);
    }

    #[test]
    fn huge_n_caps_without_overflow() {
        let b = FibonacciBuilder::new()
            .with_initial_delay(Duration::from_nanos(1))
            .with_max_delay(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(b.nominal(u32::MAX), Duration::MAX);
        let zero = FibonacciBuilder::new()
            .with_initial_delay(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(zero.nominal(u32::MAX), Duration::ZERO);
    }
}

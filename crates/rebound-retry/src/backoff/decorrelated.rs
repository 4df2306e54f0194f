//! AWS "decorrelated jitter" backoff.

use std::time::Duration;

use super::DelayCount;
use super::error::{PolicyError, check_common};
use super::jitter::{Jitter, decorrelated_step, rng};

/// Builds a [`DecorrelatedJitter`] backoff: each delay is uniform in
/// `[base, 3 × previous delay]`, capped (the AWS Architecture Blog formula).
///
/// # Default
///
/// 3 attempts, 100 ms base, capped at 5 s.
///
/// ```
/// use rebound_retry::DecorrelatedJitterBuilder;
/// use std::time::Duration;
/// let backoff = DecorrelatedJitterBuilder::new()
///     .with_base_delay(Duration::from_millis(10))
///     .with_max_delay(Duration::from_millis(500))
///     .with_max_attempts(20)
///     .build()?;
/// for d in backoff {
///     assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(500));
/// }
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DecorrelatedJitterBuilder {
    base_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    seed: Option<u64>,
}

impl Default for DecorrelatedJitterBuilder {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: Some(3),
            seed: None,
        }
    }
}

impl DecorrelatedJitterBuilder {
    /// The default policy (see `# Default`).
    ///
    /// ```
    /// # use rebound_retry::DecorrelatedJitterBuilder;
    /// assert_eq!(DecorrelatedJitterBuilder::new().build()?.count(), 2);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// The smallest delay, and the start of the sequence.
        ///
        /// ```
        /// # use rebound_retry::DecorrelatedJitterBuilder; use std::time::Duration;
        /// let mut b = DecorrelatedJitterBuilder::new().with_base_delay(Duration::from_millis(200)).build()?;
        /// assert!(b.next().unwrap() >= Duration::from_millis(200));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_base_delay(delay: Duration) => base_delay = delay;

        /// The cap on every delay.
        ///
        /// ```
        /// # use rebound_retry::DecorrelatedJitterBuilder; use std::time::Duration;
        /// let b = DecorrelatedJitterBuilder::new().with_max_delay(Duration::from_millis(150)).forever().build()?;
        /// assert!(b.take(100).all(|d| d <= Duration::from_millis(150)));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_max_delay(delay: Duration) => max_delay = delay;

        /// Total attempts, the first included; 0 is rejected by `build`.
        ///
        /// ```
        /// # use rebound_retry::DecorrelatedJitterBuilder;
        /// assert!(DecorrelatedJitterBuilder::new().with_max_attempts(0).build().is_err());
        /// ```
        with_max_attempts(attempts: u32) => max_attempts = Some(attempts);

        /// No attempt limit.
        ///
        /// ```
        /// # use rebound_retry::DecorrelatedJitterBuilder;
        /// assert_eq!(DecorrelatedJitterBuilder::new().forever().build()?.take(5).count(), 5);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        forever() => max_attempts = None;

        /// Seeds the random generator, for reproducible sequences.
        ///
        /// ```
        /// # use rebound_retry::DecorrelatedJitterBuilder;
        /// let b = || DecorrelatedJitterBuilder::new().with_seed(3).build();
        /// assert_eq!(b()?.collect::<Vec<_>>(), b()?.collect::<Vec<_>>());
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_seed(seed: u64) => seed = Some(seed);
    }

    /// Checks the settings and builds the backoff.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] when the max delay is below the base delay or max
    /// attempts is 0.
    ///
    /// ```
    /// # use rebound_retry::DecorrelatedJitterBuilder; use std::time::Duration;
    /// let err = DecorrelatedJitterBuilder::new().with_max_delay(Duration::ZERO).build();
    /// assert_eq!(err.unwrap_err().setting(), "max_delay");
    /// ```
    pub fn build(self) -> Result<DecorrelatedJitter, PolicyError> {
        check_common(self.base_delay, self.max_delay, self.max_attempts)?;
        Ok(DecorrelatedJitter {
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            previous: self.base_delay,
            count: DelayCount::new(self.max_attempts),
            rng: rng(self.seed, Jitter::Full),
        })
    }
}

/// Decorrelated-jitter backoff: random delays that grow with the previous
/// one, always within `[base, max]`.
///
/// ```
/// # use rebound_retry::DecorrelatedJitterBuilder;
/// assert_eq!(DecorrelatedJitterBuilder::new().build().unwrap().count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct DecorrelatedJitter {
    base_delay: Duration,
    max_delay: Duration,
    previous: Duration,
    count: DelayCount,
    rng: fastrand::Rng,
}

impl Iterator for DecorrelatedJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.count.next()?;
        Some(decorrelated_step(
            &mut self.rng,
            self.base_delay,
            &mut self.previous,
            self.max_delay,
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.count.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_on_average_and_stays_bounded() {
        let b = DecorrelatedJitterBuilder::new()
            .with_base_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_secs(100))
            .with_seed(11)
            .forever()
            .build()
            .unwrap();
        let v: Vec<_> = b.take(60).collect();
        assert!(v.iter().all(|d| *d >= Duration::from_millis(1)));
        assert!(v.iter().all(|d| *d <= Duration::from_secs(100)));
        // With a growth of up to 3x per step the tail is far above the base.
        assert!(v[40..].iter().any(|d| *d > Duration::from_secs(1)), "{v:?}");
    }
}

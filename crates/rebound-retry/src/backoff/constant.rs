//! Constant backoff: the same delay before every retry.

use std::time::Duration;

use super::DelayCount;
use super::error::{PolicyError, check_common};
use super::jitter::{Jitter, rng};

/// Builds a [`Constant`] backoff.
///
/// # Default
///
/// 3 attempts, 100 ms between them, no jitter.
///
/// ```
/// use rebound_retry::ConstantBuilder;
/// use std::time::Duration;
/// let v: Vec<_> = ConstantBuilder::new()
///     .with_delay(Duration::from_millis(5))
///     .with_max_attempts(4)
///     .build()?
///     .collect();
/// assert_eq!(v, [Duration::from_millis(5); 3]);
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConstantBuilder {
    delay: Duration,
    max_attempts: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Default for ConstantBuilder {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(100),
            max_attempts: Some(3),
            jitter: Jitter::None,
            seed: None,
        }
    }
}

impl ConstantBuilder {
    /// The default policy (see `# Default`).
    ///
    /// ```
    /// # use rebound_retry::ConstantBuilder;
    /// assert_eq!(ConstantBuilder::new().build()?.count(), 2);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// The delay before each retry.
        ///
        /// ```
        /// # use rebound_retry::ConstantBuilder; use std::time::Duration;
        /// let mut b = ConstantBuilder::new().with_delay(Duration::ZERO).build()?;
        /// assert_eq!(b.next(), Some(Duration::ZERO));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_delay(delay: Duration) => delay = delay;

        /// Total attempts, the first included; 0 is rejected by `build`.
        ///
        /// ```
        /// # use rebound_retry::ConstantBuilder;
        /// assert!(ConstantBuilder::new().with_max_attempts(0).build().is_err());
        /// ```
        with_max_attempts(attempts: u32) => max_attempts = Some(attempts);

        /// No attempt limit.
        ///
        /// ```
        /// # use rebound_retry::ConstantBuilder;
        /// assert_eq!(ConstantBuilder::new().forever().build()?.take(50).count(), 50);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        forever() => max_attempts = None;

        /// The jitter mode ([`Jitter::Decorrelated`] acts as full jitter here).
        ///
        /// ```
        /// # use rebound_retry::{ConstantBuilder, Jitter}; use std::time::Duration;
        /// let b = ConstantBuilder::new().with_jitter(Jitter::Full).build()?;
        /// assert!(b.into_iter().all(|d| d <= Duration::from_millis(100)));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_jitter(jitter: Jitter) => jitter = jitter;

        /// No jitter (the default).
        ///
        /// ```
        /// # use rebound_retry::ConstantBuilder; use std::time::Duration;
        /// let b = ConstantBuilder::new().without_jitter().build()?;
        /// assert!(b.into_iter().all(|d| d == Duration::from_millis(100)));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        without_jitter() => jitter = Jitter::None;

        /// Seeds the jitter's random generator.
        ///
        /// ```
        /// # use rebound_retry::{ConstantBuilder, Jitter};
        /// let b = || ConstantBuilder::new().with_jitter(Jitter::Full).with_seed(1).build();
        /// assert_eq!(b()?.collect::<Vec<_>>(), b()?.collect::<Vec<_>>());
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_seed(seed: u64) => seed = Some(seed);
    }

    /// Checks the settings and builds the backoff.
    ///
    /// # Errors
    ///
    /// [`PolicyError::ZeroAttempts`] when max attempts is 0.
    ///
    /// ```
    /// # use rebound_retry::ConstantBuilder;
    /// assert!(ConstantBuilder::new().build().is_ok());
    /// ```
    #[inline]
    pub fn build(self) -> Result<Constant, PolicyError> {
        check_common(self.delay, self.delay, self.max_attempts)?;
        Ok(Constant {
            delay: self.delay,
            jitter: self.jitter,
            count: DelayCount::new(self.max_attempts),
            rng: rng(self.seed, self.jitter),
        })
    }
}

/// Constant backoff: the same delay (jittered if asked) before each retry.
///
/// ```
/// # use rebound_retry::ConstantBuilder;
/// let backoff = ConstantBuilder::new().build().unwrap();
/// assert_eq!(backoff.count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Constant {
    delay: Duration,
    jitter: Jitter,
    count: DelayCount,
    rng: fastrand::Rng,
}

impl Iterator for Constant {
    type Item = Duration;

    #[inline]
    fn next(&mut self) -> Option<Duration> {
        self.count.next()?;
        Some(self.jitter.apply(self.delay, &mut self.rng))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.count.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_delays_and_count() {
        let v: Vec<_> = ConstantBuilder::new()
            .with_delay(Duration::from_secs(1))
            .with_max_attempts(3)
            .build()
            .unwrap()
            .collect();
        assert_eq!(v, [Duration::from_secs(1); 2]);
    }

    #[test]
    fn equal_jitter_bounds() {
        let b = ConstantBuilder::new()
            .with_delay(Duration::from_millis(10))
            .with_jitter(Jitter::Equal)
            .forever()
            .build()
            .unwrap();
        for d in b.take(200) {
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(10));
        }
    }
}

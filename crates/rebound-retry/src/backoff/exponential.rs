//! Exponential backoff: `initial × multiplier^(n-1)`, capped.

use std::time::Duration;

use super::error::{PolicyError, check_common, check_multiplier};
use super::jitter::{Jitter, decorrelated_step, rng};
use super::{DelayCount, scale_capped};

/// Builds an [`Exponential`] backoff.
///
/// # Default
///
/// [`presets::default()`](crate::presets::default): 3 attempts, 100 ms first
/// delay, ×2, capped at 5 s, with [`Jitter::Equal`].
///
/// ```
/// use rebound_retry::ExponentialBuilder;
/// use std::time::Duration;
///
/// let delays: Vec<Duration> = ExponentialBuilder::new()
///     .with_initial_delay(Duration::from_millis(10))
///     .with_max_delay(Duration::from_millis(30))
///     .with_max_attempts(5)
///     .without_jitter()
///     .build()?
///     .collect();
/// let ms = Duration::from_millis;
/// assert_eq!(delays, [ms(10), ms(20), ms(30), ms(30)]);
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBuilder {
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    max_attempts: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Default for ExponentialBuilder {
    fn default() -> Self {
        crate::presets::default()
    }
}

impl ExponentialBuilder {
    /// The default policy (see `# Default`).
    ///
    /// ```
    /// # use rebound_retry::ExponentialBuilder;
    /// assert_eq!(ExponentialBuilder::new().build().unwrap().max_attempts(), Some(3));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from explicit parts (used by the presets).
    pub(crate) fn from_parts(
        max_attempts: u32,
        initial_delay: Duration,
        max_delay: Duration,
        multiplier: f64,
        jitter: Jitter,
    ) -> Self {
        Self {
            initial_delay,
            max_delay,
            multiplier,
            max_attempts: Some(max_attempts),
            jitter,
            seed: None,
        }
    }

    setters! {
        /// The delay before the first retry.
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder; use std::time::Duration;
        /// let b = ExponentialBuilder::new().with_initial_delay(Duration::from_millis(7)).build()?;
        /// assert_eq!(b.nominal(1), Duration::from_millis(7));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_initial_delay(delay: Duration) => initial_delay = delay;

        /// The cap on every delay (before jitter, which only shortens).
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder; use std::time::Duration;
        /// let b = ExponentialBuilder::new().with_max_delay(Duration::from_millis(150)).build()?;
        /// assert_eq!(b.nominal(10), Duration::from_millis(150));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_max_delay(delay: Duration) => max_delay = delay;

        /// The growth factor between two delays: finite and at least 1.
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder; use std::time::Duration;
        /// let b = ExponentialBuilder::new().with_multiplier(3.0).build()?;
        /// assert_eq!(b.nominal(2), Duration::from_millis(300));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_multiplier(multiplier: f64) => multiplier = multiplier;

        /// Total attempts, the first included; the backoff yields one delay
        /// fewer. Zero is rejected by [`build`](Self::build).
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder;
        /// assert_eq!(ExponentialBuilder::new().with_max_attempts(5).build()?.count(), 4);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_max_attempts(attempts: u32) => max_attempts = Some(attempts);

        /// No attempt limit: the backoff never ends (bound it with a deadline).
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder;
        /// let b = ExponentialBuilder::new().forever().build()?;
        /// assert_eq!(b.max_attempts(), None);
        /// assert_eq!(b.take(1000).count(), 1000);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        forever() => max_attempts = None;

        /// The jitter mode.
        ///
        /// ```
        /// # use rebound_retry::{ExponentialBuilder, Jitter};
        /// let b = ExponentialBuilder::new().with_jitter(Jitter::Full).build()?;
        /// assert!(b.sample(1) <= b.nominal(1));
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_jitter(jitter: Jitter) => jitter = jitter;

        /// No jitter: the exact nominal sequence (smolvm's, for the presets).
        ///
        /// ```
        /// # use rebound_retry::presets; use std::time::Duration;
        /// let v: Vec<_> = presets::network().without_jitter().build()?.collect();
        /// let ms = Duration::from_millis;
        /// assert_eq!(v, [ms(500), ms(1000), ms(2000)]);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        without_jitter() => jitter = Jitter::None;

        /// Seeds the jitter's random generator, for reproducible sequences.
        ///
        /// ```
        /// # use rebound_retry::ExponentialBuilder;
        /// let a: Vec<_> = ExponentialBuilder::new().with_seed(9).build()?.collect();
        /// let b: Vec<_> = ExponentialBuilder::new().with_seed(9).build()?.collect();
        /// assert_eq!(a, b);
        /// # Ok::<(), rebound_retry::PolicyError>(())
        /// ```
        with_seed(seed: u64) => seed = Some(seed);
    }

    /// Checks the settings and builds the backoff.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] when the multiplier is below 1, NaN or infinite, the
    /// max delay is below the initial delay, or max attempts is 0.
    ///
    /// ```
    /// # use rebound_retry::ExponentialBuilder; use std::time::Duration;
    /// let err = ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_secs(10))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "max_delay");
    /// ```
    pub fn build(self) -> Result<Exponential, PolicyError> {
        check_multiplier(self.multiplier)?;
        check_common(self.initial_delay, self.max_delay, self.max_attempts)?;
        Ok(Exponential {
            initial_delay: self.initial_delay,
            max_delay: self.max_delay,
            multiplier: self.multiplier,
            max_attempts: self.max_attempts,
            jitter: self.jitter,
            count: DelayCount::new(self.max_attempts),
            previous: self.initial_delay,
            rng: rng(self.seed, self.jitter),
        })
    }
}

/// Exponential backoff: the delays before retry 1, 2, ... (`max_attempts - 1`
/// of them, or endless with [`ExponentialBuilder::forever`]).
///
/// ```
/// use rebound_retry::presets;
/// let backoff = presets::default().build().unwrap();
/// for delay in backoff {
///     assert!(delay.as_millis() <= 200);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Exponential {
    initial_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    max_attempts: Option<u32>,
    jitter: Jitter,
    count: DelayCount,
    previous: Duration,
    rng: fastrand::Rng,
}

impl Exponential {
    /// The delay before retry `n` (`n = 1` is the first retry and gets the
    /// initial delay; `n = 0` is treated as 1), capped, without jitter.
    /// Never panics or overflows, for any `n`.
    ///
    /// ```
    /// # use rebound_retry::presets; use std::time::Duration;
    /// let b = presets::default().build().unwrap();
    /// assert_eq!(b.nominal(1), Duration::from_millis(100));
    /// assert_eq!(b.nominal(2), Duration::from_millis(200));
    /// assert_eq!(b.nominal(u32::MAX), Duration::from_secs(5));
    /// ```
    pub fn nominal(&self, n: u32) -> Duration {
        let exponent = f64::from(n.max(1) - 1);
        scale_capped(
            self.initial_delay,
            self.multiplier.powf(exponent),
            self.max_delay,
        )
    }

    /// [`nominal(n)`](Self::nominal) with this policy's jitter applied
    /// without state ([`Jitter::Decorrelated`] falls back to full jitter).
    ///
    /// ```
    /// # use rebound_retry::presets;
    /// let b = presets::connection().build().unwrap();
    /// assert!(b.sample(3) <= b.nominal(3));
    /// ```
    pub fn sample(&self, n: u32) -> Duration {
        self.jitter
            .apply(self.nominal(n), &mut fastrand::Rng::new())
    }

    /// Total attempts allowed, the first included; `None` for no limit.
    ///
    /// ```
    /// # use rebound_retry::presets;
    /// assert_eq!(presets::network().build().unwrap().max_attempts(), Some(4));
    /// ```
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The jitter mode.
    ///
    /// ```
    /// # use rebound_retry::{presets, Jitter};
    /// assert_eq!(presets::default().build().unwrap().jitter(), Jitter::Equal);
    /// ```
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }
}

impl Iterator for Exponential {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let n = self.count.next()?;
        let delay = match self.jitter {
            Jitter::Decorrelated => decorrelated_step(
                &mut self.rng,
                self.initial_delay,
                &mut self.previous,
                self.max_delay,
            ),
            jitter => jitter.apply(self.nominal(n), &mut self.rng),
        };
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.count.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nominal_grows_then_caps() {
        let b = ExponentialBuilder::new()
            .with_initial_delay(ms(100))
            .with_max_delay(ms(1000))
            .with_multiplier(2.0)
            .build()
            .unwrap();
        let v: Vec<_> = (1..=6).map(|n| b.nominal(n)).collect();
        assert_eq!(v, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(b.nominal(0), ms(100));
    }

    #[test]
    fn fractional_multiplier_and_huge_exponents() {
        let b = ExponentialBuilder::new()
            .with_initial_delay(ms(100))
            .with_max_delay(Duration::MAX)
            .with_multiplier(1.5)
            .forever()
            .build()
            .unwrap();
        assert_eq!(b.nominal(2), ms(150));
        assert_eq!(b.nominal(u32::MAX), Duration::MAX);
    }

    #[test]
    fn zero_initial_delay_stays_zero() {
        let b = ExponentialBuilder::new()
            .with_initial_delay(Duration::ZERO)
            .with_multiplier(10.0)
            .build()
            .unwrap();
        assert_eq!(b.nominal(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        for m in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            let err = ExponentialBuilder::new().with_multiplier(m).build();
            assert!(
                matches!(err, Err(PolicyError::InvalidMultiplier { .. })),
                "{m}"
            );
        }
        let err = ExponentialBuilder::new()
            .with_initial_delay(ms(10))
            .with_max_delay(ms(9))
            .build();
        assert!(matches!(err, Err(PolicyError::MaxBelowInitial { .. })));
        let err = ExponentialBuilder::new().with_max_attempts(0).build();
        assert_eq!(err.unwrap_err(), PolicyError::ZeroAttempts);
    }

    #[test]
    fn yields_one_delay_fewer_than_attempts() {
        let b = ExponentialBuilder::new()
            .with_max_attempts(1)
            .build()
            .unwrap();
        assert_eq!(b.count(), 0);
        let b = ExponentialBuilder::new()
            .with_max_attempts(7)
            .build()
            .unwrap();
        assert_eq!(b.size_hint(), (6, Some(6)));
        assert_eq!(b.count(), 6);
    }

    #[test]
    fn decorrelated_iteration_stays_between_initial_and_cap() {
        let b = ExponentialBuilder::new()
            .with_jitter(Jitter::Decorrelated)
            .with_seed(5)
            .forever()
            .build()
            .unwrap();
        for d in b.take(500) {
            assert!(d >= ms(100) && d <= ms(5000), "{d:?}");
        }
    }

    #[test]
    fn jittered_iteration_never_exceeds_nominal() {
        for jitter in [Jitter::Full, Jitter::Equal] {
            let b = ExponentialBuilder::new()
                .with_jitter(jitter)
                .with_max_attempts(20)
                .build()
                .unwrap();
            let nominal = b.clone();
            for (i, d) in b.enumerate() {
                let n = u32::try_from(i).unwrap() + 1;
                assert!(d <= nominal.nominal(n), "{jitter:?} {n} {d:?}");
            }
        }
    }
}

//! How recoveries are paced and bounded.

use std::time::Duration;

use rebound_retry::{Exponential, ExponentialBuilder, Jitter};
use serde::{Deserialize, Serialize};

use super::breaker::TargetBreakerConfig;
use crate::error::ConfigError;

/// Recovery settings.
///
/// # Default
/// 3 retries, 10 s initial delay doubling up to 300 s, equal jitter, a
/// 600 s recovery timeout counted from the first failure, automatic
/// rollback, the last 50 attempts kept per migration, snapshots valid for
/// 24 h, given up once its worker was lost 3 times, and a breaker per
/// target node (see [`TargetBreakerConfig`]).
///
/// `jitter` is rebound-retry's [`Jitter`] (`none`, `full`, `equal`,
/// `decorrelated`; the names a stored or serialized config always had);
/// the delays are rebound-retry's [`Exponential`] backoff.
///
/// ```
/// use std::time::Duration;
/// use rebound_recovery::{FailureKind, MemoryJournal, RecoveryConfig, Strategy};
/// use rebound_recovery::model::transition::decide;
/// // Five retries within half an hour; the rest as by default.
/// let config = RecoveryConfig {
///     max_retries: 5,
///     recovery_timeout: Duration::from_secs(1800),
///     ..RecoveryConfig::default()
/// };
/// // A fourth timeout is retried, where the default rolls back.
/// assert_eq!(decide(FailureKind::Timeout, 3, &config, false), Strategy::RetryOnSameTarget);
/// assert_eq!(decide(FailureKind::Timeout, 3, &RecoveryConfig::default(), false), Strategy::Rollback);
/// let journal = MemoryJournal::new(config).unwrap();
/// # let _ = journal;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryConfig {
    /// Retries before the recovery rolls back (or gives up).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Cap on any delay.
    pub max_delay: Duration,
    /// Double the delay on each retry (else keep it at `initial_delay`).
    pub exponential: bool,
    /// Randomness added to each delay (`decorrelated` needs the previous
    /// delay, which a stored recovery does not keep: it acts as `full`).
    pub jitter: Jitter,
    /// Past this time since the first failure the recovery is given up.
    pub recovery_timeout: Duration,
    /// Roll back (rather than give up) on permanent failures and when
    /// retries or targets run out.
    pub auto_rollback: bool,
    /// Attempts kept in the history of one migration (all are counted).
    pub history_limit: u32,
    /// A snapshot older than this is not used for a rollback.
    pub snapshot_max_age: Duration,
    /// A recovery whose worker has been lost (its lease ran out while
    /// running) this many times is given up ("worker lost N times")
    /// instead of being retaken again; at least 1.
    #[serde(default = "default_max_rescues")]
    pub max_rescues: u32,
    /// The breaker per target node: nodes that keep failing migrations
    /// are skipped for a cool-down.
    #[serde(default)]
    pub breaker: TargetBreakerConfig,
}

fn default_max_rescues() -> u32 {
    3
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(300),
            exponential: true,
            jitter: Jitter::Equal,
            recovery_timeout: Duration::from_secs(600),
            auto_rollback: true,
            history_limit: 50,
            snapshot_max_age: Duration::from_secs(24 * 3600),
            max_rescues: default_max_rescues(),
            breaker: TargetBreakerConfig::default(),
        }
    }
}

impl RecoveryConfig {
    /// Checks every setting; the journal and worker refuse a config that
    /// fails this.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_recovery::RecoveryConfig;
    /// let bad = RecoveryConfig { max_delay: Duration::from_secs(1), ..Default::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("max_delay"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_delay.is_zero() {
            return Err(ConfigError::ZeroInitialDelay);
        }
        if self.max_delay < self.initial_delay {
            return Err(ConfigError::MaxBelowInitial {
                initial: self.initial_delay,
                max: self.max_delay,
            });
        }
        if self.recovery_timeout.is_zero() {
            return Err(ConfigError::ZeroRecoveryTimeout);
        }
        if self.history_limit == 0 {
            return Err(ConfigError::ZeroHistoryLimit);
        }
        if self.snapshot_max_age.is_zero() {
            return Err(ConfigError::ZeroSnapshotMaxAge);
        }
        if self.max_rescues == 0 {
            return Err(ConfigError::ZeroMaxRescues);
        }
        self.breaker.validate()?;
        self.backoff().map(drop)
    }

    /// The rebound-retry backoff these settings describe.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_recovery::RecoveryConfig;
    /// use rebound_retry::Jitter;
    /// let config = RecoveryConfig { jitter: Jitter::None, ..Default::default() };
    /// let backoff = config.backoff().unwrap();
    /// assert_eq!(backoff.nominal(2), Duration::from_secs(20));
    /// ```
    pub fn backoff(&self) -> Result<Exponential, ConfigError> {
        ExponentialBuilder::new()
            .with_initial_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_multiplier(if self.exponential { 2.0 } else { 1.0 })
            .forever()
            .with_jitter(self.jitter)
            .build()
            .map_err(ConfigError::Backoff)
    }

    /// The delay before retry `n` (1 = first retry), with jitter.
    ///
    /// Never panics or overflows, whatever `n`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_recovery::RecoveryConfig;
    /// use rebound_retry::Jitter;
    /// let config = RecoveryConfig { jitter: Jitter::None, ..Default::default() };
    /// assert_eq!(config.retry_delay(1), Duration::from_secs(10));
    /// assert_eq!(config.retry_delay(u32::MAX), Duration::from_secs(300));
    /// ```
    pub fn retry_delay(&self, n: u32) -> Duration {
        match self.backoff() {
            Ok(backoff) => backoff.sample(n.max(1)),
            // An invalid config never reaches a journal; fall back to the cap.
            Err(_) => self.max_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact() -> RecoveryConfig {
        RecoveryConfig {
            jitter: Jitter::None,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = RecoveryConfig::default();
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.initial_delay, Duration::from_secs(10));
        assert_eq!(c.max_delay, Duration::from_secs(300));
        assert!(c.exponential);
        assert_eq!(c.recovery_timeout, Duration::from_secs(600));
        assert!(c.auto_rollback);
        c.validate().unwrap();
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let zero = RecoveryConfig {
            initial_delay: Duration::ZERO,
            ..exact()
        };
        assert_eq!(zero.validate(), Err(ConfigError::ZeroInitialDelay));
        let timeout = RecoveryConfig {
            recovery_timeout: Duration::ZERO,
            ..exact()
        };
        assert_eq!(timeout.validate(), Err(ConfigError::ZeroRecoveryTimeout));
        let history = RecoveryConfig {
            history_limit: 0,
            ..exact()
        };
        assert_eq!(history.validate(), Err(ConfigError::ZeroHistoryLimit));
        let max = RecoveryConfig {
            max_delay: Duration::from_secs(5),
            ..exact()
        };
        assert!(matches!(
            max.validate(),
            Err(ConfigError::MaxBelowInitial { .. })
        ));
    }

    #[test]
    fn first_retry_waits_the_initial_delay_then_doubles() {
        let c = exact();
        let delays: Vec<u64> = (1..=7).map(|n| c.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn constant_when_not_exponential() {
        let c = RecoveryConfig {
            exponential: false,
            ..exact()
        };
        assert_eq!(c.retry_delay(1), Duration::from_secs(10));
        assert_eq!(c.retry_delay(9), Duration::from_secs(10));
    }

    #[test]
    fn equal_jitter_stays_within_half_and_whole_nominal() {
        let c = RecoveryConfig::default();
        for n in 1..=8 {
            let nominal = exact().retry_delay(n);
            for _ in 0..50 {
                let d = c.retry_delay(n);
                assert!(d <= nominal && d >= nominal / 2, "retry {n}: {d:?}");
            }
        }
    }

    // A config serialized before the jitter became rebound-retry's and
    // before the breakers existed still reads, with the same jitter names.
    #[test]
    fn an_older_serialized_config_still_reads() {
        let mut old = serde_json::to_value(RecoveryConfig::default()).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("breaker");
        map.remove("max_rescues");
        for name in ["none", "full", "equal"] {
            let mut stored = old.clone();
            stored["jitter"] = serde_json::Value::from(name);
            let read: RecoveryConfig = serde_json::from_value(stored).unwrap();
            assert_eq!(read.jitter.name(), name);
            assert_eq!(read.breaker, TargetBreakerConfig::default());
            let again = serde_json::to_value(&read).unwrap();
            assert_eq!(again["jitter"], name);
        }
    }

    #[test]
    fn an_invalid_breaker_setting_is_refused() {
        let bad = RecoveryConfig {
            breaker: TargetBreakerConfig {
                failures: 0,
                ..Default::default()
            },
            ..exact()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::TargetBreaker(_))));
    }

    proptest! {
        // The seed computed 10 * 2^attempt in u32 and overflowed at attempt 29.
        #[test]
        fn no_overflow_for_any_attempt(n in any::<u32>(), secs in 1u64..100_000) {
            let c = RecoveryConfig {
                initial_delay: Duration::from_secs(secs),
                max_delay: Duration::from_secs(secs * 30),
                ..RecoveryConfig::default()
            };
            let d = c.retry_delay(n);
            prop_assert!(d <= c.max_delay);
        }
    }
}

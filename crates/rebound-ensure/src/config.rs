//! Settings of one ensured runtime.

use std::time::Duration;

use rebound_retry::Exponential;

use crate::error::ConfigError;

/// How long a start may take, how long "ready" is trusted, and how long to
/// wait after a failed start.
///
/// # Default
///
/// - `start_timeout`: 90 s; a start still running then is cancelled and the
///   runtime is `failed` with "start timed out after 90s".
/// - `ready_ttl`: 10 s; a Ready older than this is probed again before it is
///   reported (a dead runtime goes back to `not_started`).
/// - `probe_timeout`: 5 s per probe; a probe still running then counts as
///   down.
/// - `backoff` after a failed start: 1 s, 2 s, 4 s ... capped at 60 s, equal
///   jitter, no limit (failure `n` waits `backoff.sample(n)`).
///
/// (The unit tests pin these defaults.)
///
/// ```
/// use std::time::Duration;
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
/// // A runtime that boots in seconds and dies rarely: a short start
/// // timeout, a longer trust in its readiness.
/// let config = EnsureConfig::builder()
///     .start_timeout(Duration::from_secs(20))
///     .ready_ttl(Duration::from_secs(60))
///     .build()?;
/// let postgres = Ensure::new(
///     config,
///     || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:5432", "up")) },
///     || async { ProbeOutcome::Down("no answer".into()) },
/// );
/// assert_eq!(postgres.config().ready_ttl(), Some(Duration::from_secs(60)));
/// # Ok::<(), rebound_ensure::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct EnsureConfig {
    start_timeout: Duration,
    ready_ttl: Option<Duration>,
    probe_timeout: Duration,
    backoff: Exponential,
}

impl Default for EnsureConfig {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(90),
            ready_ttl: Some(Duration::from_secs(10)),
            probe_timeout: Duration::from_secs(5),
            backoff: default_backoff(),
        }
    }
}

/// The default failure backoff (see [`EnsureConfig`]'s `# Default`).
///
/// A backoff that starts as the default does but never waits more than
/// 10 s between starts:
///
/// ```
/// use std::time::Duration;
/// use rebound_retry::ExponentialBuilder;
/// let default = rebound_ensure::default_backoff();
/// let backoff = ExponentialBuilder::new()
///     .with_initial_delay(default.nominal(1))
///     .with_max_delay(Duration::from_secs(10))
///     .forever()
///     .build()
///     .unwrap();
/// let config = rebound_ensure::EnsureConfig::builder().backoff(backoff).build()?;
/// assert_eq!(config.backoff().nominal(1), default.nominal(1));
/// assert_eq!(config.backoff().nominal(8), Duration::from_secs(10));
/// # Ok::<(), rebound_ensure::ConfigError>(())
/// ```
pub fn default_backoff() -> Exponential {
    // Constant settings that `build` accepts (pinned by a unit test), so
    // this cannot fail at run time.
    rebound_retry::presets::restart()
        .build()
        .expect("the default ensure backoff settings are valid")
}

impl EnsureConfig {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = rebound_ensure::EnsureConfig::builder()
    ///     .start_timeout(Duration::from_secs(5))
    ///     .no_ready_ttl()
    ///     .build()?;
    /// assert_eq!(c.ready_ttl(), None);
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn builder() -> EnsureConfigBuilder {
        EnsureConfigBuilder {
            config: Self::default(),
        }
    }

    /// How long a start may run before it is cancelled and marked failed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = rebound_ensure::EnsureConfig::builder().start_timeout(Duration::from_secs(20)).build()?;
    /// // Whoever waits for a start waits no longer than this.
    /// let wait = c.start_timeout() + Duration::from_secs(1);
    /// assert_eq!(wait, Duration::from_secs(21));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    /// How long a Ready is trusted before it is probed again (`None`: forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = rebound_ensure::EnsureConfig::builder();
    /// let forever = b.clone().no_ready_ttl().build()?;
    /// assert_eq!(forever.ready_ttl(), None);
    /// let minute = b.ready_ttl(Duration::from_secs(60)).build()?;
    /// assert_eq!(minute.ready_ttl(), Some(Duration::from_secs(60)));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn ready_ttl(&self) -> Option<Duration> {
        self.ready_ttl
    }

    /// How long one probe may take before it counts as down.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// let config = EnsureConfig::builder().probe_timeout(Duration::from_millis(500)).build().unwrap();
    /// assert_eq!(config.probe_timeout(), Duration::from_millis(500));
    /// let e = Ensure::new(
    ///     config,
    ///     || async { Ok::<_, StartError>(ReadyInfo::new("x", "")) },
    ///     || std::future::pending::<ProbeOutcome>(), // never answers
    /// );
    /// assert_eq!(e.ensure(false).await.message(), "probe timed out after 500ms");
    /// # }
    /// ```
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    /// The backoff between failed starts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_retry::ExponentialBuilder;
    /// let backoff = ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_millis(500))
    ///     .forever()
    ///     .build()
    ///     .unwrap();
    /// let c = rebound_ensure::EnsureConfig::builder().backoff(backoff).build()?;
    /// // The longest wait before the third start, whatever the jitter.
    /// let worst: Duration = (1..=2).map(|n| c.backoff().nominal(n)).sum();
    /// assert_eq!(worst, Duration::from_millis(1500));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn backoff(&self) -> &Exponential {
        &self.backoff
    }
}

/// Builds an [`EnsureConfig`]; `build` rejects zero durations.
///
/// ```
/// use std::time::Duration;
/// let err = rebound_ensure::EnsureConfig::builder()
///     .ready_ttl(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "ready_ttl must be above zero");
/// ```
#[derive(Debug, Clone)]
pub struct EnsureConfigBuilder {
    config: EnsureConfig,
}

impl EnsureConfigBuilder {
    /// Sets the start timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = rebound_ensure::EnsureConfig::builder().start_timeout(Duration::from_secs(30)).build()?;
    /// assert_eq!(c.start_timeout(), Duration::from_secs(30));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// Sets the readiness TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = rebound_ensure::EnsureConfig::builder().ready_ttl(Duration::from_secs(2)).build()?;
    /// assert_eq!(c.ready_ttl(), Some(Duration::from_secs(2)));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn ready_ttl(mut self, ttl: Duration) -> Self {
        self.config.ready_ttl = Some(ttl);
        self
    }

    /// Trusts Ready forever (the behaviour of the original EnsureRuntime).
    ///
    /// ```
    /// let c = rebound_ensure::EnsureConfig::builder().no_ready_ttl().build()?;
    /// assert_eq!(c.ready_ttl(), None);
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn no_ready_ttl(mut self) -> Self {
        self.config.ready_ttl = None;
        self
    }

    /// Sets the timeout of one probe.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = rebound_ensure::EnsureConfig::builder().probe_timeout(Duration::from_millis(500)).build()?;
    /// assert_eq!(c.probe_timeout(), Duration::from_millis(500));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// Sets the backoff between failed starts (its attempt limit is ignored:
    /// failure `n` waits `backoff.sample(n)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_retry::ExponentialBuilder;
    /// let backoff = ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_millis(200))
    ///     .without_jitter()
    ///     .forever()
    ///     .build()
    ///     .unwrap();
    /// let c = rebound_ensure::EnsureConfig::builder().backoff(backoff).build()?;
    /// assert_eq!(c.backoff().nominal(1), Duration::from_millis(200));
    /// # Ok::<(), rebound_ensure::ConfigError>(())
    /// ```
    pub fn backoff(mut self, backoff: Exponential) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Checks the settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = rebound_ensure::EnsureConfig::builder();
    /// assert!(b.clone().build().is_ok());
    /// assert!(b.probe_timeout(Duration::ZERO).build().is_err());
    /// ```
    pub fn build(self) -> Result<EnsureConfig, ConfigError> {
        let c = &self.config;
        if c.start_timeout.is_zero() {
            return Err(ConfigError::Zero {
                setting: "start_timeout",
            });
        }
        if c.ready_ttl.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::Zero {
                setting: "ready_ttl",
            });
        }
        if c.probe_timeout.is_zero() {
            return Err(ConfigError::Zero {
                setting: "probe_timeout",
            });
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults `EnsureConfig`'s documentation lists.
    #[test]
    fn documented_defaults() {
        let c = EnsureConfig::default();
        assert_eq!(c.start_timeout(), Duration::from_secs(90));
        assert_eq!(c.ready_ttl(), Some(Duration::from_secs(10)));
        assert_eq!(c.probe_timeout(), Duration::from_secs(5));
        assert_eq!(c.backoff().nominal(1), default_backoff().nominal(1));
    }

    #[test]
    fn default_backoff_doubles_from_one_second_to_a_minute() {
        let b = default_backoff();
        let secs: Vec<u64> = (1..=8).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.max_attempts(), None);
    }

    #[test]
    fn zero_probe_timeout_is_rejected() {
        let err = EnsureConfig::builder()
            .probe_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Zero {
                setting: "probe_timeout"
            }
        );
    }
}

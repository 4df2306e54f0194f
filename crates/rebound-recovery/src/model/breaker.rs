//! A circuit breaker per target node, kept in the journal and shared by
//! every controller that uses it.
//!
//! A node whose migrations failed with a target-side kind
//! ([`FailureKind::counts_against_target`]: `target_unreachable`,
//! `insufficient_resources`, `incompatible_target`, `timeout`)
//! [`failures`](TargetBreakerConfig::failures) times within
//! [`window`](TargetBreakerConfig::window) is **open** for a cool-down:
//! target rotation skips it. Once the cool-down is over it is
//! **half-open**: one recovery at a time may probe it. A failure while
//! half-open opens it again for a longer cool-down (rebound-retry's
//! [`Exponential`] backoff: `cooldown`, times `multiplier` per reopening,
//! up to `max_cooldown`); a migration that succeeds on the node closes it,
//! and so does an operator's reset.
//!
//! The state is a [`TargetBreaker`] row per node, changed in the same
//! transaction as the recovery whose outcome it counts, so that every
//! controller sees the same state.
//!
//! ```
//! use std::time::Duration;
//! use rebound_recovery::FailureKind;
//! use rebound_recovery::model::breaker::{TargetBreaker, TargetBreakerConfig};
//! use rebound_retry::BreakerState;
//! let config = TargetBreakerConfig { failures: 2, ..Default::default() };
//! let mut node = TargetBreaker::new("node-b");
//! node.fail(FailureKind::TargetUnreachable, 1_000, &config);
//! assert_eq!(node.state(2_000), BreakerState::Closed);
//! node.fail(FailureKind::Timeout, 2_000, &config);
//! // Open for the first cool-down (60 s by default), then half-open.
//! assert_eq!(node.state(3_000), BreakerState::Open);
//! assert_eq!(node.open_until_ms, Some(62_000));
//! assert_eq!(node.state(62_000), BreakerState::HalfOpen);
//! // A success closes it.
//! node.succeed(63_000);
//! assert_eq!(node.state(63_000), BreakerState::Closed);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rebound_retry::{BreakerState, CircuitBreaker, Exponential, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use super::FailureKind;
use crate::error::ConfigError;

/// Settings of the per-target breakers, part of
/// [`RecoveryConfig`](crate::RecoveryConfig) (`breaker`).
///
/// # Default
/// On; 5 target-side failures within 10 minutes open a node for 1 minute,
/// doubling each time a half-open probe fails, up to 30 minutes.
///
/// ```
/// use std::time::Duration;
/// use rebound_recovery::RecoveryConfig;
/// use rebound_recovery::model::breaker::TargetBreakerConfig;
/// let config = RecoveryConfig {
///     breaker: TargetBreakerConfig { failures: 3, cooldown: Duration::from_secs(120), ..Default::default() },
///     ..Default::default()
/// };
/// config.validate().unwrap();
/// assert_eq!(config.breaker.cooldown_after(2), Duration::from_secs(240));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetBreakerConfig {
    /// Whether failures are counted and open nodes skipped at all.
    pub enabled: bool,
    /// Target-side failures within `window` that open a node (at least 1).
    pub failures: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long a node stays open the first time.
    pub cooldown: Duration,
    /// The cap on the cool-down as it grows.
    pub max_cooldown: Duration,
    /// The growth of the cool-down each time a half-open probe fails (at
    /// least 1; 1 keeps it constant).
    pub multiplier: f64,
}

impl Default for TargetBreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failures: 5,
            window: Duration::from_secs(600),
            cooldown: Duration::from_secs(60),
            max_cooldown: Duration::from_secs(1800),
            multiplier: 2.0,
        }
    }
}

impl TargetBreakerConfig {
    /// Checks the settings with rebound-retry's breaker rules (the same
    /// errors, naming the setting), and the window.
    ///
    /// ```
    /// use rebound_recovery::ConfigError;
    /// use rebound_recovery::model::breaker::TargetBreakerConfig;
    /// let bad = TargetBreakerConfig { failures: 0, ..Default::default() };
    /// let Err(ConfigError::TargetBreaker(e)) = bad.validate() else { panic!() };
    /// assert_eq!(e.setting(), "consecutive_failures");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() || self.window > rebound_retry::duration::MAX {
            return Err(ConfigError::TargetBreakerWindow);
        }
        CircuitBreaker::builder()
            .with_consecutive_failures(self.failures)
            .with_cooldown(self.cooldown)
            .with_max_cooldown(self.max_cooldown)
            .with_cooldown_multiplier(self.multiplier)
            .build()
            .map_err(ConfigError::TargetBreaker)?;
        Ok(())
    }

    /// The cool-down growth as rebound-retry's exponential backoff, without
    /// jitter (every controller computes the same reopening time).
    fn backoff(&self) -> Option<Exponential> {
        ExponentialBuilder::new()
            .with_initial_delay(self.cooldown)
            .with_max_delay(self.max_cooldown)
            .with_multiplier(self.multiplier)
            .without_jitter()
            .forever()
            .build()
            .ok()
    }

    /// How long a node stays open at its `openings`th opening since it
    /// was last closed (1 = the first): `cooldown`, times `multiplier` for
    /// each reopening, capped at `max_cooldown`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rebound_recovery::model::breaker::TargetBreakerConfig;
    /// let c = TargetBreakerConfig::default();
    /// let secs: Vec<u64> = (1..=7).map(|n| c.cooldown_after(n).as_secs()).collect();
    /// assert_eq!(secs, [60, 120, 240, 480, 960, 1800, 1800]);
    /// ```
    pub fn cooldown_after(&self, openings: u32) -> Duration {
        match self.backoff() {
            Some(b) => b.nominal(openings.max(1)),
            // An invalid config never reaches a journal; fall back to the cap.
            None => self.max_cooldown,
        }
    }

    fn window_ms(&self) -> u64 {
        ms(self.window)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One target node's breaker, as the journal stores it. Times are ms since
/// the Unix epoch.
///
/// ```
/// use rebound_recovery::model::breaker::TargetBreaker;
/// use rebound_retry::BreakerState;
/// let node = TargetBreaker::new("node-b");
/// assert_eq!(node.state(0), BreakerState::Closed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetBreaker {
    /// The node.
    pub node: String,
    /// When its last target-side failures happened, oldest first (at most
    /// [`failures`](TargetBreakerConfig::failures) of them are kept).
    pub failures_ms: Vec<u64>,
    /// Times it opened since it was last closed (numbers the cool-down).
    pub openings: u32,
    /// When its cool-down ends (open before, half-open after); `None` when
    /// closed.
    pub open_until_ms: Option<u64>,
    /// The recovery probing it while half-open.
    pub probe_migration: Option<String>,
    /// When that probe's hold ends (a probe whose worker died frees the
    /// node then).
    pub probe_until_ms: Option<u64>,
    /// The kind of its last target-side failure.
    pub last_kind: Option<FailureKind>,
    /// When it last failed.
    pub last_failure_ms: Option<u64>,
    /// Last change.
    pub updated_ms: u64,
}

/// What [`TargetBreaker::admit`] decided about an attempt on a node.
///
/// ```
/// use rebound_recovery::model::breaker::{Admission, TargetBreaker};
/// let mut node = TargetBreaker::new("node-b");
/// assert_eq!(node.admit("m-1", 0, 30_000), Admission::Closed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Closed: go ahead.
    Closed,
    /// Half-open: go ahead as its probe (held until `until_ms`).
    Probe {
        /// When the probe's hold ends.
        until_ms: u64,
    },
    /// Open: skip it until `until_ms`.
    Open {
        /// When its cool-down ends.
        until_ms: u64,
    },
    /// Half-open, and another recovery is probing it until `until_ms`.
    Probing {
        /// The recovery probing it.
        migration: String,
        /// When that probe's hold ends at the latest.
        until_ms: u64,
    },
}

impl Admission {
    /// Whether the attempt may go ahead.
    ///
    /// ```
    /// use rebound_recovery::model::breaker::Admission;
    /// assert!(Admission::Closed.admitted());
    /// assert!(!Admission::Open { until_ms: 5 }.admitted());
    /// ```
    pub fn admitted(&self) -> bool {
        matches!(self, Self::Closed | Self::Probe { .. })
    }
}

impl TargetBreaker {
    /// A closed breaker with no failures.
    ///
    /// ```
    /// let node = rebound_recovery::model::breaker::TargetBreaker::new("n1");
    /// assert!(node.failures_ms.is_empty() && node.open_until_ms.is_none());
    /// ```
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            failures_ms: Vec::new(),
            openings: 0,
            open_until_ms: None,
            probe_migration: None,
            probe_until_ms: None,
            last_kind: None,
            last_failure_ms: None,
            updated_ms: 0,
        }
    }

    /// Closed, open or half-open at `now_ms`.
    ///
    /// ```
    /// use rebound_recovery::model::breaker::TargetBreaker;
    /// use rebound_retry::BreakerState;
    /// let mut node = TargetBreaker::new("n1");
    /// node.open_until_ms = Some(10_000);
    /// assert_eq!(node.state(9_999), BreakerState::Open);
    /// assert_eq!(node.state(10_000), BreakerState::HalfOpen);
    /// ```
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.open_until_ms {
            None => BreakerState::Closed,
            Some(until) if now_ms < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Target-side failures within the window ending at `now_ms`.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// use rebound_recovery::model::breaker::{TargetBreaker, TargetBreakerConfig};
    /// let config = TargetBreakerConfig::default(); // a 10-minute window
    /// let mut node = TargetBreaker::new("n1");
    /// node.fail(FailureKind::Timeout, 0, &config);
    /// node.fail(FailureKind::Timeout, 300_000, &config);
    /// assert_eq!(node.failures_in_window(300_000, &config), 2);
    /// assert_eq!(node.failures_in_window(700_000, &config), 1);
    /// ```
    pub fn failures_in_window(&self, now_ms: u64, config: &TargetBreakerConfig) -> u32 {
        let window = config.window_ms();
        let n = self
            .failures_ms
            .iter()
            .filter(|&&t| now_ms.saturating_sub(t) < window)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Counts a target-side failure at `now_ms`: opens a closed node that
    /// reached `failures` within the window, and opens a half-open one
    /// again for a longer cool-down. Returns whether it opened.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// use rebound_recovery::model::breaker::{TargetBreaker, TargetBreakerConfig};
    /// let config = TargetBreakerConfig { failures: 1, ..Default::default() };
    /// let mut node = TargetBreaker::new("n1");
    /// assert!(node.fail(FailureKind::Timeout, 0, &config));
    /// assert_eq!(node.open_until_ms, Some(60_000));
    /// // The half-open probe fails: twice as long.
    /// assert!(node.fail(FailureKind::Timeout, 61_000, &config));
    /// assert_eq!(node.open_until_ms, Some(61_000 + 120_000));
    /// ```
    pub fn fail(&mut self, kind: FailureKind, now_ms: u64, config: &TargetBreakerConfig) -> bool {
        let state = self.state(now_ms);
        self.failures_ms.push(now_ms);
        let window = config.window_ms();
        self.failures_ms
            .retain(|&t| now_ms.saturating_sub(t) < window);
        let keep = config.failures.max(1) as usize;
        if self.failures_ms.len() > keep {
            let extra = self.failures_ms.len() - keep;
            self.failures_ms.drain(..extra);
        }
        self.last_kind = Some(kind);
        self.last_failure_ms = Some(now_ms);
        self.updated_ms = now_ms;
        self.probe_migration = None;
        self.probe_until_ms = None;
        let opens = match state {
            BreakerState::HalfOpen => true,
            BreakerState::Open => false,
            _ => self.failures_in_window(now_ms, config) >= config.failures,
        };
        if opens {
            self.openings = self.openings.saturating_add(1);
            let cooldown = ms(config.cooldown_after(self.openings));
            self.open_until_ms = Some(now_ms.saturating_add(cooldown));
        }
        opens
    }

    /// A migration to the node went through: closed, its failures and
    /// cool-down forgotten.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// use rebound_recovery::model::breaker::{TargetBreaker, TargetBreakerConfig};
    /// let config = TargetBreakerConfig { failures: 1, ..Default::default() };
    /// let mut node = TargetBreaker::new("n1");
    /// node.fail(FailureKind::Timeout, 0, &config);
    /// node.succeed(70_000);
    /// assert_eq!((node.openings, node.open_until_ms), (0, None));
    /// ```
    pub fn succeed(&mut self, now_ms: u64) {
        self.failures_ms.clear();
        self.openings = 0;
        self.open_until_ms = None;
        self.probe_migration = None;
        self.probe_until_ms = None;
        self.updated_ms = now_ms;
    }

    /// Whether an attempt of `migration` may go to the node at `now_ms`;
    /// a half-open node takes the first as its probe, held for `hold_ms`
    /// (until its outcome is counted, or the hold ends).
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// use rebound_recovery::model::breaker::{Admission, TargetBreaker, TargetBreakerConfig};
    /// let config = TargetBreakerConfig { failures: 1, ..Default::default() };
    /// let mut node = TargetBreaker::new("n1");
    /// node.fail(FailureKind::Timeout, 0, &config);
    /// assert_eq!(node.admit("m-1", 1_000, 30_000), Admission::Open { until_ms: 60_000 });
    /// assert_eq!(node.admit("m-1", 60_000, 30_000), Admission::Probe { until_ms: 90_000 });
    /// assert!(matches!(node.admit("m-2", 61_000, 30_000), Admission::Probing { .. }));
    /// ```
    pub fn admit(&mut self, migration: &str, now_ms: u64, hold_ms: u64) -> Admission {
        match self.state(now_ms) {
            BreakerState::Open => Admission::Open {
                until_ms: self.open_until_ms.unwrap_or(now_ms),
            },
            BreakerState::HalfOpen => match (&self.probe_migration, self.probe_until_ms) {
                (Some(other), Some(until)) if other != migration && until > now_ms => {
                    Admission::Probing {
                        migration: other.clone(),
                        until_ms: until,
                    }
                }
                _ => {
                    let until_ms = now_ms.saturating_add(hold_ms);
                    self.probe_migration = Some(migration.to_owned());
                    self.probe_until_ms = Some(until_ms);
                    self.updated_ms = now_ms;
                    Admission::Probe { until_ms }
                }
            },
            _ => Admission::Closed,
        }
    }
}

/// The nodes whose breaker is open at one moment, as a plan sees them:
/// target rotation skips them.
///
/// ```
/// use rebound_recovery::model::breaker::{OpenTargets, TargetBreaker};
/// let mut node = TargetBreaker::new("n1");
/// node.open_until_ms = Some(60_000);
/// let open = OpenTargets::at([&node], 1_000);
/// assert_eq!(open.until("n1"), Some(60_000));
/// assert_eq!(OpenTargets::at([&node], 60_000).until("n1"), None); // half-open
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenTargets {
    until: BTreeMap<String, u64>,
}

impl OpenTargets {
    /// The nodes among `breakers` that are open at `now_ms`.
    ///
    /// ```
    /// use rebound_recovery::model::breaker::{OpenTargets, TargetBreaker};
    /// assert!(OpenTargets::at([&TargetBreaker::new("n1")], 0).is_empty());
    /// ```
    pub fn at<'a>(breakers: impl IntoIterator<Item = &'a TargetBreaker>, now_ms: u64) -> Self {
        let until = breakers
            .into_iter()
            .filter(|b| b.state(now_ms) == BreakerState::Open)
            .filter_map(|b| Some((b.node.clone(), b.open_until_ms?)))
            .collect();
        Self { until }
    }

    /// Adds `node` as open until `until_ms`.
    ///
    /// ```
    /// use rebound_recovery::model::breaker::OpenTargets;
    /// let mut open = OpenTargets::default();
    /// open.insert("n1", 5_000);
    /// assert_eq!(open.until("n1"), Some(5_000));
    /// ```
    pub fn insert(&mut self, node: impl Into<String>, until_ms: u64) {
        self.until.insert(node.into(), until_ms);
    }

    /// When `node`'s cool-down ends, if it is open.
    ///
    /// ```
    /// assert_eq!(rebound_recovery::model::breaker::OpenTargets::default().until("n1"), None);
    /// ```
    pub fn until(&self, node: &str) -> Option<u64> {
        self.until.get(node).copied()
    }

    /// Whether no node is open.
    ///
    /// ```
    /// assert!(rebound_recovery::model::breaker::OpenTargets::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

/// An RFC 3339 time (whole seconds, UTC) for ms since the epoch, for
/// reasons and messages.
pub(crate) fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(failures: u32) -> TargetBreakerConfig {
        TargetBreakerConfig {
            failures,
            ..Default::default()
        }
    }

    #[test]
    fn opens_only_with_n_failures_inside_the_window() {
        let c = config(3);
        let mut node = TargetBreaker::new("n");
        node.fail(FailureKind::Timeout, 0, &c);
        node.fail(FailureKind::Timeout, 100_000, &c);
        // The first one is out of the 10-minute window by now.
        assert!(!node.fail(FailureKind::Timeout, 600_001, &c));
        assert_eq!(node.state(600_001), BreakerState::Closed);
        assert!(node.fail(FailureKind::Timeout, 600_002, &c));
        assert_eq!(node.state(600_003), BreakerState::Open);
        assert!(node.failures_ms.len() <= 3);
    }

    #[test]
    fn the_cool_down_grows_while_probes_fail_and_resets_when_closed() {
        let c = config(1);
        let mut node = TargetBreaker::new("n");
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            assert!(node.fail(FailureKind::TargetUnreachable, now, &c));
            let until = node.open_until_ms.unwrap();
            seen.push((until - now) / 1000);
            now = until; // half-open: the probe fails again
        }
        assert_eq!(seen, [60, 120, 240, 480, 960, 1800, 1800]);
        node.succeed(now);
        node.fail(FailureKind::TargetUnreachable, now, &c);
        assert_eq!(node.open_until_ms, Some(now + 60_000));
    }

    #[test]
    fn a_failure_while_open_does_not_extend_the_cool_down() {
        let c = config(1);
        let mut node = TargetBreaker::new("n");
        node.fail(FailureKind::Timeout, 0, &c);
        assert!(!node.fail(FailureKind::Timeout, 1_000, &c));
        assert_eq!(node.open_until_ms, Some(60_000));
    }

    #[test]
    fn one_probe_at_a_time_and_a_dead_probe_frees_the_node() {
        let c = config(1);
        let mut node = TargetBreaker::new("n");
        node.fail(FailureKind::Timeout, 0, &c);
        assert!(node.admit("a", 60_000, 10_000).admitted());
        assert!(node.admit("a", 61_000, 10_000).admitted(), "its own probe");
        assert!(!node.admit("b", 61_000, 10_000).admitted());
        assert!(node.admit("b", 71_000, 10_000).admitted(), "hold ran out");
    }

    proptest::proptest! {
        // Whatever the failures and their times: a closed node opens only
        // with `failures` of them inside the window, a cool-down is never
        // above the cap, and a success always closes it.
        #[test]
        fn opens_only_on_evidence_and_a_success_closes(
            failures in 1u32..6,
            gaps in proptest::collection::vec(0u64..400_000, 1..40),
        ) {
            let c = config(failures);
            let mut node = TargetBreaker::new("n");
            let mut now = 0u64;
            let mut times: Vec<u64> = Vec::new();
            for gap in gaps {
                now += gap;
                let was = node.state(now);
                times.push(now);
                let opened = node.fail(FailureKind::Timeout, now, &c);
                if opened && was == BreakerState::Closed {
                    let recent = times.iter().filter(|&&t| now - t < 600_000).count();
                    proptest::prop_assert!(recent >= failures as usize);
                }
                if let Some(until) = node.open_until_ms {
                    proptest::prop_assert!(until - now <= 1_800_000 || !opened);
                }
                proptest::prop_assert!(node.failures_ms.len() <= failures as usize);
            }
            node.succeed(now);
            proptest::prop_assert_eq!(node.state(now), BreakerState::Closed);
            proptest::prop_assert_eq!(node.failures_in_window(now, &c), 0);
        }
    }

    #[test]
    fn settings_are_checked_by_rebound_retry() {
        assert!(TargetBreakerConfig::default().validate().is_ok());
        let zero_window = TargetBreakerConfig {
            window: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            zero_window.validate(),
            Err(ConfigError::TargetBreakerWindow)
        );
        let bad = TargetBreakerConfig {
            max_cooldown: Duration::from_secs(1),
            ..Default::default()
        };
        let Err(ConfigError::TargetBreaker(e)) = bad.validate() else {
            panic!("accepted")
        };
        assert_eq!(e.setting(), "max_cooldown");
        let huge = TargetBreakerConfig {
            cooldown: Duration::from_secs(u64::MAX / 2),
            max_cooldown: Duration::from_secs(u64::MAX / 2),
            ..Default::default()
        };
        assert!(huge.validate().is_err());
    }
}

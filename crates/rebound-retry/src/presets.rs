//! Ready-made exponential policies with smolvm's numbers, jitter on.
//!
//! | preset | attempts | first delay | cap | multiplier | nominal delays |
//! |---|---|---|---|---|---|
//! | [`default()`] | 3 | 100 ms | 5 s | ×2 | 100 ms, 200 ms |
//! | [`network()`] | 4 | 500 ms | 5 s | ×2 | 500 ms, 1 s, 2 s |
//! | [`connection()`] | 3 | 50 ms | 2 s | ×2 | 50 ms, 100 ms |
//!
//! # Why equal jitter
//!
//! The presets use [`Jitter::Equal`]: each delay is drawn uniformly from
//! `[nominal / 2, nominal]`. Full jitter (`[0, nominal]`) spreads callers
//! a little more, but it may retry at once, which defeats the point of these
//! delays: each one is the time smolvm judged a passing failure needs to
//! clear (a connection pool to recover, a socket to appear). Equal jitter
//! keeps at least half of that pause while still breaking the lock step of
//! many callers that failed together, and never waits longer than smolvm
//! did. Call `.without_jitter()` for smolvm's exact sequence, or
//! `.with_jitter(..)` for another mode.
//!
//! ```
//! use rebound_retry::presets;
//! use std::time::Duration;
//! let exact: Vec<_> = presets::default().without_jitter().build()?.collect();
//! assert_eq!(exact, [Duration::from_millis(100), Duration::from_millis(200)]);
//! # Ok::<(), rebound_retry::PolicyError>(())
//! ```

use std::time::Duration;

use crate::backoff::{ExponentialBuilder, Jitter};

/// The multiplier every preset uses.
const MULTIPLIER: f64 = 2.0;

/// General operations: 3 attempts, 100 ms, cap 5 s, ×2, equal jitter.
///
/// ```
/// # use rebound_retry::presets;
/// let b = presets::default().build()?;
/// assert_eq!(b.max_attempts(), Some(3));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub fn default() -> ExponentialBuilder {
    ExponentialBuilder::from_parts(
        3,
        Duration::from_millis(100),
        Duration::from_secs(5),
        MULTIPLIER,
        Jitter::Equal,
    )
}

/// Network operations (registry calls, downloads): 4 attempts, 500 ms, cap
/// 5 s, ×2, equal jitter.
///
/// ```
/// # use rebound_retry::presets; use std::time::Duration;
/// let b = presets::network().build()?;
/// assert_eq!(b.nominal(1), Duration::from_millis(500));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub fn network() -> ExponentialBuilder {
    ExponentialBuilder::from_parts(
        4,
        Duration::from_millis(500),
        Duration::from_secs(5),
        MULTIPLIER,
        Jitter::Equal,
    )
}

/// Connecting to a local peer that should already be up: 3 attempts,
/// 50 ms, cap 2 s, ×2, equal jitter.
///
/// ```
/// # use rebound_retry::presets; use std::time::Duration;
/// let b = presets::connection().build()?;
/// assert_eq!(b.nominal(30), Duration::from_secs(2));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub fn connection() -> ExponentialBuilder {
    ExponentialBuilder::from_parts(
        3,
        Duration::from_millis(50),
        Duration::from_secs(2),
        MULTIPLIER,
        Jitter::Equal,
    )
}

/// The restart backoff: 1 s doubling to a 60 s cap, equal jitter, no
/// attempt limit (the caller counts restarts).
///
/// Not one of smolvm's presets (so not in [`by_name`]): it is ZLayer's
/// `on_init_failure: backoff` schedule (1 s, 2 s, 4 s ... 60 s), used by
/// rebound-init for whole-init restarts and by rebound-ensure before the
/// next start of a runtime whose start failed.
///
/// ```
/// # use rebound_retry::presets; use std::time::Duration;
/// let b = presets::restart().build()?;
/// assert_eq!(b.max_attempts(), None);
/// assert_eq!(b.nominal(1), Duration::from_secs(1));
/// assert_eq!(b.nominal(3), Duration::from_secs(4));
/// assert_eq!(b.nominal(u32::MAX), Duration::from_secs(60));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub fn restart() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_initial_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_multiplier(MULTIPLIER)
        .with_jitter(Jitter::Equal)
        .forever()
}

/// A preset by name: `default`, `network` or `connection`.
///
/// ```
/// # use rebound_retry::presets;
/// assert!(presets::by_name("network").is_some());
/// assert!(presets::by_name("nope").is_none());
/// ```
pub fn by_name(name: &str) -> Option<ExponentialBuilder> {
    match name {
        "default" => Some(default()),
        "network" => Some(network()),
        "connection" => Some(connection()),
        _ => None,
    }
}

/// The names [`by_name`] accepts.
///
/// ```
/// # use rebound_retry::presets;
/// assert!(presets::NAMES.iter().all(|n| presets::by_name(n).is_some()));
/// ```
pub const NAMES: [&str; 3] = ["default", "network", "connection"];

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(b: ExponentialBuilder) -> Vec<u128> {
        b.without_jitter()
            .build()
            .unwrap()
            .map(|d| d.as_millis())
            .collect()
    }

    #[test]
    fn smolvm_sequences_without_jitter() {
        assert_eq!(exact(default()), [100, 200]);
        assert_eq!(exact(network()), [500, 1000, 2000]);
        assert_eq!(exact(connection()), [50, 100]);
    }

    #[test]
    fn jitter_is_on_by_default_and_keeps_half() {
        for name in NAMES {
            let b = by_name(name).unwrap().build().unwrap();
            assert_eq!(b.jitter(), Jitter::Equal);
            let nominal = b.clone();
            for (i, d) in b.enumerate() {
                let n = nominal.nominal(u32::try_from(i).unwrap() + 1);
                assert!(d >= n / 2 && d <= n, "{name}: {d:?} vs {n:?}");
            }
        }
    }
}

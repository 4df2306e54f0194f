//! Wall-clock time as the journal stores it: ms since the Unix epoch.
//!
//! Both the journal backends (stamping schema migrations) and the worker
//! (stamping every change) read the time here; neither imports the other
//! for it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock the worker stamps the journal with (ms since the epoch).
///
/// A test or a simulation passes its own to
/// [`RecoveryWorker::with_clock`](crate::RecoveryWorker::with_clock).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use rebound_recovery::Clock;
/// /// A clock a test moves by hand.
/// struct Manual(AtomicU64);
/// impl Clock for Manual {
///     fn now_ms(&self) -> u64 { self.0.load(Ordering::SeqCst) }
/// }
/// let clock = Manual(AtomicU64::new(60_000));
/// clock.0.fetch_add(1_000, Ordering::SeqCst);
/// assert_eq!(clock.now_ms(), 61_000);
/// ```
pub trait Clock: Send + Sync {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
///
/// ```
/// use rebound_recovery::{Clock, SystemClock};
/// // 2020-09-13 or later.
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// The system time in ms since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

//! A circuit breaker: stop calling a dependency that keeps failing, and
//! probe it again after a cool-down.
//!
//! # States
//!
//! - **closed**: calls go through. The breaker opens after `N` consecutive
//!   failures ([`with_consecutive_failures`](CircuitBreakerBuilder::with_consecutive_failures)),
//!   or when, over the last `window` calls (at least `min_calls` of them),
//!   the share of failures is above `rate`
//!   ([`with_failure_rate`](CircuitBreakerBuilder::with_failure_rate)).
//! - **open**: calls are rejected at once with a [`BreakerOpen`] saying when
//!   to try again. The cool-down is itself an exponential backoff: the first
//!   opening waits `cooldown`, and each time a half-open trial fails, the
//!   next opening waits `multiplier` times longer, up to `max_cooldown`.
//! - **half-open**: once the cool-down is over, `K` trial calls go through
//!   ([`with_trial_calls`](CircuitBreakerBuilder::with_trial_calls)); the
//!   others are rejected. When all `K` succeed the breaker closes (and the
//!   cool-down starts again from `cooldown`); one failure opens it again.
//!
//! Errors that the runner's classifier calls permanent ([`Decision::Stop`](crate::Decision::Stop))
//! are neither failures nor successes for the breaker unless
//! [`with_permanent_errors_counted`](CircuitBreakerBuilder::with_permanent_errors_counted):
//! a 404 says nothing about the health of the server.
//!
//! # Cost
//!
//! A [`CircuitBreaker`] is a handle (`Arc` inside): clone it or share it by
//! reference across threads and tasks. In the closed state, admitting a call
//! is one atomic load; recording a success is one more load (and a store
//! only after failures); neither takes a lock, allocates or reads the clock.
//! A lock is taken on failures that may trip the breaker, on state changes,
//! for half-open trials and, when a failure-rate rule is configured, to
//! record each outcome in its window. An open breaker rejects with one clock
//! read and no lock.
//!
//! # With the runners
//!
//! `.breaker(&breaker)` on [`Retry`](crate::Retry) and
//! [`BlockingRetry`](crate::BlockingRetry): each attempt asks the breaker
//! first; a rejected call stops with [`StopReason::BreakerOpen`](crate::StopReason::BreakerOpen)
//! and [`RetryError::breaker_rejection`](crate::RetryError::breaker_rejection),
//! without charging the [`RetryBudget`](crate::RetryBudget); a failure that
//! opens the breaker stops the call at once instead of sleeping first.
//!
//! ```
//! use rebound_retry::{BlockingRetryable, CircuitBreaker, ConstantBuilder, StopReason};
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder()
//!     .with_consecutive_failures(3)
//!     .with_cooldown(Duration::from_secs(30))
//!     .build()?;
//! let backoff = || ConstantBuilder::new().with_delay(Duration::ZERO).with_max_attempts(10).build().unwrap();
//!
//! // Three failures open the breaker: the call stops there, not after ten.
//! let err = (|| Err::<(), _>("refused")).retry(backoff()).breaker(&breaker).call().unwrap_err();
//! assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 3));
//!
//! // The next call is rejected before any attempt.
//! let err = (|| Ok::<_, &str>(())).retry(backoff()).breaker(&breaker).call().unwrap_err();
//! assert_eq!(err.attempts(), 0);
//! let retry_in = err.breaker_rejection().unwrap().retry_in().unwrap();
//! assert!(retry_in <= Duration::from_secs(30) && retry_in > Duration::from_secs(29));
//! # Ok::<(), rebound_retry::BreakerError>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backoff::{Exponential, ExponentialBuilder, Jitter, PolicyError};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Where a breaker reads the time (only when open or half-open).
///
/// [`SystemClock`] by default; [`TokioClock`] follows tokio's clock (paused
/// and advanced in tests); [`ManualClock`] is moved by hand.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant; never goes backwards.
    fn now(&self) -> Instant;
}

/// `std::time::Instant::now()`.
///
/// ```
/// use rebound_retry::breaker::{Clock, SystemClock};
/// assert!(SystemClock.now() <= std::time::Instant::now());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// tokio's clock (`tokio::time::Instant::now()`), which a test can pause and
/// advance (feature `tokio`).
///
/// ```
/// use rebound_retry::breaker::{Clock, TokioClock};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let before = TokioClock.now();
/// tokio::time::advance(Duration::from_secs(60)).await;
/// assert_eq!(TokioClock.now() - before, Duration::from_secs(60));
/// # }
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock moved by hand, for tests of code without tokio.
///
/// ```
/// use rebound_retry::breaker::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - t0, Duration::from_secs(5));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing still at the current instant.
    ///
    /// ```
    /// let clock = rebound_retry::breaker::ManualClock::new();
    /// assert_eq!(clock.elapsed(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by` (saturating after ~584 years).
    ///
    /// ```
    /// # use rebound_retry::breaker::ManualClock; use std::time::Duration;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.elapsed(), Duration::from_millis(1500));
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// How far the clock was moved since [`new`](Self::new).
    ///
    /// ```
    /// # use rebound_retry::breaker::ManualClock;
    /// assert!(ManualClock::new().elapsed().is_zero());
    /// ```
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }
}

/// The state of a breaker.
///
/// ```
/// use rebound_retry::{BreakerState, CircuitBreaker};
/// let b = CircuitBreaker::builder().build()?;
/// assert_eq!(b.state(), BreakerState::Closed);
/// assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
/// # Ok::<(), rebound_retry::BreakerError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the cool-down is over.
    Open,
    /// A few trial calls go through; the others are rejected.
    HalfOpen,
}

impl BreakerState {
    fn from_word(word: u8) -> Self {
        match word {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// Why a breaker opened.
///
/// ```
/// use rebound_retry::breaker::TripCause;
/// assert_eq!(TripCause::ConsecutiveFailures { failures: 5 }.to_string(), "5 consecutive failures");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TripCause {
    /// This many failures in a row, in the closed state.
    ConsecutiveFailures {
        /// The failures counted.
        failures: u32,
    },
    /// A failure rate above the configured one over the window.
    FailureRate {
        /// Failures in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// A half-open trial call failed.
    TrialFailed,
}

impl fmt::Display for TripCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripCause::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive failures")
            }
            TripCause::FailureRate { failures, calls } => {
                write!(f, "{failures} failures in the last {calls} calls")
            }
            TripCause::TrialFailed => f.write_str("a half-open trial call failed"),
        }
    }
}

/// A state change, as given to the [`on_state_change`](CircuitBreakerBuilder::on_state_change)
/// hook.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// Why it opened (`to` is [`BreakerState::Open`]).
    pub cause: Option<TripCause>,
    /// How long it stays open (`to` is [`BreakerState::Open`]).
    pub cooldown: Option<Duration>,
}

/// A call rejected by a breaker: open, or half-open with all its trial
/// calls out.
///
/// ```
/// use rebound_retry::{BreakerState, CircuitBreaker};
/// let b = CircuitBreaker::builder().with_consecutive_failures(1).with_name("registry").build()?;
/// b.try_acquire().unwrap().failure();
/// let open = b.try_acquire().unwrap_err();
/// assert_eq!(open.state(), BreakerState::Open);
/// assert!(open.to_string().starts_with("circuit breaker registry is open: try again in "), "{open}");
/// # Ok::<(), rebound_retry::BreakerError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct BreakerOpen {
    name: Name,
    state: BreakerState,
    retry_in: Option<Duration>,
}

impl BreakerOpen {
    /// The breaker's name.
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.try_acquire().unwrap_err().name(), "circuit breaker");
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state that rejected the call.
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.try_acquire().unwrap_err().state(), BreakerState::Open);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How long until the cool-down is over (open); `None` when half-open
    /// with every trial call out: try again once they finish.
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker; use std::time::Duration;
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1)
    ///     .with_cooldown(Duration::from_secs(10)).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert!(b.try_acquire().unwrap_err().retry_in().unwrap() <= Duration::from_secs(10));
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_in {
            Some(d) => {
                // Whole milliseconds are enough for a person.
                let shown = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                write!(
                    f,
                    "circuit breaker {} is open: try again in {}",
                    &*self.name,
                    humantime::format_duration(shown)
                )
            }
            None => write!(
                f,
                "circuit breaker {} is half-open and its trial calls are running: try again once they finish",
                &*self.name
            ),
        }
    }
}

/// An invalid breaker setting; returned by [`CircuitBreakerBuilder::build`].
///
/// ```
/// use rebound_retry::{BreakerError, CircuitBreaker};
/// let err = CircuitBreaker::builder().with_trial_calls(0).build().unwrap_err();
/// assert_eq!(err, BreakerError::ZeroTrialCalls);
/// assert_eq!(err.setting(), "trial_calls");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerError {
    /// Zero consecutive failures: the breaker would open before any call.
    #[error("consecutive failures must be at least 1")]
    ZeroConsecutiveFailures,
    /// A failure-rate window of zero calls.
    #[error("the failure-rate window must hold at least 1 call")]
    ZeroWindow,
    /// A failure rate outside 0..=1 (or NaN).
    #[error("the failure rate must be between 0 and 1, got {rate}")]
    InvalidRate {
        /// The rejected rate.
        rate: f64,
    },
    /// The minimum number of calls is zero or above the window.
    #[error(
        "the minimum number of calls ({min_calls}) must be between 1 and the window ({window})"
    )]
    InvalidMinCalls {
        /// The rejected minimum.
        min_calls: u32,
        /// The window.
        window: u32,
    },
    /// Zero trial calls in half-open: the breaker could never close.
    #[error("half-open trial calls must be at least 1")]
    ZeroTrialCalls,
    /// Neither a consecutive-failure nor a failure-rate rule: the breaker
    /// could never open.
    #[error("no rule to open the breaker: set consecutive failures or a failure rate")]
    NoTripRule,
    /// A zero cool-down: an open breaker would not reject anything.
    #[error("the cool-down must be above zero")]
    ZeroCooldown,
    /// A cool-down above [`duration::MAX`](crate::duration::MAX), which the
    /// clock could not add to "now".
    #[error("the {setting} ({value:?}) is too large for the clock (at most {} s)", crate::duration::MAX.as_secs())]
    CooldownTooLarge {
        /// `"cooldown"` or `"max_cooldown"`.
        setting: &'static str,
        /// The rejected duration.
        value: Duration,
    },
    /// The cool-down growth is invalid (multiplier, or a cap below the first
    /// cool-down).
    #[error("invalid cool-down backoff: {0}")]
    Cooldown(#[source] PolicyError),
}

impl BreakerError {
    /// The setting at fault, for callers that name their own flag or key.
    ///
    /// ```
    /// use rebound_retry::CircuitBreaker;
    /// let err = CircuitBreaker::builder().with_failure_rate(1.5, 10, 5).build().unwrap_err();
    /// assert_eq!(err.setting(), "failure_rate");
    /// ```
    pub fn setting(&self) -> &'static str {
        match self {
            BreakerError::ZeroConsecutiveFailures => "consecutive_failures",
            BreakerError::ZeroWindow => "window",
            BreakerError::InvalidRate { .. } => "failure_rate",
            BreakerError::InvalidMinCalls { .. } => "min_calls",
            BreakerError::ZeroTrialCalls => "trial_calls",
            BreakerError::NoTripRule => "consecutive_failures",
            BreakerError::ZeroCooldown => "cooldown",
            BreakerError::CooldownTooLarge { setting, .. } => setting,
            BreakerError::Cooldown(e) => match e.setting() {
                "multiplier" => "cooldown_multiplier",
                _ => "max_cooldown",
            },
        }
    }
}

/// A breaker's name: a static string (copied into each rejection for free)
/// or a shared one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl From<std::borrow::Cow<'static, str>> for Name {
    fn from(name: std::borrow::Cow<'static, str>) -> Self {
        match name {
            std::borrow::Cow::Borrowed(s) => Name::Static(s),
            std::borrow::Cow::Owned(s) => Name::Shared(Arc::from(s)),
        }
    }
}

/// The failure-rate rule.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RateRule {
    rate: f64,
    window: u32,
    min_calls: u32,
}

/// The hook type.
type Hook = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Builds a [`CircuitBreaker`].
///
/// # Default
///
/// Opens after 5 consecutive failures (no failure-rate rule), 1 trial call
/// in half-open, cool-down 1 s doubling to at most 60 s without jitter,
/// permanent errors not counted, the system clock.
///
/// ```
/// use rebound_retry::CircuitBreaker;
/// use std::time::Duration;
/// let breaker = CircuitBreaker::builder()
///     .with_name("payments")
///     .with_consecutive_failures(10)
///     .with_failure_rate(0.5, 100, 20)
///     .with_trial_calls(3)
///     .with_cooldown(Duration::from_secs(5))
///     .with_max_cooldown(Duration::from_secs(300))
///     .build()?;
/// assert_eq!(breaker.name(), "payments");
/// # Ok::<(), rebound_retry::BreakerError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct CircuitBreakerBuilder {
    name: Name,
    consecutive: Option<u32>,
    rate: Option<RateRule>,
    trials: u32,
    cooldown: Duration,
    max_cooldown: Duration,
    multiplier: f64,
    jitter: Jitter,
    count_permanent: bool,
    clock: Option<Arc<dyn Clock>>,
    hook: Option<Hook>,
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &&*self.name)
            .field("consecutive", &self.consecutive)
            .field("rate", &self.rate)
            .field("trials", &self.trials)
            .field("cooldown", &self.cooldown)
            .field("max_cooldown", &self.max_cooldown)
            .field("multiplier", &self.multiplier)
            .field("jitter", &self.jitter)
            .field("count_permanent", &self.count_permanent)
            .field("clock", &self.clock)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self {
            name: Name::Static("circuit breaker"),
            consecutive: Some(5),
            rate: None,
            trials: 1,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: Jitter::None,
            count_permanent: false,
            clock: None,
            hook: None,
        }
    }
}

impl CircuitBreakerBuilder {
    /// The default settings (see `# Default`).
    ///
    /// ```
    /// # use rebound_retry::breaker::CircuitBreakerBuilder;
    /// assert!(CircuitBreakerBuilder::new().build().is_ok());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the breaker in rejections and tracing events.
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// assert_eq!(CircuitBreaker::builder().with_name("node-7").build()?.name(), "node-7");
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.name = Name::from(name.into());
        self
    }

    /// Opens after `failures` failures in a row (at least 1).
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// let b = CircuitBreaker::builder().with_consecutive_failures(2).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.state(), BreakerState::Closed);
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.state(), BreakerState::Open);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn with_consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive = Some(failures);
        self
    }

    /// No consecutive-failure rule (then a failure-rate rule is needed).
    ///
    /// ```
    /// # use rebound_retry::{BreakerError, CircuitBreaker};
    /// let err = CircuitBreaker::builder().without_consecutive_failures().build().unwrap_err();
    /// assert_eq!(err, BreakerError::NoTripRule);
    /// ```
    pub fn without_consecutive_failures(mut self) -> Self {
        self.consecutive = None;
        self
    }

    /// Opens when, over the last `window` calls (once at least `min_calls`
    /// were seen), the share of failures is above `rate` (0..=1).
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// let b = CircuitBreaker::builder().without_consecutive_failures()
    ///     .with_failure_rate(0.5, 4, 4).build()?;
    /// for ok in [true, false, true, false] {
    ///     let p = b.try_acquire().unwrap();
    ///     if ok { p.success() } else { p.failure() }
    /// }
    /// assert_eq!(b.state(), BreakerState::Closed); // 2 of 4: not above half
    /// b.try_acquire().unwrap().failure(); // the window is now F T F F
    /// assert_eq!(b.state(), BreakerState::Open);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn with_failure_rate(mut self, rate: f64, window: u32, min_calls: u32) -> Self {
        self.rate = Some(RateRule {
            rate,
            window,
            min_calls,
        });
        self
    }

    /// How many trial calls a half-open breaker lets through; it closes
    /// when all of them succeed (at least 1).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// assert!(CircuitBreaker::builder().with_trial_calls(3).build().is_ok());
    /// ```
    pub fn with_trial_calls(mut self, trials: u32) -> Self {
        self.trials = trials;
        self
    }

    /// The first cool-down (above zero, at most [`duration::MAX`](crate::duration::MAX)).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker; use std::time::Duration;
    /// assert!(CircuitBreaker::builder().with_cooldown(Duration::ZERO).build().is_err());
    /// ```
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The cap on the cool-down as it grows (at least the first cool-down).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker; use std::time::Duration;
    /// let err = CircuitBreaker::builder().with_max_cooldown(Duration::from_millis(1)).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_cooldown");
    /// ```
    pub fn with_max_cooldown(mut self, max: Duration) -> Self {
        self.max_cooldown = max;
        self
    }

    /// The growth of the cool-down each time a half-open trial fails
    /// (finite, at least 1; 1 keeps it constant).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// assert!(CircuitBreaker::builder().with_cooldown_multiplier(1.0).build().is_ok());
    /// assert!(CircuitBreaker::builder().with_cooldown_multiplier(0.5).build().is_err());
    /// ```
    pub fn with_cooldown_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Jitter on the cool-down (none by default), so that many clients'
    /// breakers do not probe in lock step.
    ///
    /// ```
    /// # use rebound_retry::{CircuitBreaker, Jitter};
    /// assert!(CircuitBreaker::builder().with_cooldown_jitter(Jitter::Equal).build().is_ok());
    /// ```
    pub fn with_cooldown_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Counts errors classified as permanent as failures (by default they
    /// count as neither failure nor success).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// assert!(CircuitBreaker::builder().with_permanent_errors_counted(true).build().is_ok());
    /// ```
    pub fn with_permanent_errors_counted(mut self, counted: bool) -> Self {
        self.count_permanent = counted;
        self
    }

    /// The clock for cool-downs: [`TokioClock`] under a paused tokio clock,
    /// [`ManualClock`] in blocking tests.
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// # use rebound_retry::breaker::ManualClock;
    /// # use std::{sync::Arc, time::Duration};
    /// let clock = Arc::new(ManualClock::new());
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1)
    ///     .with_cooldown(Duration::from_secs(10)).with_clock(clock.clone()).build()?;
    /// b.try_acquire().unwrap().failure();
    /// clock.advance(Duration::from_secs(10));
    /// let trial = b.try_acquire().unwrap();
    /// assert_eq!(b.state(), BreakerState::HalfOpen);
    /// trial.success();
    /// assert_eq!(b.state(), BreakerState::Closed);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Calls `hook` after each state change (outside the breaker's lock; the
    /// hook may use the breaker).
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// # use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1)
    ///     .on_state_change(move |c| log.lock().unwrap().push(c.to)).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(*seen.lock().unwrap(), [BreakerState::Open]);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn on_state_change(mut self, hook: impl Fn(&StateChange) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Checks the settings and builds the breaker (closed).
    ///
    /// # Errors
    ///
    /// [`BreakerError`]: zero consecutive failures, a zero window, a rate
    /// outside 0..=1, a minimum of calls outside 1..=window, zero trial
    /// calls, no rule to open, a zero cool-down or one too large for the
    /// clock, an invalid cool-down growth.
    ///
    /// ```
    /// # use rebound_retry::{BreakerError, CircuitBreaker};
    /// let err = CircuitBreaker::builder().with_failure_rate(0.5, 0, 0).build().unwrap_err();
    /// assert_eq!(err, BreakerError::ZeroWindow);
    /// ```
    pub fn build(self) -> Result<CircuitBreaker, BreakerError> {
        if self.consecutive == Some(0) {
            return Err(BreakerError::ZeroConsecutiveFailures);
        }
        if let Some(rule) = self.rate {
            if rule.window == 0 {
                return Err(BreakerError::ZeroWindow);
            }
            if !(0.0..=1.0).contains(&rule.rate) {
                return Err(BreakerError::InvalidRate { rate: rule.rate });
            }
            if rule.min_calls == 0 || rule.min_calls > rule.window {
                return Err(BreakerError::InvalidMinCalls {
                    min_calls: rule.min_calls,
                    window: rule.window,
                });
            }
        }
        if self.consecutive.is_none() && self.rate.is_none() {
            return Err(BreakerError::NoTripRule);
        }
        if self.trials == 0 {
            return Err(BreakerError::ZeroTrialCalls);
        }
        if self.cooldown.is_zero() {
            return Err(BreakerError::ZeroCooldown);
        }
        for (setting, value) in [
            ("cooldown", self.cooldown),
            ("max_cooldown", self.max_cooldown),
        ] {
            if value > crate::duration::MAX {
                return Err(BreakerError::CooldownTooLarge { setting, value });
            }
        }
        let cooldown = ExponentialBuilder::new()
            .with_initial_delay(self.cooldown)
            .with_max_delay(self.max_cooldown)
            .with_multiplier(self.multiplier)
            .with_jitter(self.jitter)
            .forever()
            .build()
            .map_err(BreakerError::Cooldown)?;
        let window = match self.rate {
            Some(rule) => Window::new(rule.window),
            None => Window::new(0),
        };
        let clock = self.clock;
        let epoch = clock.as_ref().map_or_else(Instant::now, |c| c.now());
        Ok(CircuitBreaker {
            shared: Arc::new(Shared {
                state: AtomicU8::new(CLOSED),
                consecutive: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                epoch,
                clock,
                threshold: self.consecutive.unwrap_or(0),
                rate: self.rate,
                trials: self.trials,
                count_permanent: self.count_permanent,
                cooldown,
                name: self.name,
                hook: self.hook,
                inner: Mutex::new(Inner {
                    window,
                    openings: 0,
                    period: 0,
                    issued: 0,
                    successes: 0,
                }),
            }),
        })
    }
}

/// The outcomes of the last calls, in a ring allocated once.
#[derive(Debug)]
struct Window {
    ring: Box<[bool]>,
    next: usize,
    len: u32,
    failures: u32,
}

impl Window {
    fn new(size: u32) -> Self {
        Self {
            ring: vec![false; size as usize].into_boxed_slice(),
            next: 0,
            len: 0,
            failures: 0,
        }
    }

    /// Records one outcome (`true`: failure), evicting the oldest when full.
    fn push(&mut self, failed: bool) {
        if self.ring.is_empty() {
            return;
        }
        if self.len as usize == self.ring.len() {
            if self.ring[self.next] {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        self.ring[self.next] = failed;
        if failed {
            self.failures += 1;
        }
        self.next = (self.next + 1) % self.ring.len();
    }

    fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
        self.failures = 0;
    }

    /// Whether the rule trips on this window.
    fn trips(&self, rule: &RateRule) -> bool {
        self.len >= rule.min_calls && f64::from(self.failures) > rule.rate * f64::from(self.len)
    }
}

/// What the lock guards.
#[derive(Debug)]
struct Inner {
    window: Window,
    /// Openings since the breaker last closed (numbers the cool-down).
    openings: u32,
    /// Numbers the half-open periods, so that a late outcome of an old trial
    /// does not count in a new one.
    period: u64,
    /// Trial calls out or done in this half-open period.
    issued: u32,
    /// Trial calls that succeeded in this half-open period.
    successes: u32,
}

struct Shared {
    state: AtomicU8,
    consecutive: AtomicU32,
    /// Nanoseconds since `epoch` at which the cool-down ends.
    open_until: AtomicU64,
    epoch: Instant,
    clock: Option<Arc<dyn Clock>>,
    /// Consecutive failures that open it; 0 for no such rule.
    threshold: u32,
    rate: Option<RateRule>,
    trials: u32,
    count_permanent: bool,
    cooldown: Exponential,
    name: Name,
    hook: Option<Hook>,
    inner: Mutex<Inner>,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// In the closed state.
    Closed,
    /// As a trial of the half-open period `period`.
    Trial { period: u64 },
}

/// How a call ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    /// Neither (a permanent error, a call abandoned).
    Ignored,
}

/// A circuit breaker shared by every caller of one dependency: a cheap
/// handle (clone it, or share `&CircuitBreaker`). See the [module
/// documentation](self) for the states and costs.
///
/// ```
/// use rebound_retry::{BreakerState, CircuitBreaker};
/// use std::thread;
///
/// let breaker = CircuitBreaker::builder().with_consecutive_failures(3).build()?;
/// thread::scope(|s| {
///     for _ in 0..3 {
///         s.spawn(|| breaker.try_acquire().unwrap().failure());
///     }
/// });
/// assert_eq!(breaker.state(), BreakerState::Open);
/// # Ok::<(), rebound_retry::BreakerError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &&*self.shared.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A builder with the default settings.
    ///
    /// ```
    /// let b = rebound_retry::CircuitBreaker::builder().with_consecutive_failures(3).build()?;
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// The name given with [`with_name`](CircuitBreakerBuilder::with_name).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// assert_eq!(CircuitBreaker::builder().build()?.name(), "circuit breaker");
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state. An open breaker whose cool-down is over still
    /// reads [`BreakerState::Open`] until a call asks to go through.
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// assert_eq!(CircuitBreaker::builder().build()?.state(), BreakerState::Closed);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn state(&self) -> BreakerState {
        BreakerState::from_word(self.shared.state.load(Ordering::Acquire))
    }

    /// Failures in a row counted in the closed state (0 when the
    /// consecutive-failure rule is off).
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// let b = CircuitBreaker::builder().build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.consecutive_failures(), 1);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn consecutive_failures(&self) -> u32 {
        self.shared.consecutive.load(Ordering::Relaxed)
    }

    /// Asks to make a call: a [`Permit`] to report the outcome on, or why
    /// not. Dropping the permit without reporting counts as
    /// [`Permit::ignore`].
    ///
    /// # Errors
    ///
    /// [`BreakerOpen`] while open, or half-open with every trial call out.
    ///
    /// ```
    /// use rebound_retry::CircuitBreaker;
    /// let breaker = CircuitBreaker::builder().build()?;
    /// match breaker.try_acquire() {
    ///     Ok(permit) => {
    ///         let result: Result<(), ()> = Ok(()); // the call
    ///         if result.is_ok() { permit.success() } else { permit.failure() }
    ///     }
    ///     Err(open) => eprintln!("{open}"),
    /// }
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let admission = self.admit()?;
        Ok(Permit {
            breaker: self,
            admission,
        })
    }

    /// Closes the breaker by hand (an operator who knows the dependency is
    /// back), forgetting its failures and cool-down growth.
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1).build()?;
    /// b.try_acquire().unwrap().failure();
    /// b.reset();
    /// assert_eq!(b.state(), BreakerState::Closed);
    /// assert!(b.try_acquire().is_ok());
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn reset(&self) {
        let change = {
            let mut inner = self.lock();
            let from = self.state();
            self.close(&mut inner);
            (from != BreakerState::Closed).then_some(StateChange {
                from,
                to: BreakerState::Closed,
                cause: None,
                cooldown: None,
            })
        };
        if let Some(change) = change {
            self.emit(&change);
        }
    }

    /// Whether a permanent error counts as a failure.
    pub(crate) fn counts_permanent(&self) -> bool {
        self.shared.count_permanent
    }

    /// Admission: in the closed state one atomic load.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admission, BreakerOpen> {
        if self.shared.state.load(Ordering::Acquire) == CLOSED {
            return Ok(Admission::Closed);
        }
        self.admit_slow()
    }

    /// Why a call would be rejected now while open (no trial slot taken);
    /// `None` when closed, half-open, or the cool-down is over.
    pub(crate) fn open_rejection(&self) -> Option<BreakerOpen> {
        if self.shared.state.load(Ordering::Acquire) != OPEN {
            return None;
        }
        let now = self.now_nanos();
        let until = self.shared.open_until.load(Ordering::Acquire);
        (now < until).then(|| self.rejected(BreakerState::Open, Some(until - now)))
    }

    #[cold]
    fn admit_slow(&self) -> Result<Admission, BreakerOpen> {
        let s = &*self.shared;
        let now = self.now_nanos();
        if s.state.load(Ordering::Acquire) == OPEN {
            let until = s.open_until.load(Ordering::Acquire);
            if now < until {
                return Err(self.rejected(BreakerState::Open, Some(until - now)));
            }
        }
        let mut change = None;
        let result = {
            let mut inner = self.lock();
            match s.state.load(Ordering::Acquire) {
                CLOSED => Ok(Admission::Closed),
                OPEN => {
                    let until = s.open_until.load(Ordering::Acquire);
                    if now < until {
                        Err(self.rejected(BreakerState::Open, Some(until - now)))
                    } else {
                        inner.period += 1;
                        inner.issued = 1;
                        inner.successes = 0;
                        s.state.store(HALF_OPEN, Ordering::Release);
                        change = Some(StateChange {
                            from: BreakerState::Open,
                            to: BreakerState::HalfOpen,
                            cause: None,
                            cooldown: None,
                        });
                        Ok(Admission::Trial {
                            period: inner.period,
                        })
                    }
                }
                _ => {
                    if inner.issued < s.trials {
                        inner.issued += 1;
                        Ok(Admission::Trial {
                            period: inner.period,
                        })
                    } else {
                        Err(self.rejected(BreakerState::HalfOpen, None))
                    }
                }
            }
        };
        if let Some(change) = change {
            self.emit(&change);
        }
        result
    }

    /// Records how an admitted call ended.
    #[inline]
    pub(crate) fn record(&self, admission: Admission, outcome: Outcome) {
        let s = &*self.shared;
        match (admission, outcome) {
            (Admission::Closed, Outcome::Ignored) => {}
            (Admission::Closed, Outcome::Success) => {
                if s.consecutive.load(Ordering::Relaxed) != 0 {
                    s.consecutive.store(0, Ordering::Relaxed);
                }
                if s.rate.is_some() {
                    let mut inner = self.lock();
                    if s.state.load(Ordering::Acquire) == CLOSED {
                        inner.window.push(false);
                    }
                }
            }
            (Admission::Closed, Outcome::Failure) => self.closed_failure(),
            (Admission::Trial { period }, outcome) => self.trial_outcome(period, outcome),
        }
    }

    #[cold]
    fn closed_failure(&self) {
        let s = &*self.shared;
        if s.state.load(Ordering::Acquire) != CLOSED {
            // A late outcome of a call let through before the breaker opened.
            return;
        }
        let failures = if s.threshold > 0 {
            s.consecutive
                .fetch_add(1, Ordering::AcqRel)
                .saturating_add(1)
        } else {
            0
        };
        let consecutive_trips = s.threshold > 0 && failures >= s.threshold;
        if !consecutive_trips && s.rate.is_none() {
            return;
        }
        let change = {
            let mut inner = self.lock();
            if s.state.load(Ordering::Acquire) != CLOSED {
                return;
            }
            let mut cause = None;
            if let Some(rule) = &s.rate {
                inner.window.push(true);
                if inner.window.trips(rule) {
                    cause = Some(TripCause::FailureRate {
                        failures: inner.window.failures,
                        calls: inner.window.len,
                    });
                }
            }
            if consecutive_trips {
                cause = Some(TripCause::ConsecutiveFailures { failures });
            }
            match cause {
                Some(cause) => self.open(&mut inner, BreakerState::Closed, cause),
                None => return,
            }
        };
        self.emit(&change);
    }

    #[cold]
    fn trial_outcome(&self, period: u64, outcome: Outcome) {
        let s = &*self.shared;
        let change = {
            let mut inner = self.lock();
            if s.state.load(Ordering::Acquire) != HALF_OPEN || inner.period != period {
                return;
            }
            match outcome {
                Outcome::Ignored => {
                    // Free the slot for another trial.
                    inner.issued = inner.issued.saturating_sub(1);
                    return;
                }
                Outcome::Failure => {
                    self.open(&mut inner, BreakerState::HalfOpen, TripCause::TrialFailed)
                }
                Outcome::Success => {
                    inner.successes += 1;
                    if inner.successes < s.trials {
                        return;
                    }
                    self.close(&mut inner);
                    StateChange {
                        from: BreakerState::HalfOpen,
                        to: BreakerState::Closed,
                        cause: None,
                        cooldown: None,
                    }
                }
            }
        };
        self.emit(&change);
    }

    /// Opens (under the lock) and returns the change to report.
    fn open(&self, inner: &mut Inner, from: BreakerState, cause: TripCause) -> StateChange {
        let s = &*self.shared;
        inner.openings = inner.openings.saturating_add(1);
        let cooldown = s.cooldown.sample(inner.openings);
        let nanos = u64::try_from(cooldown.as_nanos()).unwrap_or(u64::MAX);
        s.open_until
            .store(self.now_nanos().saturating_add(nanos), Ordering::Release);
        s.state.store(OPEN, Ordering::Release);
        StateChange {
            from,
            to: BreakerState::Open,
            cause: Some(cause),
            cooldown: Some(cooldown),
        }
    }

    /// Closes (under the lock): counters and growth start again.
    fn close(&self, inner: &mut Inner) {
        let s = &*self.shared;
        inner.openings = 0;
        inner.issued = 0;
        inner.successes = 0;
        inner.window.clear();
        s.consecutive.store(0, Ordering::Relaxed);
        s.state.store(CLOSED, Ordering::Release);
    }

    /// Reports a change: tracing, then the hook (outside the lock).
    fn emit(&self, change: &StateChange) {
        let name = &*self.shared.name;
        match change.to {
            BreakerState::Open => tracing::warn!(
                breaker = name,
                from = %change.from,
                cause = %change.cause.map_or_else(String::new, |c| c.to_string()),
                cooldown_ms = change.cooldown.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                "circuit breaker opened"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(breaker = name, "circuit breaker half-open, trying calls")
            }
            BreakerState::Closed => {
                tracing::info!(breaker = name, from = %change.from, "circuit breaker closed")
            }
        }
        if let Some(hook) = &self.shared.hook {
            hook(change);
        }
    }

    fn rejected(&self, state: BreakerState, retry_in_nanos: Option<u64>) -> BreakerOpen {
        BreakerOpen {
            name: self.shared.name.clone(),
            state,
            retry_in: retry_in_nanos.map(Duration::from_nanos),
        }
    }

    fn now_nanos(&self) -> u64 {
        let s = &*self.shared;
        let now = s.clock.as_ref().map_or_else(Instant::now, |c| c.now());
        let since = now.saturating_duration_since(s.epoch);
        // u64 arithmetic (cheaper than `as_nanos`' u128); saturates after
        // ~584 years.
        since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock guards plain counters that every update leaves
        // consistent, so a panic elsewhere while it was held (a poisoned
        // lock) leaves nothing half-done.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Leave to make one call through a [`CircuitBreaker`]; report how it
/// ended. Dropped without a report, it counts as [`ignore`](Self::ignore).
///
/// ```
/// # use rebound_retry::CircuitBreaker;
/// let b = CircuitBreaker::builder().build()?;
/// let permit = b.try_acquire().unwrap();
/// permit.failure();
/// assert_eq!(b.consecutive_failures(), 1);
/// # Ok::<(), rebound_retry::BreakerError>(())
/// ```
#[derive(Debug)]
#[must_use = "report the call's outcome with success(), failure() or ignore()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    admission: Admission,
}

impl Permit<'_> {
    /// The call succeeded.
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// let b = CircuitBreaker::builder().build()?;
    /// b.try_acquire().unwrap().failure();
    /// b.try_acquire().unwrap().success();
    /// assert_eq!(b.consecutive_failures(), 0);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    #[inline]
    pub fn success(self) {
        self.finish(Outcome::Success);
    }

    /// The call failed (a failure of the dependency).
    ///
    /// ```
    /// # use rebound_retry::{BreakerState, CircuitBreaker};
    /// let b = CircuitBreaker::builder().with_consecutive_failures(1).build()?;
    /// b.try_acquire().unwrap().failure();
    /// assert_eq!(b.state(), BreakerState::Open);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    #[inline]
    pub fn failure(self) {
        self.finish(Outcome::Failure);
    }

    /// The outcome says nothing about the dependency's health (a permanent
    /// error, a cancelled call): neither failure nor success; in half-open
    /// the trial slot is freed.
    ///
    /// ```
    /// # use rebound_retry::CircuitBreaker;
    /// let b = CircuitBreaker::builder().build()?;
    /// b.try_acquire().unwrap().failure();
    /// b.try_acquire().unwrap().ignore();
    /// assert_eq!(b.consecutive_failures(), 1);
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    #[inline]
    pub fn ignore(self) {
        self.finish(Outcome::Ignored);
    }

    #[inline]
    fn finish(self, outcome: Outcome) {
        let (breaker, admission) = (self.breaker, self.admission);
        // Reported: the drop (which reports "ignored") must not run.
        std::mem::forget(self);
        breaker.record(admission, outcome);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.breaker.record(self.admission, Outcome::Ignored);
    }
}

/// A breaker as a runner holds it: the handle and the admission of the
/// running attempt, released if the runner is dropped mid-attempt.
#[derive(Debug)]
pub(crate) struct BreakerSlot {
    breaker: CircuitBreaker,
    pending: Option<Admission>,
}

impl BreakerSlot {
    pub(crate) fn new(breaker: &CircuitBreaker) -> Self {
        Self {
            breaker: breaker.clone(),
            pending: None,
        }
    }

    /// Asks before an attempt.
    #[inline]
    pub(crate) fn admit(&mut self) -> Result<(), BreakerOpen> {
        self.pending = Some(self.breaker.admit()?);
        Ok(())
    }

    /// Reports the running attempt's outcome.
    #[inline]
    pub(crate) fn record(&mut self, outcome: Outcome) {
        if let Some(admission) = self.pending.take() {
            self.breaker.record(admission, outcome);
        }
    }

    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Drop for BreakerSlot {
    fn drop(&mut self) {
        if let Some(admission) = self.pending.take() {
            self.breaker.record(admission, Outcome::Ignored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(builder: CircuitBreakerBuilder) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (builder.with_clock(clock.clone()).build().unwrap(), clock)
    }

    #[test]
    fn build_errors_are_typed() {
        let b = CircuitBreaker::builder;
        assert_eq!(
            b().with_consecutive_failures(0).build().unwrap_err(),
            BreakerError::ZeroConsecutiveFailures
        );
        assert_eq!(
            b().with_failure_rate(0.5, 0, 1).build().unwrap_err(),
            BreakerError::ZeroWindow
        );
        for rate in [-0.1, 1.1, f64::NAN, f64::INFINITY] {
            assert_eq!(
                b().with_failure_rate(rate, 10, 1)
                    .build()
                    .unwrap_err()
                    .setting(),
                "failure_rate"
            );
        }
        assert!(matches!(
            b().with_failure_rate(0.5, 10, 11).build().unwrap_err(),
            BreakerError::InvalidMinCalls { .. }
        ));
        assert!(matches!(
            b().with_failure_rate(0.5, 10, 0).build().unwrap_err(),
            BreakerError::InvalidMinCalls { .. }
        ));
        assert_eq!(
            b().with_trial_calls(0).build().unwrap_err(),
            BreakerError::ZeroTrialCalls
        );
        assert_eq!(
            b().with_cooldown(Duration::MAX)
                .with_max_cooldown(Duration::MAX)
                .build()
                .unwrap_err(),
            BreakerError::CooldownTooLarge {
                setting: "cooldown",
                value: Duration::MAX
            }
        );
        assert_eq!(
            b().with_max_cooldown(Duration::from_secs(u64::MAX))
                .build()
                .unwrap_err()
                .setting(),
            "max_cooldown"
        );
        assert_eq!(
            b().with_cooldown_multiplier(f64::NAN)
                .build()
                .unwrap_err()
                .setting(),
            "cooldown_multiplier"
        );
        assert!(b().with_failure_rate(0.0, 1, 1).build().is_ok());
        assert!(b().with_failure_rate(1.0, 1, 1).build().is_ok());
    }

    #[test]
    fn cooldown_grows_while_trials_fail_and_resets_on_close() {
        let (b, clock) = manual(
            CircuitBreaker::builder()
                .with_consecutive_failures(1)
                .with_cooldown(Duration::from_secs(1))
                .with_max_cooldown(Duration::from_secs(5)),
        );
        b.try_acquire().unwrap().failure();
        let mut cooldowns = Vec::new();
        for _ in 0..5 {
            let retry_in = b.try_acquire().unwrap_err().retry_in().unwrap();
            cooldowns.push(retry_in.as_secs());
            clock.advance(retry_in);
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(cooldowns, [1, 2, 4, 5, 5]);
        clock.advance(Duration::from_secs(5));
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().unwrap().failure();
        assert_eq!(
            b.try_acquire().unwrap_err().retry_in(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn late_outcomes_of_old_calls_do_not_count() {
        let (b, clock) = manual(
            CircuitBreaker::builder()
                .with_consecutive_failures(1)
                .with_trial_calls(1),
        );
        let early = b.try_acquire().unwrap();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        // A call let through while closed, failing after it opened.
        early.failure();
        assert_eq!(
            b.try_acquire().unwrap_err().retry_in(),
            Some(Duration::from_secs(1))
        );
        clock.advance(Duration::from_secs(1));
        let trial = b.try_acquire().unwrap();
        assert_eq!(b.try_acquire().unwrap_err().retry_in(), None);
        drop(trial);
        // The dropped trial freed its slot.
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn window_evicts_the_oldest() {
        let mut w = Window::new(3);
        for f in [true, true, false, false] {
            w.push(f);
        }
        assert_eq!((w.len, w.failures), (3, 1));
        let rule = RateRule {
            rate: 0.3,
            window: 3,
            min_calls: 3,
        };
        assert!(w.trips(&rule));
        w.push(false);
        assert!(!w.trips(&rule));
    }
}

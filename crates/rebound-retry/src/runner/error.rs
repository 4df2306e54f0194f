//! Why a retried call stopped, and what it saw last.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Why the runner stopped retrying.
///
/// ```
/// use rebound_retry::StopReason;
/// assert_eq!(StopReason::Exhausted.to_string(), "attempts exhausted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The backoff yielded no more delays (max attempts reached).
    Exhausted,
    /// The classifier said the error is permanent.
    Permanent,
    /// The whole-operation deadline ran out, or the next sleep would have
    /// ended at or past it.
    Deadline,
    /// The shared [`RetryBudget`](crate::RetryBudget) refused a retry.
    Budget,
    /// The [`CircuitBreaker`](crate::CircuitBreaker) is open: it rejected
    /// the next attempt, or a failure just opened it. See
    /// [`RetryError::breaker_rejection`] for when to try again.
    BreakerOpen,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Exhausted => "attempts exhausted",
            StopReason::Permanent => "permanent error",
            StopReason::Deadline => "deadline ran out",
            StopReason::Budget => "retry budget exhausted",
            StopReason::BreakerOpen => "circuit breaker open",
        })
    }
}

/// A retried call that failed for good: why it stopped, the last error, how
/// many attempts ran and how long it all took.
///
/// `Display` gives the summary; the last error is the error's
/// [`source`](std::error::Error::source), so `anyhow`'s `{:#}` prints both.
///
/// ```
/// use rebound_retry::{BlockingRetryable, ConstantBuilder, StopReason};
/// use std::time::Duration;
/// let backoff = ConstantBuilder::new().with_delay(Duration::ZERO).build()?;
/// let err = (|| Err::<(), _>("down")).retry(backoff).name("ping").call().unwrap_err();
/// assert_eq!(err.reason(), StopReason::Exhausted);
/// assert_eq!(err.attempts(), 3);
/// assert_eq!(err.last_error(), Some(&"down"));
/// assert_eq!(err.to_string(), "ping: attempts exhausted after 3 attempts");
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct RetryError<E>(Box<Stop<E>>);

/// What a [`RetryError`] holds, boxed so that `Result<T, RetryError<E>>`
/// stays the size of `T` plus a word or two: a call that succeeds moves
/// and returns that, never the error's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stop<E> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) reason: StopReason,
    pub(crate) last_error: Option<E>,
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
    pub(crate) timed_out: bool,
    pub(crate) breaker: Option<crate::BreakerOpen>,
}

impl<E> From<Stop<E>> for RetryError<E> {
    #[cold]
    fn from(stop: Stop<E>) -> Self {
        Self(Box::new(stop))
    }
}

impl<E: fmt::Debug> fmt::Debug for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        f.debug_struct("RetryError")
            .field("name", &s.name)
            .field("reason", &s.reason)
            .field("last_error", &s.last_error)
            .field("attempts", &s.attempts)
            .field("elapsed", &s.elapsed)
            .field("timed_out", &s.timed_out)
            .field("breaker", &s.breaker)
            .finish()
    }
}

impl<E> RetryError<E> {
    /// Why the runner stopped.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder, Decision, StopReason};
    /// let err = (|| Err::<(), _>(1)).retry(ConstantBuilder::new().build()?)
    ///     .classify(|_: &i32| Decision::Stop).call().unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Permanent);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn reason(&self) -> StopReason {
        self.0.reason
    }

    /// The error of the last attempt that returned one (`None` when no
    /// attempt returned an error, e.g. the only attempt timed out).
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// let err = (|| Err::<(), _>("x")).retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .call().unwrap_err();
    /// assert_eq!(err.last_error(), Some(&"x"));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn last_error(&self) -> Option<&E> {
        self.0.last_error.as_ref()
    }

    /// Takes the last error out.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// let err = (|| Err::<(), _>(7)).retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .call().unwrap_err();
    /// assert_eq!(err.into_last_error(), Some(7));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn into_last_error(self) -> Option<E> {
        self.0.last_error
    }

    /// Attempts made, the first included.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// # use std::time::Duration;
    /// let b = ConstantBuilder::new().with_delay(Duration::ZERO).with_max_attempts(5).build()?;
    /// assert_eq!((|| Err::<(), _>(())).retry(b).call().unwrap_err().attempts(), 5);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// Time the retried call took, measured so that a call that succeeds at
    /// once never reads the clock:
    ///
    /// - with a deadline (or, async, an attempt timeout), from the start of
    ///   the first attempt to the stop: the clock is read before the first
    ///   attempt because the deadline needs it;
    /// - otherwise from the moment the first attempt was seen to fail (the
    ///   blocking runner: when it returned its error; the async runner:
    ///   after its first poll that did not succeed) to the stop. The running
    ///   time of the first attempt before that moment is not counted; every
    ///   sleep and every later attempt is. The blocking runner marks that
    ///   moment on Linux's coarse monotonic clock (no precise clock read
    ///   while the call goes on), which is at most one kernel tick (1-10
    ///   ms) early: `elapsed` may then be up to a tick longer.
    ///
    /// A call rejected by an open breaker before any attempt reports zero.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// # use std::time::Duration;
    /// let b = ConstantBuilder::new().with_delay(Duration::ZERO).build()?;
    /// let err = (|| Err::<(), _>(())).retry(b).call().unwrap_err();
    /// assert!(err.elapsed() < Duration::from_secs(60));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed
    }

    /// True when the last attempt was cut by the per-attempt timeout or the
    /// deadline (async runner only).
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// let err = (|| Err::<(), _>(())).retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .call().unwrap_err();
    /// assert!(!err.last_attempt_timed_out());
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn last_attempt_timed_out(&self) -> bool {
        self.0.timed_out
    }

    /// Why the circuit breaker stopped the call, and when it may be tried
    /// again ([`StopReason::BreakerOpen`]); `None` for other stops.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, CircuitBreaker, ConstantBuilder, StopReason};
    /// let breaker = CircuitBreaker::builder().with_consecutive_failures(1).build()?;
    /// let _ = (|| Err::<(), _>(())).retry(ConstantBuilder::new().build().unwrap()).breaker(&breaker).call();
    /// let err = (|| Ok::<_, ()>(())).retry(ConstantBuilder::new().build().unwrap())
    ///     .breaker(&breaker).call().unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 0));
    /// assert!(err.breaker_rejection().unwrap().retry_in().is_some());
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn breaker_rejection(&self) -> Option<&crate::BreakerOpen> {
        self.0.breaker.as_ref()
    }

    /// The operation name given with `.name(..)` (`"operation"` if none).
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// let err = (|| Err::<(), _>(())).retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .name("sync").call().unwrap_err();
    /// assert_eq!(err.name(), "sync");
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

impl<E> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.0.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{}: {} after {} attempt{plural}",
            self.0.name, self.0.reason, self.0.attempts
        )?;
        if self.0.timed_out {
            f.write_str(" (the last one timed out)")?;
        }
        if let Some(open) = &self.0.breaker {
            write!(f, " ({open})")?;
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .last_error
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn err(reason: StopReason, attempts: u32, timed_out: bool) -> RetryError<std::io::Error> {
        RetryError::from(Stop {
            name: "op".into(),
            reason,
            last_error: Some(std::io::Error::other("boom")),
            attempts,
            elapsed: Duration::ZERO,
            timed_out,
            breaker: None,
        })
    }

    #[test]
    fn display_names_operation_reason_and_attempts() {
        assert_eq!(
            err(StopReason::Deadline, 1, true).to_string(),
            "op: deadline ran out after 1 attempt (the last one timed out)"
        );
        assert_eq!(
            err(StopReason::Budget, 2, false).to_string(),
            "op: retry budget exhausted after 2 attempts"
        );
    }

    #[test]
    fn source_is_the_last_error() {
        let e = err(StopReason::Permanent, 1, false);
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("boom"));
    }
}

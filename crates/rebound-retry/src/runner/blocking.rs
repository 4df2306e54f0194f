//! The blocking runner, for threads: `op.retry(backoff).call()`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::RetryBudget;
use super::clock::Mark;
use super::error::RetryError;
use super::hooks::{NoNotify, Notify, RetryAll, When};
use super::policy::{Next, Policy};
use crate::breaker::{BreakerSlot, CircuitBreaker};
use crate::classify::Classify;

/// Where the blocking runner's `elapsed` starts.
#[derive(Debug, Clone, Copy)]
enum Since {
    /// No attempt has failed yet and no deadline needs the clock.
    Nothing,
    /// The start of the first attempt (a deadline needs the precise clock).
    Deadline(Instant),
    /// The first failure, on the coarse clock.
    Failure(Mark),
}

impl Since {
    fn elapsed(self) -> Duration {
        match self {
            Since::Nothing => Duration::ZERO,
            Since::Deadline(start) => start.elapsed(),
            Since::Failure(mark) => mark.elapsed(),
        }
    }
}

/// Adds `.retry(backoff)` to every `FnMut() -> Result<T, E>`.
///
/// ```
/// use rebound_retry::{presets, BlockingRetryable};
/// use std::time::Duration;
///
/// let mut calls = 0;
/// let backoff = presets::default().with_initial_delay(Duration::from_millis(1)).build()?;
/// let value = (|| {
///     calls += 1;
///     if calls < 3 { Err("not yet") } else { Ok(calls) }
/// })
/// .retry(backoff)
/// .call();
/// assert_eq!(value.unwrap(), 3);
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub trait BlockingRetryable<T, E>: FnMut() -> Result<T, E> + Sized {
    /// Starts a retried call with `backoff` (any iterator of delays; its
    /// length sets the number of retries).
    fn retry<B: IntoIterator<Item = Duration>>(
        self,
        backoff: B,
    ) -> BlockingRetry<Self, B::IntoIter, RetryAll, NoNotify, fn(Duration)>;
}

impl<T, E, F: FnMut() -> Result<T, E>> BlockingRetryable<T, E> for F {
    #[inline]
    fn retry<B: IntoIterator<Item = Duration>>(
        self,
        backoff: B,
    ) -> BlockingRetry<Self, B::IntoIter, RetryAll, NoNotify, fn(Duration)> {
        BlockingRetry {
            op: self,
            policy: Policy::new(backoff.into_iter(), RetryAll, NoNotify),
            sleep: std::thread::sleep,
        }
    }
}

/// A blocking retried call being configured; run it with [`call`](Self::call).
///
/// ```
/// use rebound_retry::{BlockingRetryable, ConstantBuilder};
/// use std::time::Duration;
/// let b = ConstantBuilder::new().with_delay(Duration::ZERO).build()?;
/// assert_eq!((|| Ok::<_, ()>(1)).retry(b).call().unwrap(), 1);
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub struct BlockingRetry<F, B, C, N, S> {
    op: F,
    policy: Policy<B, C, N>,
    sleep: S,
}

impl<F, B, C, N, S> BlockingRetry<F, B, C, N, S> {
    /// Retries only errors for which `predicate` is true.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder, StopReason};
    /// let err = (|| Err::<(), _>(404)).retry(ConstantBuilder::new().build()?)
    ///     .when(|code: &i32| *code >= 500).call().unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::Permanent, 1));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn when<P>(self, predicate: P) -> BlockingRetry<F, B, When<P>, N, S> {
        self.classify(When(predicate))
    }

    /// Decides per error with a [`Classify`] (e.g. `classify::io_error`).
    ///
    /// ```
    /// # use rebound_retry::{classify, BlockingRetryable, ConstantBuilder, StopReason};
    /// # use std::io;
    /// let err = (|| Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)))
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .classify(classify::io_error).call().unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Permanent);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn classify<C2>(self, classifier: C2) -> BlockingRetry<F, B, C2, N, S> {
        BlockingRetry {
            op: self.op,
            policy: self.policy.with_classifier(classifier),
            sleep: self.sleep,
        }
    }

    /// Calls `hook(error, attempt, delay)` before each retry.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// # use std::time::Duration;
    /// let mut log = Vec::new();
    /// let b = ConstantBuilder::new().with_delay(Duration::ZERO).build()?;
    /// let _ = (|| Err::<(), _>("x")).retry(b)
    ///     .notify(|_: &&str, attempt, _| log.push(attempt)).call();
    /// assert_eq!(log, [1, 2]);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn notify<N2>(self, hook: N2) -> BlockingRetry<F, B, C, N2, S> {
        BlockingRetry {
            op: self.op,
            policy: self.policy.with_notify(hook),
            sleep: self.sleep,
        }
    }

    /// A deadline for the whole call: no sleep reaches past it and no
    /// attempt starts after it (a running attempt is not interrupted).
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder, StopReason};
    /// # use std::time::Duration;
    /// let b = ConstantBuilder::new().with_delay(Duration::from_secs(3600)).build()?;
    /// let err = (|| Err::<(), _>(())).retry(b)
    ///     .deadline(Duration::from_secs(1)).call().unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::Deadline, 1));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy.extras().deadline = Some(deadline);
        self
    }

    /// Shares a [`RetryBudget`] with other callers.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder, RetryBudget, StopReason};
    /// # use std::{sync::Arc, time::Duration};
    /// let budget = Arc::new(RetryBudget::new(2, 0.1)?);
    /// let b = ConstantBuilder::new().with_delay(Duration::ZERO).with_max_attempts(9).build().unwrap();
    /// let err = (|| Err::<(), _>(())).retry(b).budget(budget).call().unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::Budget, 1));
    /// # Ok::<(), rebound_retry::BudgetError>(())
    /// ```
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.policy.extras().budget = Some(budget);
        self
    }

    /// Runs every attempt through a shared [`CircuitBreaker`]: an attempt
    /// it rejects is not made and the call stops with
    /// [`StopReason::BreakerOpen`](crate::StopReason::BreakerOpen) (nothing
    /// charged to the budget); a failure that opens it stops the call
    /// without sleeping first. Errors the classifier calls permanent do not
    /// count as failures unless the breaker is built to count them.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, CircuitBreaker, ConstantBuilder, StopReason};
    /// # use std::time::Duration;
    /// let breaker = CircuitBreaker::builder().with_consecutive_failures(2).build()?;
    /// let b = ConstantBuilder::new().with_delay(Duration::ZERO).with_max_attempts(5).build().unwrap();
    /// let err = (|| Err::<(), _>("down")).retry(b).breaker(&breaker).call().unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 2));
    /// assert_eq!(err.last_error(), Some(&"down"));
    /// # Ok::<(), rebound_retry::BreakerError>(())
    /// ```
    pub fn breaker(mut self, breaker: &CircuitBreaker) -> Self {
        self.policy.extras().breaker = Some(BreakerSlot::new(breaker));
        self
    }

    /// Names the operation in errors and tracing events.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// let err = (|| Err::<(), _>(())).retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .name("pull image").call().unwrap_err();
    /// assert_eq!(err.name(), "pull image");
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.policy.set_name(name.into());
        self
    }

    /// Replaces `std::thread::sleep` (to record delays, or to sleep on
    /// another clock).
    ///
    /// ```
    /// # use rebound_retry::{presets, BlockingRetryable};
    /// # use std::time::Duration;
    /// let mut slept = Vec::new();
    /// let b = presets::default().without_jitter().build()?;
    /// let _ = (|| Err::<(), _>(())).retry(b).sleep(|d| slept.push(d)).call();
    /// assert_eq!(slept, [Duration::from_millis(100), Duration::from_millis(200)]);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn sleep<S2: FnMut(Duration)>(self, sleep: S2) -> BlockingRetry<F, B, C, N, S2> {
        BlockingRetry {
            op: self.op,
            policy: self.policy,
            sleep,
        }
    }

    /// Runs the operation until it succeeds or the policy says stop.
    ///
    /// # Errors
    ///
    /// [`RetryError`] with the reason, last error, attempts and elapsed time.
    ///
    /// ```
    /// # use rebound_retry::{BlockingRetryable, ConstantBuilder};
    /// assert_eq!((|| Ok::<_, ()>("up")).retry(ConstantBuilder::new().build()?).call(), Ok("up"));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[inline]
    pub fn call<T, E>(mut self) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
        B: Iterator<Item = Duration>,
        C: Classify<E>,
        N: Notify<E>,
        S: FnMut(Duration),
    {
        if self.policy.extras.is_some() {
            return self.run(None);
        }
        // The fast path: with no deadline, budget or breaker, the first
        // attempt needs no clock, no admission and no record, and a success
        // at once (one attempt: no event, see `Policy::on_success`) returns
        // the value as the bare call would. The runner's state is touched
        // only after a failure, out of line.
        match (self.op)() {
            Ok(value) => Ok(value),
            Err(e) => {
                self.policy.start_attempt();
                self.run(Some(e))
            }
        }
    }

    /// The loop after the first failure (`first`), or from the start when
    /// the call has a deadline, budget or breaker (`first` is `None`).
    #[inline]
    fn run<T, E>(mut self, first: Option<E>) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
        B: Iterator<Item = Duration>,
        C: Classify<E>,
        N: Notify<E>,
        S: FnMut(Duration),
    {
        // The precise clock is read before the first attempt only when a
        // deadline needs it; otherwise the cheap coarse clock marks the
        // first failure, so that a call that succeeds at once reads no
        // clock and a retried one no precise clock until it stops (see
        // `RetryError::elapsed`). A call with a deadline never takes the
        // fast path, so its first attempt is made here, after the read.
        let since = match self.policy.deadline() {
            Some(_) => Since::Deadline(Instant::now()),
            None => Since::Nothing,
        };
        let mut last_error = None;
        let mut error = match first {
            Some(e) => e,
            None => match self.attempt(&mut last_error, &|| since.elapsed())? {
                Ok(value) => return Ok(value),
                Err(e) => e,
            },
        };
        // An attempt has failed: from here on `since` is fixed, and the
        // closures below borrow it rather than copy it at each step.
        let since = match since {
            Since::Nothing => Since::Failure(Mark::coarse()),
            since => since,
        };
        let elapsed = || since.elapsed();
        loop {
            match self
                .policy
                .after_failure(Some(error), &mut last_error, elapsed)
            {
                Next::Sleep(delay) => {
                    if !delay.is_zero() {
                        (self.sleep)(delay);
                    }
                }
                Next::Stop(err) => return Err(err),
            }
            error = match self.attempt(&mut last_error, &elapsed)? {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
        }
    }

    /// One attempt: admitted by the breaker (else the stop), counted, made,
    /// and a success recorded.
    #[inline]
    fn attempt<T, E>(
        &mut self,
        last_error: &mut Option<E>,
        elapsed: &impl Fn() -> Duration,
    ) -> Result<Result<T, E>, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
    {
        self.policy.admit(last_error, elapsed)?;
        self.policy.start_attempt();
        let result = (self.op)();
        if result.is_ok() {
            self.policy.on_success();
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConstantBuilder, Decision, StopReason, presets};

    #[test]
    fn exact_preset_sleep_sequences() {
        for (preset, expected) in [
            (presets::default(), vec![100, 200]),
            (presets::network(), vec![500, 1000, 2000]),
            (presets::connection(), vec![50, 100]),
        ] {
            let mut slept = Vec::new();
            let mut calls = 0;
            let err = (|| {
                calls += 1;
                Err::<(), _>(calls)
            })
            .retry(preset.without_jitter().build().unwrap())
            .sleep(|d: Duration| slept.push(d.as_millis()))
            .call()
            .unwrap_err();
            assert_eq!(slept, expected);
            assert_eq!(err.attempts(), u32::try_from(expected.len()).unwrap() + 1);
            assert_eq!(err.reason(), StopReason::Exhausted);
            assert_eq!(err.last_error(), Some(&calls));
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_delay() {
        let mut slept = Vec::new();
        let _ = (|| Err::<(), _>(429))
            .retry(presets::default().without_jitter().build().unwrap())
            .classify(|_: &i32| Decision::RetryAfter(Duration::from_secs(2)))
            .sleep(|d| slept.push(d))
            .call();
        assert_eq!(slept, [Duration::from_secs(2); 2]);
    }

    #[test]
    fn success_after_failures_notifies_each_retry() {
        let mut calls = 0;
        let mut notes = Vec::new();
        let out = (|| {
            calls += 1;
            if calls < 3 { Err("flaky") } else { Ok(calls) }
        })
        .retry(ConstantBuilder::new().with_max_attempts(5).build().unwrap())
        .sleep(|_| {})
        .notify(|e: &&str, attempt, delay| notes.push((e.to_string(), attempt, delay)))
        .call();
        assert_eq!(out, Ok(3));
        let d = Duration::from_millis(100);
        assert_eq!(
            notes,
            [("flaky".to_string(), 1, d), ("flaky".to_string(), 2, d)]
        );
    }
}

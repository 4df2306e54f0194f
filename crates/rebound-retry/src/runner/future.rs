//! The async runner (tokio): `(|| async { .. }).retry(backoff).await`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep};

use super::budget::RetryBudget;
use super::error::{RetryError, StopReason};
use super::hooks::{NoNotify, Notify, RetryAll, When};
use super::policy::{Next, Policy};
use crate::breaker::{BreakerSlot, CircuitBreaker};
use crate::classify::Classify;

/// Adds `.retry(backoff)` to every `FnMut() -> impl Future<Output =
/// Result<T, E>>`; await the result.
///
/// ```
/// use rebound_retry::{presets, Retryable};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut calls = 0;
/// let value = (|| {
///     calls += 1;
///     let n = calls;
///     async move { if n < 2 { Err("not yet") } else { Ok(n) } }
/// })
/// .retry(presets::connection().build()?)
/// .name("connect")
/// .await;
/// assert_eq!(value.unwrap(), 2);
/// # Ok(())
/// # }
/// ```
pub trait Retryable<T, E, Fut>: FnMut() -> Fut + Sized
where
    Fut: Future<Output = Result<T, E>>,
{
    /// Starts a retried call with `backoff` (any iterator of delays; its
    /// length sets the number of retries).
    fn retry<B: IntoIterator<Item = Duration>>(
        self,
        backoff: B,
    ) -> Retry<Self, Fut, E, B::IntoIter, RetryAll, NoNotify>;
}

impl<T, E, Fut, F> Retryable<T, E, Fut> for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    fn retry<B: IntoIterator<Item = Duration>>(
        self,
        backoff: B,
    ) -> Retry<Self, Fut, E, B::IntoIter, RetryAll, NoNotify> {
        Retry {
            op: self,
            policy: Policy::new(backoff.into_iter(), RetryAll, NoNotify),
            start: None,
            last_error: None,
            sleep: None,
            state: State::Idle,
        }
    }
}

pin_project! {
    /// An async retried call: configure it with the builder methods, then
    /// `.await` it. Needs a tokio runtime with the timer enabled.
    ///
    /// ```
    /// use rebound_retry::{ConstantBuilder, Retryable, StopReason};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { Err::<(), _>("down") })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Exhausted);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "a retried call does nothing until awaited"]
    pub struct Retry<F, Fut, E, B, C, N> {
        op: F,
        policy: Policy<B, C, N>,
        start: Option<Instant>,
        last_error: Option<E>,
        // The pause between attempts: boxed once, on the first retry, and
        // reset for the next ones, so that the future stays small (a call
        // that succeeds at once moves less and never allocates).
        sleep: Option<Pin<Box<Sleep>>>,
        #[pin]
        state: State<Fut>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut> {
        Idle,
        Running { #[pin] fut: Fut },
        Sleeping,
        Done,
    }
}

impl<F, Fut, E, B, C, N> Retry<F, Fut, E, B, C, N> {
    /// Retries only errors for which `predicate` is true.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Retryable, StopReason};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { Err::<(), _>(404) })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .when(|code: &i32| *code >= 500)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::Permanent, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn when<P>(self, predicate: P) -> Retry<F, Fut, E, B, When<P>, N> {
        self.classify(When(predicate))
    }

    /// Decides per error with a [`Classify`]; a
    /// [`Decision::RetryAfter`](crate::Decision::RetryAfter) replaces the
    /// backoff's delay for that retry.
    ///
    /// ```
    /// # use rebound_retry::{classify, ConstantBuilder, Retryable, StopReason};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied)) })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .classify(classify::io_error)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Permanent);
    /// # Ok(())
    /// # }
    /// ```
    pub fn classify<C2>(self, classifier: C2) -> Retry<F, Fut, E, B, C2, N> {
        Retry {
            op: self.op,
            policy: self.policy.with_classifier(classifier),
            start: self.start,
            last_error: self.last_error,
            sleep: self.sleep,
            state: self.state,
        }
    }

    /// Calls `hook(error, attempt, delay)` before each retry.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Retryable};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let mut attempts = Vec::new();
    /// let _ = (|| async { Err::<(), _>("x") })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .notify(|_: &&str, attempt, _delay| attempts.push(attempt))
    ///     .await;
    /// assert_eq!(attempts, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn notify<N2>(self, hook: N2) -> Retry<F, Fut, E, B, C, N2> {
        Retry {
            op: self.op,
            policy: self.policy.with_notify(hook),
            start: self.start,
            last_error: self.last_error,
            sleep: self.sleep,
            state: self.state,
        }
    }

    /// A deadline for the whole call: a running attempt is cancelled when it
    /// passes, and no sleep reaches it (the call stops instead).
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Retryable, StopReason};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { std::future::pending::<Result<(), ()>>().await })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .deadline(Duration::from_secs(5))
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Deadline);
    /// assert_eq!(err.elapsed(), Duration::from_secs(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy.extras().deadline = Some(deadline);
        self
    }

    /// Cancels an attempt that runs longer than `timeout`; a timed-out
    /// attempt counts as a transient failure and is retried.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Retryable, StopReason};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { std::future::pending::<Result<(), ()>>().await })
    ///     .retry(ConstantBuilder::new().build()?)
    ///     .attempt_timeout(Duration::from_secs(1))
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::Exhausted, 3));
    /// assert!(err.last_attempt_timed_out());
    /// # Ok(())
    /// # }
    /// ```
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.policy.extras().attempt_timeout = Some(timeout);
        self
    }

    /// Shares a [`RetryBudget`] with other callers.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryBudget, Retryable, StopReason};
    /// # use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let budget = Arc::new(RetryBudget::new(2, 0.1)?);
    /// let err = (|| async { Err::<(), _>(()) })
    ///     .retry(ConstantBuilder::new().with_max_attempts(10).build()?)
    ///     .budget(budget)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), StopReason::Budget);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.policy.extras().budget = Some(budget);
        self
    }

    /// Runs every attempt through a shared [`CircuitBreaker`]: an attempt
    /// it rejects is not made and the call stops with
    /// [`StopReason::BreakerOpen`] (nothing charged to the budget); a
    /// failure that opens it stops the call without sleeping first. A
    /// timed-out attempt counts as a failure; errors the classifier calls
    /// permanent do not, unless the breaker is built to count them.
    ///
    /// ```
    /// # use rebound_retry::{CircuitBreaker, ConstantBuilder, Retryable, StopReason};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder().with_consecutive_failures(2).build()?;
    /// let err = (|| async { Err::<(), _>("down") })
    ///     .retry(ConstantBuilder::new().with_max_attempts(5).build()?)
    ///     .breaker(&breaker)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!((err.reason(), err.attempts()), (StopReason::BreakerOpen, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn breaker(mut self, breaker: &CircuitBreaker) -> Self {
        self.policy.extras().breaker = Some(BreakerSlot::new(breaker));
        self
    }

    /// Names the operation in errors and tracing events.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Retryable};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rebound_retry::PolicyError> {
    /// let err = (|| async { Err::<(), _>(()) })
    ///     .retry(ConstantBuilder::new().with_max_attempts(1).build()?)
    ///     .name("fetch manifest")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.name(), "fetch manifest");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.policy.set_name(name.into());
        self
    }
}

impl<T, F, Fut, E, B, C, N> Future for Retry<F, Fut, E, B, C, N>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    B: Iterator<Item = Duration>,
    C: Classify<E>,
    N: Notify<E>,
{
    type Output = Result<T, RetryError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Idle => {
                    let start = *this.start;
                    if let Err(err) = this.policy.admit(this.last_error, move || {
                        start.map_or(Duration::ZERO, |s| s.elapsed())
                    }) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    this.policy.start_attempt();
                    // The attempt may run until the earlier of its own
                    // timeout and the deadline.
                    let limit = match this.policy.extras.as_deref() {
                        Some(x) if x.deadline.is_some() || x.attempt_timeout.is_some() => {
                            Some((x.deadline, x.attempt_timeout))
                        }
                        _ => None,
                    };
                    let limit = if let Some((deadline, attempt_timeout)) = limit {
                        let now = Instant::now();
                        let start = *this.start.get_or_insert(now);
                        let left = deadline.map(|d| d.saturating_sub(now - start));
                        match (attempt_timeout, left) {
                            (Some(t), Some(l)) if l <= t => Some((now + l, true)),
                            (Some(t), _) => Some((now + t, false)),
                            (None, Some(l)) => Some((now + l, true)),
                            (None, None) => None,
                        }
                    } else {
                        None
                    };
                    if let Some((at, is_deadline)) = limit {
                        let x = this.policy.extras();
                        match &mut x.timer {
                            Some(timer) => timer.as_mut().reset(at),
                            None => x.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                        }
                        x.timer_is_deadline = is_deadline;
                    }
                    let fut = (this.op)();
                    this.state.set(State::Running { fut });
                    continue;
                }
                StateProj::Running { fut } => {
                    let polled = fut.poll(cx);
                    // Without a deadline or attempt timeout, the clock is
                    // first read here, after the first poll of the first
                    // attempt, and only if that poll did not succeed: a call
                    // that succeeds at once never pays for a clock read.
                    if this.start.is_none() && !matches!(polled, Poll::Ready(Ok(_))) {
                        *this.start = Some(Instant::now());
                    }
                    let failure = match polled {
                        Poll::Ready(Ok(value)) => {
                            this.policy.on_success();
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(value));
                        }
                        Poll::Ready(Err(e)) => Some(e),
                        Poll::Pending => {
                            let timed_out = this
                                .policy
                                .extras
                                .as_mut()
                                .and_then(|x| x.timer.as_mut())
                                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                            if !timed_out {
                                return Poll::Pending;
                            }
                            None
                        }
                    };
                    let start = *this.start;
                    let elapsed = move || start.map_or(Duration::ZERO, |s| s.elapsed());
                    let cut_by_deadline = failure.is_none()
                        && this
                            .policy
                            .extras
                            .as_ref()
                            .is_some_and(|x| x.timer_is_deadline);
                    if cut_by_deadline {
                        this.policy.breaker_failure();
                        Next::Stop(this.policy.stop(
                            StopReason::Deadline,
                            this.last_error.take(),
                            elapsed(),
                            true,
                        ))
                    } else {
                        this.policy.after_failure(failure, this.last_error, elapsed)
                    }
                }
                StateProj::Sleeping => {
                    if let Some(sleep) = this.sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    this.state.set(State::Idle);
                    continue;
                }
                StateProj::Done => panic!("`Retry` polled after it completed"),
            };
            match next {
                Next::Sleep(delay) if delay.is_zero() => this.state.set(State::Idle),
                Next::Sleep(delay) => {
                    match (this.sleep.as_mut(), Instant::now().checked_add(delay)) {
                        (Some(s), Some(at)) => s.as_mut().reset(at),
                        // First retry, or a delay past the clock's range
                        // (`sleep` caps it).
                        _ => *this.sleep = Some(Box::pin(sleep(delay))),
                    }
                    this.state.set(State::Sleeping);
                }
                Next::Stop(err) => {
                    this.state.set(State::Done);
                    return Poll::Ready(Err(err));
                }
            }
        }
    }
}

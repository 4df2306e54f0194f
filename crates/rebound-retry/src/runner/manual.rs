//! Stepping a retry policy by hand, for middleware and loops that cannot be
//! written as a closure (a tower-style `Policy`: "no delay" means "stop").

use std::sync::Arc;
use std::time::Duration;

use super::budget::RetryBudget;
use super::error::StopReason;
use super::hooks::{NoNotify, RetryAll};
use super::policy::Policy;
use crate::classify::Classify;

/// The runners' decisions without the runner: after each failed attempt ask
/// [`next_delay`](Self::next_delay) how long to wait, or why to stop; report
/// successes with [`on_success`](Self::on_success) (for the budget).
///
/// Same semantics as the runners: classification, backoff (one delay per
/// retry), `Retry-After`, deadline (a delay that would reach it stops) and
/// budget.
///
/// ```
/// use rebound_retry::{classify, presets, RetryPolicy, StopReason};
/// use std::time::Duration;
///
/// let mut policy = RetryPolicy::new(presets::default().without_jitter().build()?)
///     .classify(|status: &u16| classify::http_status(*status, None));
/// let ms = Duration::from_millis;
/// assert_eq!(policy.next_delay(&503, ms(0)), Ok(ms(100)));
/// assert_eq!(policy.next_delay(&503, ms(120)), Ok(ms(200)));
/// assert_eq!(policy.next_delay(&503, ms(350)), Err(StopReason::Exhausted));
/// assert_eq!(policy.attempts(), 3);
///
/// let mut policy = RetryPolicy::new(presets::default().build()?)
///     .classify(|status: &u16| classify::http_status(*status, None));
/// assert_eq!(policy.next_delay(&404, ms(0)), Err(StopReason::Permanent));
/// # Ok::<(), rebound_retry::PolicyError>(())
/// ```
pub struct RetryPolicy<B, C = RetryAll> {
    policy: Policy<B, C, NoNotify>,
}

impl<B: Iterator<Item = Duration>> RetryPolicy<B, RetryAll> {
    /// A policy over `backoff` that retries every error.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryPolicy};
    /// # use std::time::Duration;
    /// let mut p = RetryPolicy::new(ConstantBuilder::new().build()?);
    /// assert_eq!(p.next_delay(&"any", Duration::ZERO), Ok(Duration::from_millis(100)));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn new(backoff: impl IntoIterator<IntoIter = B>) -> Self {
        Self {
            policy: Policy::new(backoff.into_iter(), RetryAll, NoNotify),
        }
    }
}

impl<B, C> RetryPolicy<B, C> {
    /// Decides per error with a [`Classify`].
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, Decision, RetryPolicy, StopReason};
    /// # use std::time::Duration;
    /// let mut p = RetryPolicy::new(ConstantBuilder::new().build()?)
    ///     .classify(|_: &str| Decision::RetryAfter(Duration::from_secs(3)));
    /// assert_eq!(p.next_delay("429", Duration::ZERO), Ok(Duration::from_secs(3)));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn classify<C2>(self, classifier: C2) -> RetryPolicy<B, C2> {
        RetryPolicy {
            policy: self.policy.with_classifier(classifier),
        }
    }

    /// A deadline for the whole operation, measured by the `elapsed` the
    /// caller passes to [`next_delay`](Self::next_delay).
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryPolicy, StopReason};
    /// # use std::time::Duration;
    /// let mut p = RetryPolicy::new(ConstantBuilder::new().with_delay(Duration::from_secs(2)).build()?)
    ///     .deadline(Duration::from_secs(5));
    /// assert_eq!(p.next_delay(&(), Duration::from_secs(4)), Err(StopReason::Deadline));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.policy.extras().deadline = Some(deadline);
        self
    }

    /// Shares a [`RetryBudget`] with other callers.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryBudget, RetryPolicy, StopReason};
    /// # use std::{sync::Arc, time::Duration};
    /// let budget = Arc::new(RetryBudget::new(2, 0.5)?);
    /// let mut p = RetryPolicy::new(ConstantBuilder::new().forever().build().unwrap())
    ///     .budget(Arc::clone(&budget));
    /// assert_eq!(p.next_delay(&(), Duration::ZERO), Err(StopReason::Budget));
    /// # Ok::<(), rebound_retry::BudgetError>(())
    /// ```
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.policy.extras().budget = Some(budget);
        self
    }

    /// Records one failed attempt with `error`, `elapsed` after the first
    /// attempt started, and returns the delay before the next attempt, or
    /// why to stop.
    ///
    /// # Errors
    ///
    /// The [`StopReason`]: `Permanent`, `Exhausted`, `Deadline` or `Budget`.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryPolicy, StopReason};
    /// # use std::time::Duration;
    /// let mut p = RetryPolicy::new(ConstantBuilder::new().with_max_attempts(1).build()?);
    /// assert_eq!(p.next_delay(&(), Duration::ZERO), Err(StopReason::Exhausted));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn next_delay<E: ?Sized>(
        &mut self,
        error: &E,
        elapsed: Duration,
    ) -> Result<Duration, StopReason>
    where
        B: Iterator<Item = Duration>,
        C: Classify<E>,
    {
        self.policy.start_attempt();
        let decision = self.policy.classifier.classify(error);
        self.policy.decide(decision, &|| elapsed)
    }

    /// Records a success (refunds the budget).
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryBudget, RetryPolicy};
    /// # use std::sync::Arc;
    /// let budget = Arc::new(RetryBudget::new(2, 0.5)?);
    /// budget.record_failure();
    /// let p = RetryPolicy::new(ConstantBuilder::new().build().unwrap()).budget(Arc::clone(&budget));
    /// p.on_success();
    /// assert_eq!(budget.tokens(), 1.5);
    /// # Ok::<(), rebound_retry::BudgetError>(())
    /// ```
    pub fn on_success(&self) {
        if let Some(budget) = self.policy.budget() {
            budget.record_success();
        }
    }

    /// Failed attempts recorded so far.
    ///
    /// ```
    /// # use rebound_retry::{ConstantBuilder, RetryPolicy};
    /// let p = RetryPolicy::new(ConstantBuilder::new().build()?);
    /// assert_eq!(p.attempts(), 0);
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn attempts(&self) -> u32 {
        self.policy.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConstantBuilder, Decision};

    #[test]
    fn retry_after_replaces_the_delay_but_still_uses_up_an_attempt() {
        let mut p = RetryPolicy::new(ConstantBuilder::new().build().unwrap())
            .classify(|_: &()| Decision::RetryAfter(Duration::from_secs(9)));
        assert_eq!(
            p.next_delay(&(), Duration::ZERO),
            Ok(Duration::from_secs(9))
        );
        assert_eq!(
            p.next_delay(&(), Duration::ZERO),
            Ok(Duration::from_secs(9))
        );
        assert_eq!(
            p.next_delay(&(), Duration::ZERO),
            Err(StopReason::Exhausted)
        );
    }

    #[test]
    fn a_delay_that_fits_before_the_deadline_is_allowed() {
        let mut p = RetryPolicy::new(
            ConstantBuilder::new()
                .with_delay(Duration::from_secs(1))
                .forever()
                .build()
                .unwrap(),
        )
        .deadline(Duration::from_secs(10));
        assert_eq!(
            p.next_delay(&(), Duration::from_millis(8_999)),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            p.next_delay(&(), Duration::from_secs(9)),
            Err(StopReason::Deadline)
        );
    }
}

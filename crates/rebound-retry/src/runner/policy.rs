//! The decisions both runners share: after a failed attempt, sleep how long
//! or stop why. Time comes in as "elapsed since the first attempt", so the
//! same code serves the thread clock and tokio's (virtual) clock.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::budget::RetryBudget;
use super::error::{RetryError, Stop, StopReason};
use super::hooks::Notify;
use crate::breaker::{BreakerOpen, BreakerSlot, Outcome};
use crate::classify::{Classify, Decision};

/// The name used in errors and tracing when none is given.
pub(crate) const DEFAULT_NAME: &str = "operation";

/// What to do after a failed attempt.
pub(crate) enum Next<E> {
    /// Sleep this long, then run the next attempt.
    Sleep(Duration),
    /// Stop with this error.
    Stop(RetryError<E>),
}

/// The settings a call may add: boxed, so that a call without them builds,
/// moves, checks and drops one null pointer instead of three fields.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) deadline: Option<Duration>,
    pub(crate) budget: Option<Arc<RetryBudget>>,
    pub(crate) breaker: Option<BreakerSlot>,
    /// A name that is not a `&'static str`.
    pub(crate) owned_name: Option<String>,
    /// The async runner's per-attempt timeout.
    #[cfg(feature = "tokio")]
    pub(crate) attempt_timeout: Option<Duration>,
    /// The async runner's bound on the running attempt (its timeout or the
    /// deadline): boxed once and reset for each attempt.
    #[cfg(feature = "tokio")]
    pub(crate) timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Whether `timer` is the deadline (else the attempt's timeout).
    #[cfg(feature = "tokio")]
    pub(crate) timer_is_deadline: bool,
}

/// The boxed [`Extras`], if any. Its drop tests the pointer inline and
/// frees the box out of line, so that dropping a runner without extras
/// costs a test, not a call.
pub(crate) struct ExtrasSlot(Option<Box<Extras>>);

impl std::ops::Deref for ExtrasSlot {
    type Target = Option<Box<Extras>>;

    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ExtrasSlot {
    #[inline]
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ExtrasSlot {
    #[inline]
    fn drop(&mut self) {
        #[inline(never)]
        fn free(extras: Box<Extras>) {
            drop(extras);
        }
        if let Some(extras) = self.0.take() {
            free(extras);
        }
    }
}

/// The settings and running state of one retried call.
pub(crate) struct Policy<B, C, N> {
    pub(crate) backoff: B,
    pub(crate) classifier: C,
    pub(crate) notify: N,
    /// Deadline, budget and breaker, when any is set.
    pub(crate) extras: ExtrasSlot,
    /// The name, when static (else in the extras).
    pub(crate) name: &'static str,
    /// Attempts started so far.
    pub(crate) attempts: u32,
}

impl<B, C, N> Policy<B, C, N> {
    #[inline]
    pub(crate) fn new(backoff: B, classifier: C, notify: N) -> Self {
        Self {
            backoff,
            classifier,
            notify,
            extras: ExtrasSlot(None),
            name: DEFAULT_NAME,
            attempts: 0,
        }
    }

    /// The same policy with another classifier.
    #[inline]
    pub(crate) fn with_classifier<C2>(self, classifier: C2) -> Policy<B, C2, N> {
        Policy {
            backoff: self.backoff,
            classifier,
            notify: self.notify,
            extras: self.extras,
            name: self.name,
            attempts: self.attempts,
        }
    }

    /// The same policy with another notify hook.
    #[inline]
    pub(crate) fn with_notify<N2>(self, notify: N2) -> Policy<B, C, N2> {
        Policy {
            backoff: self.backoff,
            classifier: self.classifier,
            notify,
            extras: self.extras,
            name: self.name,
            attempts: self.attempts,
        }
    }

    /// Names the operation (a static name costs no allocation).
    #[inline]
    pub(crate) fn set_name(&mut self, name: Cow<'static, str>) {
        match name {
            Cow::Borrowed(name) => {
                self.name = name;
                if let Some(x) = &mut *self.extras {
                    x.owned_name = None;
                }
            }
            Cow::Owned(name) => self.extras().owned_name = Some(name),
        }
    }

    /// The operation's name.
    pub(crate) fn name(&self) -> &str {
        self.extras
            .as_ref()
            .and_then(|x| x.owned_name.as_deref())
            .unwrap_or(self.name)
    }

    /// The extra settings, created when the first is set.
    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The deadline, if any.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Duration> {
        self.extras.as_ref().and_then(|x| x.deadline)
    }

    /// The retry budget, if any.
    #[inline]
    pub(crate) fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.extras.as_ref().and_then(|x| x.budget.as_ref())
    }

    /// The breaker, if any.
    #[inline]
    pub(crate) fn breaker(&self) -> Option<&BreakerSlot> {
        self.extras.as_ref().and_then(|x| x.breaker.as_ref())
    }

    /// The breaker, if any, to admit or record.
    #[inline]
    pub(crate) fn breaker_mut(&mut self) -> Option<&mut BreakerSlot> {
        self.extras.as_mut().and_then(|x| x.breaker.as_mut())
    }

    /// Asks the breaker (if any) before an attempt: the error to stop with
    /// when it rejects the call (nothing is charged to the budget, no
    /// attempt is counted). Without a breaker this is one branch.
    #[inline]
    pub(crate) fn admit<E>(
        &mut self,
        last_error: &mut Option<E>,
        elapsed: impl Fn() -> Duration,
    ) -> Result<(), RetryError<E>> {
        if let Some(slot) = self.breaker_mut() {
            if let Err(open) = slot.admit() {
                return Err(self.stop_with(
                    StopReason::BreakerOpen,
                    last_error.take(),
                    elapsed(),
                    false,
                    Some(open),
                ));
            }
        }
        Ok(())
    }

    /// Reports the running attempt as failed to the breaker (an attempt
    /// cut by the deadline).
    #[cfg(feature = "tokio")]
    pub(crate) fn breaker_failure(&mut self) {
        if let Some(slot) = self.breaker_mut() {
            slot.record(Outcome::Failure);
        }
    }

    /// Marks the start of an attempt.
    #[inline]
    pub(crate) fn start_attempt(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
    }

    /// Records a success with the budget and the breaker.
    #[inline]
    pub(crate) fn on_success(&mut self) {
        if let Some(slot) = self.breaker_mut() {
            slot.record(Outcome::Success);
        }
        if let Some(budget) = self.budget() {
            budget.record_success();
        }
        if self.attempts > 1 {
            self.trace_success();
        }
    }

    /// The event for a success after retries, out of line: the runners'
    /// hot paths stay small enough to be inlined into their callers.
    #[cold]
    #[inline(never)]
    fn trace_success(&self) {
        tracing::debug!(
            operation = %self.name(),
            attempts = self.attempts,
            "operation succeeded after retrying"
        );
    }

    /// The event for a retry, out of line (as [`trace_success`](Self::trace_success)).
    #[inline(never)]
    fn trace_retry(&self, delay: Duration, timed_out: bool) {
        tracing::info!(
            operation = %self.name(),
            attempt = self.attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            timed_out,
            "attempt failed, retrying"
        );
    }

    /// The error for a stop.
    #[cold]
    pub(crate) fn stop<E>(
        &self,
        reason: StopReason,
        last_error: Option<E>,
        elapsed: Duration,
        timed_out: bool,
    ) -> RetryError<E> {
        // A stop for an open breaker says when it may be tried again.
        let rejection = match (reason, self.breaker()) {
            (StopReason::BreakerOpen, Some(slot)) => slot.breaker().open_rejection(),
            _ => None,
        };
        self.stop_with(reason, last_error, elapsed, timed_out, rejection)
    }

    /// The error for a stop, with the breaker's rejection if any.
    #[cold]
    pub(crate) fn stop_with<E>(
        &self,
        reason: StopReason,
        last_error: Option<E>,
        elapsed: Duration,
        timed_out: bool,
        rejection: Option<BreakerOpen>,
    ) -> RetryError<E> {
        // `info`, not `warn`: the caller gets the error and decides how
        // loud it is.
        tracing::info!(
            operation = %self.name(),
            attempts = self.attempts,
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            reason = %reason,
            "operation failed, not retrying"
        );
        RetryError::from(Stop {
            name: match self.extras.as_ref().and_then(|x| x.owned_name.as_ref()) {
                Some(owned) => Cow::Owned(owned.clone()),
                None => Cow::Borrowed(self.name),
            },
            reason,
            last_error,
            attempts: self.attempts,
            elapsed,
            timed_out,
            breaker: rejection,
        })
    }

    /// The step every runner shares: after a failed attempt classified as
    /// `decision`, the delay before the next attempt, or why to stop.
    /// `elapsed` reads the clock; it is called only when a deadline needs it,
    /// so that a retry without a deadline costs no clock read.
    #[inline]
    pub(crate) fn decide(
        &mut self,
        decision: Decision,
        elapsed: &impl Fn() -> Duration,
    ) -> Result<Duration, StopReason>
    where
        B: Iterator<Item = Duration>,
    {
        if !decision.is_retry() {
            return Err(StopReason::Permanent);
        }
        // A failure that opened the breaker stops the call now, before the
        // budget is charged: the next attempt would be rejected anyway.
        if let Some(slot) = self.breaker() {
            if slot.breaker().open_rejection().is_some() {
                return Err(StopReason::BreakerOpen);
            }
        }
        if let Some(budget) = self.budget() {
            budget.record_failure();
        }
        let backoff_delay = self.backoff.next().ok_or(StopReason::Exhausted)?;
        let delay = match decision {
            Decision::RetryAfter(d) => d,
            _ => backoff_delay,
        };
        // Never sleep past the deadline: if the pause would reach it, no
        // attempt could run afterwards, so stop now instead of waiting.
        if let Some(deadline) = self.deadline() {
            if delay >= deadline.saturating_sub(elapsed()) {
                return Err(StopReason::Deadline);
            }
        }
        if let Some(budget) = self.budget() {
            if !budget.can_retry() {
                return Err(StopReason::Budget);
            }
        }
        Ok(delay)
    }

    /// Decides what follows a failed attempt. `error` is `None` when the
    /// attempt timed out (it is then retried like a transient error);
    /// `last_error` keeps the most recent error across attempts. `elapsed`
    /// reads the clock; it is called only when a deadline needs it or the
    /// call stops.
    #[inline]
    pub(crate) fn after_failure<E>(
        &mut self,
        error: Option<E>,
        last_error: &mut Option<E>,
        elapsed: impl Fn() -> Duration,
    ) -> Next<E>
    where
        B: Iterator<Item = Duration>,
        C: Classify<E>,
        N: Notify<E>,
    {
        let timed_out = error.is_none();
        let decision = match &error {
            Some(e) => self.classifier.classify(e),
            None => Decision::Retry,
        };
        if let Some(e) = error {
            *last_error = Some(e);
        }
        if let Some(slot) = self.breaker_mut() {
            let counted = decision.is_retry() || slot.breaker().counts_permanent();
            slot.record(if counted {
                Outcome::Failure
            } else {
                Outcome::Ignored
            });
        }
        match self.decide(decision, &elapsed) {
            Err(reason) => {
                let timed_out = timed_out && reason != StopReason::Permanent;
                Next::Stop(self.stop(reason, last_error.take(), elapsed(), timed_out))
            }
            Ok(delay) => {
                if let (Some(e), false) = (last_error.as_ref(), timed_out) {
                    self.notify.notify(e, self.attempts, delay);
                }
                self.trace_retry(delay, timed_out);
                Next::Sleep(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use crate::{BlockingRetryable, presets};

    /// Every captured event, as its `(field, value)` pairs.
    type Events = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    /// Collects every event's fields as text.
    #[derive(Clone, Default)]
    struct Capture(Events);

    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn field<'a>(event: &'a [(String, String)], name: &str) -> Option<&'a str> {
        event
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The blocking runner's fast path (no deadline, budget or breaker)
    /// still counts the first attempt: a success after one failure is
    /// reported as the second attempt, and a success at once emits nothing.
    #[test]
    fn blocking_fast_path_counts_the_first_attempt() {
        let capture = Capture::default();
        let events = Arc::clone(&capture.0);
        tracing::subscriber::with_default(capture, || {
            let at_once = (|| Ok::<_, &str>(1))
                .retry(presets::default().build().unwrap())
                .call();
            assert_eq!(at_once, Ok(1));
            let mut calls = 0;
            let mut notes = Vec::new();
            let second = (|| {
                calls += 1;
                if calls < 2 { Err("down") } else { Ok(calls) }
            })
            .retry(presets::default().build().unwrap())
            .name("fetch manifest")
            .notify(|_: &&str, attempt, _| notes.push(attempt))
            .sleep(|_| {})
            .call();
            assert_eq!(second, Ok(2));
            assert_eq!(notes, [1]);
        });
        let events = events.lock().unwrap();
        let kinds: Vec<_> = events.iter().map(|e| field(e, "message")).collect();
        assert_eq!(
            kinds,
            [
                Some("attempt failed, retrying"),
                Some("operation succeeded after retrying")
            ]
        );
        assert_eq!(field(&events[1], "attempts"), Some("2"));
        assert_eq!(field(&events[1], "operation"), Some("fetch manifest"));
    }

    #[test]
    fn tracing_events_carry_operation_attempt_and_delay() {
        let capture = Capture::default();
        let events = Arc::clone(&capture.0);
        tracing::subscriber::with_default(capture, || {
            let _ = (|| Err::<(), _>("down"))
                .retry(presets::default().without_jitter().build().unwrap())
                .name("fetch manifest")
                .sleep(|_| {})
                .call();
        });
        let events = events.lock().unwrap();
        let retries: Vec<_> = events
            .iter()
            .filter(|e| field(e, "message") == Some("attempt failed, retrying"))
            .map(|e| {
                (
                    field(e, "operation").unwrap().to_string(),
                    field(e, "attempt").unwrap().to_string(),
                    field(e, "delay_ms").unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            retries,
            [
                ("fetch manifest".into(), "1".into(), "100".into()),
                ("fetch manifest".into(), "2".into(), "200".into()),
            ]
        );
        let stop = events
            .iter()
            .find(|e| field(e, "message") == Some("operation failed, not retrying"))
            .expect("a stop event");
        assert_eq!(field(stop, "reason"), Some("attempts exhausted"));
        assert_eq!(field(stop, "attempts"), Some("3"));
    }
}

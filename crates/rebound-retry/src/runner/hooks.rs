//! The pluggable parts of a runner: which errors to retry and who to tell.

use std::time::Duration;

use crate::classify::{Classify, Decision};

/// Called before each retry with the error, the number of the attempt that
/// failed (1 for the first) and the delay before the next one.
///
/// Implemented for every `FnMut(&E, u32, Duration)`.
///
/// ```
/// use rebound_retry::Notify;
/// use std::time::Duration;
/// let mut seen = Vec::new();
/// let mut hook = |_: &&str, attempt: u32, delay: Duration| seen.push((attempt, delay));
/// hook.notify(&"down", 1, Duration::from_millis(100));
/// assert_eq!(seen, [(1, Duration::from_millis(100))]);
/// ```
pub trait Notify<E> {
    /// Reports one failed attempt that will be retried.
    fn notify(&mut self, error: &E, attempt: u32, delay: Duration);
}

impl<E, F: FnMut(&E, u32, Duration)> Notify<E> for F {
    fn notify(&mut self, error: &E, attempt: u32, delay: Duration) {
        self(error, attempt, delay)
    }
}

/// The default hook: tells nobody (tracing events are still emitted).
///
/// ```
/// use rebound_retry::{NoNotify, Notify};
/// NoNotify.notify(&"x", 1, std::time::Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotify;

impl<E> Notify<E> for NoNotify {
    fn notify(&mut self, _: &E, _: u32, _: Duration) {}
}

/// The default classifier: every error is worth another attempt.
///
/// ```
/// use rebound_retry::{Classify, Decision, RetryAll};
/// assert_eq!(RetryAll.classify(&"anything"), Decision::Retry);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAll;

impl<E: ?Sized> Classify<E> for RetryAll {
    fn classify(&self, _: &E) -> Decision {
        Decision::Retry
    }
}

/// A predicate used as a classifier (what `.when(..)` installs): `true`
/// retries, `false` stops.
///
/// ```
/// use rebound_retry::{Classify, Decision, When};
/// let c = When(|e: &i32| *e > 0);
/// assert_eq!(c.classify(&1), Decision::Retry);
/// assert_eq!(c.classify(&0), Decision::Stop);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct When<P>(pub P);

impl<E: ?Sized, P: Fn(&E) -> bool> Classify<E> for When<P> {
    fn classify(&self, error: &E) -> Decision {
        Decision::from_bool((self.0)(error))
    }
}

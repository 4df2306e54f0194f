//! Retry what fails for a passing reason, without multiplying load.
//!
//! - [`backoff`]: delays as `Iterator<Item = Duration>` (constant,
//!   exponential, fibonacci, decorrelated jitter) with jitter modes and
//!   typed build errors; [`presets`] with smolvm's numbers, jitter on.
//! - [`classify`]: a [`Decision`] (retry, retry after, stop) and the
//!   [`Classify`] trait, with classifiers for `io::Error`, HTTP status and
//!   `Retry-After`, exit codes and error text.
//! - runners: [`BlockingRetryable`] for threads and [`Retryable`] for tokio
//!   (feature `tokio`, on by default), extension traits on closures with
//!   `when`, `classify`, `notify`, `deadline`, `attempt_timeout`, `budget`
//!   and `name`; tracing events carry the operation name, attempt and
//!   delay. A [`RetryBudget`] shared through `Arc` holds retries to a share
//!   of first attempts during an outage. [`RetryPolicy`] gives the same
//!   decisions step by step, for middleware and hand-written loops.
//! - [`breaker`]: a [`CircuitBreaker`] shared by every caller of a
//!   dependency (closed, open with a growing cool-down, half-open trials);
//!   the runners take it with `.breaker(&breaker)`.
//! - [`duration`]: the one duration grammar of rebound (humantime text or a
//!   number of seconds); [`Jitter`] and [`BackoffKind`] parse their names;
//!   [`PolicySpec`] is a retry policy as data (`Deserialize` with the
//!   `serde` feature).
//!
//! ```
//! use rebound_retry::{presets, classify, Decision};
//! use std::time::Duration;
//!
//! let delays: Vec<Duration> = presets::network().without_jitter().build()?.collect();
//! assert_eq!(delays.len(), 3);
//! assert_eq!(classify::http_status(502, None), Decision::Retry);
//! # Ok::<(), rebound_retry::PolicyError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod breaker;
pub mod classify;
pub mod duration;
mod error_chain;
pub mod presets;
mod runner;
pub mod spec;

pub use backoff::{
    Constant, ConstantBuilder, DecorrelatedJitter, DecorrelatedJitterBuilder, Exponential,
    ExponentialBuilder, Fibonacci, FibonacciBuilder, Jitter, ParseJitterError, PolicyError,
};
pub use breaker::{
    BreakerError, BreakerOpen, BreakerState, CircuitBreaker, CircuitBreakerBuilder, Permit,
};
pub use classify::{Classify, Decision};
pub use error_chain::error_chain;
pub use runner::{
    BlockingRetry, BlockingRetryable, BudgetError, NoNotify, Notify, RetryAll, RetryBudget,
    RetryError, RetryPolicy, StopReason, When,
};
#[cfg(feature = "tokio")]
pub use runner::{Retry, Retryable};
pub use spec::{AnyBackoff, BackoffKind, ParseBackoffKindError, PolicySpec};

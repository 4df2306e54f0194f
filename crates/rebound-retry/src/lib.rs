//! Retry what fails for a passing reason, without multiplying load.
//!
//! - [`backoff`]: delays as `Iterator<Item = Duration>` (constant,
//!   exponential, fibonacci, decorrelated jitter) with jitter modes and
//!   typed build errors; [`presets`] with smolvm's numbers, jitter on.
//! - [`classify`]: a [`Decision`] (retry, retry after, stop) and the
//!   [`Classify`] trait, with classifiers for `io::Error`, HTTP status and
//!   `Retry-After`, exit codes and error text.
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
pub mod classify;
pub mod presets;

pub use backoff::{
    Constant, ConstantBuilder, DecorrelatedJitter, DecorrelatedJitterBuilder, Exponential,
    ExponentialBuilder, Fibonacci, FibonacciBuilder, Jitter, PolicyError,
};
pub use classify::{Classify, Decision};

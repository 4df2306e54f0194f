//! Integration tests of rebound-retry, in virtual time (tokio's paused
//! clock): no test sleeps for real.

// The async runner exists only with the `tokio` feature.
#[cfg(feature = "tokio")]
mod async_runner;
mod breaker;
#[cfg(feature = "tokio")]
mod breaker_async;
#[cfg(feature = "tokio")]
mod budget_simulation;
mod grammar;
mod properties;

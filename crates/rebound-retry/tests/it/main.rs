//! Integration tests of rebound-retry, in virtual time (tokio's paused
//! clock): no test sleeps for real.

mod async_runner;
mod budget_simulation;
mod properties;

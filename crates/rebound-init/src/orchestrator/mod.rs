//! Runs the steps of a spec: per-step retries with backoff, step timeouts,
//! `on_failure` policies, init restarts that resume at the failed step, and
//! events for progress displays.
//!
//! Cancel a running init by dropping the future of [`Runner::run`]: the
//! running attempt is dropped with it, which kills a command's whole
//! process group.

mod error;
mod policy;
mod runner;
mod summary;

pub use error::{InitError, InitErrorKind};
pub use policy::Policies;
pub use runner::Runner;
pub use summary::{Outcome, StepReport, Summary};

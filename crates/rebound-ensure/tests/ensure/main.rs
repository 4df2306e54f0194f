//! The public API of [`rebound_ensure::Ensure`], driven as a caller would:
//! real tokio tasks, virtual time (`start_paused`) for every delay.
#![cfg(not(loom))]

mod backoff;
mod no_runtime;
mod probe;
mod start;
mod support;
mod ttl;
mod wait;
mod watch;

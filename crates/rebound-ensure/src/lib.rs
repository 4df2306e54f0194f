//! Start a runtime exactly once, and keep the truth about it.
//!
//! [`Ensure`] is a single-flight "ensure started" state machine with the
//! states NotStarted, Starting, Ready and Failed, answering each call with a
//! [`Status`] (`started`, `starting`, `reused`, `failed`, `not_started`):
//!
//! - `ensure(true)` never waits for the start: the first caller moves the
//!   machine to Starting and the start runs in the background; concurrent
//!   callers start it exactly once.
//! - A start that panics, is cancelled or outlives its timeout ends Failed,
//!   never stuck in Starting; the next start waits out a backoff
//!   (rebound-retry's [`Exponential`](rebound_retry::Exponential)), and
//!   callers in that window get `failed` with `retry_after`.
//! - Ready is trusted for a TTL, then probed again; a runtime that died goes
//!   back to NotStarted and is started by the next call.
//! - The Ready answer takes no lock: [`Ensure::ready`] reads it by
//!   reference with one atomic load (no reference count either, like
//!   `OnceCell::get`); [`Ensure::try_ready`] and [`Ensure::ensure`] hand out
//!   an owned answer, which costs one reference count. Transitions, and
//!   readers of the whole state ([`Ensure::state`]), take a small lock that
//!   is never held across an await (see `machine.rs` for the invariants and
//!   `fast_path.rs` for the lock-free part).
//! - [`EnsureMap`] holds many runtimes by name.
//!
//! Panics in a start are caught as the start task's `JoinError`, which
//! needs unwinding: under `panic = "abort"` a panicking start ends the
//! process instead (rebound's release profile keeps `panic = "unwind"`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError, Status};
//!
//! let db = Ensure::new(
//!     EnsureConfig::builder().start_timeout(Duration::from_secs(30)).build().unwrap(),
//!     || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:5432", "postgres up")) },
//!     || async { ProbeOutcome::Down("no answer".into()) },
//! );
//! assert_eq!(db.ensure(true).await.status(), Status::Starting);
//! db.wait_ready(Duration::from_secs(1)).await.unwrap();
//! assert_eq!(db.ensure(true).await.status(), Status::Reused);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod ensure;
mod error;
mod fast_path;
mod loom;
// Public under `--cfg loom` only, for the model checks in `tests/loom.rs`.
#[cfg(loom)]
pub mod machine;
#[cfg(not(loom))]
mod machine;
mod map;
mod start;
mod status;
mod watch;

pub use config::{EnsureConfig, EnsureConfigBuilder, default_backoff};
pub use ensure::{Ensure, Stats};
pub use error::{ConfigError, StartError, WaitError};
pub use map::EnsureMap;
pub use start::{BoxFuture, Probe, ProbeOutcome, Start};
pub use status::{ReadyInfo, Response, StateKind, StateView, Status};
pub use watch::FEED_CAPACITY;

/// Formats a duration the way messages show it: `90s`, `1500ms`.
pub(crate) fn fmt_duration(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

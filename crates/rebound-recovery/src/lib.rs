//! Durable recovery of failed workload migrations.
//!
//! A failed migration is recorded once in a [`Journal`] and then owned by
//! it until the migration succeeds, is rolled back, or is given up. The
//! [decision table](model::transition::decide) maps each of the eight
//! [`FailureKind`]s to a [`Strategy`]; retries are paced by rebound-retry's
//! exponential backoff with jitter; a [`RecoveryWorker`] claims due
//! recoveries under a lease and runs the caller's [`Migrator`] or
//! [`RollbackHandler`].
//!
//! Backends: `memory:` (in this process, always built), and, each behind
//! the cargo feature of its name, `sqlite` (default) and `postgres`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, RecoveryState};
//! let journal = MemoryJournal::new(Default::default()).unwrap();
//! let report = FailureReport::new("m-1", "web", "node-a", "node-b", FailureKind::NetworkTransient, "reset");
//! let rec = journal.record(report, 0).await.unwrap();
//! assert_eq!(rec.state, RecoveryState::Pending);
//! # });
//! ```
#![deny(missing_docs)]

pub mod clock;
pub mod error;
pub mod journal;
pub mod model;
pub mod worker;

pub use clock::{Clock, SystemClock};
pub use error::{ConfigError, JournalError, JournalErrorKind, ParseError, SnapshotError};
pub use journal::memory::MemoryJournal;
#[cfg(feature = "postgres")]
pub use journal::postgres::PostgresJournal;
#[cfg(feature = "sqlite")]
pub use journal::sqlite::SqliteJournal;
pub use journal::{AnyJournal, Claim, Journal, JournalAddress};
pub use model::{
    Admission, Attempt, AttemptResult, FailureKind, FailureReport, Outcome, Recovery,
    RecoveryConfig, RecoveryState, SnapshotRef, Strategy, TargetBreaker, TargetBreakerConfig,
};
pub use worker::{
    DefaultClassifier, FailureClassifier, Job, JournalOutage, Migrator, RecoveryWorker,
    RollbackHandler, TargetSelector, WorkerReport,
};

//! What a worker did: the [`WorkerReport`]; what it tells while its
//! journal is unreachable: [`JournalOutage`].

use std::time::Duration;

use crate::error::JournalError;
use crate::model::{Recovery, RecoveryState};

/// What a worker did, added up.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::*;
/// struct Down;
/// impl Migrator for Down {
///     type Error = std::io::Error;
///     async fn migrate(&self, _: &Job) -> std::io::Result<()> {
///         Err(std::io::ErrorKind::ConnectionReset.into())
///     }
/// }
/// impl RollbackHandler for Down {
///     type Error = std::io::Error;
///     async fn rollback(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
/// }
/// let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
/// let report = FailureReport::new("m", "web", "a", "b", FailureKind::NetworkTransient, "reset");
/// journal.record(report, SystemClock.now_ms() - 60_000).await.unwrap();
/// let worker = RecoveryWorker::new(journal, Down, Down);
/// // The attempt failed again: the recovery is scheduled for another retry.
/// let done = worker.run_once().await.unwrap();
/// assert_eq!((done.claimed, done.retrying, done.succeeded), (1, 1, 0));
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Recoveries claimed.
    pub claimed: u64,
    /// Migrations that went through.
    pub succeeded: u64,
    /// Rollbacks that went through.
    pub rolled_back: u64,
    /// Attempts that failed and were scheduled again.
    pub retrying: u64,
    /// Recoveries given up.
    pub given_up: u64,
    /// Attempts stopped because an operator cancelled their recovery
    /// ([`Journal::cancel`](crate::Journal::cancel)).
    pub cancelled: u64,
    /// Claims lost to another worker after the lease ran out.
    pub lease_lost: u64,
    /// Claims handed back unfinished (with
    /// [`Journal::release`](crate::Journal::release)) when
    /// [`run`](crate::RecoveryWorker::run) or
    /// [`drain`](crate::RecoveryWorker::drain) was stopped.
    pub released: u64,
}

impl WorkerReport {
    /// Adds `other`'s counts to these.
    ///
    /// ```
    /// let mut a = rebound_recovery::WorkerReport { claimed: 1, ..Default::default() };
    /// a.add(a);
    /// assert_eq!(a.claimed, 2);
    /// ```
    pub fn add(&mut self, other: WorkerReport) {
        self.claimed += other.claimed;
        self.succeeded += other.succeeded;
        self.rolled_back += other.rolled_back;
        self.retrying += other.retrying;
        self.given_up += other.given_up;
        self.cancelled += other.cancelled;
        self.lease_lost += other.lease_lost;
        self.released += other.released;
    }

    /// One claim lost to another worker.
    pub(crate) fn lease_lost() -> Self {
        Self {
            lease_lost: 1,
            ..Self::default()
        }
    }

    /// One attempt stopped by a cancel.
    pub(crate) fn cancelled() -> Self {
        Self {
            cancelled: 1,
            ..Self::default()
        }
    }

    /// One attempt whose outcome left the recovery as `done`.
    pub(crate) fn of(done: &Recovery) -> Self {
        let mut r = Self::default();
        match done.state {
            RecoveryState::Succeeded => r.succeeded = 1,
            RecoveryState::RolledBack => r.rolled_back = 1,
            RecoveryState::GivenUp => r.given_up = 1,
            RecoveryState::Cancelled => r.cancelled = 1,
            RecoveryState::Pending | RecoveryState::Running => r.retrying = 1,
        }
        r
    }
}

/// What [`run`](crate::RecoveryWorker::run) tells the callback given to
/// [`with_on_outage`](crate::RecoveryWorker::with_on_outage) while its
/// journal cannot be reached.
///
/// ```
/// use std::time::Duration;
/// use rebound_recovery::worker::JournalOutage;
/// // What `rebound recovery run` prints on stderr.
/// fn line(outage: &JournalOutage<'_>) -> String {
///     match outage {
///         JournalOutage::Unavailable { error, retry_in } => {
///             format!("{error}; retrying in {:.1}s", retry_in.as_secs_f64())
///         }
///         JournalOutage::Back { journal, down_for } => {
///             format!("journal {journal} is back after {:.1}s", down_for.as_secs_f64())
///         }
///         _ => String::new(),
///     }
/// }
/// let back = JournalOutage::Back { journal: "sqlite:/j.db", down_for: Duration::from_millis(2500) };
/// assert_eq!(line(&back), "journal sqlite:/j.db is back after 2.5s");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum JournalOutage<'a> {
    /// A call failed because the journal is unavailable
    /// ([`JournalErrorKind::Unavailable`](crate::JournalErrorKind::Unavailable));
    /// the worker tries again after `retry_in`.
    Unavailable {
        /// The failure (its text names the journal, never a password).
        error: &'a JournalError,
        /// How long the worker waits before it tries again.
        retry_in: Duration,
    },
    /// The journal answered again after one or more failures.
    Back {
        /// The journal, as [`Journal::describe`](crate::Journal::describe)
        /// names it.
        journal: &'a str,
        /// The time since the first failure of this outage.
        down_for: Duration,
    },
}

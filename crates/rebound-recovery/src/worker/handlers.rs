//! What the worker asks of its caller: the [`Job`] and the handler traits
//! that carry it out ([`Migrator`], [`RollbackHandler`]) or propose
//! targets ([`TargetSelector`]).

use std::future::Future;
use std::sync::Arc;

use crate::model::{Recovery, SnapshotRef, Strategy};

/// What the caller's handlers are asked to do.
///
/// The worker builds one from the claimed recovery; a test of a handler
/// can build one by hand:
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::{Job, Migrator, Strategy};
/// struct Move;
/// impl Migrator for Move {
///     type Error = std::io::Error;
///     async fn migrate(&self, job: &Job) -> Result<(), std::io::Error> {
///         if job.target == job.source {
///             return Err(std::io::Error::other(format!("{} already runs on {}", job.workload, job.target)));
///         }
///         Ok(())
///     }
/// }
/// let job = Job {
///     migration: "m-1".into(), workload: "web".into(), source: "a".into(), target: "a".into(),
///     snapshot: None, strategy: Strategy::RetryOnSameTarget, retry_count: 0,
///     cancel: Default::default(),
/// };
/// let err = Move.migrate(&job).await.unwrap_err();
/// assert_eq!(err.to_string(), "web already runs on a");
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The migration's id.
    pub migration: String,
    /// The workload.
    pub workload: String,
    /// The node it moves from (and a rollback restores it on).
    pub source: String,
    /// The target of this attempt.
    pub target: String,
    /// The verified snapshot (rollback), or the recorded one (migration).
    pub snapshot: Option<SnapshotRef>,
    /// The strategy being carried out.
    pub strategy: Strategy,
    /// How many failures preceded this attempt.
    pub retry_count: u32,
    /// Set when an operator cancelled the recovery while this attempt
    /// runs ([`Journal::cancel`](crate::Journal::cancel)): the handler
    /// should stop soon (the worker drops the attempt after its cancel
    /// grace). `rebound recovery run` sends SIGTERM to the command's
    /// process group when it is set.
    pub cancel: Cancellation,
}

impl Job {
    /// The job for carrying out `rec`'s strategy.
    pub(crate) fn of(rec: &Recovery) -> Self {
        Self {
            migration: rec.migration.clone(),
            workload: rec.workload.clone(),
            source: rec.source.clone(),
            target: rec.target.clone(),
            snapshot: rec.snapshot.clone(),
            strategy: rec.strategy,
            retry_count: rec.retry_count,
            cancel: Cancellation::default(),
        }
    }
}

/// Tells a running handler that its recovery was cancelled.
///
/// Clones share the flag. Two cancellations compare equal when both are
/// set or both are not.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::worker::handlers::Cancellation;
/// let cancel = Cancellation::default();
/// let seen = cancel.clone();
/// assert!(!seen.is_cancelled());
/// cancel.cancel();
/// seen.cancelled().await; // resolves at once: it is set
/// assert!(seen.is_cancelled());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Cancellation(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancellation {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl PartialEq for Cancellation {
    fn eq(&self, other: &Self) -> bool {
        self.is_cancelled() == other.is_cancelled()
    }
}

impl Eq for Cancellation {}

impl Cancellation {
    /// Sets the flag and wakes every [`cancelled`](Self::cancelled).
    ///
    /// ```
    /// let cancel = rebound_recovery::worker::handlers::Cancellation::default();
    /// cancel.cancel();
    /// assert!(cancel.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// assert!(!rebound_recovery::worker::handlers::Cancellation::default().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the flag is set.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::worker::handlers::Cancellation;
    /// let cancel = Cancellation::default();
    /// let waiter = cancel.clone();
    /// let waited = tokio::spawn(async move { waiter.cancelled().await });
    /// cancel.cancel();
    /// waited.await.unwrap();
    /// # });
    /// ```
    pub async fn cancelled(&self) {
        let mut seen = self.0.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = seen.wait_for(|set| *set).await;
    }
}

/// Runs a migration attempt (the caller's).
///
/// ```
/// use rebound_recovery::{Job, Migrator};
/// struct Move;
/// impl Migrator for Move {
///     type Error = std::io::Error;
///     async fn migrate(&self, job: &Job) -> Result<(), std::io::Error> {
///         println!("moving {} to {}", job.workload, job.target);
///         Ok(())
///     }
/// }
/// # let _ = Move;
/// ```
pub trait Migrator: Send + Sync {
    /// The error a failed attempt returns.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Moves `job.workload` to `job.target`.
    fn migrate(&self, job: &Job) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Restores a workload on its source from a verified snapshot (the
/// caller's).
///
/// ```
/// use rebound_recovery::{Job, RollbackHandler};
/// struct Restore;
/// impl RollbackHandler for Restore {
///     type Error = std::io::Error;
///     async fn rollback(&self, job: &Job) -> Result<(), std::io::Error> {
///         let snapshot = job.snapshot.as_ref().expect("rollbacks always carry one");
///         println!("restoring {} on {} from {}", job.workload, job.source, snapshot.path.display());
///         Ok(())
///     }
/// }
/// # let _ = Restore;
/// ```
pub trait RollbackHandler: Send + Sync {
    /// The error a failed rollback returns.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Restores `job.workload` on `job.source` from `job.snapshot`.
    fn rollback(&self, job: &Job) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Proposes more targets when a migration fails: after each failed attempt
/// of the worker, and for failures recorded through
/// [`RecoveryWorker::record`](crate::RecoveryWorker::record) (added to the recovery's candidates; targets
/// that already failed are skipped).
///
/// ```
/// use rebound_recovery::{Recovery, TargetSelector};
/// struct Pool(Vec<String>);
/// impl TargetSelector for Pool {
///     fn candidates(&self, rec: &Recovery) -> Vec<String> {
///         self.0.iter().filter(|t| **t != rec.source).cloned().collect()
///     }
/// }
/// # let _ = Pool(vec![]);
/// ```
pub trait TargetSelector: Send + Sync {
    /// Targets worth trying for `recovery`, in order of preference.
    fn candidates(&self, recovery: &Recovery) -> Vec<String>;
}

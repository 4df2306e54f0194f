//! Where recoveries live: the [`Journal`] trait and its backends.
//!
//! Every backend applies the same pure state changes from
//! [`crate::model::transition`], each inside one transaction, through the
//! helpers at the end of this module (`renewed`, `released`, `cancelled`)
//! and, for `record` and `complete`, which also count the outcome against
//! the target node's breaker in the same transaction, through `targets`
//! (`recorded_among`, `completed_among`), so they behave the same; one
//! test suite runs against all of them. The one exception is PostgreSQL's claim: an `UPDATE ...
//! SKIP LOCKED` statement (`postgres::CLAIM_SQL`), run once per claimed
//! recovery under an advisory lock, that sets the same fields as
//! [`transition::claim`] and takes due recoveries in the same order (and
//! one per workload) as the other backends.

mod address;
#[cfg(feature = "sqlite")]
pub mod file_watch;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod pg_listen;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod row;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod schema;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod targets;
pub mod wake;

use std::future::Future;
use std::time::Duration;

pub use address::{JournalAddress, default_sqlite_path};
pub use wake::{ChangeListener, Wake, WakeListener};

use crate::error::JournalError;
use crate::model::transition;
use crate::model::{Admission, TargetBreaker};
use crate::model::{Attempt, FailureReport, Outcome, Recovery, RecoveryConfig, RecoveryState};

/// A recovery claimed by one worker, under a lease.
///
/// The completion must present the same claim: when the lease ran out and
/// another worker claimed the recovery, `claim_seq` differs and the
/// completion is refused with [`JournalError::LeaseLost`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, Outcome};
/// let journal = MemoryJournal::new(Default::default()).unwrap();
/// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
/// let claim = journal.claim("w1", 60_000, Duration::from_secs(30), 1).await.unwrap().remove(0);
/// assert_eq!((claim.owner.as_str(), claim.lease_expires_ms), ("w1", 90_000));
/// // Another worker retakes it once the lease ran out; the first one's outcome is refused.
/// let retaken = journal.claim("w2", 90_000, Duration::from_secs(30), 1).await.unwrap();
/// assert_eq!(retaken.len(), 1);
/// assert!(journal.complete(&claim, Outcome::Migrated, 91_000).await.is_err());
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The recovery as claimed (`state == Running`).
    pub recovery: Recovery,
    /// The worker holding the lease.
    pub owner: String,
    /// The claim's fencing number.
    pub claim_seq: u64,
    /// When the lease runs out, ms since the epoch.
    pub lease_expires_ms: u64,
}

/// Durable storage of recoveries.
///
/// Each method that changes state is one transaction, durable before the
/// returned future resolves. Times are ms since the Unix epoch and passed
/// in, so callers (and tests) control the clock.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, Outcome, RecoveryState};
/// let journal = MemoryJournal::new(Default::default()).unwrap();
/// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
/// let claims = journal.claim("worker-1", 60_000, Duration::from_secs(30), 10).await.unwrap();
/// let done = journal.complete(&claims[0], Outcome::Migrated, 61_000).await.unwrap();
/// assert_eq!(done.state, RecoveryState::Succeeded);
/// # });
/// ```
pub trait Journal: Send + Sync {
    /// The journal's address, without credentials, for messages.
    fn describe(&self) -> String;

    /// The settings the state changes use.
    fn config(&self) -> &RecoveryConfig;

    /// Records a failure: creates the recovery or adds to it.
    fn record(
        &self,
        report: FailureReport,
        now_ms: u64,
    ) -> impl Future<Output = Result<Recovery, JournalError>> + Send;

    /// One recovery.
    fn get(
        &self,
        migration: &str,
    ) -> impl Future<Output = Result<Option<Recovery>, JournalError>> + Send;

    /// The kept history of one recovery, oldest first.
    fn history(
        &self,
        migration: &str,
    ) -> impl Future<Output = Result<Vec<Attempt>, JournalError>> + Send;

    /// Every recovery, or those in `state`, ordered by migration id.
    fn list(
        &self,
        state: Option<RecoveryState>,
    ) -> impl Future<Output = Result<Vec<Recovery>, JournalError>> + Send;

    /// Recoveries a worker may claim at `now_ms` (pending and due, or
    /// running with an expired lease), soonest first, then by migration id.
    fn due(&self, now_ms: u64) -> impl Future<Output = Result<Vec<Recovery>, JournalError>> + Send;

    /// Claims up to `limit` due recoveries for `owner` for `lease`, taking
    /// them in the order of [`due`](Self::due), one recovery per workload
    /// at a time: a recovery whose workload has another one running (on
    /// any worker, or earlier in this batch) is skipped, so that two
    /// recoveries of one workload never run their commands at once. A
    /// running recovery whose lease ran out is retaken itself, and still
    /// holds back the others of its workload until then (a rescue,
    /// counted in [`Recovery::rescues`]); one whose worker was lost
    /// [`max_rescues`](RecoveryConfig::max_rescues) times is given up
    /// instead ("worker lost N times") and not returned.
    fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claim>, JournalError>> + Send;

    /// Extends a held lease to `now_ms + lease`.
    fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, JournalError>> + Send;

    /// Hands a held claim back without an outcome, for a worker that stops
    /// mid-attempt: the recovery is pending and due at `now_ms` again, at
    /// once claimable by any worker, with nothing added to its history.
    /// `LeaseLost` when the claim is no longer held.
    fn release(
        &self,
        claim: &Claim,
        now_ms: u64,
    ) -> impl Future<Output = Result<Recovery, JournalError>> + Send;

    /// Records what the claimed attempt came to and releases the lease.
    fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<Recovery, JournalError>> + Send;

    /// Cancels the recovery of `migration` (see
    /// [`transition::cancel`]): a pending one ends `cancelled` at once; a
    /// running one too, and the worker that holds it notices within its
    /// cancel check interval and stops its attempt. `NotFound` for an
    /// unknown id, `Finished` (nothing changed) for one that has ended.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, JournalErrorKind, MemoryJournal, RecoveryState};
    /// let journal = MemoryJournal::new(Default::default()).unwrap();
    /// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// let rec = journal.cancel("m", "workload retired", 1_000).await.unwrap();
    /// assert_eq!(rec.state, RecoveryState::Cancelled);
    /// let again = journal.cancel("m", "twice", 2_000).await.unwrap_err();
    /// assert_eq!(again.kind(), JournalErrorKind::Finished);
    /// assert_eq!(journal.cancel("nope", "x", 0).await.unwrap_err().kind(), JournalErrorKind::NotFound);
    /// # });
    /// ```
    fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Recovery, JournalError>> + Send;

    /// Deletes the finished recoveries in `states` (every final state
    /// when empty) last changed before `before_ms`, with their history,
    /// [`PRUNE_BATCH`] recoveries per transaction so that a large journal
    /// is never locked for long; returns how many were deleted. Pending
    /// and running recoveries are never deleted: a state in `states` that
    /// is not final is refused (`Invalid`) before anything is deleted.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, RecoveryState};
    /// let journal = MemoryJournal::new(Default::default()).unwrap();
    /// for id in ["old", "open"] {
    ///     journal.record(FailureReport::new(id, id, "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// }
    /// journal.cancel("old", "retired", 1_000).await.unwrap();
    /// assert_eq!(journal.prune(5_000, &[]).await.unwrap(), 1);
    /// assert!(journal.get("old").await.unwrap().is_none());
    /// assert!(journal.get("open").await.unwrap().is_some());
    /// assert!(journal.prune(5_000, &[RecoveryState::Pending]).await.is_err());
    /// # });
    /// ```
    fn prune(
        &self,
        before_ms: u64,
        states: &[RecoveryState],
    ) -> impl Future<Output = Result<u64, JournalError>> + Send;

    /// Every target node's breaker the journal keeps (one per node a
    /// migration failed to with a target-side kind), ordered by node. See
    /// [`crate::model::breaker`]; [`TargetBreaker::state`] says whether
    /// one is open at a given time.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal};
    /// use rebound_retry::BreakerState;
    /// let journal = MemoryJournal::new(Default::default()).unwrap();
    /// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// let nodes = journal.targets().await.unwrap();
    /// assert_eq!((nodes[0].node.as_str(), nodes[0].state(0)), ("b", BreakerState::Closed));
    /// # });
    /// ```
    fn targets(&self) -> impl Future<Output = Result<Vec<TargetBreaker>, JournalError>> + Send;

    /// Closes `node`'s breaker by hand (an operator's reset): its failures
    /// and cool-down are forgotten. [`JournalError::UnknownTarget`] when the
    /// journal keeps no breaker for it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, JournalErrorKind, MemoryJournal, RecoveryConfig};
    /// use rebound_recovery::model::breaker::TargetBreakerConfig;
    /// use rebound_retry::BreakerState;
    /// let config = RecoveryConfig { breaker: TargetBreakerConfig { failures: 1, ..Default::default() }, ..Default::default() };
    /// let journal = MemoryJournal::new(config).unwrap();
    /// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::TargetUnreachable, "down"), 0).await.unwrap();
    /// assert_eq!(journal.targets().await.unwrap()[0].state(1_000), BreakerState::Open);
    /// let node = journal.reset_target("b", 1_000).await.unwrap();
    /// assert_eq!(node.state(1_000), BreakerState::Closed);
    /// assert_eq!(journal.reset_target("zz", 1_000).await.unwrap_err().kind(), JournalErrorKind::NotFound);
    /// # });
    /// ```
    fn reset_target(
        &self,
        node: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<TargetBreaker, JournalError>> + Send;

    /// Asks `node`'s breaker whether an attempt of `migration` may go to
    /// it at `now_ms` (see [`TargetBreaker::admit`]): a half-open node
    /// takes the first as its probe, held for `hold` or until its outcome
    /// is recorded. A node without a breaker, or with breakers disabled,
    /// is [`Admission::Closed`]. The worker asks before each migrate.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use rebound_recovery::{Admission, Journal, MemoryJournal};
    /// let journal = MemoryJournal::new(Default::default()).unwrap();
    /// let admission = journal.admit_target("b", "m", 0, Duration::from_secs(30)).await.unwrap();
    /// assert_eq!(admission, Admission::Closed);
    /// # });
    /// ```
    fn admit_target(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold: Duration,
    ) -> impl Future<Output = Result<Admission, JournalError>> + Send;

    /// The earliest time after `now_ms` at which a recovery becomes
    /// claimable by time alone: a pending one whose delay ends, or a
    /// running one whose lease runs out; `None` when there is none. An
    /// idle worker sleeps until then (or its poll interval, whichever
    /// comes first) rather than until its next poll.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, RecoveryConfig};
    /// let config = RecoveryConfig { jitter: rebound_retry::Jitter::None, ..Default::default() };
    /// let journal = MemoryJournal::new(config).unwrap();
    /// assert_eq!(journal.next_due_after(0).await.unwrap(), None);
    /// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// // Due after the initial delay (10 s by default).
    /// assert_eq!(journal.next_due_after(0).await.unwrap(), Some(10_000));
    /// // Already due: not after now.
    /// assert_eq!(journal.next_due_after(10_000).await.unwrap(), None);
    /// # });
    /// ```
    fn next_due_after(
        &self,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<u64>, JournalError>> + Send {
        async move {
            let open = self.list(None).await?;
            Ok(wake::earliest_after(
                now_ms,
                open.iter().map(wake::due_time),
            ))
        }
    }

    /// The signal this handle raises after each change that can make work
    /// claimable (see [`wake`]); `None` for a journal that has none, whose
    /// workers then poll.
    ///
    /// ```
    /// use rebound_recovery::{Journal, MemoryJournal};
    /// let journal = MemoryJournal::new(Default::default()).unwrap();
    /// assert!(journal.wake().is_some());
    /// ```
    fn wake(&self) -> Option<Wake> {
        None
    }
}

/// How many recoveries [`Journal::prune`] deletes per transaction.
pub const PRUNE_BATCH: usize = 1_000;

/// The final states `prune` deletes: `states`, or all final ones when
/// empty; a state that is not final is refused.
pub(crate) fn prunable(states: &[RecoveryState]) -> Result<Vec<RecoveryState>, JournalError> {
    if let Some(open) = states.iter().find(|s| !s.is_final()) {
        return Err(JournalError::Invalid(format!(
            "cannot prune {open} recoveries: only finished ones (succeeded, rolled_back, \
             given_up, cancelled) are deleted"
        )));
    }
    if states.is_empty() {
        return Ok(RecoveryState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect());
    }
    Ok(states.to_vec())
}

/// Any backend, chosen at run time from a [`JournalAddress`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::{AnyJournal, Journal, JournalAddress};
/// let dir = tempfile::tempdir().unwrap();
/// let address: JournalAddress = format!("sqlite:{}", dir.path().join("j.db").display()).parse().unwrap();
/// let journal = AnyJournal::open(&address, Default::default()).await.unwrap();
/// assert!(journal.list(None).await.unwrap().is_empty());
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyJournal {
    /// In memory.
    Memory(memory::MemoryJournal),
    /// A SQLite file.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteJournal),
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::PostgresJournal>),
}

impl AnyJournal {
    /// Opens (creating or migrating as needed) the journal at `address`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{AnyJournal, Journal, JournalAddress};
    /// let journal = AnyJournal::open(&JournalAddress::Memory, Default::default()).await.unwrap();
    /// assert!(journal.due(0).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn open(
        address: &JournalAddress,
        config: RecoveryConfig,
    ) -> Result<Self, JournalError> {
        match address {
            JournalAddress::Memory => Ok(Self::Memory(memory::MemoryJournal::new(config)?)),
            #[cfg(feature = "sqlite")]
            JournalAddress::Sqlite(path) => Ok(Self::Sqlite(
                sqlite::SqliteJournal::open(path, config).await?,
            )),
            #[cfg(feature = "postgres")]
            JournalAddress::Postgres(url) => Ok(Self::Postgres(Box::new(
                postgres::PostgresJournal::connect(url, config).await?,
            ))),
            #[allow(unreachable_patterns)]
            other => Err(JournalError::Invalid(format!(
                "journal {other}: this build of rebound-recovery lacks the backend for it"
            ))),
        }
    }

    /// Opens the journal at `address` to read it (list, get, history,
    /// due): a SQLite journal of the current schema is opened read-only
    /// (see [`SqliteJournal::open_read_only`](sqlite::SqliteJournal::open_read_only)),
    /// so a user who may not write the file or its directory can still
    /// read it; anything else as [`open`](Self::open).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{AnyJournal, Journal, JournalAddress};
    /// let dir = tempfile::tempdir().unwrap();
    /// let address = JournalAddress::Sqlite(dir.path().join("j.db"));
    /// drop(AnyJournal::open(&address, Default::default()).await.unwrap());
    /// let reader = AnyJournal::open_read_only(&address, Default::default()).await.unwrap();
    /// assert!(reader.list(None).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn open_read_only(
        address: &JournalAddress,
        config: RecoveryConfig,
    ) -> Result<Self, JournalError> {
        match address {
            #[cfg(feature = "sqlite")]
            JournalAddress::Sqlite(path) => Ok(Self::Sqlite(
                sqlite::SqliteJournal::open_read_only(path, config).await?,
            )),
            other => Self::open(other, config).await,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $j:ident => $e:expr) => {
        match $self {
            AnyJournal::Memory($j) => $e,
            #[cfg(feature = "sqlite")]
            AnyJournal::Sqlite($j) => $e,
            #[cfg(feature = "postgres")]
            AnyJournal::Postgres($j) => $e,
        }
    };
}

impl Journal for AnyJournal {
    fn describe(&self) -> String {
        dispatch!(self, j => j.describe())
    }

    fn config(&self) -> &RecoveryConfig {
        dispatch!(self, j => j.config())
    }

    async fn record(&self, report: FailureReport, now_ms: u64) -> Result<Recovery, JournalError> {
        dispatch!(self, j => j.record(report, now_ms).await)
    }

    async fn get(&self, migration: &str) -> Result<Option<Recovery>, JournalError> {
        dispatch!(self, j => j.get(migration).await)
    }

    async fn history(&self, migration: &str) -> Result<Vec<Attempt>, JournalError> {
        dispatch!(self, j => j.history(migration).await)
    }

    async fn list(&self, state: Option<RecoveryState>) -> Result<Vec<Recovery>, JournalError> {
        dispatch!(self, j => j.list(state).await)
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<Recovery>, JournalError> {
        dispatch!(self, j => j.due(now_ms).await)
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, JournalError> {
        dispatch!(self, j => j.claim(owner, now_ms, lease, limit).await)
    }

    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        dispatch!(self, j => j.renew(claim, now_ms, lease).await)
    }

    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        dispatch!(self, j => j.release(claim, now_ms).await)
    }

    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        dispatch!(self, j => j.complete(claim, outcome, now_ms).await)
    }

    async fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        dispatch!(self, j => j.cancel(migration, reason, now_ms).await)
    }

    async fn prune(&self, before_ms: u64, states: &[RecoveryState]) -> Result<u64, JournalError> {
        dispatch!(self, j => j.prune(before_ms, states).await)
    }

    async fn targets(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        dispatch!(self, j => j.targets().await)
    }

    async fn reset_target(&self, node: &str, now_ms: u64) -> Result<TargetBreaker, JournalError> {
        dispatch!(self, j => j.reset_target(node, now_ms).await)
    }

    async fn admit_target(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold: Duration,
    ) -> Result<Admission, JournalError> {
        dispatch!(self, j => j.admit_target(node, migration, now_ms, hold).await)
    }

    async fn next_due_after(&self, now_ms: u64) -> Result<Option<u64>, JournalError> {
        dispatch!(self, j => j.next_due_after(now_ms).await)
    }

    fn wake(&self) -> Option<Wake> {
        dispatch!(self, j => j.wake())
    }
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        impl<J: Journal + ?Sized> Journal for $ty {
            fn describe(&self) -> String {
                (**self).describe()
            }

            fn config(&self) -> &RecoveryConfig {
                (**self).config()
            }

            fn record(
                &self,
                report: FailureReport,
                now_ms: u64,
            ) -> impl Future<Output = Result<Recovery, JournalError>> + Send {
                (**self).record(report, now_ms)
            }

            fn get(
                &self,
                migration: &str,
            ) -> impl Future<Output = Result<Option<Recovery>, JournalError>> + Send {
                (**self).get(migration)
            }

            fn history(
                &self,
                migration: &str,
            ) -> impl Future<Output = Result<Vec<Attempt>, JournalError>> + Send {
                (**self).history(migration)
            }

            fn list(
                &self,
                state: Option<RecoveryState>,
            ) -> impl Future<Output = Result<Vec<Recovery>, JournalError>> + Send {
                (**self).list(state)
            }

            fn due(
                &self,
                now_ms: u64,
            ) -> impl Future<Output = Result<Vec<Recovery>, JournalError>> + Send {
                (**self).due(now_ms)
            }

            fn claim(
                &self,
                owner: &str,
                now_ms: u64,
                lease: Duration,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<Claim>, JournalError>> + Send {
                (**self).claim(owner, now_ms, lease, limit)
            }

            fn renew(
                &self,
                claim: &Claim,
                now_ms: u64,
                lease: Duration,
            ) -> impl Future<Output = Result<Claim, JournalError>> + Send {
                (**self).renew(claim, now_ms, lease)
            }

            fn release(
                &self,
                claim: &Claim,
                now_ms: u64,
            ) -> impl Future<Output = Result<Recovery, JournalError>> + Send {
                (**self).release(claim, now_ms)
            }

            fn complete(
                &self,
                claim: &Claim,
                outcome: Outcome,
                now_ms: u64,
            ) -> impl Future<Output = Result<Recovery, JournalError>> + Send {
                (**self).complete(claim, outcome, now_ms)
            }

            fn cancel(
                &self,
                migration: &str,
                reason: &str,
                now_ms: u64,
            ) -> impl Future<Output = Result<Recovery, JournalError>> + Send {
                (**self).cancel(migration, reason, now_ms)
            }

            fn prune(
                &self,
                before_ms: u64,
                states: &[RecoveryState],
            ) -> impl Future<Output = Result<u64, JournalError>> + Send {
                (**self).prune(before_ms, states)
            }

            fn targets(
                &self,
            ) -> impl Future<Output = Result<Vec<TargetBreaker>, JournalError>> + Send {
                (**self).targets()
            }

            fn reset_target(
                &self,
                node: &str,
                now_ms: u64,
            ) -> impl Future<Output = Result<TargetBreaker, JournalError>> + Send {
                (**self).reset_target(node, now_ms)
            }

            fn admit_target(
                &self,
                node: &str,
                migration: &str,
                now_ms: u64,
                hold: Duration,
            ) -> impl Future<Output = Result<Admission, JournalError>> + Send {
                (**self).admit_target(node, migration, now_ms, hold)
            }

            fn next_due_after(
                &self,
                now_ms: u64,
            ) -> impl Future<Output = Result<Option<u64>, JournalError>> + Send {
                (**self).next_due_after(now_ms)
            }

            fn wake(&self) -> Option<Wake> {
                (**self).wake()
            }
        }
    )*};
}

// A journal shared by reference or `Arc` is still a journal (several
// workers over one SQLite connection, a worker borrowing a journal).
forward!(&J, std::sync::Arc<J>);

/// The longest wait between two tries of an unavailable journal.
pub(crate) const RECONNECT_MAX_WAIT: Duration = Duration::from_secs(30);

/// The waits between tries of an unavailable journal, for ever: 100 ms
/// doubling to [`RECONNECT_MAX_WAIT`], with equal jitter. The worker's
/// ride-out of a lost database and the PostgreSQL LISTEN connection's
/// reconnects both follow it.
pub(crate) fn reconnect_backoff() -> Box<dyn Iterator<Item = Duration> + Send> {
    rebound_retry::ExponentialBuilder::new()
        .with_initial_delay(Duration::from_millis(100))
        .with_max_delay(RECONNECT_MAX_WAIT)
        .with_jitter(rebound_retry::Jitter::Equal)
        .forever()
        .build()
        .map(|b| Box::new(b) as Box<dyn Iterator<Item = Duration> + Send>)
        .unwrap_or_else(|_| Box::new(std::iter::repeat(Duration::from_secs(1))))
}

/// `now_ms + lease`, saturating.
pub(crate) fn lease_end(now_ms: u64, lease: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
}

/// Checks that `claim` still holds `current`.
pub(crate) fn check_lease(current: &Recovery, claim: &Claim) -> Result<(), JournalError> {
    if current.state == RecoveryState::Running
        && current.lease_owner.as_deref() == Some(claim.owner.as_str())
        && current.claim_seq == claim.claim_seq
    {
        Ok(())
    } else {
        Err(JournalError::LeaseLost {
            migration: current.migration.clone(),
            owner: claim.owner.clone(),
        })
    }
}

// What each backend does inside its transaction, once for all of them:
// the backend loads the recovery (`current`), calls one of these, and
// stores what it returns.

/// The recovery `claim` holds, or why it holds none.
fn held(current: Option<Recovery>, claim: &Claim) -> Result<Recovery, JournalError> {
    let current =
        current.ok_or_else(|| JournalError::NotFound(claim.recovery.migration.clone()))?;
    check_lease(&current, claim)?;
    Ok(current)
}

/// A due recovery claimed by `owner` until `lease_expires_ms`.
pub(crate) fn claimed(due: Recovery, owner: &str, now_ms: u64, lease_expires_ms: u64) -> Claim {
    let recovery = transition::claim(due, owner, now_ms, lease_expires_ms);
    Claim {
        owner: owner.to_owned(),
        claim_seq: recovery.claim_seq,
        lease_expires_ms,
        recovery,
    }
}

/// Whether a claim must give `due` up rather than retake it: it is
/// running under a lease that ran out for the `max_rescues`th time.
pub(crate) fn lost_too_often(due: &Recovery, config: &RecoveryConfig) -> bool {
    transition::lost_too_often(due, config)
}

/// A recovery whose worker was lost too often, given up by a claim, and
/// the history entry to add.
pub(crate) fn abandoned(due: Recovery, now_ms: u64) -> (Recovery, Attempt) {
    transition::abandon(due, now_ms)
}

/// [`Journal::renew`]: the claim, its lease extended to `now_ms + lease`.
pub(crate) fn renewed(
    current: Option<Recovery>,
    claim: &Claim,
    now_ms: u64,
    lease: Duration,
) -> Result<Claim, JournalError> {
    let expires = lease_end(now_ms, lease);
    let recovery = transition::renew(held(current, claim)?, now_ms, expires);
    Ok(Claim {
        recovery,
        lease_expires_ms: expires,
        ..claim.clone()
    })
}

/// [`Journal::release`]: the claimed recovery handed back.
pub(crate) fn released(
    current: Option<Recovery>,
    claim: &Claim,
    now_ms: u64,
) -> Result<Recovery, JournalError> {
    Ok(transition::release(held(current, claim)?, now_ms))
}

/// [`Journal::cancel`]: the recovery of `migration` cancelled, and the
/// history entry to add.
pub(crate) fn cancelled(
    current: Option<Recovery>,
    migration: &str,
    reason: &str,
    now_ms: u64,
) -> Result<(Recovery, Attempt), JournalError> {
    let current = current.ok_or_else(|| JournalError::NotFound(migration.to_owned()))?;
    transition::cancel(current, reason, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_end_saturates() {
        assert_eq!(lease_end(u64::MAX - 1, Duration::from_secs(5)), u64::MAX);
        assert_eq!(lease_end(1_000, Duration::from_millis(500)), 1_500);
    }
}

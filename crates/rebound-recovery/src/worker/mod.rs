//! The [`RecoveryWorker`]: claims due recoveries, runs the caller's
//! migrator or rollback handler, and records the outcome.

pub mod classify;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use classify::{DefaultClassifier, FailureClassifier};

use crate::error::JournalError;
use crate::journal::{Claim, Journal};
use crate::model::transition;
use crate::model::{FailureReport, Outcome, Recovery, RecoveryState, SnapshotRef, Strategy};

/// What the caller's handlers are asked to do.
///
/// ```
/// use rebound_recovery::{Job, Strategy};
/// let job = Job {
///     migration: "m-1".into(), workload: "web".into(), source: "a".into(), target: "b".into(),
///     snapshot: None, strategy: Strategy::RetryOnSameTarget, retry_count: 0,
/// };
/// assert_eq!(job.target, "b");
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
}

impl Job {
    fn of(rec: &Recovery) -> Self {
        Self {
            migration: rec.migration.clone(),
            workload: rec.workload.clone(),
            source: rec.source.clone(),
            target: rec.target.clone(),
            snapshot: rec.snapshot.clone(),
            strategy: rec.strategy,
            retry_count: rec.retry_count,
        }
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
/// [`RecoveryWorker::record`] (added to the recovery's candidates; targets
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

/// The wall clock the worker stamps the journal with (ms since the epoch).
///
/// ```
/// use rebound_recovery::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
///
/// ```
/// use rebound_recovery::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() <= SystemClock.now_ms());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// The system time in ms since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A callback told about each recorded attempt.
type Notify = dyn Fn(&Claim, &Recovery) + Send + Sync;

/// What a worker did, added up.
///
/// ```
/// let report = rebound_recovery::WorkerReport::default();
/// assert_eq!(report.claimed, 0);
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
    /// Claims lost to another worker after the lease ran out.
    pub lease_lost: u64,
    /// Claims handed back unfinished (with
    /// [`Journal::release`]) when
    /// [`run`](RecoveryWorker::run) or [`drain`](RecoveryWorker::drain)
    /// was stopped.
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
        self.lease_lost += other.lease_lost;
        self.released += other.released;
    }
}

/// Claims due recoveries and carries out their strategy.
///
/// A rollback runs only after the snapshot is verified (age and CRC32C); a
/// bad snapshot gives the recovery up with the reason. Each attempt is
/// bounded by what remains of the recovery timeout; the lease is renewed
/// every third of its length while the attempt runs, and before the
/// attempt when the claim waited that long in its batch.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::*;
/// struct Ok_;
/// impl Migrator for Ok_ {
///     type Error = std::io::Error;
///     async fn migrate(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
/// }
/// impl RollbackHandler for Ok_ {
///     type Error = std::io::Error;
///     async fn rollback(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let config = RecoveryConfig { initial_delay: std::time::Duration::from_millis(1), ..Default::default() };
/// let journal = SqliteJournal::open(dir.path().join("j.db"), config).await.unwrap();
/// let now = SystemClock.now_ms();
/// journal.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), now - 10).await.unwrap();
/// let worker = RecoveryWorker::new(journal, Ok_, Ok_);
/// assert_eq!(worker.run_once().await.unwrap().succeeded, 1);
/// # });
/// ```
pub struct RecoveryWorker<J, M, R, C = DefaultClassifier> {
    journal: J,
    migrator: M,
    rollback: R,
    classifier: C,
    selector: Option<Arc<dyn TargetSelector>>,
    notify: Option<Arc<Notify>>,
    clock: Arc<dyn Clock>,
    owner: String,
    lease: Duration,
    batch: usize,
    poll: Duration,
}

impl<J, M, R> RecoveryWorker<J, M, R, DefaultClassifier> {
    /// A worker with the default classifier, a 30 s lease, batches of 16,
    /// polling every second, named `<host>-<pid>`.
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback);
    /// assert!(!worker.owner().is_empty());
    /// ```
    pub fn new(journal: J, migrator: M, rollback: R) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
        Self {
            journal,
            migrator,
            rollback,
            classifier: DefaultClassifier,
            selector: None,
            notify: None,
            clock: Arc::new(SystemClock),
            owner: format!("{host}-{}", std::process::id()),
            lease: Duration::from_secs(30),
            batch: 16,
            poll: Duration::from_secs(1),
        }
    }
}

impl<J, M, R, C> RecoveryWorker<J, M, R, C> {
    /// Uses another failure classifier.
    ///
    /// ```
    /// # use rebound_recovery::{FailureKind, RecoveryWorker};
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// // Every failure of this migrator means the target is unreachable.
    /// let worker = RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_classifier(|_: &std::io::Error| FailureKind::TargetUnreachable);
    /// # let _ = worker;
    /// ```
    pub fn with_classifier<C2>(self, classifier: C2) -> RecoveryWorker<J, M, R, C2> {
        RecoveryWorker {
            journal: self.journal,
            migrator: self.migrator,
            rollback: self.rollback,
            classifier,
            selector: self.selector,
            notify: self.notify,
            clock: self.clock,
            owner: self.owner,
            lease: self.lease,
            batch: self.batch,
            poll: self.poll,
        }
    }

    /// Asks `selector` for more targets after each failed migration.
    ///
    /// ```
    /// # use rebound_recovery::{Recovery, RecoveryWorker};
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// struct Spare;
    /// impl rebound_recovery::TargetSelector for Spare {
    ///     fn candidates(&self, _: &Recovery) -> Vec<String> { vec!["node-spare".into()] }
    /// }
    /// let worker = RecoveryWorker::new(journal, migrator, rollback).with_selector(Spare);
    /// # let _ = worker;
    /// ```
    pub fn with_selector(mut self, selector: impl TargetSelector + 'static) -> Self {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// Calls `notify` after each attempt with the claim (the recovery as
    /// it was when claimed) and the recovery as recorded afterwards.
    ///
    /// ```
    /// # use rebound_recovery::RecoveryWorker;
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_notify(|claim, done| println!("{}: {}", claim.recovery.migration, done.state));
    /// # let _ = worker;
    /// ```
    pub fn with_notify(
        mut self,
        notify: impl Fn(&Claim, &Recovery) + Send + Sync + 'static,
    ) -> Self {
        self.notify = Some(Arc::new(notify));
        self
    }

    /// Stamps the journal with `clock`.
    ///
    /// ```
    /// # use rebound_recovery::{Clock, RecoveryWorker};
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// struct Fixed;
    /// impl Clock for Fixed {
    ///     fn now_ms(&self) -> u64 { 1_700_000_000_000 }
    /// }
    /// let worker = RecoveryWorker::new(journal, migrator, rollback).with_clock(Fixed);
    /// # let _ = worker;
    /// ```
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The name the lease is held under; unique per worker.
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_owner("controller-1");
    /// assert_eq!(worker.owner(), "controller-1");
    /// ```
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// How long a claim lasts without renewal (at least 10 ms).
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_lease(std::time::Duration::from_secs(10));
    /// # let _ = worker;
    /// ```
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(10));
        self
    }

    /// How many recoveries one claim takes (at least 1).
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback).with_batch(4);
    /// # let _ = worker;
    /// ```
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long [`run`](Self::run) waits when nothing is due.
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_poll_interval(std::time::Duration::from_millis(250));
    /// # let _ = worker;
    /// ```
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The journal.
    ///
    /// ```
    /// # let (migrator, rollback) = ((), ());
    /// let worker = rebound_recovery::RecoveryWorker::new("journal", migrator, rollback);
    /// assert_eq!(*worker.journal(), "journal");
    /// ```
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The lease owner name.
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback).with_owner("w1");
    /// assert_eq!(worker.owner(), "w1");
    /// ```
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

impl<J: Journal, M, R, C> RecoveryWorker<J, M, R, C> {
    /// Records a failure the caller saw, after adding the selector's
    /// candidates (see [`with_selector`](Self::with_selector)) to the
    /// report, so that a failure that calls for another target gets one at
    /// once instead of rolling back for want of candidates.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::*;
    /// struct Spare;
    /// impl TargetSelector for Spare {
    ///     fn candidates(&self, _: &Recovery) -> Vec<String> { vec!["node-spare".into()] }
    /// }
    /// let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
    /// let worker = RecoveryWorker::new(journal, (), ()).with_selector(Spare);
    /// let report = FailureReport::new("m", "web", "a", "b", FailureKind::TargetUnreachable, "down");
    /// let rec = worker.record(report).await.unwrap();
    /// assert_eq!((rec.strategy, rec.target.as_str()), (Strategy::RetryOnDifferentTarget, "node-spare"));
    /// # });
    /// ```
    pub async fn record(&self, mut report: FailureReport) -> Result<Recovery, JournalError> {
        let now = self.clock.now_ms();
        if let Some(selector) = &self.selector {
            let existing = self.journal.get(&report.migration).await?;
            // The recovery as this report would leave it, for the selector.
            let (preview, _) =
                transition::record_failure(existing, &report, self.journal.config(), now);
            for c in selector.candidates(&preview) {
                if !report.candidates.contains(&c) {
                    report.candidates.push(c);
                }
            }
        }
        self.journal.record(report, now).await
    }
}

impl<J, M, R, C> RecoveryWorker<J, M, R, C>
where
    J: Journal,
    M: Migrator,
    R: RollbackHandler,
    C: FailureClassifier<M::Error>,
{
    /// Claims one batch of due recoveries and carries each out.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use rebound_recovery::*;
    /// # struct Ok_;
    /// # impl Migrator for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn migrate(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # impl RollbackHandler for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn rollback(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let journal = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// let worker = RecoveryWorker::new(journal, Ok_, Ok_);
    /// // Nothing recorded, nothing claimed.
    /// assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    /// # });
    /// ```
    pub async fn run_once(&self) -> Result<WorkerReport, JournalError> {
        let progress = std::sync::Mutex::new(Progress::default());
        self.batch(&progress).await?;
        Ok(lock(&progress).report)
    }

    /// Claims one batch and carries each claim out, keeping `progress`
    /// up to date so that a stop mid-batch knows what it holds. Returns how
    /// many were claimed.
    async fn batch(&self, progress: &std::sync::Mutex<Progress>) -> Result<u64, JournalError> {
        let now = self.clock.now_ms();
        let claims = self
            .journal
            .claim(&self.owner, now, self.lease, self.batch)
            .await?;
        let claimed = claims.len() as u64;
        {
            let mut p = lock(progress);
            p.report.claimed += claimed;
            p.held.clone_from(&claims);
        }
        for claim in claims {
            let migration = claim.recovery.migration.clone();
            let report = self.execute(claim).await?;
            let mut p = lock(progress);
            p.report.add(report);
            p.held.retain(|c| c.recovery.migration != migration);
        }
        Ok(claimed)
    }

    /// Like [`run`](Self::run), but returns as soon as nothing is due.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use rebound_recovery::*;
    /// # struct Ok_;
    /// # impl Migrator for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn migrate(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # impl RollbackHandler for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn rollback(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let journal = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// let worker = RecoveryWorker::new(journal, Ok_, Ok_);
    /// let report = worker.drain(std::future::pending()).await.unwrap();
    /// assert_eq!(report.claimed, 0);
    /// # });
    /// ```
    pub async fn drain(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerReport, JournalError> {
        self.run_until(shutdown, true).await
    }

    async fn run_until(
        &self,
        shutdown: impl Future<Output = ()>,
        until_idle: bool,
    ) -> Result<WorkerReport, JournalError> {
        let progress = std::sync::Mutex::new(Progress::default());
        let work = async {
            loop {
                if self.batch(&progress).await? == 0 {
                    if until_idle {
                        return Ok::<_, JournalError>(());
                    }
                    tokio::time::sleep(self.poll).await;
                }
            }
        };
        tokio::select! {
            () = shutdown => {}
            done = work => done?,
        }
        let Progress { mut report, held } =
            progress.into_inner().unwrap_or_else(|p| p.into_inner());
        // Stopped mid-batch: hand back what was claimed and not finished
        // (the attempt in progress was dropped, its command killed), so that
        // another worker takes it now rather than when the lease runs out.
        for claim in held {
            match self.journal.release(&claim, self.clock.now_ms()).await {
                Ok(_) => report.released += 1,
                Err(JournalError::LeaseLost { .. }) => {}
                Err(e) => {
                    tracing::warn!(
                        migration = %claim.recovery.migration,
                        error = %e,
                        "could not hand the claim back; it is taken again when its lease ends"
                    );
                }
            }
        }
        Ok(report)
    }

    /// Runs batches until `shutdown` resolves, waiting the poll interval
    /// whenever nothing was due. The attempt in progress when `shutdown`
    /// resolves is dropped, and it and the rest of its batch are handed
    /// back ([`Journal::release`]): due at once
    /// for any worker, with nothing recorded. Should the hand-back fail,
    /// the lease runs out and another worker retakes them then.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # use rebound_recovery::*;
    /// # struct Ok_;
    /// # impl Migrator for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn migrate(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # impl RollbackHandler for Ok_ {
    /// #     type Error = std::io::Error;
    /// #     async fn rollback(&self, _: &Job) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let journal = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// let worker = RecoveryWorker::new(journal, Ok_, Ok_);
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// stop.send(()).unwrap();
    /// let report = worker.run(async { stopped.await.unwrap() }).await.unwrap();
    /// assert_eq!(report.claimed, 0);
    /// # });
    /// ```
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerReport, JournalError> {
        self.run_until(shutdown, false).await
    }

    /// Carries out one claim and records the outcome.
    async fn execute(&self, claim: Claim) -> Result<WorkerReport, JournalError> {
        // A batch is claimed at once and run in turn: a claim that waited a
        // third of its lease or more is renewed before its attempt starts,
        // so that one whose lease ran out and which another worker took
        // meanwhile is not run a second time.
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let claimed_at = claim.lease_expires_ms.saturating_sub(lease_ms);
        let claim = if self.clock.now_ms().saturating_sub(claimed_at) >= lease_ms / 3 {
            match self
                .journal
                .renew(&claim, self.clock.now_ms(), self.lease)
                .await
            {
                Ok(renewed) => renewed,
                Err(JournalError::LeaseLost { migration, owner }) => {
                    tracing::warn!(%migration, %owner, "lease lost before the attempt started");
                    return Ok(WorkerReport {
                        lease_lost: 1,
                        ..Default::default()
                    });
                }
                Err(e) => return Err(e),
            }
        } else {
            claim
        };
        let rec = &claim.recovery;
        let config = self.journal.config();
        let deadline = rec.deadline_ms(config);
        let now = self.clock.now_ms();
        let timeout_reason = || {
            format!(
                "recovery timeout of {}s since the first failure ran out",
                config.recovery_timeout.as_secs()
            )
        };
        let remaining = Duration::from_millis(deadline.saturating_sub(now));
        let outcome = if remaining.is_zero() {
            Some(Outcome::GaveUp {
                reason: timeout_reason(),
            })
        } else {
            match rec.strategy {
                Strategy::RetryOnSameTarget | Strategy::RetryOnDifferentTarget => {
                    let job = Job::of(rec);
                    self.guarded(&claim, remaining, self.migrator.migrate(&job))
                        .await?
                        .map(|result| match result {
                            None => Outcome::GaveUp {
                                reason: timeout_reason(),
                            },
                            Some(Ok(())) => Outcome::Migrated,
                            Some(Err(e)) => Outcome::Failed {
                                kind: self.classifier.classify(&e),
                                message: error_text(&e),
                                candidates: self
                                    .selector
                                    .as_ref()
                                    .map(|s| s.candidates(rec))
                                    .unwrap_or_default(),
                            },
                        })
                }
                Strategy::Rollback => self.roll_back(&claim, now, remaining).await?.map(|o| {
                    o.unwrap_or_else(|| Outcome::GaveUp {
                        reason: timeout_reason(),
                    })
                }),
                Strategy::GiveUp => Some(Outcome::GaveUp {
                    reason: rec.reason.clone().unwrap_or_else(|| "given up".to_owned()),
                }),
            }
        };
        let Some(outcome) = outcome else {
            return Ok(WorkerReport {
                lease_lost: 1,
                ..Default::default()
            });
        };
        match self
            .journal
            .complete(&claim, outcome, self.clock.now_ms())
            .await
        {
            Ok(done) => {
                if let Some(notify) = &self.notify {
                    notify(&claim, &done);
                }
                Ok(tally(&done))
            }
            Err(JournalError::LeaseLost { migration, owner }) => {
                tracing::warn!(%migration, %owner, "lease lost before the outcome was recorded");
                Ok(WorkerReport {
                    lease_lost: 1,
                    ..Default::default()
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Verifies the snapshot, then runs the rollback handler. `Ok(None)`:
    /// the lease was lost; `Ok(Some(None))`: the recovery timeout ran out.
    async fn roll_back(
        &self,
        claim: &Claim,
        now: u64,
        remaining: Duration,
    ) -> Result<Option<Option<Outcome>>, JournalError> {
        let rec = &claim.recovery;
        let config = self.journal.config();
        let Some(snapshot) = &rec.snapshot else {
            return Ok(Some(Some(Outcome::GaveUp {
                reason: "rollback needed but no snapshot was recorded".to_owned(),
            })));
        };
        // Reading a large snapshot must not stall the runtime's threads.
        let (snap, max_age) = (snapshot.clone(), config.snapshot_max_age);
        let verified = tokio::task::spawn_blocking(move || snap.verify(now, max_age))
            .await
            .unwrap_or_else(|e| {
                Err(crate::error::SnapshotError::Unreadable {
                    path: snapshot.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        if let Err(e) = verified {
            return Ok(Some(Some(Outcome::GaveUp {
                reason: format!("rollback refused: {e}"),
            })));
        }
        let job = Job::of(rec);
        Ok(self
            .guarded(claim, remaining, self.rollback.rollback(&job))
            .await?
            .map(|result| {
                result.map(|r| match r {
                    Ok(()) => Outcome::RolledBack,
                    Err(e) => Outcome::GaveUp {
                        reason: format!("rollback failed: {}", error_text(&e)),
                    },
                })
            }))
    }

    /// Runs `attempt` within `limit`, renewing the lease meanwhile.
    /// `Ok(None)`: the lease was lost (the attempt is dropped);
    /// `Ok(Some(None))`: `limit` ran out.
    async fn guarded<T>(
        &self,
        claim: &Claim,
        limit: Duration,
        attempt: impl Future<Output = T>,
    ) -> Result<Option<Option<T>>, JournalError> {
        let renew = async {
            let mut claim = claim.clone();
            loop {
                tokio::time::sleep(self.lease / 3).await;
                match self
                    .journal
                    .renew(&claim, self.clock.now_ms(), self.lease)
                    .await
                {
                    Ok(renewed) => claim = renewed,
                    Err(JournalError::LeaseLost { .. }) => return,
                    Err(e) => tracing::warn!(error = %e, "renewing the lease failed; retrying"),
                }
            }
        };
        tokio::select! {
            result = tokio::time::timeout(limit, attempt) => Ok(Some(result.ok())),
            () = renew => Ok(None),
        }
    }
}

/// What a running worker holds and has done so far.
#[derive(Default)]
struct Progress {
    report: WorkerReport,
    /// Claimed and not yet carried out.
    held: Vec<Claim>,
}

fn lock(progress: &std::sync::Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|p| p.into_inner())
}

fn tally(done: &Recovery) -> WorkerReport {
    let mut r = WorkerReport::default();
    match done.state {
        RecoveryState::Succeeded => r.succeeded = 1,
        RecoveryState::RolledBack => r.rolled_back = 1,
        RecoveryState::GivenUp => r.given_up = 1,
        RecoveryState::Pending | RecoveryState::Running => r.retrying = 1,
    }
    r
}

/// The error and its sources, joined by `: `.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::{FailureKind, MemoryJournal, RecoveryConfig};

    struct Spare;

    impl TargetSelector for Spare {
        fn candidates(&self, rec: &Recovery) -> Vec<String> {
            // Already-failed targets are skipped by the journal anyway.
            vec![rec.target.clone(), "node-spare".into()]
        }
    }

    fn unreachable() -> FailureReport {
        FailureReport::new("m", "web", "a", "b", FailureKind::TargetUnreachable, "down")
    }

    // The selector used to be asked only after a worker's own failed
    // attempt: a failure recorded without candidates rolled back (or gave
    // up) at once although the selector had a target to offer.
    #[tokio::test]
    async fn a_recorded_failure_gets_the_selectors_target() {
        let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
        let worker = RecoveryWorker::new(&journal, (), ()).with_selector(Spare);
        let rec = worker.record(unreachable()).await.unwrap();
        assert_eq!(rec.strategy, Strategy::RetryOnDifferentTarget);
        assert_eq!(rec.target, "node-spare");
        assert_eq!(rec.failed_targets, ["b"]);
    }

    #[tokio::test]
    async fn without_a_selector_the_report_is_recorded_as_given() {
        let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
        let worker = RecoveryWorker::new(&journal, (), ());
        let rec = worker.record(unreachable()).await.unwrap();
        // No candidate and no snapshot: given up, with the reason.
        assert_eq!(rec.state, RecoveryState::GivenUp);
        assert!(rec.candidates.is_empty());
    }

    /// A clock the test moves by hand.
    #[derive(Clone, Default)]
    struct Manual(Arc<std::sync::atomic::AtomicU64>);

    impl Clock for Manual {
        fn now_ms(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Each migration takes 40 s; during the first one, another worker
    /// takes the batch, whose 30 s leases have run out.
    #[derive(Clone)]
    struct Slow<'a> {
        journal: &'a MemoryJournal,
        clock: Manual,
        runs: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Migrator for Slow<'_> {
        type Error = std::io::Error;
        async fn migrate(&self, job: &Job) -> std::io::Result<()> {
            let first = {
                let mut runs = self.runs.lock().unwrap();
                runs.push(job.migration.clone());
                runs.len() == 1
            };
            let now = self
                .clock
                .0
                .fetch_add(40_000, std::sync::atomic::Ordering::SeqCst)
                + 40_000;
            if first {
                let taken = self
                    .journal
                    .claim("other", now, Duration::from_secs(30), 10)
                    .await
                    .unwrap();
                // Both leases ran out (this one is renewed on tokio's
                // clock, not on this manual one).
                assert_eq!(taken.len(), 2);
            }
            Ok(())
        }
    }

    impl RollbackHandler for Slow<'_> {
        type Error = std::io::Error;
        async fn rollback(&self, _: &Job) -> std::io::Result<()> {
            Ok(())
        }
    }

    // A batch's later claims used to start without checking their lease:
    // after a long first attempt, one that another worker had retaken ran
    // twice.
    #[tokio::test]
    async fn a_queued_claim_taken_by_another_worker_is_not_run_again() {
        let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
        let clock = Manual::default();
        for id in ["m1", "m2"] {
            let report = FailureReport::new(id, "web", "a", "b", FailureKind::Timeout, "slow");
            journal.record(report, 0).await.unwrap();
        }
        clock.0.store(60_000, std::sync::atomic::Ordering::SeqCst);
        let slow = Slow {
            journal: &journal,
            clock: clock.clone(),
            runs: Arc::default(),
        };
        let worker = RecoveryWorker::new(&journal, slow.clone(), slow.clone())
            .with_clock(clock.clone())
            .with_lease(Duration::from_secs(30));
        let report = worker.run_once().await.unwrap();
        assert_eq!((report.claimed, report.succeeded), (2, 0));
        assert_eq!(report.lease_lost, 2);
        // Only the first attempt of the batch ran (either one: jitter
        // orders them); the other went to the worker that holds it now.
        assert_eq!(slow.runs.lock().unwrap().len(), 1);
        for id in ["m1", "m2"] {
            let rec = journal.get(id).await.unwrap().unwrap();
            assert_eq!(rec.lease_owner.as_deref(), Some("other"), "{id}");
        }
    }
}

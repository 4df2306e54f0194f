//! The [`RecoveryWorker`]: claims due recoveries, runs the caller's
//! migrator or rollback handler, and records the outcome.
//!
//! - [`handlers`]: what the worker asks of its caller ([`Job`],
//!   [`Migrator`], [`RollbackHandler`], [`TargetSelector`]);
//! - [`classify`]: turning a migrator's error into a failure kind;
//! - `attempt`: one claim carried out under its lease;
//! - `run`: the loops that claim batches, and the hand-back on stop;
//! - [`report`]: what a worker did ([`WorkerReport`]) and what it tells
//!   while its journal is unreachable ([`JournalOutage`]).
//!
//! This file holds the worker itself: its settings and
//! [`record`](RecoveryWorker::record).

mod attempt;
pub mod classify;
pub mod handlers;
pub mod report;
mod run;
mod targets;
mod wake;

use std::sync::Arc;
use std::time::Duration;

pub use classify::{DefaultClassifier, FailureClassifier};
pub use handlers::{Cancellation, Job, Migrator, RollbackHandler, TargetSelector};
pub use report::{JournalOutage, WorkerReport};

use crate::clock::{Clock, SystemClock};
use crate::error::JournalError;
use crate::journal::{Claim, Journal};
use crate::model::transition;
use crate::model::{FailureReport, Recovery};

/// A callback told about each recorded attempt.
type Notify = dyn Fn(&Claim, &Recovery) + Send + Sync;

/// A callback told how long each claim took and what it claimed.
type OnClaim = dyn Fn(Duration, &[Claim]) + Send + Sync;

/// A callback told when the journal becomes unavailable and when it is
/// back.
type OnOutage = dyn Fn(&JournalOutage<'_>) + Send + Sync;

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
    cancel_check: Duration,
    cancel_grace: Duration,
    on_claim: Option<Arc<OnClaim>>,
    on_outage: Option<Arc<OnOutage>>,
}

impl<J, M, R> RecoveryWorker<J, M, R, DefaultClassifier> {
    /// A worker with the default classifier, a 30 s lease, batches of 16,
    /// polling every second, named `$HOSTNAME-<pid>` (`worker-<pid>` when
    /// the environment has no `HOSTNAME`; shells seldom export it).
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback);
    /// assert!(worker.owner().ends_with(&format!("-{}", std::process::id())));
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
            cancel_check: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(5),
            on_claim: None,
            on_outage: None,
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
            cancel_check: self.cancel_check,
            cancel_grace: self.cancel_grace,
            on_claim: self.on_claim,
            on_outage: self.on_outage,
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

    /// How long [`run`](Self::run) waits at most when nothing is due
    /// (default 1 s): the journal's wake-up signal (see
    /// [`Journal::wake`]) or a recovery's due time ends the wait sooner,
    /// so this is only the fallback for changes no signal reported.
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

    /// How often a running attempt checks whether its recovery was
    /// cancelled (or taken by another worker) between lease renewals
    /// (default 1 s; at least 10 ms, at most a third of the lease).
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_cancel_check(std::time::Duration::from_millis(200));
    /// # let _ = worker;
    /// ```
    pub fn with_cancel_check(mut self, every: Duration) -> Self {
        self.cancel_check = every.max(Duration::from_millis(10));
        self
    }

    /// How long a cancelled attempt may take to stop after its
    /// [`Job::cancel`] is set before it is dropped (default 5 s; for
    /// `rebound recovery run`, SIGTERM then SIGKILL after this).
    ///
    /// ```
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = rebound_recovery::RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_cancel_grace(std::time::Duration::from_secs(2));
    /// # let _ = worker;
    /// ```
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Calls `on_claim` after each successful claim with how long the
    /// journal took to answer it and what was claimed (often nothing), for
    /// metrics.
    ///
    /// ```
    /// # use rebound_recovery::RecoveryWorker;
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = RecoveryWorker::new(journal, migrator, rollback)
    ///     .with_on_claim(|took, claims| println!("claimed {} in {took:?}", claims.len()));
    /// # let _ = worker;
    /// ```
    pub fn with_on_claim(
        mut self,
        on_claim: impl Fn(Duration, &[Claim]) + Send + Sync + 'static,
    ) -> Self {
        self.on_claim = Some(Arc::new(on_claim));
        self
    }

    /// Calls `on_outage` while [`run`](Self::run) rides out an
    /// unavailable journal (see there): after each call that failed with
    /// [`JournalErrorKind::Unavailable`](crate::JournalErrorKind::Unavailable),
    /// with the error and how long the worker waits before it tries
    /// again, and once when the journal answers again. The callback then
    /// reports the outage: the worker logs it at debug level only
    /// (without one, it logs each failure and the end as warnings).
    ///
    /// ```
    /// use rebound_recovery::RecoveryWorker;
    /// use rebound_recovery::worker::JournalOutage;
    /// # let (journal, migrator, rollback) = ((), (), ());
    /// let worker = RecoveryWorker::new(journal, migrator, rollback).with_on_outage(|outage| {
    ///     match outage {
    ///         JournalOutage::Unavailable { error, retry_in } => {
    ///             eprintln!("{error}; retrying in {retry_in:?}")
    ///         }
    ///         JournalOutage::Back { journal, .. } => eprintln!("journal {journal} is back"),
    ///         _ => {}
    ///     }
    /// });
    /// # let _ = worker;
    /// ```
    pub fn with_on_outage(
        mut self,
        on_outage: impl Fn(&JournalOutage<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_outage = Some(Arc::new(on_outage));
        self
    }

    /// The journal.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal, RecoveryWorker};
    /// let worker = RecoveryWorker::new(MemoryJournal::new(Default::default()).unwrap(), (), ());
    /// worker.record(FailureReport::new("m", "web", "a", "b", FailureKind::Timeout, "slow")).await.unwrap();
    /// assert_eq!(worker.journal().list(None).await.unwrap().len(), 1);
    /// # });
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

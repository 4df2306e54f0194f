//! The run loops: one batch ([`run_once`](RecoveryWorker::run_once)),
//! until stopped ([`run`](RecoveryWorker::run)), until idle
//! ([`drain`](RecoveryWorker::drain)), and handing back what a stopped
//! worker still holds.

use std::future::Future;
use std::time::Duration;

use super::{
    FailureClassifier, JournalOutage, Migrator, RecoveryWorker, RollbackHandler, WorkerReport,
};
use crate::error::{JournalError, JournalErrorKind};
use crate::journal::{Claim, Journal, RECONNECT_MAX_WAIT, reconnect_backoff};

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
        self.batch(&progress, None).await?;
        Ok(lock(&progress).report)
    }

    /// Claims one batch and carries each claim out, keeping `progress`
    /// up to date so that a stop mid-batch knows what it holds. Returns how
    /// many were claimed and the clock reading (ms) the claim was made at.
    /// With `ride` (in [`run`](Self::run)), the journal's answer ends an
    /// outage, and the attempts ride out an unavailable journal.
    async fn batch(
        &self,
        progress: &std::sync::Mutex<Progress>,
        ride: Option<&std::sync::Mutex<Outage>>,
    ) -> Result<(u64, u64), JournalError> {
        let now = self.clock.now_ms();
        let asked = std::time::Instant::now();
        let claims = self
            .journal
            .claim(&self.owner, now, self.lease, self.batch)
            .await?;
        self.journal_answered(ride);
        if let Some(on_claim) = &self.on_claim {
            on_claim(asked.elapsed(), &claims);
        }
        let claimed = claims.len() as u64;
        {
            let mut p = lock(progress);
            p.report.claimed += claimed;
            p.held.clone_from(&claims);
        }
        for claim in claims {
            let migration = claim.recovery.migration.clone();
            let report = self.execute(claim, ride).await?;
            let mut p = lock(progress);
            p.report.add(report);
            p.held.retain(|c| c.recovery.migration != migration);
        }
        Ok((claimed, now))
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
        let outage = std::sync::Mutex::new(Outage::new());
        // `run` rides out an unavailable journal; `drain` ends with it.
        let ride = (!until_idle).then_some(&outage);
        let work = async {
            // Listening before the first claim: a change made between a
            // claim that found nothing and the wait is not missed.
            let mut woken = self.journal.wake().map(|w| w.listen());
            loop {
                if let Some(woken) = woken.as_mut() {
                    woken.mark_seen();
                }
                match self.batch(&progress, ride).await {
                    Ok((0, _)) if until_idle => return Ok::<_, JournalError>(()),
                    Ok((0, claimed_at)) => self.idle(claimed_at, woken.as_mut()).await,
                    Ok(_) => {}
                    Err(e) if ride.is_some() && e.kind() == JournalErrorKind::Unavailable => {
                        self.wait_out(&outage, &e).await;
                    }
                    Err(e) => return Err(e),
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

    /// Runs batches until `shutdown` resolves. Whenever nothing was due it
    /// waits for the journal's wake-up signal (see [`Journal::wake`]),
    /// until the earliest due time ([`Journal::next_due_after`]) or for
    /// the poll interval, whichever comes first. The attempt in progress when `shutdown`
    /// resolves is dropped, and it and the rest of its batch are handed
    /// back ([`Journal::release`]): due at once
    /// for any worker, with nothing recorded. Should the hand-back fail,
    /// the lease runs out and another worker retakes them then.
    ///
    /// An unavailable journal (an error of kind
    /// [`JournalErrorKind::Unavailable`]: the database restarting, its
    /// connection lost) does not end `run`: the worker reports each
    /// failure (to [`with_on_outage`](Self::with_on_outage)'s callback,
    /// else as a logged warning), waits, and tries again, after rebound-retry's exponential backoff:
    /// 100 ms doubling to 30 s with equal jitter (each wait between half
    /// and all of that), back to 100 ms once the journal answers. A claim
    /// is simply tried again. An attempt that has run keeps trying to
    /// record its outcome ([`Journal::complete`]), and a claim that waited
    /// in its batch to renew its lease, the same way, until the journal
    /// answers, says the lease is lost, or `shutdown` resolves; so an
    /// outcome is not lost when the journal is back within the lease.
    /// When it is not, another worker retakes the recovery once the lease
    /// has run out and runs the attempt again (at least once), and this
    /// one's late completion is refused (counted in
    /// [`lease_lost`](WorkerReport#structfield.lease_lost)). A stop during a wait
    /// stops at once. Any other journal error ends `run` with that error.
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
}

impl<J: Journal, M, R, C> RecoveryWorker<J, M, R, C> {
    /// Waits after a call that found the journal unavailable: tells the
    /// outage callback of the failure (or, without one, logs it as a
    /// warning), and sleeps for the next delay of the backoff.
    pub(super) async fn wait_out(&self, outage: &std::sync::Mutex<Outage>, error: &JournalError) {
        let retry_in = lock_outage(outage).failed();
        let retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
        if let Some(on_outage) = &self.on_outage {
            // The callback reports it; the log keeps a quiet copy.
            tracing::debug!(error = %error, retry_in_ms, "the journal is unavailable; trying again after a backoff");
            on_outage(&JournalOutage::Unavailable { error, retry_in });
        } else {
            tracing::warn!(error = %error, retry_in_ms, "the journal is unavailable; trying again after a backoff");
        }
        tokio::time::sleep(retry_in).await;
    }

    /// The journal answered: ends an outage, if there was one (says so,
    /// and the backoff starts over).
    pub(super) fn journal_answered(&self, outage: Option<&std::sync::Mutex<Outage>>) {
        let Some(down_for) = outage.and_then(|o| lock_outage(o).over()) else {
            return;
        };
        let journal = self.journal.describe();
        let down_ms = u64::try_from(down_for.as_millis()).unwrap_or(u64::MAX);
        if let Some(on_outage) = &self.on_outage {
            tracing::debug!(journal = %journal, down_ms, "the journal is back");
            on_outage(&JournalOutage::Back {
                journal: &journal,
                down_for,
            });
        } else {
            tracing::warn!(journal = %journal, down_ms, "the journal is back");
        }
    }
}

/// An unavailable journal as [`run`](RecoveryWorker::run) rides it out:
/// the backoff between tries and when the outage began.
pub(super) struct Outage {
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    since: Option<tokio::time::Instant>,
}

impl Outage {
    fn new() -> Self {
        Self {
            delays: reconnect_backoff(),
            since: None,
        }
    }

    /// One more failure: the wait before the next try.
    fn failed(&mut self) -> Duration {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.delays.next().unwrap_or(RECONNECT_MAX_WAIT)
    }

    /// The journal answered: how long it was unavailable, if it was; the
    /// backoff starts over.
    fn over(&mut self) -> Option<Duration> {
        let since = self.since.take()?;
        self.delays = reconnect_backoff();
        Some(since.elapsed())
    }
}

fn lock_outage(outage: &std::sync::Mutex<Outage>) -> std::sync::MutexGuard<'_, Outage> {
    outage.lock().unwrap_or_else(|p| p.into_inner())
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

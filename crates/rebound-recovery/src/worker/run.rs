//! The run loops: one batch ([`run_once`](RecoveryWorker::run_once)),
//! until stopped ([`run`](RecoveryWorker::run)), until idle
//! ([`drain`](RecoveryWorker::drain)), and handing back what a stopped
//! worker still holds.

use std::future::Future;

use super::{FailureClassifier, Migrator, RecoveryWorker, RollbackHandler, WorkerReport};
use crate::error::JournalError;
use crate::journal::{Claim, Journal};

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
    /// many were claimed and the clock reading (ms) the claim was made at.
    async fn batch(
        &self,
        progress: &std::sync::Mutex<Progress>,
    ) -> Result<(u64, u64), JournalError> {
        let now = self.clock.now_ms();
        let asked = std::time::Instant::now();
        let claims = self
            .journal
            .claim(&self.owner, now, self.lease, self.batch)
            .await?;
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
            let report = self.execute(claim).await?;
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
        let work = async {
            // Listening before the first claim: a change made between a
            // claim that found nothing and the wait is not missed.
            let mut woken = self.journal.wake().map(|w| w.listen());
            loop {
                if let Some(woken) = woken.as_mut() {
                    woken.mark_seen();
                }
                let (claimed, claimed_at) = self.batch(&progress).await?;
                if claimed == 0 {
                    if until_idle {
                        return Ok::<_, JournalError>(());
                    }
                    self.idle(claimed_at, woken.as_mut()).await;
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

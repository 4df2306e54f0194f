//! One claim carried out: the lease checked, the strategy run within the
//! recovery timeout while the lease is renewed, the outcome recorded.

use std::future::Future;
use std::time::Duration;

use super::run::Outage;
use super::{
    Cancellation, FailureClassifier, Job, Migrator, RecoveryWorker, RollbackHandler, WorkerReport,
};
use crate::error::{JournalError, JournalErrorKind, SnapshotError, error_chain};
use crate::journal::{Claim, Journal, check_lease};
use crate::model::{Outcome, RecoveryState, Strategy};

/// How an attempt run under a lease ended.
#[derive(Debug)]
pub(crate) enum AttemptEnd<T> {
    /// It ran to its end with this result.
    Done(T),
    /// What remained of the recovery timeout ran out first; the attempt
    /// was dropped.
    TimedOut,
    /// Another worker took the recovery (the lease could not be renewed);
    /// the attempt was dropped and nothing may be recorded.
    LeaseLost,
    /// An operator cancelled the recovery: the handler was told (its
    /// [`Job::cancel`] set), given the cancel grace to stop, then dropped.
    /// The journal already says `cancelled`; nothing more is recorded.
    Cancelled,
}

/// Why the watch over a running attempt ended it.
enum Interrupt {
    LeaseLost,
    Cancelled,
}

impl<T> AttemptEnd<T> {
    /// The same end, with `f` applied to the result of one that ran.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> AttemptEnd<U> {
        match self {
            Self::Done(result) => AttemptEnd::Done(f(result)),
            Self::TimedOut => AttemptEnd::TimedOut,
            Self::LeaseLost => AttemptEnd::LeaseLost,
            Self::Cancelled => AttemptEnd::Cancelled,
        }
    }
}

impl<J, M, R, C> RecoveryWorker<J, M, R, C>
where
    J: Journal,
    M: Migrator,
    R: RollbackHandler,
    C: FailureClassifier<M::Error>,
{
    /// Carries out one claim and records the outcome. With `ride` (in
    /// `run`), recording the outcome rides out an unavailable journal:
    /// it is tried again after the backoff until the journal answers.
    pub(super) async fn execute(
        &self,
        claim: Claim,
        ride: Option<&std::sync::Mutex<Outage>>,
    ) -> Result<WorkerReport, JournalError> {
        let Some(claim) = self.still_held(claim, ride).await? else {
            return Ok(WorkerReport::lease_lost());
        };
        let outcome = match self.attempt(&claim).await {
            AttemptEnd::Done(outcome) => outcome,
            AttemptEnd::TimedOut => Outcome::GaveUp {
                reason: format!(
                    "recovery timeout of {}s since the first failure ran out",
                    self.journal.config().recovery_timeout.as_secs()
                ),
            },
            AttemptEnd::LeaseLost => return Ok(WorkerReport::lease_lost()),
            AttemptEnd::Cancelled => {
                tracing::info!(migration = %claim.recovery.migration, "attempt stopped: the recovery was cancelled");
                if let (Some(notify), Ok(Some(done))) = (
                    &self.notify,
                    self.journal.get(&claim.recovery.migration).await,
                ) {
                    notify(&claim, &done);
                }
                return Ok(WorkerReport::cancelled());
            }
        };
        loop {
            match self
                .journal
                .complete(&claim, outcome.clone(), self.clock.now_ms())
                .await
            {
                Ok(done) => {
                    self.journal_answered(ride);
                    if let Some(notify) = &self.notify {
                        notify(&claim, &done);
                    }
                    return Ok(WorkerReport::of(&done));
                }
                Err(JournalError::LeaseLost { migration, owner }) => {
                    self.journal_answered(ride);
                    tracing::warn!(%migration, %owner, "lease lost before the outcome was recorded");
                    return Ok(WorkerReport::lease_lost());
                }
                // Nothing of a change the journal did not answer is kept
                // (its transaction is gone with the connection), or it was
                // committed, and trying again finds the lease ended.
                Err(e) => match ride {
                    Some(outage) if e.kind() == JournalErrorKind::Unavailable => {
                        self.wait_out(outage, &e).await;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// The claim, renewed when it waited in its batch a third of its lease
    /// or more; `None` when another worker took it meanwhile.
    ///
    /// A batch is claimed at once and run in turn: renewing a claim that
    /// waited long checks that its lease did not run out and pass to
    /// another worker, so that the recovery is not run a second time.
    ///
    /// With `ride` (in `run`), a renewal that finds the journal
    /// unavailable is tried again after the backoff until it answers.
    async fn still_held(
        &self,
        claim: Claim,
        ride: Option<&std::sync::Mutex<Outage>>,
    ) -> Result<Option<Claim>, JournalError> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let claimed_at = claim.lease_expires_ms.saturating_sub(lease_ms);
        if self.clock.now_ms().saturating_sub(claimed_at) < lease_ms / 3 {
            return Ok(Some(claim));
        }
        loop {
            match self
                .journal
                .renew(&claim, self.clock.now_ms(), self.lease)
                .await
            {
                Ok(renewed) => {
                    self.journal_answered(ride);
                    return Ok(Some(renewed));
                }
                Err(JournalError::LeaseLost { migration, owner }) => {
                    self.journal_answered(ride);
                    tracing::warn!(%migration, %owner, "lease lost before the attempt started");
                    return Ok(None);
                }
                Err(e) => match ride {
                    Some(outage) if e.kind() == JournalErrorKind::Unavailable => {
                        self.wait_out(outage, &e).await;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// Carries out the claimed recovery's strategy within what remains of
    /// its recovery timeout.
    async fn attempt(&self, claim: &Claim) -> AttemptEnd<Outcome> {
        let rec = &claim.recovery;
        let now = self.clock.now_ms();
        let deadline = rec.deadline_ms(self.journal.config());
        let remaining = Duration::from_millis(deadline.saturating_sub(now));
        if remaining.is_zero() {
            return AttemptEnd::TimedOut;
        }
        match rec.strategy {
            Strategy::RetryOnSameTarget | Strategy::RetryOnDifferentTarget => {
                // A change of target asks the new target's breaker first.
                if rec.strategy == Strategy::RetryOnDifferentTarget {
                    if let Some(skipped) = self.skip_open_target(rec, now).await {
                        return AttemptEnd::Done(skipped);
                    }
                }
                let job = Job::of(rec);
                let end = self
                    .guarded(claim, remaining, &job.cancel, self.migrator.migrate(&job))
                    .await;
                end.map(|result| match result {
                    Ok(()) => Outcome::Migrated,
                    Err(e) => Outcome::Failed {
                        kind: self.classifier.classify(&e),
                        message: error_chain(&e),
                        candidates: self
                            .selector
                            .as_ref()
                            .map(|s| s.candidates(rec))
                            .unwrap_or_default(),
                    },
                })
            }
            Strategy::Rollback => self.roll_back(claim, now, remaining).await,
            Strategy::GiveUp => AttemptEnd::Done(Outcome::GaveUp {
                reason: rec.reason.clone().unwrap_or_else(|| "given up".to_owned()),
            }),
        }
    }

    /// Verifies the snapshot, then runs the rollback handler.
    async fn roll_back(&self, claim: &Claim, now: u64, remaining: Duration) -> AttemptEnd<Outcome> {
        let rec = &claim.recovery;
        let Some(snapshot) = &rec.snapshot else {
            return AttemptEnd::Done(Outcome::GaveUp {
                reason: "rollback needed but no snapshot was recorded".to_owned(),
            });
        };
        // Reading a large snapshot must not stall the runtime's threads.
        let (snap, max_age) = (snapshot.clone(), self.journal.config().snapshot_max_age);
        let verified = tokio::task::spawn_blocking(move || snap.verify(now, max_age))
            .await
            .unwrap_or_else(|e| {
                Err(SnapshotError::Unreadable {
                    path: snapshot.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        if let Err(e) = verified {
            return AttemptEnd::Done(Outcome::GaveUp {
                reason: format!("rollback refused: {e}"),
            });
        }
        let job = Job::of(rec);
        let end = self
            .guarded(claim, remaining, &job.cancel, self.rollback.rollback(&job))
            .await;
        end.map(|result| match result {
            Ok(()) => Outcome::RolledBack,
            Err(e) => Outcome::GaveUp {
                reason: format!("rollback failed: {}", error_chain(&e)),
            },
        })
    }

    /// Runs `attempt` within `limit`, renewing the lease every third of its
    /// length meanwhile (a renewal that fails for another reason than a
    /// lost lease is logged and tried again at the next third) and, in
    /// between, checking every `cancel_check` that the recovery is still
    /// held and not cancelled. A cancel sets `cancel` and gives the attempt
    /// the cancel grace to end before it is dropped.
    async fn guarded<T>(
        &self,
        claim: &Claim,
        limit: Duration,
        cancel: &Cancellation,
        attempt: impl Future<Output = T>,
    ) -> AttemptEnd<T> {
        let watch = async {
            let mut claim = claim.clone();
            let renew_every = self.lease / 3;
            let tick = self.cancel_check.min(renew_every);
            let mut renewed_at = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                if renewed_at.elapsed() >= renew_every {
                    renewed_at = tokio::time::Instant::now();
                    match self
                        .journal
                        .renew(&claim, self.clock.now_ms(), self.lease)
                        .await
                    {
                        Ok(renewed) => claim = renewed,
                        Err(JournalError::LeaseLost { .. }) => return self.why_lost(&claim).await,
                        Err(e) => tracing::warn!(error = %e, "renewing the lease failed; retrying"),
                    }
                } else {
                    match self.journal.get(&claim.recovery.migration).await {
                        Ok(Some(rec)) if rec.state == RecoveryState::Cancelled => {
                            return Interrupt::Cancelled;
                        }
                        Ok(Some(rec)) if check_lease(&rec, &claim).is_ok() => {}
                        Ok(_) => return Interrupt::LeaseLost,
                        Err(e) => {
                            tracing::warn!(error = %e, "checking for a cancel failed; retrying");
                        }
                    }
                }
            }
        };
        let attempt = tokio::time::timeout(limit, attempt);
        tokio::pin!(attempt);
        let interrupt = tokio::select! {
            result = &mut attempt => return match result {
                Ok(done) => AttemptEnd::Done(done),
                Err(_elapsed) => AttemptEnd::TimedOut,
            },
            interrupt = watch => interrupt,
        };
        match interrupt {
            Interrupt::LeaseLost => AttemptEnd::LeaseLost,
            Interrupt::Cancelled => {
                cancel.cancel();
                // Whatever it comes to, the journal already says cancelled.
                let _ = tokio::time::timeout(self.cancel_grace, &mut attempt).await;
                AttemptEnd::Cancelled
            }
        }
    }

    /// Why a renewal found the lease lost: a cancel, or another worker.
    async fn why_lost(&self, claim: &Claim) -> Interrupt {
        match self.journal.get(&claim.recovery.migration).await {
            Ok(Some(rec)) if rec.state == RecoveryState::Cancelled => Interrupt::Cancelled,
            _ => Interrupt::LeaseLost,
        }
    }
}

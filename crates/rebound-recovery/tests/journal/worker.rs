//! The worker over the in-memory journal: the selector's targets for a
//! recorded failure, and a batch whose later claims another worker took.

use std::sync::Arc;
use std::time::Duration;

use rebound_recovery::{
    FailureKind, FailureReport, Job, Journal, MemoryJournal, Migrator, Recovery, RecoveryConfig,
    RecoveryState, RecoveryWorker, RollbackHandler, Strategy, TargetSelector,
};

use crate::support::ManualClock;

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

/// Each migration takes 40 s; during the first one, another worker
/// takes the batch, whose 30 s leases have run out.
#[derive(Clone)]
struct Slow<'a> {
    journal: &'a MemoryJournal,
    clock: ManualClock,
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
    let clock = ManualClock::new();
    for id in ["m1", "m2"] {
        // Workloads of their own: one recovery per workload at a time.
        let report = FailureReport::new(
            id,
            format!("web-{id}"),
            "a",
            "b",
            FailureKind::Timeout,
            "slow",
        );
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

/// Ignores its job's cancel.
struct Deaf(Arc<std::sync::atomic::AtomicBool>);

impl Migrator for Deaf {
    type Error = std::io::Error;
    async fn migrate(&self, _: &Job) -> std::io::Result<()> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        std::future::pending().await
    }
}

impl RollbackHandler for Deaf {
    type Error = std::io::Error;
    async fn rollback(&self, _: &Job) -> std::io::Result<()> {
        std::future::pending().await
    }
}

// A handler that ignores the cancel is dropped once the grace has passed:
// the worker does not wait for it for ever.
#[tokio::test(start_paused = true)]
async fn a_cancelled_attempt_that_ignores_it_is_dropped_after_the_grace() {
    let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
    let now = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
    journal
        .record(unreachable().with_candidates(["c"]), now - 60_000)
        .await
        .unwrap();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = RecoveryWorker::new(&journal, Deaf(started.clone()), Deaf(started.clone()))
        .with_cancel_check(Duration::from_millis(100))
        .with_cancel_grace(Duration::from_secs(7));
    let begun = tokio::time::Instant::now();
    let cancel = async {
        while !started.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        journal.cancel("m", "no longer needed", now).await.unwrap();
    };
    let (report, ()) = tokio::join!(worker.run_once(), cancel);
    let report = report.unwrap();
    assert_eq!(report.cancelled, 1);
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(
        journal.get("m").await.unwrap().unwrap().state,
        RecoveryState::Cancelled
    );
}

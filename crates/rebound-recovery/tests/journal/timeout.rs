//! The recovery timeout bounds an attempt that hangs (virtual time).

use std::time::Duration;

use rebound_recovery::{
    FailureKind, FailureReport, Job, Journal, MemoryJournal, Migrator, RecoveryConfig,
    RecoveryState, RecoveryWorker, RollbackHandler,
};

use crate::support::ManualClock;

struct Hang;

impl Migrator for Hang {
    type Error = std::io::Error;
    async fn migrate(&self, _: &Job) -> std::io::Result<()> {
        std::future::pending().await
    }
}

impl RollbackHandler for Hang {
    type Error = std::io::Error;
    async fn rollback(&self, _: &Job) -> std::io::Result<()> {
        std::future::pending().await
    }
}

// The seed never enforced its recovery timeout; an attempt that hangs must
// end when the timeout since the first failure runs out.
#[tokio::test(start_paused = true)]
async fn a_hanging_attempt_ends_when_the_recovery_timeout_runs_out() {
    let config = RecoveryConfig {
        initial_delay: Duration::from_secs(1),
        recovery_timeout: Duration::from_secs(120),
        ..RecoveryConfig::default()
    };
    let journal = MemoryJournal::new(config).unwrap();
    let clock = ManualClock::new();
    let report = FailureReport::new(
        "m1",
        "web",
        "a",
        "b",
        FailureKind::NetworkTransient,
        "reset",
    );
    journal.record(report, clock.now()).await.unwrap();
    clock.advance_ms(1_000);
    let worker = RecoveryWorker::new(&journal, Hang, Hang)
        .with_clock(clock.clone())
        .with_lease(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let report = worker.run_once().await.unwrap();
    // 119 s of the 120 s were left; the lease was renewed meanwhile.
    assert_eq!(started.elapsed(), Duration::from_secs(119));
    assert_eq!(report.given_up, 1);
    let rec = journal.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::GivenUp);
    assert!(rec.reason.unwrap().contains("recovery timeout of 120s"));
}

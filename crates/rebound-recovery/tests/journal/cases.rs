//! Cases every backend must pass. Each takes the backend to open.

use std::io::{self, ErrorKind};
use std::time::Duration;

use rebound_recovery::{
    AttemptResult, FailureKind, FailureReport, Journal, JournalError, Outcome, RecoveryConfig,
    RecoveryState, RecoveryWorker, SnapshotRef, Strategy, TargetSelector,
};

use crate::support::{Backend, ManualClock, Scripted};

const LEASE: Duration = Duration::from_secs(30);

fn exact() -> RecoveryConfig {
    RecoveryConfig {
        jitter: rebound_retry::Jitter::None,
        ..RecoveryConfig::default()
    }
}

fn report(id: &str, kind: FailureKind) -> FailureReport {
    FailureReport::new(id, "web", "src", "t1", kind, "boom")
}

/// A report for a workload of its own (named after the migration): a
/// claim takes one recovery per workload at a time.
fn own_report(id: &str, kind: FailureKind) -> FailureReport {
    FailureReport::new(id, format!("web-{id}"), "src", "t1", kind, "boom")
}

fn snapshot_in(dir: &tempfile::TempDir, now_ms: u64) -> SnapshotRef {
    let file = dir.path().join("snapshot.bin");
    std::fs::write(&file, b"the workload's state before the move").unwrap();
    SnapshotRef::capture(&file, now_ms).unwrap()
}

pub async fn record_adds_to_history_and_never_resets(backend: Backend) {
    let j = backend.open(exact()).await;
    let first = j
        .record(report("m1", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    assert_eq!(first.retry_count, 0);
    assert_eq!(first.next_attempt_ms, Some(11_000));
    let again = j
        .record(report("m1", FailureKind::Timeout), 5_000)
        .await
        .unwrap();
    assert_eq!(again.retry_count, 1);
    assert_eq!(again.first_failure_ms, 1_000);
    // Second retry: 2 x 10 s after the *last* failure.
    assert_eq!(again.next_attempt_ms, Some(25_000));
    let stored = j.get("m1").await.unwrap().unwrap();
    assert_eq!(stored, again);
    let history = j.history("m1").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].number, 2);
    assert_eq!(history[1].result, AttemptResult::Failed);
    assert_eq!(history[1].kind, Some(FailureKind::Timeout));
    assert!(j.get("nope").await.unwrap().is_none());
}

pub async fn another_workload_under_the_same_id_is_refused(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    for (workload, source) in [("db", "src"), ("web", "elsewhere")] {
        let other = FailureReport::new("m1", workload, source, "t1", FailureKind::Timeout, "x");
        let err = j.record(other, 2_000).await.unwrap_err();
        assert!(matches!(err, JournalError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("workload web"), "{err}");
    }
    // Nothing written.
    let stored = j.get("m1").await.unwrap().unwrap();
    assert_eq!(
        (stored.workload.as_str(), stored.source.as_str()),
        ("web", "src")
    );
    assert_eq!(stored.retry_count, 0);
    assert_eq!(j.history("m1").await.unwrap().len(), 1);
}

pub async fn list_filters_and_due_orders(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("b", FailureKind::NetworkTransient), 2_000)
        .await
        .unwrap();
    j.record(report("a", FailureKind::NetworkTransient), 1_000)
        .await
        .unwrap();
    // No snapshot: a corruption cannot be rolled back, so it is given up.
    let gone = j
        .record(report("c", FailureKind::StateCorruption), 0)
        .await
        .unwrap();
    assert_eq!(gone.state, RecoveryState::GivenUp);
    assert!(gone.reason.unwrap().contains("no snapshot"));

    let all: Vec<String> = j
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.migration)
        .collect();
    assert_eq!(all, ["a", "b", "c"]);
    let given_up = j.list(Some(RecoveryState::GivenUp)).await.unwrap();
    assert_eq!(given_up.len(), 1);
    assert!(
        j.list(Some(RecoveryState::Succeeded))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(j.due(10_999).await.unwrap().is_empty());
    let due: Vec<String> = j
        .due(20_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.migration)
        .collect();
    assert_eq!(due, ["a", "b"]);
}

pub async fn claim_is_exclusive_and_an_expired_lease_hands_over(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    assert!(j.claim("w1", 9_999, LEASE, 10).await.unwrap().is_empty());
    let c1 = j.claim("w1", 10_000, LEASE, 10).await.unwrap();
    assert_eq!(c1.len(), 1);
    assert_eq!(c1[0].recovery.state, RecoveryState::Running);
    assert_eq!(c1[0].lease_expires_ms, 40_000);
    // Held: nobody else gets it until the lease runs out.
    assert!(j.claim("w2", 39_999, LEASE, 10).await.unwrap().is_empty());
    let c2 = j.claim("w2", 40_000, LEASE, 10).await.unwrap();
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].claim_seq, c1[0].claim_seq + 1);
    // The first worker came back too late: its outcome is refused.
    let late = j
        .complete(&c1[0], Outcome::Migrated, 41_000)
        .await
        .unwrap_err();
    assert!(matches!(late, JournalError::LeaseLost { .. }), "{late}");
    let done = j.complete(&c2[0], Outcome::Migrated, 41_000).await.unwrap();
    assert_eq!(done.state, RecoveryState::Succeeded);
    assert_eq!(done.lease_owner, None);
    // Final: never claimed again.
    assert!(
        j.claim("w3", u64::MAX / 2, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let history = j.history("m1").await.unwrap();
    assert_eq!(history.last().unwrap().result, AttemptResult::Succeeded);
    assert_eq!(
        history.last().unwrap().strategy,
        Some(Strategy::RetryOnSameTarget)
    );
}

pub async fn release_hands_a_claim_back_at_once(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    let c1 = j.claim("w1", 10_000, LEASE, 10).await.unwrap();
    let back = j.release(&c1[0], 12_000).await.unwrap();
    assert_eq!(back.state, RecoveryState::Pending);
    assert_eq!(back.next_attempt_ms, Some(12_000));
    assert_eq!(back.lease_owner, None);
    assert_eq!(j.get("m1").await.unwrap().unwrap(), back);
    // Nothing recorded, nothing counted.
    assert_eq!(back.retry_count, 0);
    assert_eq!(j.history("m1").await.unwrap().len(), 1);
    // Due at once for another worker, long before the lease would end.
    let c2 = j.claim("w2", 12_000, LEASE, 10).await.unwrap();
    assert_eq!(c2.len(), 1);
    // The old claim is no longer held.
    let stale = j.release(&c1[0], 13_000).await.unwrap_err();
    assert!(matches!(stale, JournalError::LeaseLost { .. }), "{stale}");
    let done = j.complete(&c2[0], Outcome::Migrated, 14_000).await.unwrap();
    assert_eq!(done.state, RecoveryState::Succeeded);
}

/// A migrator whose attempts never end, telling `started` when one begins.
struct Stuck(tokio::sync::mpsc::UnboundedSender<String>);

impl rebound_recovery::Migrator for Stuck {
    type Error = io::Error;
    async fn migrate(&self, job: &rebound_recovery::Job) -> io::Result<()> {
        let _ = self.0.send(job.migration.clone());
        std::future::pending().await
    }
}

impl rebound_recovery::RollbackHandler for Stuck {
    type Error = io::Error;
    async fn rollback(&self, _: &rebound_recovery::Job) -> io::Result<()> {
        std::future::pending().await
    }
}

pub async fn a_stopped_worker_hands_back_what_it_holds(backend: Backend) {
    let j = backend.open(exact()).await;
    let now = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
    for id in ["m1", "m2", "m3"] {
        j.record(own_report(id, FailureKind::Timeout), now - 60_000)
            .await
            .unwrap();
    }
    let (started, mut begun) = tokio::sync::mpsc::unbounded_channel();
    let worker = RecoveryWorker::new(&j.journal, Stuck(started.clone()), Stuck(started))
        .with_owner("w1")
        .with_batch(2);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        let first = begun.recv().await.unwrap();
        stop.send(()).unwrap();
        first
    });
    let report = worker
        .run(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    let first = run.await.unwrap();
    // The attempt in flight and the claim waiting behind it in its batch.
    assert_eq!(report.claimed, 2);
    assert_eq!(report.released, 2);
    for rec in j.list(None).await.unwrap() {
        assert_eq!(rec.state, RecoveryState::Pending, "{}", rec.migration);
        assert_eq!(rec.retry_count, 0);
        assert_eq!(j.history(&rec.migration).await.unwrap().len(), 1);
    }
    let later = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
    let again = j.claim("w2", later, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().any(|c| c.recovery.migration == first));
}

pub async fn renew_keeps_the_lease(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    let c = j.claim("w1", 10_000, LEASE, 1).await.unwrap().remove(0);
    let renewed = j.renew(&c, 30_000, LEASE).await.unwrap();
    assert_eq!(renewed.lease_expires_ms, 60_000);
    assert!(j.claim("w2", 45_000, LEASE, 1).await.unwrap().is_empty());
    let stolen = j.claim("w2", 60_000, LEASE, 1).await.unwrap().remove(0);
    let err = j.renew(&renewed, 61_000, LEASE).await.unwrap_err();
    assert!(matches!(err, JournalError::LeaseLost { .. }));
    j.complete(&stolen, Outcome::Migrated, 61_000)
        .await
        .unwrap();
}

// PostgreSQL's renew and release used to be SQL of their own that
// answered with the recovery as the worker had claimed it: a failure
// recorded meanwhile (it adds to a running recovery's history) was missing
// from the answer, which the other backends read from the journal.
pub async fn renew_and_release_answer_the_recovery_as_stored(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    let c = j.claim("w1", 10_000, LEASE, 1).await.unwrap().remove(0);
    // The caller saw the migration fail again while the worker holds it.
    j.record(report("m1", FailureKind::Timeout), 12_000)
        .await
        .unwrap();
    let renewed = j.renew(&c, 20_000, LEASE).await.unwrap();
    let stored = j.get("m1").await.unwrap().unwrap();
    assert_eq!(renewed.recovery, stored);
    assert_eq!(renewed.recovery.attempts_total, 2);
    assert_eq!(renewed.recovery.lease_expires_ms, Some(50_000));
    let released = j.release(&renewed, 21_000).await.unwrap();
    assert_eq!(released, j.get("m1").await.unwrap().unwrap());
    assert_eq!(
        (
            released.state,
            released.attempts_total,
            released.next_attempt_ms
        ),
        (RecoveryState::Pending, 2, Some(21_000))
    );
}

// Recoveries due at the same moment are claimed in migration order on
// every backend; PostgreSQL's claim used to order by due time only.
pub async fn claims_due_at_the_same_time_go_in_migration_order(backend: Backend) {
    let j = backend.open(exact()).await;
    for id in ["m5", "m4", "m3", "m2", "m1"] {
        let rec = j
            .record(own_report(id, FailureKind::Timeout), 0)
            .await
            .unwrap();
        assert_eq!(rec.next_attempt_ms, Some(10_000));
    }
    for expected in ["m1", "m2", "m3", "m4", "m5"] {
        let c = j.claim("w", 10_000, LEASE, 1).await.unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].recovery.migration, expected);
    }
}

pub async fn failures_rotate_targets_then_roll_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend.open(exact()).await;
    let r = report("m1", FailureKind::InsufficientResources)
        .with_candidates(["t1", "t2", "t3"])
        .with_snapshot(snapshot_in(&dir, 0));
    let rec = j.record(r, 0).await.unwrap();
    assert_eq!(rec.strategy, Strategy::RetryOnDifferentTarget);
    assert_eq!(rec.target, "t2", "t1 failed already");
    let mut now = 0;
    for expected_next in ["t3", "src"] {
        now += 60_000;
        let c = j.claim("w", now, LEASE, 1).await.unwrap().remove(0);
        let rec = j
            .complete(
                &c,
                Outcome::Failed {
                    kind: FailureKind::TargetUnreachable,
                    message: "no route".into(),
                    candidates: vec![],
                },
                now,
            )
            .await
            .unwrap();
        if expected_next == "src" {
            assert_eq!(rec.strategy, Strategy::Rollback);
            assert_eq!(rec.failed_targets, ["t1", "t2", "t3"]);
            assert_eq!(rec.next_attempt_ms, Some(now), "a rollback is due at once");
        } else {
            assert_eq!(rec.target, expected_next);
        }
    }
}

pub async fn history_is_bounded_and_counts_all(backend: Backend) {
    let j = backend
        .open(RecoveryConfig {
            history_limit: 3,
            max_retries: 100,
            ..exact()
        })
        .await;
    for i in 0..7 {
        j.record(report("m1", FailureKind::Timeout), i * 1_000)
            .await
            .unwrap();
    }
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.attempts_total, 7);
    assert_eq!(rec.retry_count, 6);
    let numbers: Vec<u64> = j
        .history("m1")
        .await
        .unwrap()
        .iter()
        .map(|a| a.number)
        .collect();
    assert_eq!(numbers, [5, 6, 7]);
}

pub async fn worker_retries_then_succeeds(backend: Backend) {
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    j.record(report("m1", FailureKind::NetworkTransient), clock.now())
        .await
        .unwrap();
    let handlers = Scripted::new(vec![
        io::Error::from(ErrorKind::ConnectionReset),
        io::Error::from(ErrorKind::TimedOut),
    ]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers)
        .with_clock(clock.clone())
        .with_owner("w1");
    // Not due yet.
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    clock.advance_ms(10_000);
    let r = worker.run_once().await.unwrap();
    assert_eq!((r.claimed, r.retrying), (1, 1));
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.kind, FailureKind::NetworkTransient);
    assert_eq!(rec.next_attempt_ms, Some(clock.now() + 20_000));
    clock.advance_ms(20_000);
    worker.run_once().await.unwrap();
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(
        rec.kind,
        FailureKind::Timeout,
        "the classifier saw TimedOut"
    );
    clock.advance_ms(40_000);
    let r = worker.run_once().await.unwrap();
    assert_eq!(r.succeeded, 1);
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Succeeded);
    assert_eq!(rec.retry_count, 2);
    assert_eq!(handlers.calls.list(), ["migrate:t1"; 3]);
    assert_eq!(j.history("m1").await.unwrap().len(), 4);
}

pub async fn worker_rolls_back_from_a_good_snapshot(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    let r =
        report("m1", FailureKind::StateCorruption).with_snapshot(snapshot_in(&dir, clock.now()));
    j.record(r, clock.now()).await.unwrap();
    let handlers = Scripted::new(vec![]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers).with_clock(clock.clone());
    let report = worker.run_once().await.unwrap();
    assert_eq!(report.rolled_back, 1);
    assert_eq!(handlers.calls.list(), ["rollback:src"]);
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::RolledBack);
    let last = j.history("m1").await.unwrap().pop().unwrap();
    assert_eq!(last.strategy, Some(Strategy::Rollback));
    assert_eq!(last.result, AttemptResult::RolledBack);
}

pub async fn worker_gives_up_on_a_corrupt_snapshot(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    let snap = snapshot_in(&dir, clock.now());
    std::fs::write(&snap.path, b"the workload's state before the mOve").unwrap();
    j.record(
        report("m1", FailureKind::NetworkPermanent).with_snapshot(snap),
        clock.now(),
    )
    .await
    .unwrap();
    let handlers = Scripted::new(vec![]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers).with_clock(clock.clone());
    assert_eq!(worker.run_once().await.unwrap().given_up, 1);
    assert!(
        handlers.calls.list().is_empty(),
        "no rollback from a corrupt snapshot"
    );
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::GivenUp);
    let reason = rec.reason.unwrap();
    assert!(
        reason.contains("corrupt") && reason.contains("crc32c:"),
        "{reason}"
    );
}

pub async fn worker_gives_up_on_an_expired_snapshot(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend
        .open(RecoveryConfig {
            snapshot_max_age: Duration::from_secs(60),
            ..exact()
        })
        .await;
    let clock = ManualClock::new();
    let snap = snapshot_in(&dir, clock.now() - 61_000);
    j.record(
        report("m1", FailureKind::Unknown).with_snapshot(snap),
        clock.now(),
    )
    .await
    .unwrap();
    let handlers = Scripted::new(vec![]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers).with_clock(clock.clone());
    assert_eq!(worker.run_once().await.unwrap().given_up, 1);
    assert!(handlers.calls.list().is_empty());
    let reason = j.get("m1").await.unwrap().unwrap().reason.unwrap();
    assert!(reason.contains("expired"), "{reason}");
}

pub async fn worker_gives_up_past_the_recovery_timeout(backend: Backend) {
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    j.record(report("m1", FailureKind::Timeout), clock.now())
        .await
        .unwrap();
    // The retry is due after 10 s, but the worker only gets to it after the
    // whole 600 s recovery timeout.
    clock.advance_ms(600_000);
    let handlers = Scripted::new(vec![]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers).with_clock(clock.clone());
    assert_eq!(worker.run_once().await.unwrap().given_up, 1);
    assert!(handlers.calls.list().is_empty());
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::GivenUp);
    assert!(rec.reason.unwrap().contains("recovery timeout of 600s"));
}

struct Pool;

impl TargetSelector for Pool {
    fn candidates(&self, _: &rebound_recovery::Recovery) -> Vec<String> {
        vec!["t1".into(), "t9".into()]
    }
}

pub async fn worker_classifies_errors_and_asks_the_selector(backend: Backend) {
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    j.record(report("m1", FailureKind::Timeout), clock.now())
        .await
        .unwrap();
    let handlers = Scripted::new(vec![io::Error::from(ErrorKind::ConnectionRefused)]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers)
        .with_clock(clock.clone())
        .with_selector(Pool);
    clock.advance_ms(10_000);
    worker.run_once().await.unwrap();
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.kind, FailureKind::TargetUnreachable);
    assert_eq!(rec.strategy, Strategy::RetryOnDifferentTarget);
    assert_eq!(rec.target, "t9", "t1 failed, the selector offered t9");
    clock.advance_ms(20_000);
    assert_eq!(worker.run_once().await.unwrap().succeeded, 1);
    assert_eq!(handlers.calls.list(), ["migrate:t1", "migrate:t9"]);
}

pub async fn worker_records_a_failed_rollback(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend.open(exact()).await;
    let clock = ManualClock::new();
    let r = report("m1", FailureKind::Unknown).with_snapshot(snapshot_in(&dir, clock.now()));
    j.record(r, clock.now()).await.unwrap();
    let mut handlers = Scripted::new(vec![]);
    handlers.rollback_error = Some("source node refused the restore".into());
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers).with_clock(clock.clone());
    assert_eq!(worker.run_once().await.unwrap().given_up, 1);
    let reason = j.get("m1").await.unwrap().unwrap().reason.unwrap();
    assert!(
        reason.contains("rollback failed: source node refused"),
        "{reason}"
    );
}

pub async fn cancel_ends_pending_and_running_and_refuses_finished(backend: Backend) {
    let j = backend.open(exact()).await;
    j.record(report("m1", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    j.record(report("m2", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    let claim = j.claim("w1", 20_000, LEASE, 1).await.unwrap().remove(0);
    assert_eq!(claim.recovery.migration, "m1");
    // Pending (m2) and running (m1) both end cancelled, with the reason.
    for id in ["m1", "m2"] {
        let rec = j.cancel(id, "workload retired", 21_000).await.unwrap();
        assert_eq!(rec.state, RecoveryState::Cancelled, "{id}");
        assert_eq!(rec.reason.as_deref(), Some("cancelled: workload retired"));
        assert_eq!((rec.lease_owner, rec.next_attempt_ms), (None, None));
        assert_eq!(
            j.get(id).await.unwrap().unwrap().state,
            RecoveryState::Cancelled
        );
        let history = j.history(id).await.unwrap();
        let last = history.last().unwrap();
        assert_eq!(last.result, AttemptResult::Cancelled);
        assert_eq!(last.message.as_deref(), Some("workload retired"));
    }
    // The worker that held m1 can record nothing and renew nothing.
    let err = j
        .complete(&claim, Outcome::Migrated, 22_000)
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::LeaseLost { .. }), "{err}");
    let err = j.renew(&claim, 22_000, LEASE).await.unwrap_err();
    assert!(matches!(err, JournalError::LeaseLost { .. }), "{err}");
    // Never due again, listed apart.
    assert!(j.due(u64::MAX / 2).await.unwrap().is_empty());
    assert!(
        j.claim("w2", u64::MAX / 2, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        j.list(Some(RecoveryState::Cancelled)).await.unwrap().len(),
        2
    );
    assert!(
        j.list(Some(RecoveryState::GivenUp))
            .await
            .unwrap()
            .is_empty()
    );
    // A finished recovery is refused, nothing changed; an unknown id too.
    let before = (j.get("m1").await.unwrap(), j.history("m1").await.unwrap());
    let err = j.cancel("m1", "again", 23_000).await.unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Finished {
                state: RecoveryState::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        (j.get("m1").await.unwrap(), j.history("m1").await.unwrap()),
        before
    );
    let err = j.cancel("nope", "x", 23_000).await.unwrap_err();
    assert!(
        matches!(err, JournalError::NotFound(ref id) if id == "nope"),
        "{err}"
    );
    // A succeeded recovery too.
    j.record(report("m3", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    let claim = j.claim("w1", 30_000, LEASE, 1).await.unwrap().remove(0);
    j.complete(&claim, Outcome::Migrated, 31_000).await.unwrap();
    let err = j.cancel("m3", "late", 32_000).await.unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Finished {
                state: RecoveryState::Succeeded,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        j.get("m3").await.unwrap().unwrap().state,
        RecoveryState::Succeeded
    );
}

/// Says when it started, then waits for its job's cancel and returns
/// success (which must not be recorded: the recovery was cancelled).
struct Obedient(tokio::sync::mpsc::UnboundedSender<&'static str>);

impl rebound_recovery::Migrator for Obedient {
    type Error = io::Error;
    async fn migrate(&self, job: &rebound_recovery::Job) -> io::Result<()> {
        let _ = self.0.send("started");
        job.cancel.cancelled().await;
        let _ = self.0.send("told");
        Ok(())
    }
}

impl rebound_recovery::RollbackHandler for Obedient {
    type Error = io::Error;
    async fn rollback(&self, _: &rebound_recovery::Job) -> io::Result<()> {
        std::future::pending().await
    }
}

pub async fn a_worker_stops_an_attempt_whose_recovery_is_cancelled(backend: Backend) {
    let j = backend.open(exact()).await;
    let now = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
    j.record(report("m1", FailureKind::Timeout), now - 60_000)
        .await
        .unwrap();
    let (tx, mut said) = tokio::sync::mpsc::unbounded_channel();
    let worker = RecoveryWorker::new(&j.journal, Obedient(tx.clone()), Obedient(tx))
        .with_owner("w1")
        .with_cancel_check(Duration::from_millis(50));
    let cancel = async {
        assert_eq!(said.recv().await, Some("started"));
        let now = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
        j.cancel("m1", "stop it", now).await.unwrap();
        let asked = std::time::Instant::now();
        assert_eq!(said.recv().await, Some("told"));
        asked.elapsed()
    };
    let (report, noticed) = tokio::join!(worker.run_once(), cancel);
    let report = report.unwrap();
    assert!(noticed < Duration::from_secs(2), "{noticed:?}");
    assert_eq!(
        (report.claimed, report.cancelled, report.succeeded),
        (1, 1, 0)
    );
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Cancelled);
    assert_eq!(rec.reason.as_deref(), Some("cancelled: stop it"));
    let history = j.history("m1").await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
}

pub async fn a_claim_takes_one_recovery_per_workload(backend: Backend) {
    let j = backend.open(exact()).await;
    for (id, workload) in [("m1", "web"), ("m2", "web"), ("m3", "db"), ("m4", "web")] {
        let r = FailureReport::new(id, workload, "src", "t1", FailureKind::Timeout, "boom");
        j.record(r, 1_000).await.unwrap();
    }
    // One per workload, also within one batch.
    let first = j.claim("w1", 20_000, LEASE, 10).await.unwrap();
    let got: Vec<&str> = first
        .iter()
        .map(|c| c.recovery.migration.as_str())
        .collect();
    assert_eq!(got, ["m1", "m3"]);
    // web is busy: nothing for another worker.
    assert!(j.claim("w2", 20_000, LEASE, 10).await.unwrap().is_empty());
    // Once m1 has ended, the next of web is claimable.
    j.complete(&first[0], Outcome::Migrated, 21_000)
        .await
        .unwrap();
    let next = j.claim("w2", 21_000, LEASE, 10).await.unwrap();
    let got: Vec<&str> = next.iter().map(|c| c.recovery.migration.as_str()).collect();
    assert_eq!(got, ["m2"]);
    // m2's worker died: its lease ran out. m2 itself is retaken, and m4
    // still waits for it.
    let later = 21_000 + 31_000;
    let retaken = j.claim("w3", later, LEASE, 10).await.unwrap();
    let got: Vec<&str> = retaken
        .iter()
        .map(|c| c.recovery.migration.as_str())
        .collect();
    assert!(got.contains(&"m2") && !got.contains(&"m4"), "{got:?}");
}

pub async fn a_lost_worker_is_rescued_until_the_limit(backend: Backend) {
    let config = RecoveryConfig {
        max_rescues: 3,
        ..exact()
    };
    let j = backend.open(config).await;
    j.record(report("m1", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    let mut now = 20_000;
    let first = j.claim("w0", now, LEASE, 1).await.unwrap();
    assert_eq!(first[0].recovery.rescues, 0);
    // Workers w0 and w1 die: their leases run out, and each is rescued.
    for (i, owner) in ["w1", "w2"].into_iter().enumerate() {
        now += 31_000;
        let c = j.claim(owner, now, LEASE, 1).await.unwrap();
        assert_eq!(c.len(), 1, "rescue {}", i + 1);
        assert_eq!(c[0].recovery.rescues, i as u32 + 1);
        assert_eq!(j.get("m1").await.unwrap().unwrap().rescues, i as u32 + 1);
    }
    // The third loss gives it up instead.
    now += 31_000;
    assert!(j.claim("w3", now, LEASE, 1).await.unwrap().is_empty());
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::GivenUp);
    assert_eq!(rec.reason.as_deref(), Some("worker lost 3 times"));
    assert_eq!(rec.rescues, 3);
    assert_eq!(rec.lease_owner, None);
    let last = j.history("m1").await.unwrap().pop().unwrap();
    assert_eq!(last.result, AttemptResult::GivenUp);
    assert_eq!(last.message.as_deref(), Some("worker lost 3 times"));
    // A worker that completes normally is not a rescue.
    j.record(report("m2", FailureKind::Timeout), now)
        .await
        .unwrap();
    let c = j.claim("w4", now + 20_000, LEASE, 1).await.unwrap();
    let done = j
        .complete(&c[0], Outcome::Migrated, now + 21_000)
        .await
        .unwrap();
    assert_eq!(done.rescues, 0);
}

pub async fn prune_deletes_only_finished_recoveries_older_than_the_cutoff(backend: Backend) {
    let j = backend.open(exact()).await;
    for id in ["done", "gone", "stopped", "new", "due", "later", "busy"] {
        j.record(own_report(id, FailureKind::Timeout), 1_000)
            .await
            .unwrap();
    }
    let claims = j.claim("w", 20_000, LEASE, 2).await.unwrap();
    assert_eq!(claims[0].recovery.migration, "busy");
    assert_eq!(claims[1].recovery.migration, "done");
    j.complete(&claims[1], Outcome::Migrated, 21_000)
        .await
        .unwrap();
    let gone = j.claim("w", 22_000, LEASE, 1).await.unwrap().remove(0);
    assert_eq!(gone.recovery.migration, "due");
    j.release(&gone, 22_000).await.unwrap();
    j.cancel("stopped", "retired", 23_000).await.unwrap();
    j.cancel("gone", "retired", 23_000).await.unwrap();
    // Finished after the cutoff: kept.
    j.cancel("new", "retired", 90_000).await.unwrap();
    // A state that is not final is refused, nothing deleted.
    for open in [RecoveryState::Pending, RecoveryState::Running] {
        let err = j
            .prune(50_000, &[RecoveryState::Cancelled, open])
            .await
            .unwrap_err();
        assert!(matches!(err, JournalError::Invalid(_)), "{err}");
    }
    assert_eq!(j.list(None).await.unwrap().len(), 7);
    // Only the states asked for.
    assert_eq!(
        j.prune(50_000, &[RecoveryState::Succeeded]).await.unwrap(),
        1
    );
    assert!(j.get("done").await.unwrap().is_none());
    assert!(j.history("done").await.unwrap().is_empty());
    // Every final state by default.
    assert_eq!(j.prune(50_000, &[]).await.unwrap(), 2);
    let left: Vec<String> = j
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.migration, r.state))
        .collect();
    assert_eq!(
        left,
        [
            "busy:running",
            "due:pending",
            "later:pending",
            "new:cancelled"
        ]
    );
    assert_eq!(j.history("later").await.unwrap().len(), 1);
    assert_eq!(j.prune(50_000, &[]).await.unwrap(), 0);
}

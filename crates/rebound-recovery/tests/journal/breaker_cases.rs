//! The breaker per target node, on every backend (memory, a SQLite file, a
//! real PostgreSQL), then two controllers sharing one PostgreSQL journal.
//! Time is the journal's: every call is given its `now`, and the worker
//! reads a clock the test moves.

use std::io::{self, ErrorKind};
use std::time::Duration;

use rebound_recovery::model::breaker::TargetBreakerConfig;
use rebound_recovery::{
    Admission, AttemptResult, FailureKind, FailureReport, Journal, JournalErrorKind, Outcome,
    PostgresJournal, RecoveryConfig, RecoveryState, RecoveryWorker, SnapshotRef, Strategy,
    TargetBreaker,
};
use rebound_retry::{BreakerState, Jitter};

use crate::support::{Backend, ManualClock, Scripted, fresh_db};

const LEASE: Duration = Duration::from_secs(30);

/// Exact delays (10 s, doubling) and a breaker that opens a node after
/// `failures` target-side failures (1-minute cool-down, doubling).
fn config(failures: u32) -> RecoveryConfig {
    RecoveryConfig {
        jitter: Jitter::None,
        breaker: TargetBreakerConfig {
            failures,
            ..Default::default()
        },
        ..RecoveryConfig::default()
    }
}

/// A failed migration of workload `id` to `target`.
fn failed(id: &str, target: &str, kind: FailureKind) -> FailureReport {
    FailureReport::new(id, format!("web-{id}"), "src", target, kind, "boom")
}

fn snapshot_in(dir: &tempfile::TempDir, now_ms: u64) -> SnapshotRef {
    let file = dir.path().join("snapshot.bin");
    std::fs::write(&file, b"the workload's state before the move").unwrap();
    SnapshotRef::capture(&file, now_ms).unwrap()
}

async fn node(j: &impl Journal, name: &str) -> TargetBreaker {
    j.targets()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.node == name)
        .unwrap_or_else(|| panic!("no breaker for {name}"))
}

fn unreachable() -> Outcome {
    Outcome::Failed {
        kind: FailureKind::TargetUnreachable,
        message: "no route".into(),
        candidates: vec![],
    }
}

// N target-side failures of different migrations open a node; rotation
// skips it (and says so); other kinds do not count; a migration that goes
// through on a half-open node closes it.
pub async fn an_open_node_is_skipped_and_a_success_closes_it(backend: Backend) {
    let j = backend.open(config(2)).await;
    // Passing network errors say nothing about the node.
    j.record(failed("a", "n1", FailureKind::NetworkTransient), 0)
        .await
        .unwrap();
    j.record(failed("b", "n1", FailureKind::Timeout), 1_000)
        .await
        .unwrap();
    assert_eq!(node(&*j, "n1").await.state(1_000), BreakerState::Closed);
    j.record(failed("c", "n1", FailureKind::InsufficientResources), 2_000)
        .await
        .unwrap();
    let n1 = node(&*j, "n1").await;
    assert_eq!(n1.state(2_000), BreakerState::Open);
    assert_eq!(n1.open_until_ms, Some(62_000));
    assert_eq!(n1.failures_in_window(2_000, &j.config().breaker), 2);
    assert_eq!(n1.last_kind, Some(FailureKind::InsufficientResources));

    // A recovery whose candidates start with n1 goes to n2.
    let rec = j
        .record(
            failed("d", "n0", FailureKind::TargetUnreachable).with_candidates(["n1", "n2"]),
            3_000,
        )
        .await
        .unwrap();
    assert_eq!(rec.strategy, Strategy::RetryOnDifferentTarget);
    assert_eq!(rec.target, "n2");
    let reason = rec.reason.unwrap();
    assert!(reason.contains("skipped n1 until"), "{reason}");

    // Once the cool-down is over n1 is half-open: rotation may pick it.
    let rec = j
        .record(
            failed("e", "n0", FailureKind::TargetUnreachable).with_candidates(["n1"]),
            62_000,
        )
        .await
        .unwrap();
    assert_eq!((rec.target.as_str(), rec.reason), ("n1", None));
    let claim = j
        .claim("w", 72_000, LEASE, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.recovery.migration == "e")
        .unwrap();
    // One probe at a time.
    let probe = j.admit_target("n1", "e", 72_000, LEASE).await.unwrap();
    assert_eq!(probe, Admission::Probe { until_ms: 102_000 });
    let other = j.admit_target("n1", "x", 72_500, LEASE).await.unwrap();
    assert!(
        matches!(other, Admission::Probing { ref migration, until_ms: 102_000 } if migration == "e"),
        "{other:?}"
    );
    let done = j.complete(&claim, Outcome::Migrated, 73_000).await.unwrap();
    assert_eq!(done.state, RecoveryState::Succeeded);
    let n1 = node(&*j, "n1").await;
    assert_eq!(n1.state(73_000), BreakerState::Closed);
    assert_eq!(
        (
            n1.openings,
            n1.failures_in_window(73_000, &j.config().breaker)
        ),
        (0, 0)
    );
    assert_eq!(
        j.admit_target("n1", "x", 73_000, LEASE).await.unwrap(),
        Admission::Closed
    );
    // A success on a node with no breaker leaves none behind.
    assert!(j.targets().await.unwrap().iter().all(|b| b.node != "n2"));
}

// Every untried candidate open: the recovery falls back to a rollback (or,
// without auto_rollback, gives up) and its reason names the open nodes.
pub async fn every_candidate_open_falls_back_saying_why(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let j = backend.open(config(1)).await;
    for (id, node) in [("a", "n1"), ("b", "n2")] {
        j.record(failed(id, node, FailureKind::TargetUnreachable), 0)
            .await
            .unwrap();
    }
    let rec = j
        .record(
            failed("m", "n0", FailureKind::TargetUnreachable)
                .with_candidates(["n1", "n2"])
                .with_snapshot(snapshot_in(&dir, 0)),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(rec.strategy, Strategy::Rollback);
    assert_eq!(
        rec.next_attempt_ms,
        Some(1_000),
        "a rollback is due at once"
    );
    let reason = rec.reason.clone().unwrap();
    assert!(
        reason.contains("every untried target's breaker is open")
            && reason.contains("n1 until 1970-01-01T00:01:00Z")
            && reason.contains("n2 until"),
        "{reason}"
    );
    let claim = j.claim("w", 1_000, LEASE, 10).await.unwrap();
    let claim = claim.iter().find(|c| c.recovery.migration == "m").unwrap();
    let done = j.complete(claim, Outcome::RolledBack, 2_000).await.unwrap();
    let reason = done.reason.unwrap();
    assert!(reason.starts_with("rolled back to src ("), "{reason}");
    assert!(reason.contains("breaker is open"), "{reason}");

    // Without auto_rollback: given up, with the reason.
    let off = RecoveryConfig {
        auto_rollback: false,
        ..config(1)
    };
    let j = backend.open(off).await;
    j.record(failed("a", "n1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    let rec = j
        .record(
            failed("m", "n0", FailureKind::IncompatibleTarget).with_candidates(["n1"]),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(rec.state, RecoveryState::GivenUp);
    let reason = rec.reason.unwrap();
    assert!(reason.contains("n1 until"), "{reason}");
    assert!(reason.contains("auto_rollback is off"), "{reason}");
    // A retry on the same target is not a change of target: the breaker
    // does not steer it (its own retries and timeout bound it).
    let rec = j
        .record(
            failed("t", "n1", FailureKind::Timeout).with_candidates(["n3"]),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(
        (rec.strategy, rec.target.as_str()),
        (Strategy::RetryOnSameTarget, "n1")
    );
    assert_eq!(rec.reason, None);
}

// The cool-down grows while half-open probes fail (1 min, 2 min, 4 min),
// and starts again from 1 min once a success closed the node.
pub async fn the_cool_down_grows_while_probes_fail(backend: Backend) {
    let j = backend.open(config(1)).await;
    j.record(failed("first", "n1", FailureKind::Timeout), 0)
        .await
        .unwrap();
    let mut now = node(&*j, "n1").await.open_until_ms.unwrap();
    assert_eq!(now, 60_000);
    let mut cooldowns = Vec::new();
    for i in 0..3 {
        // Half-open: a recovery goes to n1 as its probe, and fails.
        let id = format!("probe-{i}");
        let rec = j
            .record(
                failed(&id, "n0", FailureKind::TargetUnreachable).with_candidates(["n1"]),
                now,
            )
            .await
            .unwrap();
        assert_eq!(rec.target, "n1");
        let due = rec.next_attempt_ms.unwrap();
        let claim = j.claim("w", due, LEASE, 10).await.unwrap();
        let claim = claim.iter().find(|c| c.recovery.migration == id).unwrap();
        assert!(
            j.admit_target("n1", &id, due, LEASE)
                .await
                .unwrap()
                .admitted()
        );
        j.complete(claim, unreachable(), due).await.unwrap();
        let n1 = node(&*j, "n1").await;
        assert_eq!(n1.state(due), BreakerState::Open);
        cooldowns.push((n1.open_until_ms.unwrap() - due) / 1000);
        now = n1.open_until_ms.unwrap();
    }
    assert_eq!(cooldowns, [120, 240, 480]);
    assert_eq!(node(&*j, "n1").await.openings, 4);
    // Closed by hand, then opened again: 1 minute.
    j.reset_target("n1", now).await.unwrap();
    j.record(failed("again", "n1", FailureKind::Timeout), now)
        .await
        .unwrap();
    assert_eq!(node(&*j, "n1").await.open_until_ms, Some(now + 60_000));
}

// The worker asks the target's breaker before it migrates: a target that
// opened after the recovery was planned is skipped (not a failure: the
// retry count stays), and the next candidate is tried at once.
pub async fn a_worker_skips_a_target_that_opened_after_planning(backend: Backend) {
    let j = backend.open(config(2)).await;
    let clock = ManualClock::new();
    let t0 = clock.now();
    let rec = j
        .record(
            failed("m", "n0", FailureKind::TargetUnreachable).with_candidates(["n1", "n2"]),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(rec.target, "n1");
    // Two other workloads fail on n1 meanwhile: it opens.
    for id in ["x", "y"] {
        j.record(failed(id, "n1", FailureKind::Timeout), t0 + 1_000)
            .await
            .unwrap();
    }
    let handlers = Scripted::new(vec![]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers)
        .with_clock(clock.clone())
        .with_owner("w1");
    clock.advance_ms(10_000);
    let r = worker.run_once().await.unwrap();
    assert_eq!((r.claimed, r.retrying), (1, 1));
    assert!(handlers.calls.list().is_empty(), "nothing ran on n1");
    let rec = j.get("m").await.unwrap().unwrap();
    assert_eq!((rec.target.as_str(), rec.retry_count), ("n2", 0));
    assert_eq!(rec.state, RecoveryState::Pending);
    let reason = rec.reason.unwrap();
    assert!(reason.contains("n1 until"), "{reason}");
    let history = j.history("m").await.unwrap();
    let skip = history.last().unwrap();
    assert_eq!(skip.result, AttemptResult::Skipped);
    assert_eq!(skip.target.as_deref(), Some("n1"));
    let message = skip.message.as_deref().unwrap();
    assert!(
        message.contains("n1 skipped: its breaker is open until"),
        "{message}"
    );
    // Due at once on n2.
    let r = worker.run_once().await.unwrap();
    assert_eq!(r.succeeded, 1);
    assert_eq!(handlers.calls.list(), ["migrate:n2"]);
    // x and y retry on n1 itself (not a change of target): they go through,
    // and a success closes n1.
    clock.advance_ms(1_000);
    let r = worker.run_once().await.unwrap();
    assert_eq!((r.claimed, r.succeeded), (2, 2));
    assert_eq!(
        handlers.calls.list(),
        ["migrate:n2", "migrate:n1", "migrate:n1"]
    );
    assert_eq!(
        node(&*j, "n1").await.state(clock.now()),
        BreakerState::Closed
    );
}

// A failure the worker classifies as target-side counts against the node
// in the same transaction as the attempt's outcome.
pub async fn a_workers_failures_open_the_node(backend: Backend) {
    let j = backend.open(config(2)).await;
    let clock = ManualClock::new();
    for id in ["a", "b"] {
        j.record(failed(id, "n1", FailureKind::NetworkTransient), clock.now())
            .await
            .unwrap();
    }
    let handlers = Scripted::new(vec![
        io::Error::from(ErrorKind::TimedOut),
        io::Error::from(ErrorKind::TimedOut),
    ]);
    let worker = RecoveryWorker::new(&j.journal, &handlers, &handlers)
        .with_clock(clock.clone())
        .with_owner("w1");
    clock.advance_ms(10_000);
    assert_eq!(worker.run_once().await.unwrap().claimed, 2);
    let n1 = node(&*j, "n1").await;
    assert_eq!(n1.state(clock.now()), BreakerState::Open);
    assert_eq!(n1.last_kind, Some(FailureKind::Timeout));
}

// `reset_target` closes a node by hand; an unknown node is an error that
// names it.
pub async fn reset_closes_a_node_and_refuses_an_unknown_one(backend: Backend) {
    let j = backend.open(config(1)).await;
    j.record(failed("a", "n1", FailureKind::TargetUnreachable), 0)
        .await
        .unwrap();
    assert_eq!(node(&*j, "n1").await.state(1_000), BreakerState::Open);
    let closed = j.reset_target("n1", 1_000).await.unwrap();
    assert_eq!(closed.state(1_000), BreakerState::Closed);
    assert_eq!(node(&*j, "n1").await, closed);
    let rec = j
        .record(
            failed("b", "n0", FailureKind::TargetUnreachable).with_candidates(["n1"]),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(rec.target, "n1");
    let err = j.reset_target("nope", 3_000).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::NotFound);
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

// Breakers off: nothing counted, nothing skipped.
pub async fn a_disabled_breaker_counts_nothing(backend: Backend) {
    let mut off = config(1);
    off.breaker.enabled = false;
    let j = backend.open(off).await;
    j.record(failed("a", "n1", FailureKind::TargetUnreachable), 0)
        .await
        .unwrap();
    assert!(j.targets().await.unwrap().is_empty());
    let rec = j
        .record(
            failed("b", "n0", FailureKind::TargetUnreachable).with_candidates(["n1"]),
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(rec.target, "n1");
}

/// Instantiates every case above for one backend.
macro_rules! breaker_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            breaker_suite!(@cases $open;
                an_open_node_is_skipped_and_a_success_closes_it,
                every_candidate_open_falls_back_saying_why,
                the_cool_down_grows_while_probes_fail,
                a_worker_skips_a_target_that_opened_after_planning,
                a_workers_failures_open_the_node,
                reset_closes_a_node_and_refuses_an_unknown_one,
                a_disabled_breaker_counts_nothing,
            );
        }
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::breaker_cases::$case($open).await;
            }
        )*
    };
}

breaker_suite!(memory, crate::support::Backend::Memory);
breaker_suite!(sqlite_file, crate::support::Backend::Sqlite);
breaker_suite!(postgresql, crate::support::Backend::Postgres);

// Two controllers (two journal handles, two workers) share one PostgreSQL
// journal: failures each of them records count on the same node, both see
// it open, and both skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_postgres_journal_see_the_same_open_node() {
    let url = fresh_db("breakers").await;
    let a = PostgresJournal::connect(&url, config(20)).await.unwrap();
    let b = PostgresJournal::connect(&url, config(20)).await.unwrap();
    let clock = ManualClock::new();
    let t0 = clock.now();
    // Planned to n1 by each controller while n1 is closed.
    for (j, id) in [(&a, "ma"), (&b, "mb")] {
        let rec = j
            .record(
                failed(id, "n0", FailureKind::TargetUnreachable).with_candidates(["n1", "n2"]),
                t0,
            )
            .await
            .unwrap();
        assert_eq!(rec.target, "n1");
    }
    // 20 failures on n1, recorded at once through both controllers: none
    // is lost (the node's row is locked by each change).
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (j, now) = (if i % 2 == 0 { &a } else { &b }, t0 + 1_000);
        tasks.push(j.record(failed(&format!("f{i}"), "n1", FailureKind::Timeout), now));
    }
    for r in futures_util::future::join_all(tasks).await {
        r.unwrap();
    }
    let (na, nb) = (node(&a, "n1").await, node(&b, "n1").await);
    assert_eq!(na, nb);
    assert_eq!(na.failures_in_window(t0 + 1_000, &a.config().breaker), 20);
    assert_eq!(na.state(t0 + 2_000), BreakerState::Open);
    assert_eq!(na.openings, 1);
    // Each controller's worker skips n1 and migrates its recovery to n2.
    let handlers = Scripted::new(vec![]);
    clock.advance_ms(10_000);
    for (j, owner) in [(&a, "controller-a"), (&b, "controller-b")] {
        let worker = RecoveryWorker::new(j, &handlers, &handlers)
            .with_clock(clock.clone())
            .with_owner(owner)
            .with_batch(1);
        worker.run_once().await.unwrap();
        worker.run_once().await.unwrap();
    }
    assert_eq!(handlers.calls.list(), ["migrate:n2", "migrate:n2"]);
    for id in ["ma", "mb"] {
        let rec = a.get(id).await.unwrap().unwrap();
        assert_eq!(
            (rec.state, rec.target.as_str()),
            (RecoveryState::Succeeded, "n2")
        );
        let history = b.history(id).await.unwrap();
        assert!(history.iter().any(|e| e.result == AttemptResult::Skipped));
    }
    // A new recovery planned by either controller skips n1 too.
    for (j, id) in [(&a, "na"), (&b, "nb")] {
        let rec = j
            .record(
                failed(id, "n0", FailureKind::TargetUnreachable).with_candidates(["n1", "n3"]),
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(rec.target, "n3");
    }
}

// A journal of schema 2 (before the breakers) is brought up to date on
// open: its recoveries read unchanged, and it keeps no breaker yet.
#[tokio::test]
async fn a_schema_2_journal_gets_the_breaker_table() {
    use rebound_recovery::SqliteJournal;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = SqliteJournal::open(&path, config(5)).await.unwrap();
    let before = j
        .record(failed("m1", "n1", FailureKind::NetworkTransient), 1_000)
        .await
        .unwrap();
    drop(j);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE target_breakers; DELETE FROM schema_version WHERE version = 3")
        .unwrap();
    drop(conn);
    let j = SqliteJournal::open(&path, config(5)).await.unwrap();
    assert_eq!(
        j.schema_version().await.unwrap(),
        rebound_recovery::journal::schema::LATEST
    );
    assert_eq!(j.get("m1").await.unwrap().unwrap(), before);
    assert!(j.targets().await.unwrap().is_empty());
}

//! PostgreSQL only: schema versions, concurrent migrations, and four
//! workers over 1,000 due recoveries.

use std::sync::Arc;
use std::time::Duration;

use rebound_recovery::{
    Clock, FailureKind, FailureReport, Journal, JournalError, JournalErrorKind, PostgresJournal,
    RecoveryState, RecoveryWorker, SystemClock,
};

use crate::support::pg::Pg;
use crate::support::{Counter, ManualClock, free_port, fresh_db as fresh, quick};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_four_controllers_start_together() {
    let url = fresh("migrate").await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            PostgresJournal::connect(&url, quick()).await.map(drop)
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let j = PostgresJournal::connect(&url, quick()).await.unwrap();
    assert_eq!(
        j.schema_version().await.unwrap(),
        rebound_recovery::journal::schema::LATEST
    );
    let rows = tokio::task::spawn_blocking(move || {
        Pg::shared().psql(&url, "SELECT COUNT(*) FROM schema_version")
    })
    .await
    .unwrap();
    // Each version once.
    assert_eq!(rows, rebound_recovery::journal::schema::LATEST.to_string());
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = fresh("newer").await;
    PostgresJournal::connect(&url, quick()).await.unwrap();
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        Pg::shared().psql(&u, "INSERT INTO schema_version VALUES (9, 0)")
    })
    .await
    .unwrap();
    let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::NewerSchema, "{err}");
    assert!(err.to_string().contains("schema version 9"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_is_not_shown() {
    let port = free_port();
    let url = format!("postgres://u:hunter2@127.0.0.1:{port}/db");
    let err = PostgresJournal::connect(&url, quick()).await.unwrap_err();
    assert!(matches!(err, JournalError::Unavailable { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // The driver's error is kept as the source, and no part of the chain
    // (as `{:#}` or tracing would print it) holds the password either.
    let source = std::error::Error::source(&err).expect("the driver's error");
    assert!(source.is::<tokio_postgres::Error>(), "{source:?}");
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut chain = Vec::new();
    while let Some(e) = next {
        chain.push(format!("{e} / {e:?}"));
        next = e.source();
    }
    assert!(chain.len() >= 2, "{chain:?}");
    assert!(chain.iter().all(|t| !t.contains("hunter2")), "{chain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_run_each_of_1000_due_recoveries_exactly_once() {
    let url = fresh("four").await;
    let recorder = PostgresJournal::connect(&url, quick()).await.unwrap();
    let past = SystemClock.now_ms() - 1_000;
    for i in 0..1000 {
        // A workload each: one workload's recoveries run one at a time,
        // and a worker whose claim finds nothing stops here, so with one
        // shared workload a worker could take all of them (it did, under
        // load).
        let report = FailureReport::new(
            format!("m{i:04}"),
            format!("web-{i:04}"),
            "a",
            "b",
            FailureKind::NetworkTransient,
            "reset",
        );
        recorder.record(report, past).await.unwrap();
    }
    assert_eq!(
        recorder.due(SystemClock.now_ms()).await.unwrap().len(),
        1000
    );
    let counter = Counter::default();
    let mut workers = Vec::new();
    for w in 0..4 {
        let journal = PostgresJournal::connect(&url, quick()).await.unwrap();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let worker = RecoveryWorker::new(journal, counter.clone(), counter)
                .with_owner(format!("worker-{w}"))
                .with_batch(8);
            let mut claimed = 0;
            loop {
                let r = worker.run_once().await.unwrap();
                if r.claimed == 0 {
                    return claimed;
                }
                assert_eq!(r.lease_lost, 0);
                claimed += r.claimed;
            }
        }));
    }
    let mut per_worker = Vec::new();
    for w in workers {
        per_worker.push(w.await.unwrap());
    }
    assert_eq!(per_worker.iter().sum::<u64>(), 1000, "{per_worker:?}");
    let runs = counter.0.lock().unwrap().clone();
    assert_eq!(runs.len(), 1000);
    assert!(runs.values().all(|&n| n == 1), "a migration ran twice");
    assert_eq!(
        recorder
            .list(Some(RecoveryState::Succeeded))
            .await
            .unwrap()
            .len(),
        1000
    );
    // Work was shared, not taken by one worker.
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "{per_worker:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_controllers_lease_expires_and_another_takes_the_work() {
    let url = fresh("dead").await;
    let dead = PostgresJournal::connect(&url, quick()).await.unwrap();
    let now = SystemClock.now_ms();
    let report = FailureReport::new("m1", "web", "a", "b", FailureKind::Timeout, "slow");
    dead.record(report, now - 1_000).await.unwrap();
    let claimed = dead
        .claim("dead", now, Duration::from_millis(200), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(dead); // the controller dies holding the lease

    let counter = Counter::default();
    let alive = PostgresJournal::connect(&url, quick()).await.unwrap();
    let clock = ManualClock::new();
    clock.0.store(now, std::sync::atomic::Ordering::SeqCst);
    let worker = RecoveryWorker::new(alive, counter.clone(), counter.clone())
        .with_owner("alive")
        .with_clock(clock.clone());
    assert_eq!(
        worker.run_once().await.unwrap().claimed,
        0,
        "lease still held"
    );
    clock.advance_ms(200);
    assert_eq!(worker.run_once().await.unwrap().succeeded, 1);
    assert_eq!(counter.0.lock().unwrap().get("m1"), Some(&1));
}

// A change cancelled mid-transaction must not leave its row locked or its
// transaction open for the next user of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_change_leaves_no_transaction_open() {
    let url = fresh("cancel").await;
    let a = PostgresJournal::connect(&url, quick()).await.unwrap();
    let b = PostgresJournal::connect(&url, quick()).await.unwrap();
    let report = || FailureReport::new("m1", "web", "a", "b", FailureKind::Timeout, "slow");
    a.record(report(), 0).await.unwrap();
    let mut cancelled = 0;
    for i in 0..200u64 {
        let wait = Duration::from_micros(50 + (i % 20) * 50);
        if tokio::time::timeout(wait, a.record(report(), i))
            .await
            .is_err()
        {
            cancelled += 1;
            // Another connection can still take the row's lock.
            tokio::time::timeout(Duration::from_secs(5), b.record(report(), i))
                .await
                .expect("the row was left locked by a cancelled change")
                .unwrap();
        }
    }
    assert!(cancelled > 0, "no change was cancelled mid-way");
    // The connection is usable and not inside a stale transaction.
    let before = a.get("m1").await.unwrap().unwrap().attempts_total;
    a.record(report(), 10_000).await.unwrap();
    let after = b.get("m1").await.unwrap().unwrap().attempts_total;
    assert_eq!(
        after,
        before + 1,
        "a's change is committed and visible to b"
    );
}

// Missing PostgreSQL binaries fail the PostgreSQL tests with what to do;
// they never skip them and pass.
#[test]
#[should_panic(expected = "run scripts/deps.sh to install them")]
fn missing_server_binaries_fail_loudly() {
    let root = tempfile::tempdir().unwrap();
    // A client-only install: a version dir without initdb/pg_ctl.
    std::fs::create_dir_all(root.path().join("16/bin")).unwrap();
    std::fs::write(root.path().join("16/bin/psql"), "").unwrap();
    crate::support::pg::bin_dir_in(root.path());
}

#[test]
fn the_newest_server_bin_dir_is_used() {
    let root = tempfile::tempdir().unwrap();
    for version in ["9", "15", "16"] {
        let bin = root.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in ["initdb", "pg_ctl"] {
            std::fs::write(bin.join(program), "").unwrap();
        }
    }
    assert_eq!(
        crate::support::pg::bin_dir_in(root.path()),
        root.path().join("16/bin")
    );
}

// Several controllers reporting the first failure of one migration at once:
// the losers of the insert race retry and add to the winner's recovery, so
// every report is counted and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_failures_reported_at_once_all_count() {
    let url = fresh("race").await;
    let mut journals = Vec::new();
    for _ in 0..6 {
        journals.push(Arc::new(
            PostgresJournal::connect(&url, quick()).await.unwrap(),
        ));
    }
    let now = SystemClock.now_ms();
    let barrier = Arc::new(tokio::sync::Barrier::new(journals.len()));
    let mut handles = Vec::new();
    for (i, j) in journals.iter().enumerate() {
        let (j, barrier) = (Arc::clone(j), Arc::clone(&barrier));
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let report = FailureReport::new(
                "m-race",
                "web",
                "a",
                format!("t{i}"),
                FailureKind::NetworkTransient,
                "reset",
            );
            j.record(report, now).await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let rec = journals[0].get("m-race").await.unwrap().unwrap();
    assert_eq!(rec.attempts_total, 6);
    assert_eq!(rec.retry_count, 5);
    assert_eq!(journals[0].history("m-race").await.unwrap().len(), 6);
}

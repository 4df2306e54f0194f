//! SQLite only: durability across reopen, schema versions, two handles on
//! one file.

use std::sync::Arc;
use std::time::Duration;

use rebound_recovery::{
    FailureKind, FailureReport, Journal, JournalError, Outcome, RecoveryConfig, RecoveryState,
    SqliteJournal,
};

fn report(id: &str) -> FailureReport {
    FailureReport::new(id, "web", "a", "b", FailureKind::NetworkTransient, "reset")
}

fn quick() -> RecoveryConfig {
    RecoveryConfig {
        initial_delay: Duration::from_millis(1),
        ..RecoveryConfig::default()
    }
}

#[tokio::test]
async fn a_recorded_failure_survives_closing_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    {
        let j = SqliteJournal::open(&path, quick()).await.unwrap();
        j.record(report("m1"), 0).await.unwrap();
        let c = j
            .claim("w", 1_000, Duration::from_secs(5), 1)
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
    }
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    let rec = j.get("m1").await.unwrap().unwrap();
    assert_eq!(rec.state, RecoveryState::Running);
    assert_eq!(rec.lease_owner.as_deref(), Some("w"));
    assert_eq!(j.history("m1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let _j = SqliteJournal::open(&path, quick()).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn migrations_run_once_even_when_opened_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let opens = (0..4).map(|_| SqliteJournal::open(path.clone(), quick()));
    for j in futures_join(opens).await {
        assert_eq!(j.unwrap().schema_version().await.unwrap(), 1);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    SqliteJournal::open(&path, quick()).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version VALUES (7, 0)", [])
        .unwrap();
    let err = SqliteJournal::open(&path, quick()).await.unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::NewerSchema {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade rebound"), "{err}");
}

#[tokio::test]
async fn a_missing_directory_is_unavailable_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/j.db");
    let err = SqliteJournal::open(&path, quick()).await.unwrap_err();
    assert_eq!(err.kind(), rebound_recovery::JournalErrorKind::Unavailable);
    assert!(!dir.path().join("missing").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_never_claim_the_same_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let a = Arc::new(SqliteJournal::open(&path, quick()).await.unwrap());
    let b = Arc::new(SqliteJournal::open(&path, quick()).await.unwrap());
    for i in 0..200 {
        a.record(report(&format!("m{i:03}")), 0).await.unwrap();
    }
    let work = |j: Arc<SqliteJournal>, owner: &'static str| async move {
        let mut done = Vec::new();
        loop {
            let claims = j
                .claim(owner, 1_000, Duration::from_secs(60), 3)
                .await
                .unwrap();
            if claims.is_empty() {
                return done;
            }
            for c in claims {
                j.complete(&c, Outcome::Migrated, 1_001).await.unwrap();
                done.push(c.recovery.migration);
            }
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(work(a.clone(), "a")),
        tokio::spawn(work(b, "b"))
    );
    let mut all: Vec<String> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, 200, "each recovery completed exactly once");
    assert_eq!(all.len(), 200);
    assert_eq!(
        a.list(Some(RecoveryState::Succeeded)).await.unwrap().len(),
        200
    );
}

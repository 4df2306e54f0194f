//! SQLite only: durability across reopen, schema versions, two handles on
//! one file, the paths a journal may live at and the mode it is made with.

use std::sync::Arc;
use std::time::Duration;

use rebound_recovery::{
    AnyJournal, FailureKind, FailureReport, Journal, JournalAddress, JournalError,
    JournalErrorKind, Outcome, RecoveryState, SqliteJournal,
};

use rebound_recovery::journal::schema::LATEST;

use crate::support::quick;

fn report(id: &str) -> FailureReport {
    FailureReport::new(id, "web", "a", "b", FailureKind::NetworkTransient, "reset")
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
        assert_eq!(j.unwrap().schema_version().await.unwrap(), LATEST);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    // Each version once.
    assert_eq!(rows, i64::from(LATEST));
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
                supported: LATEST,
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
    assert_eq!(err.kind(), JournalErrorKind::Unavailable);
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

// `--journal sqlite:/dev/null` used to open the device as a journal: the
// first write made SQLite create `/dev/null-journal` (mode 0666, copied
// from the device). Refused now before SQLite opens anything.
#[tokio::test]
async fn a_device_is_refused_before_sqlite_touches_it() {
    let side = std::path::Path::new("/dev/null-journal");
    // Left by an older build, it must at least stay untouched.
    let stamp = |p: &std::path::Path| p.metadata().ok().map(|m| (m.len(), m.modified().ok()));
    let before = stamp(side);
    for read_only in [false, true] {
        let err = if read_only {
            SqliteJournal::open_read_only("/dev/null", quick()).await
        } else {
            SqliteJournal::open("/dev/null", quick()).await
        }
        .unwrap_err();
        assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
        assert!(
            matches!(&err, JournalError::UnusablePath { path, .. } if path == std::path::Path::new("/dev/null")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "journal sqlite:/dev/null: /dev/null is a character device, not a regular file; \
             give the path of a journal file"
        );
        assert_eq!(stamp(side), before, "{} was written", side.display());
    }
    // The same through an address, as the CLI opens it.
    let address: JournalAddress = "sqlite:/dev/null".parse().unwrap();
    let err = AnyJournal::open(&address, quick()).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
    assert_eq!(stamp(side), before, "{} was written", side.display());
}

#[tokio::test]
async fn a_directory_or_a_fifo_is_refused_and_nothing_is_created_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    for (path, what) in [(dir.path().to_path_buf(), "a directory"), (fifo, "a FIFO")] {
        let err = SqliteJournal::open(&path, quick()).await.unwrap_err();
        assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
        assert!(
            err.to_string()
                .contains(&format!("{} is {what}, not a regular file", path.display())),
            "{err}"
        );
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["fifo"]);
}

#[tokio::test]
async fn a_file_in_place_of_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "not a directory").unwrap();
    let err = SqliteJournal::open(file.join("j.db"), quick())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{} is a file, not a directory", file.display())),
        "{err}"
    );
    let err = SqliteJournal::open(file.join("sub/j.db"), quick())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Invalid, "{err}");
}

// SQLite created new journals 0644 (less the umask): readable by every
// user of the host. Now 0600, and its -wal and -shm files follow.
#[tokio::test]
async fn a_new_journal_and_its_side_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    j.record(report("m1"), 0).await.unwrap();
    let mode = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o600);
    assert_eq!(mode("-wal"), 0o600);
    assert_eq!(mode("-shm"), 0o600);
}

#[tokio::test]
async fn an_existing_journal_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    drop(SqliteJournal::open(&path, quick()).await.unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    j.record(report("m1"), 0).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

// A database error used to keep only the driver's text; the driver's
// error is its source now, for `{:#}` and tracing, with the same message.
#[tokio::test]
async fn a_database_error_keeps_the_drivers_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    drop(SqliteJournal::open(&path, quick()).await.unwrap());
    let reader = SqliteJournal::open_read_only(&path, quick()).await.unwrap();
    let err = reader.record(report("m1"), 0).await.unwrap_err();
    assert_eq!(err.kind(), JournalErrorKind::Database, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "journal sqlite:{}: attempt to write a readonly database",
            path.display()
        )
    );
    let source = std::error::Error::source(&err).expect("the driver's error");
    assert!(source.is::<rusqlite::Error>(), "{source:?}");
}

// Schema 2 added the rescue count: a journal of schema 1 is brought up to
// date on open, its recoveries read with no rescues, nothing else changed.
#[tokio::test]
async fn a_schema_1_journal_gets_the_rescue_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    let report = FailureReport::new("m1", "web", "a", "b", FailureKind::Timeout, "slow");
    let before = j.record(report, 1_000).await.unwrap();
    drop(j);
    // As schema 1 left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE recoveries DROP COLUMN rescues; DROP TABLE target_breakers; \
         DELETE FROM schema_version WHERE version >= 2",
    )
    .unwrap();
    drop(conn);
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    assert_eq!(j.schema_version().await.unwrap(), LATEST);
    let after = j.get("m1").await.unwrap().unwrap();
    assert_eq!(after.rescues, 0);
    assert_eq!(after, before);
}

// Retention on a large journal: 100,000 finished recoveries (with their
// history) are deleted in batches; pending, due and running ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_100000_finished_recoveries_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let j = SqliteJournal::open(&path, quick()).await.unwrap();
    let now = rebound_recovery::Clock::now_ms(&rebound_recovery::SystemClock);
    for (id, at) in [
        ("due", now - 60_000),
        ("later", now + 3_600_000),
        ("busy", now - 60_000),
    ] {
        let r = FailureReport::new(id, id, "a", "b", FailureKind::Timeout, "slow");
        j.record(r, at).await.unwrap();
    }
    let busy = j
        .claim("w", now, Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(busy.len(), 2);
    j.release(&busy[1], now).await.unwrap();
    // Quicker than 100,000 records through the API: one transaction.
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut rec = tx
            .prepare(
                "INSERT INTO recoveries (migration, workload, source, target, candidates, \
                 failed_targets, kind, message, state, strategy, reason, retry_count, \
                 attempts_total, first_failure_ms, last_failure_ms, next_attempt_ms, snapshot, \
                 lease_owner, lease_expires_ms, claim_seq, updated_ms, rescues) VALUES \
                 (?1, 'w', 'a', 'b', '[]', '[]', 'timeout', 'slow', ?2, 'give_up', 'old', 0, 1, \
                 1000, 1000, NULL, NULL, NULL, NULL, 1, 2000, 0)",
            )
            .unwrap();
        let mut hist = tx
            .prepare(
                "INSERT INTO attempts (migration, number, at_ms, strategy, target, result, kind, \
                 message) VALUES (?1, 1, 1000, NULL, 'b', 'failed', 'timeout', 'slow')",
            )
            .unwrap();
        let states = ["succeeded", "rolled_back", "given_up", "cancelled"];
        for i in 0..100_000 {
            let id = format!("old-{i:06}");
            rec.execute(rusqlite::params![id, states[i % 4]]).unwrap();
            hist.execute([&id]).unwrap();
        }
    }
    tx.commit().unwrap();
    let pruned = j.prune(now, &[]).await.unwrap();
    assert_eq!(pruned, 100_000);
    let left: Vec<(String, String)> = j
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.migration, r.state.to_string()))
        .collect();
    let expect = [
        ("busy", "running"),
        ("due", "pending"),
        ("later", "pending"),
    ];
    assert_eq!(
        left,
        expect.map(|(m, s)| (m.to_owned(), s.to_owned())).to_vec()
    );
    let attempts: i64 = conn
        .query_row("SELECT COUNT(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 3, "only the kept recoveries' history is left");
}

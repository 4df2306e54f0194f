//! Journal throughput: record + claim + complete cycles per second.
//!
//! SQLite with one worker; PostgreSQL with one and four workers; and, in
//! the same run against the same throwaway cluster, `pgbench` running the
//! same claim-and-complete SQL with the same number of clients: the
//! database's own limit for this work. Durable settings throughout:
//! SQLite WAL + `synchronous=FULL`; PostgreSQL `fsync=on`,
//! `synchronous_commit=on` (its defaults).
//!
//! `cargo bench -p rebound-recovery --bench journal -- [--seconds N]`

#[path = "../tests/support/pg.rs"]
mod pg;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rebound_recovery::journal::postgres::CLAIM_SQL;
use rebound_recovery::{
    FailureKind, FailureReport, Journal, Outcome, PostgresJournal, RecoveryConfig, SqliteJournal,
};

fn config() -> RecoveryConfig {
    // Due at once, so that every recorded failure can be claimed.
    RecoveryConfig {
        initial_delay: Duration::from_millis(1),
        ..RecoveryConfig::default()
    }
}

/// One cycle: record a failure, claim one due recovery, complete it.
/// Returns how many recoveries it completed (0 when the claim came back
/// empty under contention).
async fn cycle<J: Journal>(journal: &J, id: u64, owner: &str) -> u64 {
    let now = 1_000_000;
    let report = FailureReport::new(
        id.to_string(),
        "web",
        "a",
        "b",
        FailureKind::NetworkTransient,
        "reset",
    );
    journal.record(report, now - 10_000).await.expect("record");
    let claims = journal
        .claim(owner, now, Duration::from_secs(30), 1)
        .await
        .expect("claim");
    let mut completed = 0;
    for c in claims {
        journal
            .complete(&c, Outcome::Migrated, now)
            .await
            .expect("complete");
        completed += 1;
    }
    completed
}

/// Runs `workers` loops of cycles for `seconds`; returns completed
/// cycles/s.
async fn measure<J: Journal + 'static>(journals: &[Arc<J>], seconds: u64) -> f64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (w, journal) in journals.iter().enumerate() {
        let journal = Arc::clone(journal);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let owner = format!("bench-{w}");
            while Instant::now() < end {
                let completed =
                    cycle(&*journal, NEXT.fetch_add(1, Ordering::Relaxed), &owner).await;
                done.fetch_add(completed, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The journal's SQL for one cycle, as a pgbench script.
fn pgbench_script() -> String {
    let columns = "migration, workload, source, target, candidates, failed_targets, kind, message, \
        state, strategy, reason, retry_count, attempts_total, first_failure_ms, last_failure_ms, \
        next_attempt_ms, snapshot, lease_owner, lease_expires_ms, claim_seq, updated_ms";
    let update: Vec<String> = columns
        .split(", ")
        .skip(1)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let upsert = |id: &str, state: &str, next: &str, seq: &str, total: u32| {
        format!(
            "INSERT INTO recoveries ({columns}) VALUES (({id})::text, 'web', 'a', 'b', '[]', '[]', \
             'network_transient', 'reset', '{state}', 'retry_on_same_target', NULL, 0, {total}, 990000, \
             990000, {next}, NULL, NULL, NULL, {seq}, 1000000) ON CONFLICT (migration) DO UPDATE SET {};",
            update.join(", ")
        )
    };
    // A claim can come back empty under contention (see the journal's
    // claim); the script then skips the completion, as a worker would.
    let claim = format!(
        "WITH c AS ({}) SELECT COUNT(*) AS got, COALESCE(MAX(migration), '0') AS claimed FROM c",
        CLAIM_SQL
            .replace("$1", "1000000")
            .replace("$2", "'bench'")
            .replace("$3", "1030000")
            .replace("$4", "1")
    );
    format!(
        "\\set id random(1000000000000, 9000000000000)\n\
         BEGIN;\n\
         SELECT {columns} FROM recoveries WHERE migration = (:id)::text FOR UPDATE;\n\
         {record}\n\
         INSERT INTO attempts (migration, number, at_ms, strategy, target, result, kind, message) \
         VALUES ((:id)::text, 1, 990000, NULL, 'b', 'failed', 'network_transient', 'reset');\n\
         DELETE FROM attempts WHERE migration = (:id)::text AND number <= -49;\n\
         COMMIT;\n\
         {claim} \\gset\n\
         \\if :got\n\
         BEGIN;\n\
         SELECT {columns} FROM recoveries WHERE migration = (:claimed)::text FOR UPDATE;\n\
         {complete}\n\
         INSERT INTO attempts (migration, number, at_ms, strategy, target, result, kind, message) \
         VALUES ((:claimed)::text, 2, 1000000, 'retry_on_same_target', 'b', 'succeeded', NULL, NULL);\n\
         DELETE FROM attempts WHERE migration = (:claimed)::text AND number <= -48;\n\
         COMMIT;\n\
         \\endif\n",
        record = upsert(":id", "pending", "1000000", "0", 1),
        complete = upsert(":claimed", "succeeded", "NULL", "1", 2),
    )
}

/// pgbench with `clients` clients for `seconds`; returns transactions/s
/// (one transaction = one cycle).
fn pgbench(pg: &pg::Pg, url: &str, clients: u32, seconds: u64, script: &std::path::Path) -> f64 {
    let out = Command::new(pg.bin().join("pgbench"))
        .args(["-n", "-M", "prepared", "-f"])
        .arg(script)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &seconds.to_string(), url])
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{text}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");

    let sqlite = runtime.block_on(async {
        let j = SqliteJournal::open(dir.path().join("bench.db"), config())
            .await
            .expect("open SQLite");
        measure(&[Arc::new(j)], seconds).await
    });

    let pg = pg::Pg::start(&["fsync=on", "synchronous_commit=on"]);
    let script = dir.path().join("cycle.sql");
    std::fs::write(&script, pgbench_script()).expect("write the pgbench script");
    let mut rows = Vec::new();
    // The machine is shared: journal and pgbench alternate in short rounds
    // so that a change of load hits both alike.
    const ROUNDS: u64 = 3;
    let slice = (seconds / ROUNDS).max(1);
    for workers in [1u32, 4] {
        let journal_url = pg.fresh_db("bench_journal");
        let pgbench_url = pg.fresh_db("bench_pgbench");
        let journals = runtime.block_on(async {
            let mut journals = Vec::new();
            for _ in 0..workers {
                let j = PostgresJournal::connect(&journal_url, config())
                    .await
                    .expect("connect");
                journals.push(Arc::new(j));
            }
            // The same schema for pgbench, through the journal's migrations.
            PostgresJournal::connect(&pgbench_url, config())
                .await
                .expect("migrate");
            journals
        });
        let (mut journal, mut limit) = (0.0, 0.0);
        for _ in 0..ROUNDS {
            journal += runtime.block_on(measure(&journals, slice)) / ROUNDS as f64;
            limit += pgbench(&pg, &pgbench_url, workers, slice, &script) / ROUNDS as f64;
        }
        let succeeded = pg.psql(
            &journal_url,
            "SELECT COUNT(*) FROM recoveries WHERE state = 'succeeded'",
        );
        eprintln!("PostgreSQL {workers} worker(s): {succeeded} recoveries completed");
        rows.push((workers, journal, limit));
    }

    println!(
        "completed cycles/s (record + claim + complete), {seconds} s each ({ROUNDS} alternating rounds for PostgreSQL), durable settings"
    );
    println!(
        "| backend | workers | journal cycles/s | pgbench tx/s (same SQL) | journal / pgbench |"
    );
    println!("|---|---|---|---|---|");
    println!("| SQLite (WAL, synchronous=FULL) | 1 | {sqlite:.0} | - | - |");
    for (workers, journal, limit) in rows {
        println!(
            "| PostgreSQL {} | {workers} | {journal:.0} | {limit:.0} | {:.2} |",
            pg_version(&pg),
            journal / limit
        );
    }
}

fn pg_version(pg: &pg::Pg) -> String {
    pg.bin()
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
}

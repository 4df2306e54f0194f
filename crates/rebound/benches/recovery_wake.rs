//! Recovery wake-ups vs polling: the time from `record` of an immediately
//! due recovery to its migrate command starting, on SQLite and PostgreSQL,
//! with `rebound recovery run --poll 1s` listening for changes (inotify on
//! the SQLite files, LISTEN/NOTIFY on PostgreSQL) and with `--no-listen`
//! (polling only, as before wake-ups), all four in the same run.
//!
//! Four real `rebound recovery run --poll 1s` processes, each on its own
//! journal (two SQLite files, two databases of a PostgreSQL cluster started
//! for the bench), run side by side. For each, a thread of the bench
//! records RUNS recoveries one after another through the library
//! (`AnyJournal::record`, due 1 ms later), each after a random pause (up
//! to 1 s for the polling runs, so that records fall anywhere in the poll
//! cycle; up to 50 ms for the listening ones), and notes the wall-clock
//! time of the record call (so the figure includes the record's own
//! commit and fsync). The migrate command writes the time it
//! started (`date +%s%N`, so the figure includes starting `sh` and
//! `date`); the figure is the difference, p50/p99 over RUNS cases.
//!
//! Run: `cargo bench -p rebound --bench recovery_wake` (about two
//! minutes, mostly asleep); `REBOUND_BENCH_RUNS=N` changes the number of
//! cases per configuration (default 100).

#[path = "../../rebound-recovery/tests/support/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rebound_recovery::{
    AnyJournal, Clock, FailureKind, FailureReport, Journal, JournalAddress, RecoveryConfig,
    SystemClock,
};

const BIN: &str = env!("CARGO_BIN_EXE_rebound");

/// One configuration: a journal, a `run` on it, and what it measured.
struct Case {
    name: String,
    journal: String,
    listen: bool,
    dir: PathBuf,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn start_run(case: &Case) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "recovery",
        "--journal",
        &case.journal,
        "run",
        "--poll",
        "1s",
    ])
    .args([
        "--migrate-cmd",
        "date +%s%N > \"started.$REBOUND_MIGRATION\"",
        "--rollback-cmd",
        "true",
    ])
    .current_dir(&case.dir)
    .env_remove("REBOUND_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if !case.listen {
        cmd.arg("--no-listen");
    }
    cmd.spawn().expect("spawn rebound recovery run")
}

fn started_ns(dir: &Path, id: &str) -> Option<u128> {
    let text = std::fs::read_to_string(dir.join(format!("started.{id}"))).ok()?;
    if !text.ends_with('\n') {
        return None;
    }
    text.trim().parse().ok()
}

/// Records `runs` recoveries into `case`'s journal one by one; returns
/// the latencies in ms.
async fn measure(case: &Case, runs: usize) -> Vec<f64> {
    let config = RecoveryConfig {
        initial_delay: Duration::from_millis(1),
        jitter: rebound_retry::Jitter::None,
        ..RecoveryConfig::default()
    };
    let address: JournalAddress = case.journal.parse().expect("journal address");
    let journal = AnyJournal::open(&address, config)
        .await
        .expect("open journal");
    // xorshift64: pauses that differ from case to case, the same each run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let pause = if case.listen { 50 } else { 1000 };
    let mut out = Vec::with_capacity(runs);
    for i in 0..=runs {
        tokio::time::sleep(Duration::from_millis(next(pause))).await;
        let id = format!("m{i}");
        let report = FailureReport::new(&id, &id, "a", "b", FailureKind::Timeout, "slow");
        // From the call: the worker may start the command before the
        // call returns (NOTIFY goes out before it does).
        let recorded = now_ns();
        journal
            .record(report, SystemClock.now_ms())
            .await
            .expect("record");
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = loop {
            if let Some(t) = started_ns(&case.dir, &id) {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {id} never started",
                case.name
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        };
        // The first case only warms up (the run's first claim).
        if i > 0 {
            out.push(started.saturating_sub(recorded) as f64 / 1e6);
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runs: usize = std::env::var("REBOUND_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let root = tempfile::tempdir().expect("temp dir");
    let pg = pg::Pg::shared();
    let mut cases = Vec::new();
    for (backend, listen) in [
        ("sqlite", true),
        ("sqlite", false),
        ("postgres", true),
        ("postgres", false),
    ] {
        let name = format!(
            "{backend} {}",
            if listen { "wake-ups" } else { "polling only" }
        );
        let dir = root.path().join(format!(
            "{backend}-{}",
            if listen { "listen" } else { "poll" }
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let journal = match backend {
            "sqlite" => format!("sqlite:{}", dir.join("journal.db").display()),
            _ => pg.fresh_db(if listen { "benchlisten" } else { "benchpoll" }),
        };
        cases.push(Case {
            name,
            journal,
            listen,
            dir,
        });
    }
    // Create each journal before its run starts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for case in &cases {
            let address: JournalAddress = case.journal.parse().unwrap();
            AnyJournal::open(&address, RecoveryConfig::default())
                .await
                .expect("create journal");
        }
    });
    let mut children: Vec<Child> = cases.iter().map(start_run).collect();
    std::thread::sleep(Duration::from_millis(500));
    let results = runtime.block_on(async {
        let all = cases.iter().map(|case| measure(case, runs));
        futures_util::future::join_all(all).await
    });
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    println!(
        "recovery wake-up latency: record called -> migrate command started, --poll 1s, {runs} cases each"
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9}",
        "configuration", "p50 ms", "p99 ms", "min ms", "max ms"
    );
    for (case, mut ms) in cases.iter().zip(results) {
        ms.sort_by(f64::total_cmp);
        println!(
            "{:<24} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            case.name,
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            ms[0],
            ms[ms.len() - 1]
        );
    }
}

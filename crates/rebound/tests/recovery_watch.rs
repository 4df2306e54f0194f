//! `rebound recovery list --watch`, end to end: a real watching process
//! follows `record` and `cancel` processes live over a real SQLite file
//! (inotify) and a real PostgreSQL (LISTEN/NOTIFY), ends with exit 0 on a
//! real SIGINT or SIGTERM, and with exit 3 when its database goes away.
//! It polls once an hour: the changes arrive as they are announced.

mod support;

#[path = "../../rebound-recovery/tests/support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{Cli, send_signal};

struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(journal: &str, extra: &[&str]) -> Self {
        let mut cmd = Cli::new()
            .args(["recovery", "--journal", journal, "list", "--watch"])
            .args(["--poll", "1h"])
            .args(extra)
            .command();
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line that satisfies `want`, within `within`.
    fn expect(&self, within: Duration, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {what} within {within:?}"),
            }
        }
    }

    fn stop(self, signal: &str) -> (Option<i32>, String) {
        send_signal(self.child.id(), signal);
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn cli(journal: &str) -> Cli {
    Cli::new().args(["recovery", "--journal", journal])
}

fn record(journal: &str, id: &str) {
    cli(journal)
        .args(["record", "--migration", id, "--workload", "web"])
        .args(["--source", "a", "--target", "b", "--kind", "timeout"])
        .args(["--message", "slow"])
        .run()
        .code(0);
}

fn event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// The JSON watch sees a record and a cancel by other processes as they
/// happen, and ends with exit 0 on `signal`.
fn follows_changes(journal: &str, signal: &str) {
    record(journal, "before");
    let watch = Watch::start(journal, &["--json"]);
    let listed = watch.expect(Duration::from_secs(20), "the listing", |l| {
        l.contains("\"listed\"")
    });
    assert_eq!(event(&listed)["recovery"]["migration"], "before");
    // Its listener is up by the time the listing is printed.
    record(journal, "m1");
    let line = watch.expect(Duration::from_secs(3), "m1 recorded", |l| {
        l.contains("\"m1\"")
    });
    let e = event(&line);
    assert_eq!(e["event"], "changed", "{line}");
    assert_eq!(e["recovery"]["state"], "pending", "{line}");
    cli(journal)
        .args(["cancel", "m1", "--reason", "not needed"])
        .run()
        .code(0);
    let line = watch.expect(Duration::from_secs(3), "m1 cancelled", |l| {
        l.contains("\"m1\"")
    });
    assert_eq!(event(&line)["recovery"]["state"], "cancelled", "{line}");
    // Pruned: removed.
    cli(journal)
        .args(["prune", "--older-than", "0s"])
        .run()
        .code(0);
    let line = watch.expect(Duration::from_secs(5), "m1 removed", |l| {
        l.contains("\"removed\"")
    });
    assert_eq!(event(&line)["migration"], "m1", "{line}");
    let (code, stderr) = watch.stop(signal);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn list_watch_follows_changes_on_sqlite_until_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    follows_changes(&journal, "INT");
}

#[test]
fn list_watch_follows_changes_on_postgres_until_sigterm() {
    let journal = pg::Pg::shared().fresh_db("watch");
    follows_changes(&journal, "TERM");
}

/// Human lines: the table, then one line per change.
#[test]
fn list_watch_prints_human_lines() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    record(&journal, "before");
    let watch = Watch::start(&journal, &[]);
    watch.expect(Duration::from_secs(20), "the table", |l| {
        l.starts_with("MIGRATION")
    });
    watch.expect(Duration::from_secs(5), "the listed row", |l| {
        l.starts_with("before ")
    });
    record(&journal, "m1");
    let line = watch.expect(Duration::from_secs(3), "m1", |l| l.contains(" m1: "));
    assert!(
        line.contains("m1: pending (retry_on_same_target, target b"),
        "{line}"
    );
    let (code, stderr) = watch.stop("INT");
    assert_eq!(code, Some(0), "{stderr}");
}

/// The database goes away during the wait: the watch says so and exits 3.
#[test]
fn list_watch_exits_3_when_the_database_goes_away() {
    let cluster = pg::Pg::start(&[]);
    let journal = cluster.fresh_db("gone");
    record(&journal, "before");
    let watch = Watch::start(&journal, &["--json"]);
    watch.expect(Duration::from_secs(20), "the listing", |l| {
        l.contains("\"listed\"")
    });
    // Stops the cluster (pg_ctl stop -m fast).
    drop(cluster);
    let start = std::time::Instant::now();
    let mut child = watch.child;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the watch did not notice its database went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("postgres://"), "{stderr}");
}

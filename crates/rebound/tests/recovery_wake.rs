//! `rebound recovery run` woken without polling, end to end: real `run`
//! and `record` processes over a real SQLite file (inotify) and a real
//! PostgreSQL (LISTEN/NOTIFY). Every `run` here polls once an hour, so a
//! migrate command that starts within seconds was started by a wake-up.

mod support;

#[path = "../../rebound-recovery/tests/support/pg.rs"]
mod pg;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Cli, send_signal, wait_until_within};

/// The migrate command: notes when it started, by migration id.
const MIGRATE: &str = "date +%s%N > \"started.$REBOUND_MIGRATION\"";

struct Run {
    dir: tempfile::TempDir,
    journal: String,
    child: Option<Child>,
}

impl Run {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let journal = format!("sqlite:{}", dir.path().join("journal.db").display());
        Self {
            dir,
            journal,
            child: None,
        }
    }

    fn postgres(prefix: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            journal: pg::Pg::shared().fresh_db(prefix),
            child: None,
        }
    }

    fn cli(&self) -> Cli {
        Cli::new()
            .args(["recovery", "--journal", &self.journal, "--jitter", "none"])
            .current_dir(self.dir.path())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `run --poll 1h` with `extra` flags, stdout and stderr into
    /// files.
    fn start(&mut self, extra: &[&str]) {
        let mut cmd = self
            .cli()
            .args([
                "run",
                "--poll",
                "1h",
                "--migrate-cmd",
                MIGRATE,
                "--rollback-cmd",
                "true",
            ])
            .args(extra)
            .command();
        cmd.stdout(std::fs::File::create(self.path("run.out")).unwrap())
            .stderr(std::fs::File::create(self.path("run.err")).unwrap())
            .stdin(Stdio::null());
        self.child = Some(cmd.spawn().unwrap());
    }

    /// `record` of migration `id` (its own workload), due after `delay`.
    fn record(&self, id: &str, delay: &str) -> Instant {
        let at = Instant::now();
        self.cli()
            .args(["--initial-delay", delay, "record", "--migration", id])
            .args([
                "--workload",
                &format!("web-{id}"),
                "--source",
                "a",
                "--target",
                "b",
            ])
            .args(["--kind", "timeout", "--message", "slow"])
            .run()
            .code(0);
        at
    }

    fn started(&self, id: &str) -> bool {
        std::fs::read_to_string(self.path(&format!("started.{id}")))
            .is_ok_and(|s| s.ends_with('\n'))
    }

    /// Records a first recovery and waits for its command: from then on
    /// the run is past its first claim and idle.
    fn warm_up(&self) {
        self.record("warm-up", "1ms");
        wait_until_within(
            Duration::from_secs(20),
            || self.started("warm-up"),
            "the first recovery to run",
        );
        // Its completion written, the worker waits again.
        std::thread::sleep(Duration::from_millis(200));
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("run.err")).unwrap_or_default()
    }

    fn stop(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        send_signal(child.id(), "TERM");
        child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `record` process wakes an idle `run --poll 1h` at once.
fn a_record_wakes_an_idle_run(mut run: Run) {
    run.start(&[]);
    run.warm_up();
    let recorded = run.record("m1", "1ms");
    wait_until_within(
        Duration::from_secs(3),
        || run.started("m1"),
        "the migrate command to start after the record",
    );
    eprintln!("started {:?} after the record", recorded.elapsed());
    assert_eq!(run.stop(), 143, "{}", run.stderr());
}

#[test]
fn a_record_process_wakes_an_idle_run_on_sqlite() {
    a_record_wakes_an_idle_run(Run::sqlite());
}

#[test]
fn a_record_process_wakes_an_idle_run_on_postgres() {
    a_record_wakes_an_idle_run(Run::postgres("wake"));
}

/// A recovery due in 1.5 s runs then, not at the next poll an hour away.
fn a_due_time_wakes_run(mut run: Run) {
    run.start(&[]);
    run.warm_up();
    let recorded = run.record("later", "1500ms");
    wait_until_within(
        Duration::from_secs(5),
        || run.started("later"),
        "the migrate command to start when the delay ends",
    );
    let took = recorded.elapsed();
    assert!(took >= Duration::from_millis(1500), "ran early: {took:?}");
    eprintln!("started {took:?} after the record (due after 1.5 s)");
    assert_eq!(run.stop(), 143, "{}", run.stderr());
}

#[test]
fn a_due_time_wakes_run_on_sqlite() {
    a_due_time_wakes_run(Run::sqlite());
}

#[test]
fn a_due_time_wakes_run_on_postgres() {
    a_due_time_wakes_run(Run::postgres("due"));
}

/// `--no-listen`: only the poll finds another process's record.
#[test]
fn no_listen_leaves_other_processes_records_to_the_poll() {
    let mut run = Run::sqlite();
    // Recorded before the start: only the first claim finds it.
    run.record("warm-up", "1ms");
    run.start(&["--no-listen"]);
    wait_until_within(
        Duration::from_secs(20),
        || run.started("warm-up"),
        "the first recovery to run",
    );
    std::thread::sleep(Duration::from_millis(200));
    run.record("m1", "1ms");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!run.started("m1"), "woken although --no-listen");
    assert_eq!(run.stop(), 143, "{}", run.stderr());
}

/// CPU time (user + system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14, stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The file watch sees the worker's own writes too: that must not turn
/// into a loop. An idle run on SQLite uses (next to) no CPU.
#[test]
fn an_idle_run_on_sqlite_does_not_wake_itself_in_a_loop() {
    let mut run = Run::sqlite();
    run.start(&["--workers", "2"]);
    run.warm_up();
    let pid = run.child.as_ref().unwrap().id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // 100 ticks a second: a busy loop would use close to 200.
    assert!(used <= 10, "an idle run used {used} ticks in 2 s");
    assert_eq!(run.stop(), 143, "{}", run.stderr());
}

/// Two idle `run` processes on one SQLite journal hear each other's
/// writes (and announcements): a claim that takes nothing writes and
/// announces nothing, so they do not wake each other in a loop.
#[test]
fn two_idle_runs_on_one_sqlite_journal_do_not_wake_each_other() {
    let mut a = Run::sqlite();
    let mut b = Run {
        dir: tempfile::tempdir().unwrap(),
        journal: a.journal.clone(),
        child: None,
    };
    a.start(&[]);
    b.start(&[]);
    a.record("warm-up", "1ms");
    wait_until_within(
        Duration::from_secs(20),
        || a.started("warm-up") || b.started("warm-up"),
        "the first recovery to run",
    );
    std::thread::sleep(Duration::from_millis(200));
    let pids = [
        a.child.as_ref().unwrap().id(),
        b.child.as_ref().unwrap().id(),
    ];
    let before = pids.map(cpu_ticks);
    std::thread::sleep(Duration::from_secs(2));
    for (pid, before) in pids.into_iter().zip(before) {
        let used = cpu_ticks(pid) - before;
        assert!(used <= 10, "an idle run used {used} ticks in 2 s");
    }
    assert_eq!(a.stop(), 143, "{}", a.stderr());
    assert_eq!(b.stop(), 143, "{}", b.stderr());
}

/// The pids of `run`'s LISTEN connections to `url`'s database.
fn listeners(url: &str) -> Vec<String> {
    pg::Pg::shared()
        .psql(
            url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'rebound-listen' \
             AND datname = current_database()",
        )
        .lines()
        .map(str::to_owned)
        .collect()
}

/// An administrator ends the LISTEN connection: `run` says so on stderr,
/// connects again with backoff, and a record made afterwards wakes it as
/// before.
#[test]
fn run_reconnects_its_listen_connection_after_it_is_terminated() {
    let mut run = Run::postgres("relisten");
    run.start(&[]);
    run.warm_up();
    let url = run.journal.clone();
    let before = listeners(&url);
    assert_eq!(before.len(), 1, "{before:?}");
    pg::Pg::shared().psql(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'rebound-listen' AND datname = current_database()",
    );
    wait_until_within(
        Duration::from_secs(10),
        || run.stderr().contains("lost the LISTEN connection"),
        "run to say it lost the LISTEN connection",
    );
    wait_until_within(
        Duration::from_secs(10),
        || {
            let now = listeners(&url);
            now.len() == 1 && now != before
        },
        "a new LISTEN connection",
    );
    assert!(
        run.stderr().contains("LISTEN connection back"),
        "{}",
        run.stderr()
    );
    let recorded = run.record("after", "1ms");
    wait_until_within(
        Duration::from_secs(3),
        || run.started("after"),
        "the migrate command to start after the record",
    );
    eprintln!("started {:?} after the record", recorded.elapsed());
    assert_eq!(run.stop(), 143, "{}", run.stderr());
}

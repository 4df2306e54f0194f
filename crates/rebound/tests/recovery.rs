//! `rebound recovery` end to end: real SQLite files, a real PostgreSQL
//! started for this binary, real migrate/rollback commands, and a run
//! killed with SIGKILL then restarted.

mod support;

#[path = "../../rebound-recovery/tests/support/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cli, alive, free_port, send_signal, wait_until_within};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn journal(&self) -> String {
        format!("sqlite:{}", self.path("journal.db").display())
    }

    /// `rebound recovery --journal <this env's file> --initial-delay 1ms ARGS`.
    fn cli<const N: usize>(&self, args: [&str; N]) -> Cli {
        Cli::new()
            .args([
                "recovery",
                "--journal",
                &self.journal(),
                "--initial-delay",
                "1ms",
            ])
            .args(args)
            .env("XDG_STATE_HOME", self.path("state"))
            .current_dir(self.dir.path())
    }

    fn record(&self, id: &str, kind: &str) {
        self.cli(record(id, "web", "node-a", "node-b"))
            .args(["--kind", kind, "--message", "it broke"])
            .run()
            .code(0);
    }

    fn list(&self) -> Vec<Value> {
        let out = self.cli(["list", "--json"]).run().code(0);
        out.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn states(recs: &[Value]) -> BTreeMap<String, String> {
    recs.iter()
        .map(|r| {
            (
                r["migration"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `record` for migration `id` of `workload` from `source` to `target`;
/// the kind, message and options follow.
fn record<'a>(id: &'a str, workload: &'a str, source: &'a str, target: &'a str) -> [&'a str; 9] {
    [
        "record",
        "--migration",
        id,
        "--workload",
        workload,
        "--source",
        source,
        "--target",
        target,
    ]
}

#[test]
fn record_list_show_and_due_round_trip() {
    let env = Env::new();
    std::fs::write(env.path("snap.img"), b"state").unwrap();
    let out = env
        .cli(record("m-1", "web", "node-a", "node-b"))
        .args([
            "--kind",
            "insufficient_resources",
            "--message",
            "no memory",
            "--candidates",
            "node-c,node-d",
            "--snapshot",
            "snap.img",
            "--json",
        ])
        .run()
        .code(0);
    let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(rec["kind"], "insufficient_resources");
    assert_eq!(rec["strategy"], "retry_on_different_target");
    assert_eq!(rec["target"], "node-c");
    assert_eq!(
        rec["snapshot"]["checksum"].as_str().unwrap().len(),
        "crc32c:".len() + 8
    );
    assert!(Path::new(rec["snapshot"]["path"].as_str().unwrap()).is_absolute());

    env.record("m-1", "target_unreachable");
    env.cli(["list"])
        .run()
        .code(0)
        .stdout_has("MIGRATION")
        .stdout_has("m-1")
        .stdout_has("retry_on_different_target");
    env.cli(["list", "--state", "succeeded"])
        .run()
        .code(0)
        .stdout_has("MIGRATION");
    assert!(
        !env.cli(["list", "--state", "succeeded"])
            .run()
            .stdout()
            .contains("m-1"),
        "filtered out"
    );

    let show = env.cli(["show", "m-1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(show.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["retry_count"], 1);
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    assert_eq!(shown["history"][1]["kind"], "target_unreachable");
    env.cli(["show", "m-1"])
        .run()
        .code(0)
        .stdout_has("history (2 kept of 2)")
        .stdout_has("failed targets:  node-b");

    // Due after the 1 ms / 2 ms delays.
    std::thread::sleep(Duration::from_millis(20));
    let due = env.cli(["due", "--json"]).run().code(0);
    assert_eq!(due.stdout().lines().count(), 1);
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let env = Env::new();
    let journal = env.path("journal.db");
    let base = record("m", "w", "a", "b");
    env.cli(base)
        .args(["--message", "x", "--kind", "flaky"])
        .run()
        .code(2)
        .stderr_has("unknown failure kind \"flaky\"")
        .stderr_has("network_transient");
    env.cli(["record", "--migration", "m", "--kind", "timeout"])
        .args(["--message", "x"])
        .run()
        .code(2)
        .stderr_has("--workload");
    env.cli(base)
        .args([
            "--message",
            "x",
            "--kind",
            "timeout",
            "--snapshot",
            "missing.img",
        ])
        .run()
        .code(2)
        .stderr_has("--snapshot")
        .stderr_has("missing.img");
    env.cli(record("", "w", "a", "b"))
        .args(["--kind", "timeout", "--message", "x"])
        .run()
        .code(2)
        .stderr_has("must not be empty");
    // An empty message is a missing field too.
    env.cli(base)
        .args(["--kind", "timeout", "--message", ""])
        .run()
        .code(2)
        .stderr_has("--message")
        .stderr_has("must not be empty");
    Cli::new()
        .args([
            "recovery",
            "--journal",
            &env.journal(),
            "--max-delay",
            "1ms",
            "list",
        ])
        .run()
        .code(2)
        .stderr_has("--max-delay (1ms) must be at least --initial-delay (10s)")
        .stderr_lacks("max_delay");
    env.cli(["list", "--state", "done"])
        .run()
        .code(2)
        .stderr_has("pending");
    env.cli([
        "run",
        "--migrate-cmd",
        "true",
        "--rollback-cmd",
        "true",
        "--exit-kind",
        "75",
    ])
    .run()
    .code(2)
    .stderr_has("CODE=KIND");
    assert!(!journal.exists(), "bad input created the journal");

    Cli::new()
        .args(["recovery", "--journal", "mysql://u:pw@h/db", "list"])
        .run()
        .code(2)
        .stderr_has("not sqlite:PATH")
        .stderr_lacks("pw@");
    Cli::new()
        .args(["recovery", "--journal", "memory:", "list"])
        .run()
        .code(2)
        .stderr_has("--journal: memory: keeps nothing")
        .stderr_has("sqlite:PATH");
    Cli::new()
        .args(["recovery", "--journal", "host=h password=s3cret", "list"])
        .run()
        .code(2)
        .stderr_has("password=***")
        .stderr_lacks("s3cret");

    // Reads of a journal that does not exist yet create nothing.
    env.cli(["list"]).run().code(0);
    env.cli(["show", "nope"])
        .run()
        .code(2)
        .stderr_has("no recovery for migration \"nope\"");
    assert!(!journal.exists());
}

#[test]
fn unreachable_or_missing_journal_exits_3() {
    let env = Env::new();
    let port = free_port();
    Cli::new()
        .args([
            "recovery",
            "--journal",
            &format!("postgres://u:secret@127.0.0.1:{port}/db"),
            "due",
        ])
        .run()
        .code(3)
        .stderr_has("unavailable")
        .stderr_lacks("secret");
    let nodir = format!("sqlite:{}", env.path("no/such/dir/j.db").display());
    Cli::new()
        .args(["recovery", "--journal", &nodir])
        .args(record("m", "w", "a", "b"))
        .args(["--kind", "timeout", "--message", "x"])
        .run()
        .code(3)
        .stderr_has("does not exist");
}

#[test]
fn default_journal_lives_under_xdg_state_home() {
    let env = Env::new();
    Cli::new()
        .args(["recovery"])
        .args(record("m", "w", "a", "b"))
        .args(["--kind", "timeout", "--message", "x"])
        .env("XDG_STATE_HOME", env.path("state"))
        .env("REBOUND_JOURNAL", "")
        .run()
        .code(0);
    assert!(env.path("state/rebound/journal.db").is_file());
}

#[test]
fn run_passes_the_fields_and_classifies_exit_codes() {
    let env = Env::new();
    std::fs::write(env.path("snap.img"), b"state").unwrap();
    env.record("m-env", "timeout");
    env.cli(record("m-code", "db", "node-a", "node-b"))
        .args([
            "--kind",
            "timeout",
            "--message",
            "slow",
            "--candidates",
            "node-z",
            "--snapshot",
            "snap.img",
        ])
        .run()
        .code(0);
    std::thread::sleep(Duration::from_millis(20));
    let migrate = "echo \"$REBOUND_MIGRATION $REBOUND_WORKLOAD $REBOUND_SOURCE $REBOUND_TARGET \
                   $REBOUND_STRATEGY $REBOUND_RETRY_COUNT snap=$REBOUND_SNAPSHOT\" >> calls.log; \
                   [ \"$REBOUND_MIGRATION\" = m-env ] || [ \"$REBOUND_TARGET\" = node-z ] || exit 42";
    // m-code's retry is due 1 to 2 ms after its failure: when that failure
    // was the last attempt of the batch, the first `--once` run ends before
    // it is due, and a second run does it.
    let mut events: Vec<Value> = Vec::new();
    let mut succeeded = 0;
    for _ in 0..2 {
        let out = env
            .cli([
                "run",
                "--once",
                "--json",
                "--migrate-cmd",
                migrate,
                "--rollback-cmd",
                "echo rollback >> calls.log",
                "--exit-kind",
                "42=incompatible_target",
            ])
            .run()
            .code(0);
        let run: Vec<Value> = out
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).expect("stdout is JSON lines only"))
            .collect();
        let summary = run.last().unwrap();
        assert_eq!(summary["event"], "summary");
        succeeded += summary["succeeded"].as_u64().unwrap();
        events.extend(run);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(succeeded, 2);
    let failed = events
        .iter()
        .find(|e| e["state"] == "pending")
        .expect("m-code failed once");
    assert_eq!(failed["kind"], "incompatible_target");
    assert_eq!(failed["next_strategy"], "retry_on_different_target");

    let calls = std::fs::read_to_string(env.path("calls.log")).unwrap();
    let snap = env.path("snap.img");
    assert!(
        calls.contains("m-env web node-a node-b retry_on_same_target 0 snap=\n"),
        "{calls}"
    );
    assert!(
        calls.contains(&format!(
            "m-code db node-a node-b retry_on_same_target 0 snap={}",
            snap.display()
        )),
        "{calls}"
    );
    assert!(
        calls.contains("m-code db node-a node-z retry_on_different_target 1"),
        "{calls}"
    );
    let states = states(&env.list());
    assert_eq!(states["m-code"], "succeeded");
    assert_eq!(states["m-env"], "succeeded");
}

#[test]
fn run_once_exits_3_when_a_recovery_is_given_up() {
    let env = Env::new();
    std::fs::write(env.path("snap.img"), b"state").unwrap();
    env.cli(record("m", "w", "a", "b"))
        .args([
            "--kind",
            "state_corruption",
            "--message",
            "bad",
            "--snapshot",
            "snap.img",
        ])
        .run()
        .code(0);
    std::fs::write(env.path("snap.img"), b"STATE").unwrap();
    env.cli([
        "run",
        "--once",
        "--migrate-cmd",
        "true",
        "--rollback-cmd",
        "touch rolled-back",
    ])
    .run()
    .code(3)
    .stdout_has("given_up: rollback refused")
    .stdout_has("corrupt");
    assert!(!env.path("rolled-back").exists());
}

fn count(log: &str, prefix: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        if let Some(id) = line.strip_prefix(prefix) {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

// A controller killed with SIGKILL mid-run loses nothing: after a restart
// every recovery completes once; only the attempt in flight at the kill
// runs again, after its lease ran out.
#[test]
fn a_run_killed_with_sigkill_resumes_without_loss_or_duplicates() {
    let env = Env::new();
    let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    for id in &ids {
        env.record(id, "network_transient");
    }
    // Each command runs in its own process group ($$ is its id).
    let migrate = "echo $$ > \"group.$REBOUND_MIGRATION\"; \
                   echo \"start $REBOUND_MIGRATION\" >> runs.log; sleep 0.3; \
                   echo \"done $REBOUND_MIGRATION\" >> runs.log";
    let run_args = [
        "run",
        "--lease",
        "1s",
        "--poll",
        "100ms",
        "--migrate-cmd",
        migrate,
        "--rollback-cmd",
        "true",
    ];
    let mut first = env.cli(run_args).command();
    // Its own process group, killed with the groups of the commands in
    // flight, as when the controller's machine dies.
    first
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut first = first.spawn().unwrap();
    let log = env.path("runs.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let started = count(&text, "start ").len();
        let done = count(&text, "done ").len();
        if done >= 2 && started > done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first run made no progress: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let done = count(&text, "done ");
    let mut groups = vec![format!("-{}", first.id())];
    for id in count(&text, "start ").into_keys() {
        if !done.contains_key(&id) {
            let group = std::fs::read_to_string(env.path(&format!("group.{id}"))).unwrap();
            groups.push(format!("-{}", group.trim()));
        }
    }
    // One kill for all; a command that ended meanwhile makes it report
    // an error for that group only.
    std::process::Command::new("kill")
        .args(["-KILL", "--"])
        .args(&groups)
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let at_kill = std::fs::read_to_string(&log).unwrap();
    let in_flight: Vec<String> = count(&at_kill, "start ")
        .into_keys()
        .filter(|id| !count(&at_kill, "done ").contains_key(id))
        .collect();
    assert_eq!(in_flight.len(), 1, "{at_kill}");
    let states_at_kill = states(&env.list());
    assert_eq!(states_at_kill.len(), 6, "nothing lost");
    assert_eq!(
        states_at_kill[&in_flight[0]], "running",
        "still leased by the dead run"
    );

    let mut second = env.cli(run_args).command();
    second.stdout(Stdio::null()).stderr(Stdio::null());
    let mut second = second.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states = states(&env.list());
        if states.values().all(|s| s == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "not all recovered: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    send_signal(second.id(), "TERM");
    assert_eq!(second.wait().unwrap().code(), Some(143));

    let text = std::fs::read_to_string(&log).unwrap();
    let done = count(&text, "done ");
    let started = count(&text, "start ");
    for id in &ids {
        assert_eq!(
            done.get(id),
            Some(&1),
            "{id} completed exactly once: {text}"
        );
        let expected = if in_flight.contains(id) { 2 } else { 1 };
        assert_eq!(started.get(id), Some(&expected), "{id}: {text}");
    }
    // The history shows both claims' outcome once.
    let show = env.cli(["show", &in_flight[0], "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(show.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["claim_seq"], 2);
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
}

#[test]
fn postgres_journal_with_two_workers() {
    let url = pg::Pg::shared().fresh_db("cli");
    let cli = |args: &[&str]| {
        Cli::new()
            .args(["recovery", "--journal", &url, "--initial-delay", "1ms"])
            .args(args)
    };
    for i in 0..20 {
        let id = format!("m{i:02}");
        cli(&record(&id, "w", "a", "b"))
            .args(["--kind", "timeout", "--message", "slow"])
            .run()
            .code(0);
    }
    std::thread::sleep(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&[
        "run",
        "--once",
        "--workers",
        "2",
        "--json",
        "--migrate-cmd",
        "echo $REBOUND_MIGRATION >> runs.log",
        "--rollback-cmd",
        "true",
    ])
    .current_dir(dir.path())
    .run()
    .code(0);
    let summary: Value = serde_json::from_str(out.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(summary["succeeded"], 20);
    let runs = std::fs::read_to_string(dir.path().join("runs.log")).unwrap();
    let counts = count(
        &runs.lines().map(|l| format!("x{l}\n")).collect::<String>(),
        "x",
    );
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|&n| n == 1), "{runs}");

    // A journal of a newer schema is refused with exit 3, untouched.
    pg::Pg::shared().psql(&url, "INSERT INTO schema_version VALUES (99, 0)");
    cli(&["list"])
        .run()
        .code(3)
        .stderr_has("schema version 99")
        .stderr_has("upgrade rebound");
}

#[test]
fn help_documents_the_exit_code_table() {
    Cli::new()
        .args(["recovery", "--help"])
        .run()
        .code(0)
        .stdout_has("75 network_transient")
        .stdout_has("--exit-kind")
        .stdout_has("$XDG_STATE_HOME/rebound/journal.db");
}

#[test]
fn every_subcommand_help_has_examples_and_the_kinds() {
    for sub in ["record", "list", "show", "due", "run"] {
        let mut out = Cli::new()
            .args(["recovery", sub, "--help"])
            .run()
            .code(0)
            .stdout_has("Examples:")
            .stdout_has(&format!("rebound recovery {sub}"))
            .stdout_has("Exit codes:");
        for kind in [
            "network_transient",
            "network_permanent",
            "insufficient_resources",
            "incompatible_target",
            "state_corruption",
            "timeout",
            "target_unreachable",
            "unknown",
        ] {
            out = out.stdout_has(kind);
        }
    }
    Cli::new()
        .args(["recovery", "run", "--help"])
        .run()
        .code(0)
        .stdout_has("75 network_transient")
        .stdout_has("--exit-kind CODE=KIND");
}

// An attempt cut off by the recovery timeout takes what its command started
// with it: the command's whole process group is killed, not only `sh`.
#[test]
fn the_recovery_timeout_kills_the_whole_command() {
    let env = Env::new();
    env.record("m1", "network_transient");
    env.cli([
        "--recovery-timeout",
        "1s",
        "run",
        "--once",
        "--migrate-cmd",
        "sleep 300 >/dev/null 2>&1 & echo $! > grandchild.pid; wait",
        "--rollback-cmd",
        "true",
    ])
    .run()
    .code(3)
    .stdout_has("recovery timeout of 1s");
    let pid = std::fs::read_to_string(env.path("grandchild.pid")).unwrap();
    let pid = pid.trim();
    // Killed at once; it may take a moment to be reaped by its new parent.
    wait_until_within(
        Duration::from_secs(10),
        || !alive(pid),
        &format!("the grandchild {pid} to end"),
    );
}

// `--workers N` runs N commands at once: each migrate command waits (up to
// 10 s) until all three have started, and fails when they never do. Workers
// that claimed batches ran everything due one by one in the first worker.
#[test]
fn workers_run_their_commands_at_the_same_time() {
    let env = Env::new();
    // Three workloads: one workload's recoveries never run at once.
    for id in ["m1", "m2", "m3"] {
        env.cli(record(id, &format!("web-{id}"), "node-a", "node-b"))
            .args(["--kind", "network_transient", "--message", "it broke"])
            .run()
            .code(0);
    }
    std::thread::sleep(Duration::from_millis(20));
    let migrate = "touch \"started.$REBOUND_MIGRATION\"; i=0; \
                   while [ \"$(ls started.* | wc -l)\" -lt 3 ]; do \
                   i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done";
    let out = env
        .cli([
            "run",
            "--once",
            "--json",
            "--workers",
            "3",
            "--migrate-cmd",
            migrate,
            "--rollback-cmd",
            "true",
        ])
        .run()
        .code(0);
    let summary: Value = serde_json::from_str(out.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(summary["succeeded"], 3, "{}", out.stdout());
    let workers: std::collections::BTreeSet<String> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "attempt")
        .map(|e| e["worker"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(workers.len(), 3, "{}", out.stdout());
}

// A zero lease ran every attempt on a claim that had already expired, and a
// zero poll interval queried the journal in a busy loop; both were taken.
#[test]
fn a_zero_lease_or_poll_interval_is_refused() {
    let env = Env::new();
    for flag in ["--lease", "--poll"] {
        env.cli([
            "run",
            "--once",
            "--migrate-cmd",
            "true",
            "--rollback-cmd",
            "true",
            flag,
            "0s",
        ])
        .run()
        .code(2)
        .stderr_has(flag)
        .stderr_has("must be greater than zero");
    }
    assert!(!env.path("journal.db").exists());
}

// A migration id used again for another workload or source is refused; it
// was taken, and the recovery's workload and source silently replaced.
#[test]
fn recording_another_workload_under_a_recorded_id_exits_2() {
    let env = Env::new();
    env.record("m1", "timeout");
    env.cli(record("m1", "db", "node-a", "node-b"))
        .args(["--kind", "timeout", "--message", "x"])
        .run()
        .code(2)
        .stderr_has("migration \"m1\" is recorded for workload web from source node-a");
    let shown = env.cli(["show", "m1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["workload"], "web");
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);
}

// A typo in --migrate-cmd or --rollback-cmd (sh exits 127) stops `run` with
// exit 2 and counts nothing; it was a failure of kind unknown, so the typo
// rolled back every due migration (or, for --rollback-cmd, gave it up).
#[test]
fn a_command_that_cannot_run_stops_run_and_counts_nothing() {
    // The migrate command of a retry, the rollback command of a rollback.
    for (kind, flag, other) in [
        ("network_transient", "--migrate-cmd", "--rollback-cmd"),
        ("state_corruption", "--rollback-cmd", "--migrate-cmd"),
    ] {
        let env = Env::new();
        std::fs::write(env.path("snap.img"), b"state").unwrap();
        env.cli(record("m", "w", "a", "b"))
            .args(["--kind", kind, "--message", "bad", "--snapshot", "snap.img"])
            .run()
            .code(0);
        std::thread::sleep(Duration::from_millis(20));
        env.cli([
            "run",
            "--once",
            flag,
            "./no-such-script.sh",
            other,
            "touch ran",
        ])
        .run()
        .code(2)
        .stderr_has(flag)
        .stderr_has("not found");
        assert!(!env.path("ran").exists());
        let shown = env.cli(["show", "m", "--json"]).run().code(0);
        let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
        // Handed back by the stopped run, due at once.
        assert_eq!(shown["recovery"]["state"], "pending", "{shown}");
        assert_eq!(shown["recovery"]["lease_owner"], Value::Null, "{shown}");
        assert_eq!(shown["recovery"]["retry_count"], 0, "{shown}");
        assert_eq!(shown["history"].as_array().unwrap().len(), 1, "{shown}");
    }
}

// A --snapshot whose name is not UTF-8 was recorded as no snapshot at all.
#[test]
fn a_snapshot_path_that_is_not_utf8_exits_2() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let snap = env
        .path("x")
        .with_file_name(std::ffi::OsStr::from_bytes(b"snap\xff.img"));
    std::fs::write(&snap, b"state").unwrap();
    Cli::new()
        .args(["recovery", "--journal", &env.journal(), "record"])
        .args(["--migration", "m", "--workload", "w", "--source", "a"])
        .args(["--target", "b", "--kind", "timeout", "--message", "x"])
        .args([std::ffi::OsStr::new("--snapshot"), snap.as_os_str()])
        .run()
        .code(2)
        .stderr_has("--snapshot")
        .stderr_has("not valid UTF-8");
    assert!(!env.path("journal.db").exists());
}

// A newline or tab in an id or node name was taken, and broke every table
// that shows it.
#[test]
fn ids_and_node_names_with_control_characters_exit_2() {
    let env = Env::new();
    for (i, bad) in ["m\n1", "web\t2"].into_iter().enumerate() {
        let args = if i == 0 {
            record(bad, "w", "a", "b")
        } else {
            record("m", "w", "a", bad)
        };
        env.cli(args)
            .args(["--kind", "timeout", "--message", "x"])
            .run()
            .code(2)
            .stderr_has("must not contain control characters");
    }
    env.cli(record("m", "w", "a", "b"))
        .args([
            "--kind",
            "timeout",
            "--message",
            "x",
            "--candidates",
            "c,d\ne",
        ])
        .run()
        .code(2)
        .stderr_has("--candidates");
    assert!(!env.path("journal.db").exists());
}

// SIGTERM mid-attempt hands the recovery back at once; it stayed `running`
// for the rest of its lease (30 s by default) with nobody working on it.
#[test]
fn sigterm_mid_attempt_hands_the_recovery_back() {
    let env = Env::new();
    env.record("m1", "network_transient");
    std::thread::sleep(Duration::from_millis(20));
    let mut run = env
        .cli([
            "run",
            "--json",
            "--migrate-cmd",
            "touch started; sleep 30",
            "--rollback-cmd",
            "true",
        ])
        .command();
    run.stdout(Stdio::piped()).stderr(Stdio::null());
    let run = run.spawn().unwrap();
    wait_until_within(
        Duration::from_secs(30),
        || env.path("started").exists(),
        "the attempt to start",
    );
    send_signal(run.id(), "TERM");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["claimed"], 1, "{stdout}");
    assert_eq!(summary["released"], 1, "{stdout}");
    let shown = env.cli(["show", "m1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["state"], "pending", "{shown}");
    assert_eq!(shown["recovery"]["lease_owner"], Value::Null, "{shown}");
    assert_eq!(shown["recovery"]["retry_count"], 0, "{shown}");
    assert_eq!(shown["history"].as_array().unwrap().len(), 1, "{shown}");
}

// `rebound recovery list | head` printed "error: Broken pipe" and failed.
#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let env = Env::new();
    // More than a pipe holds: the write blocks until the reader is gone.
    let message = "x".repeat(100_000);
    env.cli(record("m", "w", "a", "b"))
        .args(["--kind", "timeout", "--message", &message])
        .run()
        .code(0);
    for args in [["list", "--json"], ["show", "m"]] {
        let mut cmd = env.cli(args).command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

// A negative duration or count was reported as "unexpected argument '-5'",
// naming neither the flag nor what is wrong with the value.
#[test]
fn negative_durations_and_counts_name_the_flag() {
    let env = Env::new();
    for (flag, value, why) in [
        ("--initial-delay", "-5s", "not a duration"),
        ("--recovery-timeout", "-1m", "not a duration"),
        ("--max-retries", "-1", "not in 0..="),
    ] {
        Cli::new()
            .args(["recovery", "--journal", &env.journal(), flag, value, "list"])
            .run()
            .code(2)
            .stderr_has(&format!("invalid value '{value}' for '{flag}"))
            .stderr_has(why);
    }
    env.cli([
        "run",
        "--migrate-cmd",
        "true",
        "--rollback-cmd",
        "true",
        "--lease",
        "-30s",
    ])
    .run()
    .code(2)
    .stderr_has("invalid value '-30s' for '--lease");
    assert!(!env.path("journal.db").exists());
}

// A failure that is given up as it is recorded (a rollback without a
// snapshot) said so only in a table column; the reason went unseen.
#[test]
fn record_says_why_a_recovery_is_given_up_at_once() {
    let env = Env::new();
    env.cli(record("m", "w", "a", "b"))
        .args(["--kind", "state_corruption", "--message", "bad", "--json"])
        .run()
        .code(0)
        .stderr_has("recovery m was given up: ")
        .stderr_has("no snapshot was recorded");
    env.cli(record("n", "w", "a", "b"))
        .args(["--kind", "timeout", "--message", "slow"])
        .run()
        .code(0)
        .stderr_lacks("given up");
}

// A reader who may not write the journal's directory (an operator checking
// a controller's journal) could not list it while no controller had it
// open: "attempt to write a readonly database", exit 3.
#[test]
fn a_journal_in_a_read_only_directory_can_be_read() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.record("m", "timeout");
    let dir = env.dir.path();
    // A journal is created 0600; one shared with readers is made readable
    // by its owner, and keeps that mode.
    std::fs::set_permissions(
        env.path("journal.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let set_mode = |mode| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    set_mode(0o555).unwrap();
    // Root ignores permissions: read as nobody then.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    // `nobody` may not reach the build's own binary (a checkout under a
    // private directory, such as a `mktemp -d` clone): run a copy of it from
    // a directory everyone may enter.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("rebound");
    if root {
        std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_rebound"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let read = |args: &[&str]| {
        let mut cmd = if root {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "nobody", "--"]).arg(&bin);
            cmd
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_rebound"))
        };
        cmd.args(["recovery", "--journal", &env.journal()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let listed = read(&["list", "--json"]);
    let due = read(&["due"]);
    let shown = read(&["show", "m"]);
    let written = read(&[
        "record",
        "--migration",
        "n",
        "--workload",
        "w",
        "--source",
        "a",
        "--target",
        "b",
        "--kind",
        "timeout",
        "--message",
        "x",
    ]);
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    set_mode(0o755).unwrap();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    let rec: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rec["migration"], "m");
    assert_eq!(due.status.code(), Some(0), "{}", text(&due));
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("workload:        web"));
    // Writing still needs write access, and says so.
    assert_eq!(written.status.code(), Some(3));
    assert!(text(&written).contains("readonly"), "{}", text(&written));
    assert_eq!(files, ["journal.db"], "reads left files behind");
}

/// `cancel` of a pending recovery and of one whose migrate command runs in
/// a `run` process: the command's process group gets SIGTERM from the
/// worker within a second or two, and the recovery ends `cancelled`.
fn cancel_stops_a_running_command(journal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        Cli::new()
            .args(["recovery", "--journal", journal, "--initial-delay", "1ms"])
            .args(args)
            .current_dir(dir.path())
    };
    for (id, workload) in [("m1", "web"), ("m2", "db")] {
        cli(&record(id, workload, "node-a", "node-b"))
            .args(["--kind", "network_transient", "--message", "reset"])
            .run()
            .code(0);
    }
    // A pending recovery ends cancelled at once; run never takes it.
    cli(&["cancel", "m2", "--reason", "db stays put"])
        .run()
        .code(0)
        .stdout_has("cancelled");
    std::thread::sleep(Duration::from_millis(20));
    let mut run = cli(&[
        "run",
        "--json",
        "--migrate-cmd",
        "sleep 60 & echo $! > sleep.pid; wait",
        "--rollback-cmd",
        "true",
    ])
    .command();
    run.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut run = run.spawn().unwrap();
    // run's JSON lines, read as they come: the worker's own line for the
    // cancelled attempt is awaited before run is stopped, since the
    // command's end comes before the worker counts it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout_pipe = run.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout_pipe).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let pid_file = dir.path().join("sleep.pid");
    wait_until_within(
        Duration::from_secs(30),
        || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')),
        "the migrate command to start",
    );
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(alive(&pid));
    // From another process.
    cli(&["cancel", "m1", "--reason", "operator said so", "--json"])
        .run()
        .code(0)
        .stdout_has("\"state\":\"cancelled\"");
    let asked = Instant::now();
    wait_until_within(
        Duration::from_secs(3),
        || !alive(&pid),
        "the cancelled command's process to end",
    );
    eprintln!("command gone {:?} after the cancel", asked.elapsed());
    let shown = cli(&["show", "m1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["state"], "cancelled", "{shown}");
    assert_eq!(shown["recovery"]["reason"], "cancelled: operator said so");
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["result"], "cancelled", "{shown}");
    let listed = cli(&["list", "--state", "cancelled", "--json"])
        .run()
        .code(0);
    assert_eq!(listed.stdout().lines().count(), 2, "{}", listed.stdout());
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|l: &String| l.contains("\"m1\"") && l.contains("cancelled"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no attempt line for m1 from run ({e}): {seen:?}"),
        }
    }
    send_signal(run.id(), "TERM");
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let stdout = seen.join("\n");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["cancelled"], 1, "{stdout}");
    assert_eq!(summary["claimed"], 1, "{stdout}");
    assert_eq!(summary["succeeded"], 0, "{stdout}");
    // A finished recovery cannot be cancelled (exit 2, nothing changed);
    // neither can an unknown one.
    let before = cli(&["show", "m1", "--json"]).run().code(0).stdout();
    cli(&["cancel", "m1"])
        .run()
        .code(2)
        .stderr_has("has already ended (cancelled)");
    assert_eq!(
        cli(&["show", "m1", "--json"]).run().code(0).stdout(),
        before
    );
    cli(&["cancel", "nope"])
        .run()
        .code(2)
        .stderr_has("\"nope\"");
}

#[test]
fn cancel_stops_a_running_command_on_sqlite() {
    let env = Env::new();
    cancel_stops_a_running_command(&env.journal());
}

#[test]
fn cancel_stops_a_running_command_on_postgres() {
    let url = pg::Pg::shared().fresh_db("cancel");
    cancel_stops_a_running_command(&url);
}

/// The migrate command of the one-per-workload tests: logs
/// `start|end WORKLOAD MIGRATION NANOS` around a short sleep.
const LOGGED_MIGRATE: &str = "echo \"start $REBOUND_WORKLOAD $REBOUND_MIGRATION $(date +%s%N)\" >> runs.log; \
     sleep 0.2; echo \"end $REBOUND_WORKLOAD $REBOUND_MIGRATION $(date +%s%N)\" >> runs.log";

/// Checks that no two migrate commands of one workload overlapped, from
/// `runs.log` in `dir`; returns how many ran.
fn assert_one_per_workload(dir: &Path) -> usize {
    let log = std::fs::read_to_string(dir.join("runs.log")).unwrap();
    // (workload, migration) -> (start, end)
    let mut spans: BTreeMap<(String, String), (Option<u128>, Option<u128>)> = BTreeMap::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [what, workload, migration, at] = fields[..] else {
            panic!("bad log line {line:?}");
        };
        let at: u128 = at.parse().unwrap();
        let span = spans
            .entry((workload.to_owned(), migration.to_owned()))
            .or_default();
        match what {
            "start" => span.0 = Some(at),
            "end" => span.1 = Some(at),
            other => panic!("bad log line {other:?}"),
        }
    }
    let mut by_workload: BTreeMap<&str, Vec<(u128, u128)>> = BTreeMap::new();
    for ((workload, migration), (start, end)) in &spans {
        let (Some(start), Some(end)) = (start, end) else {
            panic!("{migration} did not both start and end: {log}");
        };
        by_workload
            .entry(workload)
            .or_default()
            .push((*start, *end));
    }
    for (workload, mut runs) in by_workload {
        runs.sort();
        for pair in runs.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "two recoveries of {workload} ran at once: {pair:?}\n{log}"
            );
        }
    }
    spans.len()
}

// Two recoveries of one workload (different migration ids) ran their
// commands at the same time on different workers.
#[test]
fn one_workload_runs_one_recovery_at_a_time_on_postgres() {
    let url = pg::Pg::shared().fresh_db("workload");
    let cli = |args: &[&str]| {
        Cli::new()
            .args(["recovery", "--journal", &url, "--initial-delay", "1ms"])
            .args(args)
    };
    for workload in ["web", "db", "cache"] {
        for i in 0..4 {
            let id = format!("{workload}-{i}");
            cli(&record(&id, workload, "a", "b"))
                .args(["--kind", "timeout", "--message", "slow"])
                .run()
                .code(0);
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&[
        "run",
        "--once",
        "--workers",
        "4",
        "--json",
        "--migrate-cmd",
        LOGGED_MIGRATE,
        "--rollback-cmd",
        "true",
    ])
    .current_dir(dir.path())
    .run()
    .code(0);
    let summary: Value = serde_json::from_str(out.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(summary["succeeded"], 12, "{}", out.stdout());
    assert_eq!(assert_one_per_workload(dir.path()), 12);
}

#[test]
fn one_workload_runs_one_recovery_at_a_time_on_sqlite() {
    let env = Env::new();
    for workload in ["web", "db"] {
        for i in 0..4 {
            let id = format!("{workload}-{i}");
            env.cli(record(&id, workload, "a", "b"))
                .args(["--kind", "timeout", "--message", "slow"])
                .run()
                .code(0);
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    let args = [
        "run",
        "--once",
        "--json",
        "--migrate-cmd",
        LOGGED_MIGRATE,
        "--rollback-cmd",
        "true",
    ];
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut run = env.cli(args).command();
            run.stdout(Stdio::piped()).stderr(Stdio::null());
            run.spawn().unwrap()
        })
        .collect();
    let mut succeeded = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        succeeded += summary["succeeded"].as_u64().unwrap();
    }
    assert_eq!(succeeded, 8);
    assert_eq!(assert_one_per_workload(env.dir.path()), 8);
}

// A recovery whose controller dies while running it used to be retaken
// for ever (every controller that took it died the same way): after
// --max-rescues losses it is given up, and the rescues are shown.
#[test]
fn a_recovery_whose_worker_keeps_dying_is_given_up() {
    let env = Env::new();
    env.record("m1", "network_transient");
    std::thread::sleep(Duration::from_millis(20));
    // The migrate command kills the `rebound recovery run` that started
    // it, as a crash of the controller would.
    let run = |expect_killed: bool| {
        let mut run = env
            .cli([
                "run",
                "--once",
                "--json",
                "--lease",
                "300ms",
                "--max-rescues",
                "2",
                "--migrate-cmd",
                "echo ran >> runs.log; kill -KILL $PPID; sleep 0.1",
                "--rollback-cmd",
                "true",
            ])
            .command();
        run.stdout(Stdio::piped()).stderr(Stdio::null());
        let out = run.spawn().unwrap().wait_with_output().unwrap();
        if expect_killed {
            assert_eq!(out.status.code(), None, "killed by its command");
        } else {
            assert_eq!(out.status.code(), Some(0));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(true);
    // Its lease runs out; the next run rescues it, and dies the same way.
    std::thread::sleep(Duration::from_millis(400));
    run(true);
    let shown = env.cli(["show", "m1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["rescues"], 1, "{shown}");
    std::thread::sleep(Duration::from_millis(400));
    // The second loss: given up, nothing run.
    let stdout = run(false);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["claimed"], 0, "{stdout}");
    let runs = std::fs::read_to_string(env.path("runs.log")).unwrap();
    assert_eq!(runs.lines().count(), 2, "{runs}");
    let shown = env.cli(["show", "m1", "--json"]).run().code(0);
    let shown: Value = serde_json::from_str(shown.stdout().trim()).unwrap();
    assert_eq!(shown["recovery"]["state"], "given_up", "{shown}");
    assert_eq!(
        shown["recovery"]["reason"], "worker lost 2 times",
        "{shown}"
    );
    assert_eq!(shown["recovery"]["rescues"], 2, "{shown}");
    env.cli(["show", "m1"])
        .run()
        .code(0)
        .stdout_has("rescues:         2");
    let listed = env.cli(["list"]).run().code(0);
    assert!(listed.stdout().contains("RESCUES"), "{}", listed.stdout());
    env.cli(["list", "--max-rescues", "0"])
        .run()
        .code(2)
        .stderr_has("--max-rescues");
}

#[test]
fn prune_deletes_old_finished_recoveries_and_refuses_bad_input() {
    let env = Env::new();
    // No journal yet: nothing to prune, and no file made.
    env.cli(["prune", "--older-than", "30d"])
        .run()
        .code(0)
        .stdout_has("pruned 0");
    assert!(!env.path("journal.db").exists());
    for id in ["m1", "m2", "m3"] {
        env.cli(record(id, id, "node-a", "node-b"))
            .args(["--kind", "timeout", "--message", "slow"])
            .run()
            .code(0);
    }
    env.cli(["cancel", "m1"]).run().code(0);
    env.cli(["cancel", "m2"]).run().code(0);
    std::thread::sleep(Duration::from_millis(20));
    // Bad input: exit 2, nothing deleted.
    env.cli(["prune", "--older-than", "soon"])
        .run()
        .code(2)
        .stderr_has("--older-than");
    env.cli([
        "prune",
        "--older-than",
        "1ms",
        "--state",
        "cancelled,pending",
    ])
    .run()
    .code(2)
    .stderr_has("--state pending");
    env.cli(["prune", "--older-than", "1ms", "--state", "done"])
        .run()
        .code(2)
        .stderr_has("cancelled");
    assert_eq!(env.list().len(), 3);
    // Too recent, or not in the states asked for: kept.
    env.cli(["prune", "--older-than", "30d"])
        .run()
        .code(0)
        .stdout_has("pruned 0 finished recoveries");
    env.cli([
        "prune",
        "--older-than",
        "1ms",
        "--state",
        "succeeded,given_up",
    ])
    .run()
    .code(0)
    .stdout_has("pruned 0");
    let out = env
        .cli(["prune", "--older-than", "1ms", "--json"])
        .run()
        .code(0);
    assert_eq!(out.stdout().trim(), r#"{"pruned":2}"#);
    assert_eq!(
        states(&env.list()),
        BTreeMap::from([("m3".to_owned(), "pending".to_owned())])
    );
    env.cli(["show", "m1"]).run().code(2);
    // A journal that cannot be reached: exit 3.
    let gone = format!("postgres://rebound@127.0.0.1:{}/rebound", free_port());
    Cli::new()
        .args([
            "recovery",
            "--journal",
            &gone,
            "prune",
            "--older-than",
            "1d",
        ])
        .run()
        .code(3);
}

#[test]
fn run_prunes_periodically_with_prune_after() {
    let env = Env::new();
    env.cli(record("m1", "web", "node-a", "node-b"))
        .args(["--kind", "timeout", "--message", "slow"])
        .run()
        .code(0);
    env.cli(["cancel", "m1"]).run().code(0);
    std::thread::sleep(Duration::from_millis(20));
    let mut run = env
        .cli([
            "run",
            "--json",
            "--prune-after",
            "10ms",
            "--migrate-cmd",
            "true",
            "--rollback-cmd",
            "true",
        ])
        .command();
    run.stdout(Stdio::piped()).stderr(Stdio::null());
    let run = run.spawn().unwrap();
    wait_until_within(
        Duration::from_secs(10),
        || env.list().is_empty(),
        "run to prune the cancelled recovery",
    );
    send_signal(run.id(), "TERM");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#"{"event":"prune","pruned":1}"#),
        "{stdout}"
    );
}

#[test]
fn cancel_on_an_unreachable_journal_exits_3() {
    let gone = format!("postgres://rebound@127.0.0.1:{}/rebound", free_port());
    Cli::new()
        .args(["recovery", "--journal", &gone, "cancel", "m1"])
        .run()
        .code(3)
        .stderr_has("unavailable");
}

/// The lines of `targets --json`.
fn targets_json(cli: Cli) -> Vec<Value> {
    let out = cli.run().code(0);
    out.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// A target node's breaker, end to end on a SQLite journal: failures of
// different migrations open it, `targets` lists it open with its failures
// and when it reopens, rotation skips it and says so, `targets reset`
// closes it, an unknown node exits 2 naming it.
#[test]
fn targets_lists_open_nodes_and_reset_closes_one() {
    let env = Env::new();
    // Nothing recorded: an empty table, and no journal file made for it.
    env.cli(["targets"]).run().code(0).stdout_has("NODE");
    assert!(!env.path("journal.db").exists());
    let breaker = ["--target-breaker-failures", "2"];
    for id in ["m-1", "m-2"] {
        env.cli(record(id, id, "node-a", "node-b"))
            .args(breaker)
            .args(["--kind", "target_unreachable", "--message", "no route"])
            .run()
            .code(0);
    }
    let nodes = targets_json(env.cli(["targets", "--json"]).args(breaker));
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let b = &nodes[0];
    assert_eq!(b["node"], "node-b");
    assert_eq!(b["state"], "open");
    assert_eq!(b["failures_in_window"], 2);
    assert_eq!(b["openings"], 1);
    assert_eq!(b["last_kind"], "target_unreachable");
    let reopens = b["reopens_at_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(reopens > now && reopens <= now + 60_000, "{b}");
    assert!(b["reopens_at"].as_str().unwrap().ends_with('Z'), "{b}");
    env.cli(["targets"])
        .args(breaker)
        .run()
        .code(0)
        .stdout_has("REOPENS")
        .stdout_has("node-b")
        .stdout_has("open")
        .stdout_has("2 in 10m");

    // Rotation skips node-b and says so.
    let out = env
        .cli(record("m-3", "db", "node-a", "node-x"))
        .args(breaker)
        .args(["--kind", "insufficient_resources", "--message", "no memory"])
        .args(["--candidates", "node-b,node-c", "--json"])
        .run()
        .code(0);
    let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(rec["target"], "node-c");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("skipped node-b until"),
        "{rec}"
    );

    env.cli(["targets", "reset", "node-b"])
        .run()
        .code(0)
        .stdout_has("node-b: breaker closed");
    let nodes = targets_json(env.cli(["targets", "--json"]));
    let b = nodes.iter().find(|n| n["node"] == "node-b").unwrap();
    assert_eq!(
        (b["state"].as_str(), b["failures_in_window"].as_u64()),
        (Some("closed"), Some(0))
    );
    assert!(b["reopens_at_ms"].is_null());

    env.cli(["targets", "reset", "node-z"])
        .run()
        .code(2)
        .stderr_has("\"node-z\"");
}

// The breaker settings are checked before anything is opened, naming the
// flag; durations take rebound's one grammar (a bare number is seconds)
// and the jitter rebound-retry's names.
#[test]
fn breaker_settings_durations_and_jitter_are_checked() {
    let env = Env::new();
    for (flag, value, why) in [
        ("--target-breaker-failures", "0", "not in 1.."),
        (
            "--target-breaker-cooldown",
            "0s",
            "must be greater than zero",
        ),
        ("--target-breaker-window", "soon", "not a duration"),
        ("--jitter", "fuzzy", "unknown jitter \"fuzzy\""),
    ] {
        env.cli(["targets"])
            .args([flag, value])
            .run()
            .code(2)
            .stderr_has(flag)
            .stderr_has(why);
    }
    env.cli(["targets", "--target-breaker-max-cooldown", "1s"])
        .run()
        .code(2)
        .stderr_has("--target-breaker-max-cooldown");
    assert!(!env.path("journal.db").exists());
    // A bare number is seconds, as everywhere in rebound.
    let out = env
        .cli(record("m-1", "web", "node-a", "node-b"))
        .args(["--kind", "timeout", "--message", "slow", "--json"])
        .args([
            "--initial-delay",
            "30",
            "--max-delay",
            "60",
            "--jitter",
            "none",
        ])
        .run()
        .code(0);
    let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
    let gap = rec["next_attempt_ms"].as_u64().unwrap() - rec["last_failure_ms"].as_u64().unwrap();
    assert_eq!(gap, 30_000);
    env.cli(["list", "--jitter", "decorrelated"]).run().code(0);
}

// Controllers in separate processes on one PostgreSQL journal share the
// breakers: failures one records open the node for the others; rotation
// skips it when planning and `run` skips it when a recovery planned before
// it opened comes due; a success closes it; a reset works from any process.
#[test]
fn postgres_controllers_share_target_breakers() {
    let url = pg::Pg::shared().fresh_db("breakers");
    let cli = |args: &[&str]| {
        Cli::new()
            .args(["recovery", "--journal", &url, "--initial-delay", "1ms"])
            .args(["--target-breaker-failures", "2"])
            .args(args)
    };
    // Planned to node-b while it is closed.
    let out = cli(&record("m-1", "web", "node-a", "node-x"))
        .args(["--kind", "target_unreachable", "--message", "down"])
        .args(["--candidates", "node-b,node-c", "--json"])
        .run()
        .code(0);
    let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(rec["target"], "node-b");
    for id in ["f-1", "f-2"] {
        cli(&record(id, id, "node-a", "node-b"))
            .args(["--kind", "timeout", "--message", "slow"])
            .run()
            .code(0);
    }
    let nodes = targets_json(cli(&["targets", "--json"]));
    let b = nodes.iter().find(|n| n["node"] == "node-b").unwrap();
    assert_eq!(b["state"], "open", "{nodes:?}");
    // Planned now: node-b is skipped at once.
    let out = cli(&record("m-2", "db", "node-a", "node-y"))
        .args(["--kind", "incompatible_target", "--message", "arch"])
        .args(["--candidates", "node-b,node-c", "--json"])
        .run()
        .code(0);
    let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(rec["target"], "node-c");
    std::thread::sleep(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&[
        "run",
        "--once",
        "--migrate-cmd",
        "echo \"$REBOUND_MIGRATION $REBOUND_TARGET\" >> runs.log",
        "--rollback-cmd",
        "true",
    ])
    .current_dir(dir.path())
    .run()
    .code(0)
    .stdout_has("m-1: migrate to node-b: skipped node-b until");
    let runs = std::fs::read_to_string(dir.path().join("runs.log")).unwrap();
    let mut lines: Vec<&str> = runs.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["f-1 node-b", "f-2 node-b", "m-1 node-c", "m-2 node-c"],
        "{}",
        out.stdout()
    );
    // f-1 and f-2 retried node-b itself (not a change of target) and went
    // through: a success closes it.
    let nodes = targets_json(cli(&["targets", "--json"]));
    let b = nodes.iter().find(|n| n["node"] == "node-b").unwrap();
    assert_eq!(b["state"], "closed", "{nodes:?}");
    cli(&["targets", "reset", "node-x", "--json"])
        .run()
        .code(0)
        .stdout_has("\"state\":\"closed\"");
    cli(&["targets", "reset", "node-q"])
        .run()
        .code(2)
        .stderr_has("node-q");
}

/// The lines a child writes to `pipe`, collected as they come.
fn collect_lines(
    pipe: impl std::io::Read + Send + 'static,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::thread::JoinHandle<()>,
) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

// `run` against a PostgreSQL server that is stopped and started again: it
// keeps running (it used to end with exit 3 when its own connection was
// lost), says on stderr that the journal is unavailable and when it is
// back, and runs a migration recorded after the restart. Meanwhile
// `cancel` and `prune` against the stopped server exit 3 naming the
// journal.
#[test]
fn run_rides_out_a_postgres_restart_and_commands_say_it_is_gone() {
    let cluster = pg::Pg::start(&[]);
    let url = cluster.fresh_db("outage");
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        Cli::new()
            .args(["recovery", "--journal", &url, "--initial-delay", "1ms"])
            .args(args)
            .current_dir(dir.path())
    };
    let record_one = |id: &str| {
        cli(&record(id, &format!("web-{id}"), "node-a", "node-b"))
            .args(["--kind", "timeout", "--message", "slow"])
            .run()
            .code(0);
    };
    let ran = |id: &str| {
        std::fs::read_to_string(dir.path().join("runs.log"))
            .is_ok_and(|log| log.lines().any(|l| l == id))
    };
    record_one("m1");
    let mut run = cli(&[
        "run",
        "--json",
        "--migrate-cmd",
        "echo $REBOUND_MIGRATION >> runs.log",
        "--rollback-cmd",
        "true",
    ])
    .command();
    run.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut run = run.spawn().unwrap();
    let (stdout, out_reader) = collect_lines(run.stdout.take().unwrap());
    let (stderr, err_reader) = collect_lines(run.stderr.take().unwrap());
    let has = |needle: &str| stderr.lock().unwrap().iter().any(|l| l.contains(needle));
    wait_until_within(Duration::from_secs(30), || ran("m1"), "m1 to run");

    cluster.halt();
    let host = format!("127.0.0.1:{}", cluster.port);
    cli(&["cancel", "m1"])
        .run()
        .code(3)
        .stderr_has("unavailable")
        .stderr_has(&host);
    cli(&["prune", "--older-than", "1d"])
        .run()
        .code(3)
        .stderr_has("unavailable")
        .stderr_has(&host);
    wait_until_within(
        Duration::from_secs(30),
        || has("is unavailable") && has("; retrying in "),
        "run to say the journal is unavailable",
    );
    assert!(run.try_wait().unwrap().is_none(), "run ended: {stderr:?}");

    cluster.start_again();
    wait_until_within(
        Duration::from_secs(60),
        || has("is back (unavailable for "),
        "run to say the journal is back",
    );
    record_one("m2");
    // run's own line for m2: its outcome is recorded.
    wait_until_within(
        Duration::from_secs(30),
        || {
            stdout
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("\"m2\"") && l.contains("\"succeeded\""))
        },
        "m2, recorded after the restart, to run",
    );
    assert!(ran("m2"));
    assert!(run.try_wait().unwrap().is_none(), "run ended: {stderr:?}");
    send_signal(run.id(), "TERM");
    let status = run.wait().unwrap();
    out_reader.join().unwrap();
    err_reader.join().unwrap();
    let stdout = stdout.lock().unwrap().join("\n");
    let stderr = stderr.lock().unwrap().join("\n");
    eprintln!("run's stderr:\n{stderr}");
    assert_eq!(status.code(), Some(143), "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary", "{stdout}");
    assert_eq!(summary["claimed"], 2, "{stdout}");
    assert_eq!(summary["succeeded"], 2, "{stdout}");
    // Each line names the journal and says when the next try is.
    let line = stderr
        .lines()
        .find(|l| l.contains("; retrying in "))
        .unwrap();
    assert!(line.contains(&host), "{stderr}");
    let list = cli(&["list", "--json"]).run().code(0).stdout();
    assert_eq!(list.matches("\"succeeded\"").count(), 2, "{list}");
}

/// The journal on a PostgreSQL that takes TLS only (`hostssl`), with a
/// server certificate from a test CA: `sslmode=verify-full` with that CA
/// records and lists; another CA exits 3 saying why; a bad `sslmode` or a
/// client certificate exits 2; the password never shows.
#[test]
fn postgres_journal_over_tls_verify_full() {
    let certs = pg::TestCerts::generate("rebound CLI test CA");
    let cluster = pg::Pg::start_tls(&certs);
    let db = cluster.fresh_db("cli_tls");
    let db = db.rsplit('/').next().unwrap().to_owned();
    let env = Env::new();
    let ca = env.path("ca.pem");
    let other_ca = env.path("other-ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    std::fs::write(
        &other_ca,
        pg::TestCerts::generate("another CLI test CA").ca_pem,
    )
    .unwrap();
    let journal = |query: &str| {
        format!(
            "postgres://{}:{}@localhost:{}/{db}?{query}",
            pg::TLS_USER,
            pg::TLS_PASSWORD,
            cluster.port
        )
    };
    let cli = |journal: &str| {
        Cli::new().args(["recovery", "--journal", journal, "--initial-delay", "1ms"])
    };
    let good = journal(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    cli(&good)
        .args(record("m-tls", "web", "node-a", "node-b"))
        .args(["--kind", "timeout", "--message", "slow"])
        .run()
        .code(0)
        .stderr_lacks(pg::TLS_PASSWORD);
    let out = cli(&good).args(["list", "--json"]).run().code(0);
    let listed: Vec<Value> = out.stdout_json();
    assert_eq!(listed.len(), 1, "{}", out.stdout());
    assert_eq!(listed[0]["migration"], "m-tls");

    let wrong = journal(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    ));
    cli(&wrong)
        .args(["list"])
        .run()
        .code(3)
        .stderr_has("unavailable")
        .stderr_has("UnknownIssuer")
        .stderr_has("not signed by a CA of sslrootcert")
        .stderr_lacks(pg::TLS_PASSWORD);

    for (query, says) in [
        ("sslmode=verify", "sslmode=\"verify\" is not"),
        ("sslcert=/c.pem", "client certificates are not supported"),
        (
            &format!(
                "sslmode=verify-ca&sslrootcert={}",
                env.path("none.pem").display()
            ),
            "cannot be read",
        ),
    ] {
        cli(&journal(query))
            .args(["list"])
            .run()
            .code(2)
            .stderr_has(says)
            .stderr_lacks(pg::TLS_PASSWORD);
    }
}

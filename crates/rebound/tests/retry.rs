//! `rebound retry` end to end, with real child processes (`sh -c` scripts
//! that count their runs in a file) and tiny delays.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{Cli, alive, send_signal, wait_for_file, wait_until_within};

/// A temp dir holding the counter file a script bumps on each run.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A shell snippet that appends a line to `runs` and sets `$n` to the
    /// number of runs so far.
    fn count(&self) -> String {
        let runs = self.path("runs");
        format!("echo x >> '{0}'; n=$(wc -l < '{0}');", runs.display())
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

fn retry(args: &[&str], script: &str) -> Cli {
    Cli::new()
        .args(["retry"])
        .args(args)
        .args(["--", "sh", "-c", script])
}

#[test]
fn success_at_once_passes_output_through_and_prints_nothing_else() {
    let s = Scratch::new();
    let out = retry(&[], &format!("{} echo hello; echo warn >&2", s.count()))
        .run()
        .code(0)
        .stdout_has("hello")
        .stderr_has("warn")
        .stderr_lacks("rebound:");
    assert_eq!(out.stdout(), "hello\n");
    assert_eq!(s.runs(), 1);
}

#[test]
fn retries_until_the_command_succeeds() {
    let s = Scratch::new();
    let script = format!("{} echo run $n; [ $n -ge 3 ]", s.count());
    let out = retry(&["--attempts", "5", "--delay", "1ms"], &script)
        .run()
        .code(0)
        .stderr_has("rebound: attempt 1/5 failed (exit code 1); retrying in ")
        .stderr_has("rebound: attempt 2/5 failed (exit code 1); retrying in ")
        .stderr_has("rebound: attempt 3/5 succeeded");
    assert_eq!(out.stdout(), "run 1\nrun 2\nrun 3\n");
    assert_eq!(s.runs(), 3);
}

#[test]
fn ends_with_the_last_exit_code_when_attempts_run_out() {
    let s = Scratch::new();
    retry(
        &["--attempts", "2", "--delay", "1ms"],
        &format!("{} exit 7", s.count()),
    )
    .run()
    .code(7)
    .stderr_has("attempt 2/2 failed (exit code 7); no attempts left");
    assert_eq!(s.runs(), 2);
}

#[test]
fn preset_sets_the_attempt_count_and_flags_override_it() {
    let s = Scratch::new();
    // network = 4 attempts; tiny delays so the test stays fast.
    retry(
        &[
            "--preset",
            "network",
            "--delay",
            "1ms",
            "--max-delay",
            "2ms",
        ],
        &format!("{} exit 1", s.count()),
    )
    .run()
    .code(1)
    .stderr_has("attempt 4/4 failed");
    assert_eq!(s.runs(), 4);
}

#[test]
fn retry_on_exit_retries_only_the_listed_codes() {
    let s = Scratch::new();
    retry(
        &["--retry-on-exit", "75,111", "--delay", "1ms"],
        &format!("{} exit 3", s.count()),
    )
    .run()
    .code(3)
    .stderr_has("exit code 3 is not in --retry-on-exit 75,111");
    assert_eq!(s.runs(), 1);

    let s = Scratch::new();
    let script = format!("{} [ $n -ge 2 ] || exit 75", s.count());
    retry(&["--retry-on-exit", "75,111", "--delay", "1ms"], &script)
        .run()
        .code(0);
    assert_eq!(s.runs(), 2);
}

#[test]
fn json_writes_one_object_per_attempt_to_stderr() {
    let s = Scratch::new();
    let script = format!("{} echo out; [ $n -ge 3 ]", s.count());
    let out = retry(&["--json", "--attempts", "4", "--delay", "1ms"], &script)
        .run()
        .code(0);
    assert_eq!(out.stdout(), "out\nout\nout\n");
    let records: Vec<serde_json::Value> = out
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["attempt"], i + 1);
        assert_eq!(r["max_attempts"], 4);
    }
    assert_eq!(records[0]["outcome"], "retry");
    assert_eq!(records[0]["exit_code"], 1);
    assert!(records[0]["delay_ms"].as_f64().unwrap() <= 1.0);
    assert_eq!(records[2]["outcome"], "success");
    assert_eq!(records[2]["exit_code"], 0);
}

#[test]
fn json_reports_the_final_failure() {
    let out = retry(&["--json", "--attempts", "1"], "exit 4")
        .run()
        .code(4);
    let last: serde_json::Value =
        serde_json::from_str(out.stderr().lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "exhausted");
    assert_eq!(last["exit_code"], 4);
}

#[test]
fn bad_flags_and_invalid_policies_exit_2_name_the_flag_and_run_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["--multiplier", "0.5"], "--multiplier"),
        (&["--multiplier", "nan"], "--multiplier"),
        (&["--multiplier", "x"], "--multiplier"),
        (&["--attempts", "0"], "--attempts"),
        (&["--attempts", "-1"], "--attempts"),
        (&["--delay", "10s"], "--delay"),
        (&["--delay", "5x"], "--delay"),
        (&["--delay", "2s", "--max-delay", "1s"], "--max-delay"),
        (&["--jitter", "bogus"], "--jitter"),
        (&["--preset", "nope"], "--preset"),
        (&["--retry-on-exit", "0"], "--retry-on-exit"),
        (&["--retry-on-exit", "75,abc"], "--retry-on-exit"),
        (&["--deadline", "0s"], "--deadline"),
        (&["--deadline", "soon"], "--deadline"),
    ];
    for (flags, flag) in cases {
        let s = Scratch::new();
        let out = retry(flags, &s.count()).run();
        assert_eq!(
            out.output.status.code(),
            Some(2),
            "{flags:?}: {}",
            out.stderr()
        );
        assert!(out.stderr().contains(flag), "{flags:?}: {}", out.stderr());
        assert_eq!(s.runs(), 0, "{flags:?} ran the command");
    }
}

#[test]
fn a_missing_command_is_a_usage_error() {
    Cli::new().args(["retry"]).run().code(2).stderr_has("<CMD>");
    Cli::new().args(["retry", "--attempts", "2"]).run().code(2);
}

#[test]
fn an_unknown_program_exits_127_without_retrying() {
    Cli::new()
        .args([
            "retry",
            "--delay",
            "1ms",
            "--",
            "/nonexistent/rebound-retry-test",
        ])
        .run()
        .code(127)
        .stderr_has("cannot run `/nonexistent/rebound-retry-test`")
        .stderr_lacks("retrying");
}

#[test]
fn a_child_killed_by_a_signal_ends_with_128_plus_n() {
    retry(&["--attempts", "1"], "kill -KILL $$")
        .run()
        .code(128 + 9);
    retry(&["--attempts", "2", "--delay", "1ms"], "kill -TERM $$")
        .run()
        .code(128 + 15)
        .stderr_has("killed by signal 15");
}

#[test]
fn json_says_which_signal_killed_the_child() {
    let out = retry(
        &["--json", "--attempts", "2", "--delay", "1ms"],
        "kill -KILL $$",
    )
    .run()
    .code(128 + 9);
    let records: Vec<serde_json::Value> = out
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(r["exit_code"], 137, "{r}");
        assert_eq!(r["killed_by"], 9, "{r}");
    }
    assert_eq!(records[1]["outcome"], "exhausted");
    // A code above 128 that the child chose itself is no signal.
    let out = retry(&["--json", "--attempts", "1"], "exit 137")
        .run()
        .code(137);
    let last: serde_json::Value =
        serde_json::from_str(out.stderr().lines().last().unwrap()).unwrap();
    assert_eq!(last["killed_by"], serde_json::Value::Null);
}

#[test]
fn deadline_kills_a_running_attempt_and_exits_124() {
    let started = Instant::now();
    retry(&["--deadline", "300ms"], "exec sleep 30")
        .run()
        .code(124)
        .stderr_has("--deadline 300ms ran out after 1 attempt(s): the running attempt was killed");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn deadline_stops_before_a_retry_that_could_not_start_in_time() {
    let s = Scratch::new();
    let started = Instant::now();
    retry(
        &["--delay", "1h", "--max-delay", "1h", "--deadline", "60s"],
        &format!("{} exit 1", s.count()),
    )
    .run()
    .code(124)
    .stderr_has("the next retry could not start before it");
    assert_eq!(s.runs(), 1);
    // It stops at once: it does not sleep towards the deadline either.
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Starts `rebound retry` in the background.
fn spawn(args: &[&str], script: &str) -> Child {
    retry(args, script)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn stop_signals_are_forwarded_to_the_child_and_stop_the_retries() {
    // HUP and QUIT too: before, they ended rebound and left the child
    // running in its own process group.
    for (signal, number) in [("TERM", 15), ("INT", 2), ("HUP", 1), ("QUIT", 3)] {
        let s = Scratch::new();
        let ready = s.path("ready");
        let got = s.path("got");
        let script = format!(
            "{count} trap 'touch {got}; exit 9' {signal}; touch {ready}; while :; do sleep 0.01; done",
            count = s.count(),
            got = got.display(),
            ready = ready.display()
        );
        let child = spawn(&["--attempts", "5", "--delay", "1ms"], &script);
        wait_for_file(&ready);
        send_signal(child.id(), signal);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(9), "{signal}: {stderr}");
        assert!(got.exists(), "the child never saw SIG{signal}");
        assert_eq!(s.runs(), 1, "retried after SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("received signal {number}")),
            "{stderr}"
        );
    }
}

#[test]
fn sigint_between_attempts_stops_at_once_with_130() {
    let s = Scratch::new();
    let mut child = spawn(
        &["--attempts", "3", "--delay", "1h", "--max-delay", "1h"],
        &format!("{} exit 1", s.count()),
    );
    // The retry line is printed just before rebound starts its sleep.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("retrying in") {
        let mut line = String::new();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "stderr closed: {seen}"
        );
        seen.push_str(&line);
    }
    let started = Instant::now();
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        seen.contains("while waiting to retry after attempt 1"),
        "{seen}"
    );
    assert_eq!(s.runs(), 1);
}

#[test]
fn report_lines_are_exact_without_jitter() {
    let out = retry(
        &["--jitter", "none", "--delay", "1ms", "--multiplier", "2"],
        "exit 1",
    )
    .run()
    .code(1);
    assert_eq!(
        out.stderr(),
        "rebound: attempt 1/3 failed (exit code 1); retrying in 1ms\n\
         rebound: attempt 2/3 failed (exit code 1); retrying in 2ms\n\
         rebound: attempt 3/3 failed (exit code 1); no attempts left\n"
    );
}

#[test]
fn json_reports_a_deadline_stop() {
    let out = retry(&["--json", "--deadline", "200ms"], "exec sleep 30")
        .run()
        .code(124);
    let first: serde_json::Value =
        serde_json::from_str(out.stderr().lines().next().unwrap()).unwrap();
    assert_eq!(first["outcome"], "deadline");
    assert_eq!(first["attempt"], 1);
}

#[test]
fn deadline_kills_what_the_attempt_started_too() {
    // Regression: only the child (sh) was killed; its `sleep` kept running
    // and held rebound's stdout open for 30 s.
    let s = Scratch::new();
    let pid_file = s.path("pid");
    let script = format!(
        "sleep 30 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let started = Instant::now();
    detached(retry(&["--deadline", "500ms"], &script))
        .code(124)
        .stderr_has("the running attempt was killed");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the output stayed open until the grandchild ended"
    );
    let grandchild = std::fs::read_to_string(&pid_file).unwrap();
    let grandchild = grandchild.trim();
    wait_until_within(
        Duration::from_secs(5),
        || !alive(grandchild),
        &format!("the grandchild {grandchild} to end"),
    );
}

/// A script printing `own-group` when it leads its own process group, and
/// `parent-group` when it shares its parent's (rebound's).
const PROCESS_GROUP_PROBE: &str = "\
read -r _ _ _ _ mine _ < /proc/$$/stat; read -r _ _ _ _ parent _ < /proc/$PPID/stat; \
if [ \"$mine\" = \"$$\" ]; then echo own-group; \
elif [ \"$mine\" = \"$parent\" ]; then echo parent-group; else echo other-group; fi";

/// Runs `cli` outside the foreground of any terminal (in a process group
/// of its own), as in CI, whether or not `cargo test` runs in a terminal.
fn detached(cli: Cli) -> support::Outcome {
    use std::os::unix::process::CommandExt;
    let output = cli.command().process_group(0).output().unwrap();
    support::Outcome { output }
}

#[test]
fn outside_a_terminal_the_command_leads_its_own_process_group() {
    let out = detached(retry(&[], PROCESS_GROUP_PROBE)).code(0);
    assert_eq!(out.stdout(), "own-group\n");
}

#[test]
fn in_a_terminal_the_command_stays_in_the_foreground_group() {
    // So that it can read the terminal (even with stdin redirected: a
    // password prompt opens /dev/tty) and gets its Ctrl-C directly.
    let s = Scratch::new();
    let probe = s.path("probe.sh");
    std::fs::write(&probe, PROCESS_GROUP_PROBE).unwrap();
    let bin = env!("CARGO_BIN_EXE_rebound");
    let probe = probe.display();
    let inner = format!(
        "'{bin}' retry --attempts 1 -- sh '{probe}'; \
         '{bin}' retry --attempts 1 -- sh '{probe}' < /dev/null"
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!("this test needs `script` (util-linux) for a pseudo-terminal: {err}")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("parent-group").count(), 2, "{text}");
}

//! `rebound retry` end to end, with real child processes (`sh -c` scripts
//! that count their runs in a file) and tiny delays.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use support::{
    Cli, Outcome, alive, first_json, last_json, on_a_terminal, read_pid, send_signal,
    spawn_logging, stderr_until, wait_for_file, wait_until_within,
};

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

    /// [`retry`] of `script` preceded by [`Scratch::count`].
    fn retry(&self, args: &[&str], script: &str) -> Cli {
        retry(args, &format!("{} {script}", self.count()))
    }

    /// Asserts that `cli` exits 2 naming `flag`, and that the command did
    /// not run; `flags` names the case.
    #[track_caller]
    fn refused(&self, cli: Cli, flags: &[&str], flag: &str) -> Outcome {
        let out = cli
            .run()
            .context(format!("{flags:?}"))
            .code(2)
            .stderr_has(flag);
        assert_eq!(self.runs(), 0, "{flags:?} ran the command");
        out
    }
}

fn retry(args: &[&str], script: &str) -> Cli {
    Cli::new()
        .args(["retry"])
        .args(args)
        .workload(["sh", "-c", script])
}

#[test]
fn success_at_once_passes_output_through_and_prints_nothing_else() {
    let s = Scratch::new();
    let out = s
        .retry(&[], "echo hello; echo warn >&2")
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
    let out = s
        .retry(
            &["--attempts", "5", "--delay", "1ms"],
            "echo run $n; [ $n -ge 3 ]",
        )
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
    s.retry(&["--attempts", "2", "--delay", "1ms"], "exit 7")
        .run()
        .code(7)
        .stderr_has("attempt 2/2 failed (exit code 7); no attempts left");
    assert_eq!(s.runs(), 2);
}

#[test]
fn preset_sets_the_attempt_count_and_flags_override_it() {
    let s = Scratch::new();
    // network = 4 attempts; tiny delays so the test stays fast.
    let flags = [
        "--preset",
        "network",
        "--delay",
        "1ms",
        "--max-delay",
        "2ms",
    ];
    s.retry(&flags, "exit 1")
        .run()
        .code(1)
        .stderr_has("attempt 4/4 failed");
    assert_eq!(s.runs(), 4);
}

#[test]
fn retry_on_exit_retries_only_the_listed_codes() {
    let flags = ["--retry-on-exit", "75,111", "--delay", "1ms"];
    let s = Scratch::new();
    s.retry(&flags, "exit 3")
        .run()
        .code(3)
        .stderr_has("exit code 3 is not in --retry-on-exit 75,111");
    assert_eq!(s.runs(), 1);

    let s = Scratch::new();
    s.retry(&flags, "[ $n -ge 2 ] || exit 75").run().code(0);
    assert_eq!(s.runs(), 2);
}

#[test]
fn json_writes_one_object_per_attempt_to_stderr() {
    let s = Scratch::new();
    let flags = ["--json", "--attempts", "4", "--delay", "1ms"];
    let out = s.retry(&flags, "echo out; [ $n -ge 3 ]").run().code(0);
    assert_eq!(out.stdout(), "out\nout\nout\n");
    let records = out.stderr_json();
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
    let last = last_json(&out.stderr());
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
        s.refused(s.retry(flags, ""), flags, flag);
    }
}

#[test]
fn a_missing_command_is_a_usage_error() {
    Cli::new().args(["retry"]).usage_error("<CMD>");
    Cli::new().args(["retry", "--attempts", "2"]).run().code(2);
}

#[test]
fn an_unknown_program_exits_127_without_retrying() {
    Cli::new()
        .args(["retry", "--delay", "1ms"])
        .workload(["/nonexistent/rebound-retry-test"])
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
    let records = out.stderr_json();
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
    let last = last_json(&out.stderr());
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
    s.retry(
        &["--delay", "1h", "--max-delay", "1h", "--deadline", "60s"],
        "exit 1",
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
    spawn_logging(retry(args, script))
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
    let (retrying, mut seen, mut stderr) = stderr_until(&mut child, "retrying in");
    assert!(retrying, "stderr closed: {seen}");
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
    let first = first_json(&out.stderr());
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
    let grandchild = read_pid(&pid_file);
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
fn detached(cli: Cli) -> Outcome {
    use std::os::unix::process::CommandExt;
    Outcome::from(cli.command().process_group(0).output().unwrap())
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
    let text = on_a_terminal(&inner).code(0).stdout();
    assert_eq!(text.matches("parent-group").count(), 2, "{text}");
}

#[test]
fn durations_take_a_bare_number_of_seconds_and_jitter_any_case() {
    // `--max-delay 30` was refused ("time unit needed"); it is 30 s now,
    // as in every other duration of rebound.
    let out = retry(
        &[
            "--jitter",
            "NONE",
            "--delay",
            "0.001",
            "--max-delay",
            "30",
            "--attempts",
            "2",
        ],
        "exit 1",
    )
    .run()
    .code(1);
    assert_eq!(
        out.stderr(),
        "rebound: attempt 1/2 failed (exit code 1); retrying in 1ms\n\
         rebound: attempt 2/2 failed (exit code 1); no attempts left\n"
    );
    // The bare number was read as seconds, not refused.
    retry(&["--delay", "40s", "--max-delay", "30"], "exit 0")
        .usage_error("--max-delay: max delay (30s) is below the initial delay (40s)");
    retry(
        &["--delay", "1ms", "--max-delay", "30s", "--jitter", "Full"],
        "exit 0",
    )
    .run()
    .code(0);
    retry(&["--deadline", "0"], "exit 0").usage_error("--deadline");
}

// --- --breaker-file: one breaker shared by processes ---------------------

/// `rebound retry --breaker-file` with one attempt per run.
fn breaker_run(s: &Scratch, flags: &[&str], script: &str) -> Cli {
    let file = s.path("breaker.json");
    let mut args = vec!["--attempts", "1", "--breaker-file", file.to_str().unwrap()];
    args.extend_from_slice(flags);
    retry(&args, script)
}

/// The breaker file as JSON.
fn breaker_state(s: &Scratch) -> serde_json::Value {
    let text = std::fs::read_to_string(s.path("breaker.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Moves the end of the cool-down into the past, as if it had passed (the
/// test reads and writes the state instead of waiting for the clock).
fn end_cooldown(s: &Scratch) {
    let mut state = breaker_state(s);
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    state["open_until"] = humantime::format_rfc3339_millis(past).to_string().into();
    std::fs::write(s.path("breaker.json"), state.to_string()).unwrap();
}

/// Seconds from now until an RFC 3339 time in the state.
fn secs_until(state: &serde_json::Value, field: &str) -> u64 {
    let at = humantime::parse_rfc3339(state[field].as_str().unwrap()).unwrap();
    at.duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
}

#[test]
fn breaker_opens_after_n_failed_runs_and_refuses_without_running_the_command() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let flags = ["--breaker-failures", "2", "--breaker-cooldown", "1h"];
    for run in 1..=2 {
        breaker_run(&s, &flags, &format!("{} exit 7", s.count()))
            .run()
            .code(7);
        assert_eq!(breaker_state(&s)["consecutive_failures"], run);
    }
    let state = breaker_state(&s);
    assert_eq!(state["version"], 1);
    assert_eq!(state["state"], "open");
    assert_eq!(state["cooldown"], "1h");
    let mode = std::fs::metadata(s.path("breaker.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Open: the command would create a file; it is not run.
    let touched = s.path("touched");
    let out = breaker_run(&s, &flags, &format!("touch '{}'", touched.display()))
        .run()
        .code(75)
        .stderr_has("rebound: error: breaker open (--breaker-file ")
        .stderr_has("2 failed run(s) in a row); not running the command until 20");
    // Whole seconds, rounded up: "1h" unless a loaded machine took more
    // than a second between the two runs.
    let stderr = out.stderr();
    assert!(
        stderr.contains("Z (in 1h)") || stderr.contains("Z (in 59m "),
        "{stderr}"
    );
    assert!(!touched.exists(), "the command ran: {stderr}");
    assert_eq!(s.runs(), 2);
    // --json adds an object saying until when.
    let out = breaker_run(&s, &["--json"], "exit 0").run().code(75);
    let first = first_json(&out.stderr());
    assert_eq!(first["outcome"], "breaker_open");
    assert_eq!(first["state"], "open");
    assert!(
        first["retry_in_ms"].as_u64().unwrap() > 3_500_000,
        "{first}"
    );
    // Only the one file was written in the directory.
    let names: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["breaker.json", "runs"]);
}

#[test]
fn a_success_resets_the_count_of_failed_runs() {
    let s = Scratch::new();
    let flags = ["--breaker-failures", "2"];
    breaker_run(&s, &flags, "exit 1").run().code(1);
    breaker_run(&s, &flags, "exit 0").run().code(0);
    breaker_run(&s, &flags, "exit 1").run().code(1);
    let state = breaker_state(&s);
    assert_eq!(
        (
            state["state"].as_str(),
            state["consecutive_failures"].as_u64()
        ),
        (Some("closed"), Some(1))
    );
    // A command that cannot be started says nothing about the endpoint.
    let file = s.path("breaker.json");
    Cli::new()
        .args(["retry", "--breaker-failures", "2", "--breaker-file"])
        .args([file])
        .workload(["/nonexistent/rebound-breaker"])
        .run()
        .code(127);
    assert_eq!(breaker_state(&s)["state"], "closed");
}

#[test]
fn half_open_lets_exactly_one_of_several_processes_through_and_success_closes() {
    let s = Scratch::new();
    let flags = ["--breaker-failures", "1", "--breaker-cooldown", "1h"];
    breaker_run(&s, &flags, "exit 1").run().code(1);
    assert_eq!(breaker_state(&s)["state"], "open");
    end_cooldown(&s);
    // Four processes at once; the trial blocks until the test releases it,
    // so the others all start while it runs.
    let release = s.path("release");
    let script = format!(
        "{} while [ ! -e '{}' ]; do sleep 0.02; done",
        s.count(),
        release.display()
    );
    let mut children: Vec<Child> = (0..4)
        .map(|_| spawn_logging(breaker_run(&s, &flags, &script)))
        .collect();
    let mut refused = Vec::new();
    wait_until_within(
        Duration::from_secs(60),
        || {
            let mut i = 0;
            while i < children.len() {
                if children[i].try_wait().unwrap().is_some() {
                    refused.push(children.remove(i));
                } else {
                    i += 1;
                }
            }
            refused.len() == 3
        },
        "three of the four processes to be refused",
    );
    assert_eq!(s.runs(), 1, "exactly one process ran the command");
    let state = breaker_state(&s);
    assert_eq!(state["state"], "half-open");
    assert_eq!(state["trial_pid"], children[0].id());
    for child in refused {
        Outcome::of(child)
            .code(75)
            .stderr_has("a trial run (pid ")
            .stderr_has("at the latest 20");
    }
    std::fs::write(&release, "").unwrap();
    Outcome::of(children.pop().unwrap()).code(0);
    let state = breaker_state(&s);
    assert_eq!(state["state"], "closed");
    assert_eq!(state["consecutive_failures"], 0);
    // Closed: the next run goes through.
    breaker_run(&s, &flags, "exit 0").run().code(0);
}

#[test]
fn a_failed_trial_reopens_the_breaker_for_twice_as_long() {
    let s = Scratch::new();
    let flags = ["--breaker-failures", "1", "--breaker-cooldown", "10m"];
    breaker_run(&s, &flags, "exit 1").run().code(1);
    let first = breaker_state(&s);
    assert_eq!(first["cooldown"], "10m");
    assert!((590..=600).contains(&secs_until(&first, "open_until")));
    end_cooldown(&s);
    breaker_run(&s, &flags, &format!("{} exit 3", s.count()))
        .run()
        .code(3);
    assert_eq!(s.runs(), 1, "the trial ran");
    let second = breaker_state(&s);
    assert_eq!(second["state"], "open");
    assert_eq!(second["cooldown"], "20m");
    assert_eq!(second["openings"], 2);
    assert!((1190..=1200).contains(&secs_until(&second, "open_until")));
    assert!(second.get("trial_until").is_none(), "{second}");
    let out = breaker_run(&s, &flags, "exit 0").run().code(75);
    let stderr = out.stderr();
    assert!(
        stderr.contains("(in 20m)") || stderr.contains("(in 19m "),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_breaker_file_exits_2_naming_it_and_runs_nothing() {
    for (text, says) in [
        (
            "{\"version\": 1, \"state\": ",
            "not a rebound breaker state file (EOF while parsing",
        ),
        (
            "@@",
            "not a rebound breaker state file (expected value at line 1 column 1)",
        ),
        (
            "{\"version\": 9, \"state\": \"open\", \"consecutive_failures\": 1}",
            "version 9 is not supported",
        ),
        (
            "{\"version\": 1, \"state\": \"ajar\", \"consecutive_failures\": 1}",
            "invalid \"state\"",
        ),
        (
            "{\"version\": 1, \"state\": \"open\", \"consecutive_failures\": 1, \"open_until\": \"tomorrow\"}",
            "invalid \"open_until\"",
        ),
    ] {
        let s = Scratch::new();
        let file = s.path("breaker.json");
        std::fs::write(&file, text).unwrap();
        breaker_run(&s, &[], &s.count())
            .run()
            .context(text)
            .code(2)
            .stderr_has(&format!("--breaker-file {}: ", file.display()))
            .stderr_has(says)
            .stderr_has("remove the file to reset the breaker");
        assert_eq!(s.runs(), 0);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text,
            "the file was changed"
        );
    }
    // A directory cannot be the state file.
    let s = Scratch::new();
    let flags = ["--breaker-file", s.dir.path().to_str().unwrap()];
    s.refused(s.retry(&flags, ""), &flags, "--breaker-file ");
}

#[test]
fn bad_breaker_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--breaker-failures", "0"], "--breaker-failures"),
        (&["--breaker-failures", "-1"], "--breaker-failures"),
        (&["--breaker-cooldown", "0"], "--breaker-cooldown"),
        (&["--breaker-cooldown", "0s"], "--breaker-cooldown"),
        (&["--breaker-cooldown", "200years"], "--breaker-cooldown"),
        (&["--breaker-cooldown", "soon"], "--breaker-cooldown"),
        (&["--breaker-trial-lease", "0"], "--breaker-trial-lease"),
    ];
    for (flags, flag) in cases {
        let s = Scratch::new();
        s.refused(breaker_run(&s, flags, &s.count()), flags, flag);
        assert!(!s.path("breaker.json").exists(), "{flags:?} wrote the file");
    }
    // The breaker settings need the file.
    let s = Scratch::new();
    let flags = ["--breaker-failures", "3"];
    s.refused(s.retry(&flags, ""), &flags, "--breaker-file");
}

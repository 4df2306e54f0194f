//! `rebound init` and `rebound schema` through the real binary: spec
//! errors, exit codes, progress output, the workload's signals and exit
//! code, orphan reaping (as a subreaper and as PID 1 in a PID namespace).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{
    Cli, Outcome, alive, exit_code, free_port, init_cli, on_a_terminal, one_step_spec as one_step,
    quick_spec, read_pid, require_unshare, wait_until_within, write_file,
};

fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
    write_file(dir, "spec.yaml", yaml)
}

/// `rebound init SPEC -- WORKLOAD...`
fn init_then(spec: &Path, workload: &[&str]) -> Cli {
    init_cli(&[], spec).workload(workload)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn quickstart_example_runs_then_the_workload() {
    // The example as shipped, with its /tmp files moved into a directory of
    // this test's own, so that two test runs at once on one machine do not
    // share the failure counter of the `flaky` step.
    let text = std::fs::read_to_string(repo_root().join("examples/quickstart.yaml")).unwrap();
    assert!(
        text.contains("/tmp/rebound-quickstart."),
        "the example's paths changed"
    );
    let dir = tempfile::tempdir().unwrap();
    let moved = text.replace(
        "/tmp/rebound-quickstart.",
        &format!("{}/rebound-quickstart.", dir.path().display()),
    );
    let spec = write_spec(dir.path(), &moved);
    init_then(&spec, &["echo", "workload started"])
        .run()
        .code(0)
        .stdout_has("workload started")
        .stdout_has("[flaky] attempt 3")
        .stderr_has("rebound: [flaky] ok (3 attempts")
        .stderr_has("init done");
}

#[test]
fn every_example_passes_check() {
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let mut args = vec![
                "init".into(),
                "--check".into(),
                path.clone().into_os_string(),
            ];
            if path.ends_with("zlayer-deployment.yaml") {
                args.extend(["--service".into(), "api".into()]);
            }
            Cli::new().args(args).run().code(0).stdout_has(": ok");
        }
    }
}

#[test]
fn check_rejects_an_invalid_spec_with_exit_2_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "init:\n  steps:\n    - id: db\n      uses: init.wait_tcp\n      with: { host: db, port: 70000 }\n",
    );
    let out = init_cli(&["--check"], &spec).run().code(2);
    let stderr = out.stderr().replace(&spec.display().to_string(), "SPEC");
    assert_eq!(
        stderr.trim_end(),
        "rebound: error: invalid spec: SPEC:5:31: init.steps[0].with.port: port must be 1-65535, got 70000"
    );
}

#[test]
fn invalid_spec_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let yaml = format!(
        "init:\n  steps:\n    - id: first\n      uses: init.run\n      with: {{ command: \"touch '{}'\" }}\n    - id: bad\n      uses: init.nope\n      with: {{}}\n",
        marker.display()
    );
    let spec = write_spec(dir.path(), &yaml);
    init_then(&spec, &["true"])
        .usage_error("unknown action `init.nope`, expected one of: init.wait_tcp");
    assert!(!marker.exists(), "a step ran although the spec is invalid");
}

#[test]
fn missing_spec_file_is_exit_2() {
    Cli::new()
        .args(["init", "/nonexistent/rebound.yaml"])
        .usage_error("/nonexistent/rebound.yaml");
}

#[test]
fn failed_step_is_exit_3_with_summary() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: 'echo oops >&2; exit 9' }",
        "      retry: 1\n",
    );
    init_then(&spec, &["echo", "never"])
        .run()
        .code(3)
        .stderr_has("[only] oops")
        .stderr_has("FAILED    only  2 attempts")
        .stderr_has("init failed at step `only`")
        .stderr_lacks("never");
}

#[test]
fn warn_and_continue_go_on_to_the_workload_with_bounded_lines() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("echo {} >&2; exit 4", "x".repeat(300));
    let spec = write_spec(
        dir.path(),
        &format!(
            "init:\n  steps:\n    - id: loud\n      uses: init.run\n      with: {{ command: \"{long}\" }}\n      on_failure: warn\n    - id: quiet\n      uses: init.run\n      with: {{ command: 'exit 5' }}\n      on_failure: continue\n"
        ),
    );
    let out = init_then(&spec, &["echo", "workload-ran"])
        .run()
        .code(0)
        .stdout_has("workload-ran")
        .stderr_has("rebound: [loud] warning: command `echo xxx")
        .stderr_has("(on_failure: warn, going on)")
        .stderr_has("rebound: [quiet] failed, going on (on_failure: continue)")
        .stderr_has("warned    loud")
        .stderr_has("continued quiet");
    // The 300-character command is cut in rebound's own lines (the
    // command's output line is the command's business).
    for line in out.stderr().lines().filter(|l| l.starts_with("rebound: [")) {
        assert!(line.chars().count() < 400, "unbounded line: {line}");
    }
    assert!(
        out.stderr().contains("…` exited with code 4: xxx"),
        "the command is not cut with an ellipsis: {}",
        out.stderr()
    );
}

// Plain output (not a terminal) says every 15 s that a long step is still
// running, so a container log does not look hung. Takes 16 s of real time:
// it checks the real interval wiring of the binary, not a backoff.
#[test]
fn plain_output_says_a_long_step_is_still_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "init:\n  steps:\n    - id: slow\n      uses: init.wait_file\n      with: {{ path: '{}' }}\n      timeout: 16s\n",
            dir.path().join("never").display()
        ),
    );
    init_cli(&[], &spec)
        .run()
        .code(124)
        .stderr_has("rebound: [slow] still waiting for file ")
        .stderr_has("never (15s)");
}

#[test]
fn step_timeout_is_exit_124() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: 'sleep 30' }",
        "      timeout: 300ms\n",
    );
    init_cli(&[], &spec)
        .run()
        .code(124)
        .stderr_has("step `only` timed out after 300ms waiting for command `sleep 30`");
}

#[test]
fn a_wait_step_timeout_says_what_the_wait_last_saw() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let spec = write_spec(
        dir.path(),
        &format!(
            "init:\n  steps:\n    - id: db\n      uses: init.wait_tcp\n      with: {{ host: 127.0.0.1, port: {closed} }}\n      timeout: 300ms\n"
        ),
    );
    init_cli(&[], &spec)
        .run()
        .code(124)
        .stderr_has(&format!(
            "step `db` timed out after 300ms waiting for tcp 127.0.0.1:{closed} (1 attempt; last error: Connection refused (os error 111))"
        ));
}

#[test]
fn json_prints_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(dir.path(), "{ command: ['echo', 'hi'] }", "");
    let out = init_cli(&["--json"], &spec).run().code(0);
    let kinds: Vec<String> = out
        .stdout_json()
        .iter()
        .map(|v| v["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "step_started",
            "output",
            "step_succeeded",
            "init_finished",
            "summary"
        ]
    );
}

#[test]
fn deployment_file_needs_service_when_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        "version: v1\ndeployment: d\nservices:\n  a:\n    init: { steps: [] }\n  b:\n    init: { steps: [] }\n",
    );
    init_cli(&[], &spec).usage_error("pick one with --service NAME");
    init_cli(&[], &spec).args(["--service", "b"]).run().code(0);
}

#[test]
fn workload_exit_code_is_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    init_then(&spec, &["sh", "-c", "exit 7"]).run().code(7);
    init_then(&spec, &["sh", "-c", "kill -KILL $$"])
        .run()
        .code(128 + 9);
}

#[test]
fn missing_workload_program_is_127_and_unexecutable_is_126() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    init_then(&spec, &["/nonexistent/workload"])
        .run()
        .code(127)
        .stderr_has("cannot start the workload `/nonexistent/workload`");
    let dir_path = dir.path().to_str().unwrap();
    init_then(&spec, &[dir_path])
        .run()
        .code(126)
        .stderr_has("cannot start the workload");
}

/// A `rebound` running in the background, its stdout piped (wait for it
/// with [`exit_code`]).
struct Running {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    /// Stdout lines printed before the `ready` line.
    before: Vec<String>,
}

/// Starts `rebound` in the background and returns once it printed a stdout
/// line equal to `ready` (it is killed and the test fails if it ends
/// first).
// The child is handed to the caller, which waits for it (`exit_code`).
#[allow(clippy::zombie_processes)]
fn spawn_until(mut cmd: Command, ready: &str) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut before = Vec::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rebound ended before printing {ready:?}; it printed {before:?}");
        }
        if line.trim_end() == ready {
            return Running { child, out, before };
        }
        before.push(line.trim_end().to_owned());
    }
}

/// Starts `rebound init` with one quick step and the workload `sh -c
/// SCRIPT`, and returns once the workload printed `ready`.
fn start_workload(script: &str) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let cmd = init_then(&spec, &["sh", "-c", script]).command();
    (dir, spawn_until(cmd, "ready"))
}

/// Sends `sig` to process `pid`.
fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

#[test]
fn every_supervisor_signal_is_forwarded_to_the_workload() {
    let signals = [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
    ];
    for (i, (sig, name)) in signals.into_iter().enumerate() {
        let code = 40 + i as i32;
        let script = format!(
            "trap 'echo got {name}; exit {code}' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let (_dir, mut running) = start_workload(&script);
        signal(running.child.id(), sig);
        assert_eq!(exit_code(&mut running.child), code, "signal {name}");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut running.out, &mut rest).unwrap();
        assert!(rest.contains(&format!("got {name}")), "{name}: {rest:?}");
    }
}

#[test]
fn workload_killed_by_a_forwarded_sigterm_exits_143() {
    let (_dir, mut running) = start_workload("echo ready; exec sleep 30");
    signal(running.child.id(), Signal::SIGTERM);
    assert_eq!(exit_code(&mut running.child), 143);
}

#[test]
fn stop_signals_during_the_init_cancel_it_and_kill_the_step() {
    // SIGHUP and SIGQUIT too: before, their default action ended rebound and
    // left the step's command running in its own process group.
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
        (Signal::SIGQUIT, 131),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let yaml_with = format!(
            "{{ command: \"sleep 1000 & echo $! > '{}'; echo ready; wait\" }}",
            pids.display()
        );
        let spec = one_step(dir.path(), &yaml_with, "");
        let marker = dir.path().join("workload-ran");
        let touch = format!("touch '{}'", marker.display());
        let cmd = init_then(&spec, &["sh", "-c", &touch]).command();
        let Running { mut child, .. } = spawn_until(cmd, "[only] ready");
        signal(child.id(), sig);
        assert_eq!(exit_code(&mut child), code, "{sig:?}");
        assert!(!marker.exists(), "the workload ran after a cancelled init");
        let sleeper = read_pid(&pids);
        // The kill runs as rebound exits; allow a bounded moment for it.
        wait_until_within(
            Duration::from_secs(5),
            || !alive(sleeper),
            &format!("the step's child {sleeper} to end after {sig:?}"),
        );
    }
}

/// Zombie children of `parent`, from /proc.
fn zombies_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if state == Some("Z") && ppid == Some(parent.to_string().as_str()) {
            if let Some(pid) = head.split_whitespace().next().and_then(|p| p.parse().ok()) {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn orphans_of_the_workload_are_adopted_and_reaped() {
    // The subshell exits at once, orphaning the inner `sh`, which must be
    // re-parented to rebound (a child subreaper), report its new parent,
    // exit, and be reaped.
    let script = "(sh -c 'sleep 0.2; read -r a b c ppid rest < /proc/$$/stat; echo orphan-parent=$ppid' &); \
        sleep 0.7; echo ready; sleep 30";
    let (_dir, running) = start_workload(script);
    let Running {
        mut child,
        before: seen,
        ..
    } = running;
    let zombies = zombies_of(child.id());
    signal(child.id(), Signal::SIGTERM);
    assert_eq!(exit_code(&mut child), 143);
    assert!(
        seen.contains(&format!("orphan-parent={}", child.id())),
        "the orphan was not adopted by rebound: {seen:?}"
    );
    assert!(zombies.is_empty(), "unreaped orphans: {zombies:?}");
}

#[test]
fn as_pid_1_in_a_container_shape() {
    // A PID namespace makes rebound PID 1, as in a container whose
    // ENTRYPOINT is `rebound init SPEC --`.
    require_unshare();
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(dir.path(), "{ command: 'echo init pid $PPID' }", "");
    // The workload leaves an orphan that exits, checks that it was reaped
    // (no zombie under PID 1), and exits with a code of its own.
    let script = "(sleep 0.1 &); sleep 0.5; \
        z=$(grep -l '^[0-9]* ([^)]*) Z 1 ' /proc/[0-9]*/stat 2>/dev/null | wc -l); \
        echo zombies=$z; exit 5";
    Outcome::command(
        Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--mount-proc",
                env!("CARGO_BIN_EXE_rebound"),
            ])
            .args(["init".as_ref(), spec.as_os_str()])
            .args(["--", "sh", "-c", script]),
        "unshare (util-linux)",
    )
    .code(5)
    .stdout_has("[only] init pid 1")
    .stdout_has("zombies=0");
}

#[test]
fn schema_prints_a_json_schema_naming_every_action() {
    let out = Cli::new().args(["schema"]).run().code(0);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(schema["title"], "rebound init spec");
    let text = out.stdout();
    for name in rebound_init::actions::ActionSpec::NAMES {
        assert!(text.contains(name), "{name}");
    }
}

#[test]
fn live_progress_on_a_terminal() {
    // `script` (util-linux) gives rebound a pseudo-terminal, so the
    // indicatif display is used instead of plain lines.
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: 'echo from-step' }",
        "      retry: 1\n",
    );
    let inner = format!(
        "'{}' init '{}' -- echo workload-ran",
        env!("CARGO_BIN_EXE_rebound"),
        spec.display()
    );
    on_a_terminal(&inner)
        .code(0)
        .stdout_has("[only] from-step")
        .stdout_has("init done")
        .stdout_has("workload-ran")
        // Plain mode would print this line; the live display does not.
        .stdout_lacks("rebound: [only] command");
}

#[test]
fn a_password_in_the_s3_endpoint_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let dest = dir.path().join("out");
    let spec = write_spec(
        dir.path(),
        &format!(
            "init:\n  steps:\n    - id: pull\n      uses: init.s3_pull\n      with: {{ bucket: b, key: k, destination: {}, endpoint: 'http://minio:3ndp0int-pw@127.0.0.1:{closed}' }}\n",
            dest.display()
        ),
    );
    for json in [false, true] {
        let mut cli = Cli::new()
            .args(["init"])
            .env("AWS_ACCESS_KEY_ID", "AKIAREBOUNDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "s3cr3t-access-key");
        if json {
            cli = cli.args(["--json"]);
        }
        let out = cli
            .args([spec.as_os_str()])
            .run()
            .code(3)
            .stderr_lacks("3ndp0int-pw")
            .stderr_lacks("s3cr3t-access-key")
            .stdout_lacks("3ndp0int-pw")
            .stdout_lacks("s3cr3t-access-key");
        assert!(
            out.all().contains("minio:***@127.0.0.1"),
            "the failure quotes the endpoint, redacted\n{}",
            out.all()
        );
    }
}

#[test]
fn a_number_beyond_64_bits_is_out_of_range_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: 'true' }",
        "      retry: 99999999999999999999\n",
    );
    init_cli(&["--check"], &spec)
        .usage_error(
            "spec.yaml:6:14: init.steps[0].retry: integer `99999999999999999999` is out of range",
        )
        .stderr_lacks("any YAML value");
}

#[test]
fn json_ends_with_an_interrupted_event_when_a_signal_cancels_the_init() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: \"echo ready; exec sleep 1000\" }",
        "",
    );
    let Running {
        mut child, mut out, ..
    } = spawn_until(
        init_cli(&["--json"], &spec).command(),
        r#"{"event":"output","step":"only","stream":"stdout","line":"ready"}"#,
    );
    signal(child.id(), Signal::SIGTERM);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(exit_code(&mut child), 143);
    let last: serde_json::Value =
        serde_json::from_str(rest.lines().last().expect("an event after the signal")).unwrap();
    assert_eq!(last["event"], "interrupted", "{rest}");
    assert_eq!(last["signal"], "SIGTERM");
    assert_eq!(last["exit_code"], 143);
}

/// `rebound init --grace G`: a workload that exits at once leaving a child
/// that ignores SIGTERM; rebound SIGKILLs it after G. Returns how long
/// rebound took and the child's pid.
fn grace_run(dir: &Path, grace: &str) -> (Duration, u32) {
    let spec = write_spec(dir, "init:\n  steps: []\n");
    let pid_file = dir.join(format!("leftover-{grace}.pid"));
    // The child ignores SIGTERM before it writes its pid; the workload
    // exits once the pid is there.
    let script = format!(
        "sh -c 'trap \"\" TERM; echo $$ > {0}; exec sleep 1000' & while [ ! -s {0} ]; do sleep 0.01; done; exit 0",
        pid_file.display()
    );
    let started = Instant::now();
    init_cli(&["--grace", grace], &spec)
        .workload(["sh", "-c", &script])
        .run()
        .code(0);
    (started.elapsed(), read_pid(&pid_file))
}

#[test]
fn grace_takes_the_one_duration_grammar_a_bare_number_is_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // `0.5` (refused by humantime, which wants a unit) and `500ms` are the
    // same grace: the leftover that ignores SIGTERM is killed after it.
    for grace in ["0.5", "500ms"] {
        let (elapsed, pid) = grace_run(dir.path(), grace);
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(10),
            "--grace {grace}: took {elapsed:?}"
        );
        assert!(!alive(pid), "--grace {grace}: the leftover {pid} survived");
    }
    let spec = write_spec(dir.path(), "init:\n  steps: []\n");
    init_cli(&["--grace=-1"], &spec)
        .workload(["true"])
        .usage_error("negative duration \"-1\"");
}

#[test]
fn a_retry_policy_step_runs_from_the_cli_and_says_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    // Fails twice, then succeeds: three attempts 10 ms apart.
    let count = dir.path().join("count");
    let command = format!(
        "c=$(cat '{0}' 2>/dev/null || echo 0); c=$((c+1)); echo $c > '{0}'; [ $c -ge 3 ]",
        count.display()
    );
    let spec = one_step(
        dir.path(),
        &format!("{{ command: \"{command}\" }}"),
        "      retry: { attempts: forever, backoff: constant, initial: 10ms, jitter: none, deadline: 1m }\n",
    );
    let text = init_then(&spec, &["true"]).run().code(0).all();
    assert!(text.contains("(no attempt limit)"), "{text}");
    assert!(text.contains("retrying in 10ms"), "{text}");
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "3");
    // A bad policy is refused before anything runs, at the value.
    let spec = one_step(
        dir.path(),
        "{ command: 'true' }",
        "      retry: { attempts: 3, jitter: half }\n",
    );
    init_cli(&["--check"], &spec)
        .usage_error("spec.yaml:6:37: init.steps[0].retry.jitter: unknown jitter \"half\" (expected none, full, equal or decorrelated)");
}

// Issue 12: the command of an `init.run` step is shown in progress lines,
// events and the failure message; a password in a URL of it is not.
#[test]
fn a_password_in_a_run_command_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = one_step(
        dir.path(),
        "{ command: 'true postgres://app:secret@127.0.0.1:1/app; exit 4' }",
        "      retry: 1\n",
    );
    for json in [false, true] {
        let mut cli = Cli::new().args(["init"]);
        if json {
            cli = cli.args(["--json"]);
        }
        let out = cli.args([spec.as_os_str()]).run();
        let all = out.all();
        assert!(!all.contains("secret"), "{all}");
        assert!(
            all.contains("true postgres://app:***@127.0.0.1:1/app; exit 4"),
            "{all}"
        );
        out.code(3);
    }
}

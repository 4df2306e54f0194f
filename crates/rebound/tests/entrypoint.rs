//! `rebound init SPEC -- CMD` as a container entrypoint, through the real
//! binary and real child processes: every catchable signal forwarded once
//! (also as PID 1 in a new PID namespace), job control, signals during the
//! init, ignored signals passed on, the terminal handed to the workload.

mod support;

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    Cli, Outcome, alive, children_of, exit_code, init_cli, one_step_spec, quick_spec, read_pid,
    require_unshare, send_signal, wait_until, wait_until_within, write_file,
};

/// Every signal the workload gets, by its name for kill(1) and the shell's
/// trap (the number where dash knows no name), and whether it is a
/// job-control stop.
const FORWARDED: &[(&str, &str)] = &[
    ("HUP", "HUP"),
    ("INT", "INT"),
    ("QUIT", "QUIT"),
    ("TRAP", "TRAP"),
    ("ABRT", "ABRT"),
    ("BUS", "BUS"),
    ("USR1", "USR1"),
    ("USR2", "USR2"),
    ("PIPE", "PIPE"),
    ("ALRM", "ALRM"),
    ("STKFLT", "16"),
    ("CONT", "CONT"),
    ("URG", "URG"),
    ("XCPU", "XCPU"),
    ("XFSZ", "XFSZ"),
    ("VTALRM", "VTALRM"),
    ("PROF", "PROF"),
    ("WINCH", "WINCH"),
    ("IO", "IO"),
    ("PWR", "PWR"),
    ("SYS", "SYS"),
    ("TSTP", "TSTP"),
    ("TTIN", "TTIN"),
    ("TTOU", "TTOU"),
    // Last: it ends the workload.
    ("TERM", "TERM"),
];

/// A shell workload that appends the name of each signal it gets to `log`
/// (TERM also ends it with code 3), after a `ready` line.
fn recorder(log: &Path) -> String {
    let log = log.display();
    let mut script = String::new();
    for (name, trap) in FORWARDED {
        let end = if *name == "TERM" { "; exit 3" } else { "" };
        script.push_str(&format!("trap 'echo {name} >> \"{log}\"{end}' {trap}; "));
    }
    // `wait` returns at once when a trapped signal arrives.
    script.push_str(&format!(
        "echo ready >> \"{log}\"; while :; do sleep 1 & wait $!; done"
    ));
    script
}

/// A `rebound init` running in the background.
struct Entry {
    child: Child,
    /// The pid of rebound itself (inside `unshare` when `pid1`).
    rebound: u32,
}

impl Entry {
    /// Starts `rebound init SPEC -- sh -c SCRIPT`, as PID 1 of a new PID
    /// namespace when `pid1`, and waits for `ready` (a line of `log`).
    fn start(dir: &Path, script: &str, log: &Path, pid1: bool) -> Entry {
        Self::start_with(dir, &[], script, log, pid1)
    }

    /// [`Entry::start`] with options for `rebound init`.
    fn start_with(dir: &Path, flags: &[&str], script: &str, log: &Path, pid1: bool) -> Entry {
        let spec = quick_spec(dir);
        let mut cmd = if pid1 {
            require_unshare();
            let mut cmd = Command::new("unshare");
            cmd.args(["--fork", "--pid", "--mount-proc"])
                .arg(env!("CARGO_BIN_EXE_rebound"));
            cmd
        } else {
            Cli::new().command()
        };
        cmd.arg("init")
            .args(flags)
            .args([spec.as_os_str(), "--".as_ref(), "sh".as_ref()])
            .args(["-c", script])
            .env_remove("REBOUND_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        let rebound = if pid1 {
            let mut found = None;
            wait_until(
                || {
                    found = children_of(child.id()).first().copied();
                    found.is_some()
                },
                "unshare to start rebound",
            );
            found.unwrap()
        } else {
            child.id()
        };
        wait_until(|| count(log, "ready") == 1, "the workload to be ready");
        Entry { child, rebound }
    }

    fn send(&self, name: &str) {
        send_signal(self.rebound, name);
    }

    /// Waits for rebound to exit and returns its code.
    fn code(mut self) -> i32 {
        exit_code(&mut self.child)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state letter of process `pid` (`R`, `S`, `T` stopped, ...).
fn state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(str::to_owned))
        .and_then(|rest| rest.trim_start().chars().next())
        .unwrap_or('?')
}

/// How many lines of `log` are exactly `line`.
fn count(log: &Path, line: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == line)
        .count()
}

/// Gives the signals a test harness may have inherited as ignored (HUP
/// under `nohup`; INT and QUIT for a job started with `&` by a shell
/// without job control) a handler in this test process, so that the
/// processes it spawns start with their default action, as a container
/// runtime gives them. Without it the tests of forwarding would see rebound
/// rightly keep them ignored for the workload. Safe: the handlers are
/// tokio's, kept for the life of the test process.
fn default_dispositions_for_children() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async {
            for kind in [
                SignalKind::hangup(),
                SignalKind::interrupt(),
                SignalKind::quit(),
                SignalKind::user_defined1(),
                SignalKind::user_defined2(),
                SignalKind::alarm(),
            ] {
                std::mem::forget(signal(kind).unwrap());
            }
        });
        std::mem::forget(rt);
    });
}

/// Sends each forwarded signal but the job-control ones to rebound and
/// checks that the workload got it exactly once and rebound lives on.
fn each_signal_arrives_once(pid1: bool) {
    default_dispositions_for_children();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let entry = Entry::start(dir.path(), &recorder(&log), &log, pid1);
    let plain = FORWARDED
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| !["TSTP", "TTIN", "TTOU", "TERM"].contains(n));
    for name in plain {
        entry.send(name);
        wait_until(
            || count(&log, name) == 1,
            &format!("the workload to get {name}"),
        );
        assert!(alive(entry.rebound), "{name} ended rebound");
        assert_ne!(state(entry.rebound), 'T', "{name} stopped rebound");
    }
    entry.send("TERM");
    assert_eq!(entry.code(), 3);
    let text = std::fs::read_to_string(&log).unwrap();
    for (name, _) in FORWARDED {
        let expected = usize::from(!["TSTP", "TTIN", "TTOU"].contains(name));
        assert_eq!(count(&log, name), expected, "{name}:\n{text}");
    }
}

#[test]
fn every_catchable_signal_reaches_the_workload_once() {
    each_signal_arrives_once(false);
}

#[test]
fn every_catchable_signal_reaches_the_workload_once_as_pid_1() {
    // As PID 1, a signal without a handler is dropped by the kernel rather
    // than ending rebound: each must still reach the workload.
    each_signal_arrives_once(true);
}

#[test]
fn job_control_stops_the_workload_then_rebound_and_cont_resumes_both() {
    // A workload that traps the stop signals.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let entry = Entry::start(dir.path(), &recorder(&log), &log, false);
    for (i, name) in ["TSTP", "TTIN", "TTOU"].into_iter().enumerate() {
        entry.send(name);
        wait_until(
            || count(&log, name) == 1,
            &format!("the workload to get {name}"),
        );
        wait_until(
            || state(entry.rebound) == 'T',
            &format!("rebound to stop on {name}"),
        );
        entry.send("CONT");
        wait_until(
            || count(&log, "CONT") == i + 1,
            &format!("the workload to get CONT after {name}"),
        );
        assert_ne!(state(entry.rebound), 'T', "still stopped after CONT");
    }
    entry.send("TERM");
    assert_eq!(entry.code(), 3);

    // A workload that does not trap SIGTSTP stops on it, and so does
    // rebound; SIGCONT resumes both.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = format!("echo ready >> '{}'; exec sleep 100", log.display());
    let entry = Entry::start(dir.path(), &script, &log, false);
    let workload = children_of(entry.rebound)[0];
    entry.send("TSTP");
    wait_until(|| state(workload) == 'T', "the workload to stop");
    wait_until(|| state(entry.rebound) == 'T', "rebound to stop");
    entry.send("CONT");
    wait_until(|| state(workload) != 'T', "the workload to resume");
    wait_until(|| state(entry.rebound) != 'T', "rebound to resume");
    entry.send("TERM");
    assert_eq!(entry.code(), 143);
}

#[test]
fn as_pid_1_stop_signals_are_forwarded_and_rebound_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let entry = Entry::start(dir.path(), &recorder(&log), &log, true);
    for name in ["TSTP", "TTIN", "TTOU"] {
        entry.send(name);
        wait_until(
            || count(&log, name) == 1,
            &format!("the workload to get {name}"),
        );
    }
    // Not stopped: the next signal is forwarded too.
    entry.send("USR1");
    wait_until(|| count(&log, "USR1") == 1, "USR1 after the stop signals");
    entry.send("TERM");
    assert_eq!(entry.code(), 3);
}

#[test]
fn a_signal_that_would_end_rebound_during_the_init_cancels_it_cleanly() {
    // Before, their default action ended rebound and left the step's
    // command running in its own process group. SIGWINCH (ignored by
    // default) does not cancel the init.
    for (name, number) in [
        ("ALRM", 14),
        ("XCPU", 24),
        ("PWR", 30),
        ("SYS", 31),
        ("VTALRM", 26),
        ("USR2", 12),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let ready = dir.path().join("ready");
        let spec = one_step_spec(
            dir.path(),
            &format!(
                "{{ command: \"sleep 1000 & echo $! > '{}'; touch '{}'; wait\" }}",
                pids.display(),
                ready.display()
            ),
            "",
        );
        let marker = dir.path().join("workload-ran");
        let mut child = init_cli(&[], &spec)
            .workload(["touch".as_ref(), marker.as_os_str()])
            .spawn_quiet();
        wait_until(|| ready.exists(), "the step to run");
        send_signal(child.id(), "WINCH");
        send_signal(child.id(), name);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + number), "{name}");
        assert!(!marker.exists(), "the workload ran after a cancelled init");
        let sleeper = read_pid(&pids);
        wait_until_within(
            Duration::from_secs(5),
            || !alive(sleeper),
            &format!("the step's child {sleeper} to end after {name}"),
        );
    }
}

/// The `SigIgn` mask of the shell that becomes rebound, after
/// `parent_ignores` ran in it, and the `SigIgn` and `SigBlk` masks the
/// workload then has.
fn masks(parent_ignores: &str) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let inner = format!(
        "{parent_ignores} grep '^SigIgn' /proc/$$/status | sed s/^/parent/; \
         exec '{}' init '{}' -- sh -c \"grep -E '^Sig(Ign|Blk)' /proc/self/status\"",
        env!("CARGO_BIN_EXE_rebound"),
        spec.display()
    );
    // Spawned with fork and exec (std does so when a group is set): glibc's
    // posix_spawn would leave its internal signals 32 and 33 ignored in the
    // shell.
    let text = Outcome::command(
        Command::new("sh")
            .gid(std::fs::metadata("/proc/self").unwrap().gid())
            .args(["-c", &inner]),
        "sh",
    )
    .code(0)
    .stdout();
    let mask = |key: &str| {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    (mask("parentSigIgn:"), mask("SigIgn:"), mask("SigBlk:"))
}

#[test]
fn signals_the_parent_ignored_stay_ignored_and_nothing_else_is() {
    // The grep the workload runs is a new program: its masks are what
    // rebound handed on, exactly what rebound's parent ignored: HUP (bit
    // 0) and USR1 (bit 9) here, and no more (before, glibc's posix_spawn
    // added its internal signals 32 and 33, bits 31 and 32). Nothing is
    // blocked.
    default_dispositions_for_children();
    let (parent, ignored, blocked) = masks("trap '' HUP USR1;");
    assert_eq!(parent & 0x201, 0x201);
    assert_eq!((ignored, blocked), (parent, 0));
    let (parent, ignored, blocked) = masks("");
    assert_eq!(parent & 0x201, 0);
    assert_eq!((ignored, blocked), (parent, 0));
}

/// Starts `sh -c PARENT` with its output discarded, where `"$@"` is
/// `rebound init FLAGS... SPEC -- sh -c SCRIPT`: a shell that sets up how
/// rebound starts (a signal it ignores, a parent that stays) and runs it.
fn under_shell(parent: &str, flags: &[&str], spec: &Path, script: &str) -> Child {
    Command::new("sh")
        .args(["-c", parent, "sh", env!("CARGO_BIN_EXE_rebound"), "init"])
        .args(flags)
        .arg(spec)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_signal_the_parent_ignored_is_ignored_by_rebound_too() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let log = dir.path().join("log");
    let script = recorder(&log);
    // sh ignores HUP, then becomes rebound.
    let mut child = under_shell("trap '' HUP; exec \"$@\"", &[], &spec, &script);
    wait_until(|| count(&log, "ready") == 1, "the workload to be ready");
    send_signal(child.id(), "HUP");
    send_signal(child.id(), "USR1");
    wait_until(|| count(&log, "USR1") == 1, "USR1 forwarded");
    // The HUP, sent first, was ignored: not forwarded, rebound alive.
    assert_eq!(count(&log, "HUP"), 0);
    assert!(alive(child.id()));
    send_signal(child.id(), "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn one_ctrl_c_on_a_terminal_is_one_sigint() {
    // `script` (util-linux) runs rebound on a pseudo-terminal, in its
    // foreground; a ^C written to the terminal makes the line discipline
    // send SIGINT to the foreground process group. The workload must be that
    // group, alone: rebound (debug log) forwards nothing.
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let log = dir.path().join("log");
    let debug = dir.path().join("debug");
    let script = recorder(&log);
    let inner = format!(
        "REBOUND_LOG=debug exec '{}' init '{}' -- sh -c '{}' 2>'{}'",
        env!("CARGO_BIN_EXE_rebound"),
        spec.display(),
        script.replace('\'', "'\\''"),
        debug.display()
    );
    let mut term = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("this test needs `script` (util-linux): {err}"));
    wait_until(|| count(&log, "ready") == 1, "the workload to be ready");
    let mut keys = term.stdin.take().unwrap();
    keys.write_all(b"\x03").unwrap();
    keys.flush().unwrap();
    wait_until(|| count(&log, "INT") == 1, "the workload to get SIGINT");
    // Then a SIGUSR1 through rebound: the forwarding works, and a second
    // SIGINT forwarded by rebound would have come before it.
    let rebound = children_of(term.id())[0];
    send_signal(rebound, "USR1");
    wait_until(|| count(&log, "USR1") == 1, "the workload to get SIGUSR1");
    send_signal(rebound, "TERM");
    let status = term.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(count(&log, "INT"), 1, "{text}");
    let debug = std::fs::read_to_string(&debug).unwrap();
    assert!(
        !debug.contains("SIGINT"),
        "rebound forwarded a SIGINT:\n{debug}"
    );
    assert!(debug.contains("SIGUSR1"), "{debug}");
    drop(keys);
}

/// Writes an executable shell script `name` into `dir`.
fn script_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A workload whose own child, in its process group, records USR1 too;
/// both write to `log`.
fn parent_and_child(dir: &Path, log: &Path) -> String {
    let log = log.display();
    let child = script_file(
        dir,
        "child.sh",
        &format!(
            "trap 'echo child-USR1 >> \"{log}\"' USR1\necho child-ready >> \"{log}\"\nwhile :; do sleep 1 & wait $!; done"
        ),
    );
    format!(
        "trap 'echo parent-USR1 >> \"{log}\"' USR1; trap 'exit 3' TERM; '{}' & \
         while [ \"$(grep -c child-ready '{log}' 2>/dev/null)\" != 1 ]; do sleep 0.01; done; \
         echo ready >> \"{log}\"; while :; do sleep 1 & wait $!; done",
        child.display()
    )
}

#[test]
fn signals_go_to_the_workload_alone_unless_signal_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = parent_and_child(dir.path(), &log);
    let entry = Entry::start(dir.path(), &script, &log, false);
    entry.send("USR1");
    wait_until(
        || count(&log, "parent-USR1") == 1,
        "the workload to get USR1",
    );
    entry.send("TERM");
    assert_eq!(entry.code(), 3);
    assert_eq!(
        count(&log, "child-USR1"),
        0,
        "the workload's child got USR1"
    );

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = parent_and_child(dir.path(), &log);
    let entry = Entry::start_with(dir.path(), &["--signal-group"], &script, &log, false);
    entry.send("USR1");
    wait_until(
        || count(&log, "parent-USR1") == 1,
        "the workload to get USR1",
    );
    wait_until(
        || count(&log, "child-USR1") == 1,
        "the workload's child to get USR1",
    );
    entry.send("TERM");
    assert_eq!(entry.code(), 3);
}

/// A workload that starts a child which records SIGTERM but goes on
/// (its pid in `LOG.pid`), then exits with 0 once `go` exists.
fn leaves_a_child(dir: &Path, log: &Path) -> String {
    let log = log.display();
    let child = script_file(
        dir,
        "stubborn.sh",
        &format!(
            "trap 'echo leftover-TERM >> \"{log}\"' TERM\necho $$ > \"{log}.pid\"\nwhile :; do sleep 1 & wait $!; done"
        ),
    );
    let go = dir.join("go");
    format!(
        "'{}' & while [ ! -s '{log}.pid' ]; do sleep 0.01; done; echo ready >> \"{log}\"; \
         while [ ! -e '{}' ]; do sleep 0.01; done; exit 0",
        child.display(),
        go.display()
    )
}

fn leftovers_get_term_then_kill(pid1: bool) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = leaves_a_child(dir.path(), &log);
    let entry = Entry::start_with(dir.path(), &["--grace", "300ms"], &script, &log, pid1);
    std::fs::write(dir.path().join("go"), "").unwrap();
    let started = Instant::now();
    assert_eq!(entry.code(), 0, "the workload's own code");
    assert!(started.elapsed() >= Duration::from_millis(300), "no grace");
    assert_eq!(count(&log, "leftover-TERM"), 1, "SIGTERM first");
    if !pid1 {
        let pid = read_pid(&dir.path().join("log.pid"));
        assert!(!alive(pid), "the leftover {pid} survived rebound");
    }
}

#[test]
fn leftovers_of_the_workload_get_sigterm_then_sigkill() {
    leftovers_get_term_then_kill(false);
}

#[test]
fn leftovers_of_the_workload_get_sigterm_then_sigkill_as_pid_1() {
    // As PID 1 the kernel would SIGKILL them when rebound exits anyway:
    // they get their SIGTERM and grace first.
    leftovers_get_term_then_kill(true);
}

#[test]
fn leftovers_that_end_on_sigterm_end_rebound_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = format!(
        "sleep 1000 & echo $! > '{0}.pid'; echo ready >> '{0}'; exit 4",
        log.display()
    );
    let started = Instant::now();
    let entry = Entry::start_with(dir.path(), &["--grace", "60s"], &script, &log, false);
    assert_eq!(entry.code(), 4);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the grace"
    );
    let pid = read_pid(&dir.path().join("log.pid"));
    assert!(!alive(pid), "the leftover sleep {pid} survived");
}

#[test]
fn no_kill_leftovers_leaves_them_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = leaves_a_child(dir.path(), &log);
    let entry = Entry::start_with(dir.path(), &["--no-kill-leftovers"], &script, &log, false);
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(entry.code(), 0);
    let pid = read_pid(&dir.path().join("log.pid"));
    let still = alive(pid);
    send_signal(pid, "KILL");
    assert!(still, "the leftover was killed");
    assert_eq!(count(&log, "leftover-TERM"), 0);
}

/// `rebound init FLAGS SPEC -- sh -c SCRIPT`, run to its end.
fn init_sh(spec: &Path, flags: &[&str], script: &str) -> Outcome {
    init_cli(flags, spec).workload(["sh", "-c", script]).run()
}

#[test]
fn success_exit_maps_a_code_to_0() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    init_sh(&spec, &["--success-exit", "143"], "kill -TERM $$").code(0);
    init_sh(
        &spec,
        &["--success-exit", "3", "--success-exit", "7"],
        "exit 7",
    )
    .code(0);
    init_sh(&spec, &["--success-exit", "3"], "exit 7").code(7);
    init_sh(&spec, &["--success-exit", "300"], "exit 0")
        .code(2)
        .stderr_has("300");
}

#[test]
fn rewrite_forwards_one_signal_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let flags = [
        "--rewrite",
        "TERM:QUIT",
        "--rewrite",
        "SIGUSR2:15",
        "--rewrite",
        "winch:0",
    ];
    let entry = Entry::start_with(dir.path(), &flags, &recorder(&log), &log, false);
    entry.send("TERM");
    wait_until(|| count(&log, "QUIT") == 1, "TERM forwarded as QUIT");
    entry.send("WINCH");
    entry.send("USR2");
    assert_eq!(entry.code(), 3, "USR2 forwarded as TERM");
    assert_eq!(count(&log, "USR2"), 0);
    assert_eq!(count(&log, "WINCH"), 0, "WINCH:0 drops it");
    let spec = quick_spec(dir.path());
    init_sh(&spec, &["--rewrite", "TERM"], "true")
        .code(2)
        .stderr_has("expected FROM:TO");
    init_sh(&spec, &["--rewrite", "TERM:BOGUS"], "true")
        .code(2)
        .stderr_has("unknown signal `BOGUS`");
}

#[test]
fn parent_death_signal_reaches_the_workload() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let log = dir.path().join("log");
    // A parent shell runs rebound in the background and waits; it is then
    // killed.
    let mut parent = under_shell(
        "\"$@\" & wait",
        &["--parent-death-signal", "TERM"],
        &spec,
        &recorder(&log),
    );
    wait_until(|| count(&log, "ready") == 1, "the workload to be ready");
    let rebound = children_of(parent.id())[0];
    parent.kill().unwrap();
    parent.wait().unwrap();
    wait_until(|| count(&log, "TERM") == 1, "the workload to get TERM");
    wait_until(|| !alive(rebound), "rebound to exit");
}

#[test]
fn quiet_prints_nothing_on_success_and_errors_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let out = init_sh(&spec, &["--quiet"], "echo workload-ran").code(0);
    assert_eq!(out.stdout(), "workload-ran\n");
    assert_eq!(out.stderr(), "");
    let out = init_cli(&[], &spec).env("REBOUND_QUIET", "1").run().code(0);
    assert_eq!((out.stdout().as_str(), out.stderr().as_str()), ("", ""));
    let failing = one_step_spec(dir.path(), "{ command: 'echo oops; exit 9' }", "");
    let out = init_cli(&[], &failing)
        .env("REBOUND_QUIET", "true")
        .run()
        .code(3)
        .stderr_has("rebound: [only] FAILED")
        .stderr_has("init failed")
        .stderr_has("oops");
    assert_eq!(out.stdout(), "");
}

/// The entrypoint-only static build (musl, the `entrypoint` profile),
/// built into a target directory of its own (a no-op when up to date).
fn static_entrypoint_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = root.join("target/static-entrypoint");
    let target = "x86_64-unknown-linux-musl";
    Outcome::command(
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--profile", "entrypoint", "-p", "rebound"])
            .args(["--no-default-features", "--target", target])
            .env("CARGO_TARGET_DIR", &target_dir),
        "cargo",
    )
    .context(format!(
        "building the static entrypoint failed (it needs `rustup target add {target}`)"
    ))
    .code(0);
    target_dir.join(target).join("entrypoint/rebound")
}

#[test]
fn the_static_entrypoint_runs_in_an_empty_root() {
    // A directory holding only the static binary and a spec, as a FROM
    // scratch image: `unshare -r` (a user namespace where we are root)
    // lets chroot into it; no /proc, no /dev, no libc, no shell. The
    // workload is the binary itself (`rebound wait` on the spec).
    let binary = static_entrypoint_binary();
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, root.path().join("rebound")).unwrap();
    write_file(
        root.path(),
        "init.yaml",
        "init:\n  steps:\n    - id: spec\n      uses: init.wait_file\n      with: { path: /init.yaml }\n",
    );
    let entries: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let run = |pid1: bool, workload: &[&str]| {
        let mut cmd = Command::new("unshare");
        cmd.arg("-r");
        if pid1 {
            cmd.args(["--fork", "--pid"]);
        }
        cmd.arg("chroot")
            .arg(root.path())
            .args(["/rebound", "init", "--quiet", "/init.yaml", "--"])
            .args(workload);
        Outcome::command(&mut cmd, "unshare (util-linux)").context(format!("pid1={pid1}"))
    };
    for pid1 in [false, true] {
        run(
            pid1,
            &["/rebound", "wait", "--timeout", "5s", "file:///init.yaml"],
        )
        .code(0);
        // The workload's own code comes through (2: its usage error).
        run(pid1, &["/rebound", "init", "/nonexistent.yaml"])
            .code(2)
            .stderr_has("/nonexistent.yaml");
    }
    // Nothing but the binary: no dynamic loader named in it.
    let bytes = std::fs::read(&binary).unwrap();
    assert!(
        !bytes.windows(14).any(|w| w == b"ld-linux-x86-6"),
        "the binary names a dynamic loader"
    );
}

#[test]
fn the_static_entrypoint_is_at_most_3_mb_and_keeps_its_regex_and_log_syntax() {
    // Issue 11's goal; it was 3,667,952 B before the entrypoint build left
    // out `regex-perf` and `env-filter` and used opt-level "z".
    let binary = static_entrypoint_binary();
    let size = std::fs::metadata(&binary).unwrap().len();
    assert!(
        size <= 3_000_000,
        "the static entrypoint is {size} B, over the 3 MB goal (docs/benchmarks.md)"
    );

    // Without `regex-perf` the patterns keep their syntax: Unicode classes,
    // Unicode case folding and Perl classes match as in the full build.
    let dir = tempfile::tempdir().unwrap();
    let init = |name: &str, yaml: &str| {
        let spec = write_file(dir.path(), name, yaml);
        Outcome::command(
            Command::new(&binary).args([
                "init".as_ref(),
                spec.as_os_str(),
                "--".as_ref(),
                "true".as_ref(),
            ]),
            "the static entrypoint",
        )
    };
    init(
        "regex.yaml",
        "init:\n  steps:\n    - id: greek\n      uses: init.wait_exec\n      with: { command: ['sh', '-c', 'echo status: αβγ 42'], output_regex: '(?i)\\bΑΒΓ\\s\\d{2}$|\\p{Greek}+ \\d+', timeout: 5s }\n",
    )
    .code(0);
    let out = init(
        "nomatch.yaml",
        "init:\n  steps:\n    - id: greek\n      uses: init.wait_exec\n      with: { command: ['sh', '-c', 'echo abc 42'], output_regex: '^\\p{Greek}', timeout: 300ms }\n",
    );
    assert_ne!(
        out.output.status.code(),
        Some(0),
        "a pattern that does not match"
    );

    // Without `env-filter`, --log takes LEVEL and TARGET=LEVEL directives
    // and refuses span/field filters as a usage error naming the feature.
    let empty = write_file(dir.path(), "empty.yaml", "init:\n  steps: []\n");
    let run = |log: &str| {
        Outcome::command(
            Command::new(&binary)
                .args(["--log", log, "init", "--check"])
                .arg(&empty),
            "the static entrypoint",
        )
        .context(format!("--log {log:?}"))
    };
    for ok in ["warn", "debug,rebound_init=trace", "", "warn,,info"] {
        run(ok).code(0);
    }
    for bad in ["rebound[step{id=db}]=debug", "[{x}]", "rebound=loud"] {
        run(bad).code(2).stderr_has("invalid filter");
    }
    run("rebound[step]=debug").stderr_has("`env-filter` feature");
}

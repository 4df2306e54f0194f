//! What the integration tests of the `rebound` binary share: a driver for
//! running it (`Cli::new().args([...]).run().code(2).stderr_has("...")`),
//! free ports, files, processes and a running agent.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Display;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod agent;

#[allow(unused_imports)] // Not every test binary talks to an agent.
pub use agent::*;

/// A `rebound` invocation being built.
pub struct Cli {
    cmd: Command,
}

impl Cli {
    /// `rebound` with no arguments yet, logging at `warn`.
    pub fn new() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rebound"));
        cmd.env_remove("REBOUND_LOG").stdin(Stdio::null());
        Self { cmd }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// `-- PROGRAM ARGS...`: the command rebound runs (`init`'s workload,
    /// `retry`'s command).
    pub fn workload<I, S>(self, workload: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args(["--"]).args(workload)
    }

    /// Removes an environment variable this process passes on.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// The underlying command, for spawning it in the background.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Runs to completion and captures the output.
    pub fn run(mut self) -> Outcome {
        Outcome::from(self.cmd.output().expect("run rebound"))
    }

    /// Runs to completion and asserts a usage error: exit code 2 with
    /// `says` in stderr.
    #[track_caller]
    pub fn usage_error(self, says: &str) -> Outcome {
        self.run().code(2).stderr_has(says)
    }

    /// Runs with stdout on `/dev/full`, where every write fails (ENOSPC);
    /// stderr is captured.
    pub fn run_stdout_full(mut self) -> Outcome {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        self.cmd.stdout(full);
        self.run()
    }

    /// Runs with stdout and stderr on `/dev/full`: not even the error
    /// message can be written.
    pub fn run_output_full(mut self) -> Outcome {
        let full = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("open /dev/full")
        };
        self.cmd.stdout(full()).stderr(full());
        self.run()
    }

    /// Runs with stdout a pipe whose read end is closed before rebound
    /// starts, so that its first write fails with EPIPE (what `| head -1`
    /// does once head has its line); stderr is captured.
    pub fn run_stdout_closed(mut self) -> Outcome {
        let (reader, writer) = nix::unistd::pipe().expect("pipe");
        drop(reader);
        self.cmd.stdout(writer);
        self.run()
    }

    /// Starts rebound in the background with stdout and stderr discarded.
    pub fn spawn_quiet(self) -> Child {
        let mut cmd = self.cmd;
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd.spawn().expect("spawn rebound")
    }

    /// Starts rebound in the background with stdout and stderr piped.
    pub fn spawn(self) -> Child {
        let mut cmd = self.cmd;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn rebound")
    }
}

/// `rebound init FLAGS... SPEC` (add the workload with [`Cli::workload`]).
pub fn init_cli(flags: &[&str], spec: &Path) -> Cli {
    Cli::new().args(["init"]).args(flags).args([spec])
}

/// What a finished `rebound` run produced.
pub struct Outcome {
    /// The raw output.
    pub output: Output,
    /// What the failure messages name first (see [`Outcome::context`]).
    context: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Self {
            output,
            context: String::new(),
        }
    }
}

impl Outcome {
    /// Waits for a child started with [`Cli::spawn`] and captures its output.
    pub fn of(child: Child) -> Self {
        Self::from(child.wait_with_output().expect("wait for rebound"))
    }

    /// Runs `cmd` (a program other than rebound itself, such as `sh`,
    /// `script` or `unshare`) with stdin from /dev/null to completion;
    /// fails saying the test needs `needs` when it cannot be started.
    #[track_caller]
    pub fn command(cmd: &mut Command, needs: &str) -> Self {
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("this test needs {needs}: {err}"));
        Self::from(output)
    }

    /// Names the case (a flag, a loop's value) in every failure message of
    /// the assertions that follow.
    pub fn context(mut self, what: impl Display) -> Self {
        self.context = format!("{what}: ");
        self
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts `holds`; the failure says `what` went wrong, then the case
    /// (see [`Outcome::context`]) and both outputs.
    #[track_caller]
    fn check(self, holds: bool, what: impl Display) -> Self {
        assert!(
            holds,
            "{}{what}\n--- stdout\n{}\n--- stderr\n{}",
            self.context,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        let code = self.output.status.code();
        self.check(
            code == Some(expected),
            format_args!("exit code {code:?}, expected {expected}"),
        )
    }

    /// Asserts stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        let holds = self.stdout().contains(needle);
        self.check(holds, format_args!("stdout lacks {needle:?}"))
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        let holds = self.stderr().contains(needle);
        self.check(holds, format_args!("stderr lacks {needle:?}"))
    }

    /// Asserts stderr does not contain `needle`.
    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Self {
        let holds = !self.stderr().contains(needle);
        self.check(holds, format_args!("stderr has {needle:?}"))
    }

    /// Asserts stdout does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Self {
        let holds = !self.stdout().contains(needle);
        self.check(holds, format_args!("stdout has {needle:?}"))
    }

    /// Stdout, then stderr, as text: for what may be said on either.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Every line of stdout as JSON (see [`json_lines`]).
    #[track_caller]
    pub fn stdout_json(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout())
    }

    /// Every line of stderr as JSON (see [`json_lines`]).
    #[track_caller]
    pub fn stderr_json(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stderr())
    }
}

/// The first line of `text` as JSON (what precedes a `--json` command's
/// error message).
#[track_caller]
pub fn first_json(text: &str) -> serde_json::Value {
    json_lines(text.lines().next().expect("a first line"))
        .pop()
        .unwrap()
}

/// The last line of `text` as JSON (a `--json` command's final event).
#[track_caller]
pub fn last_json(text: &str) -> serde_json::Value {
    json_lines(text.lines().last().expect("a last line"))
        .pop()
        .unwrap()
}

/// Each line of `text` parsed as JSON; fails naming a line that is not.
#[track_caller]
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `cond` every 20 ms for up to 20 s, then fails naming `what`
/// (waiting for real processes, not measuring time).
#[track_caller]
pub fn wait_until(cond: impl FnMut() -> bool, what: &str) {
    wait_until_within(Duration::from_secs(20), cond, what);
}

/// Polls `cond` every 10 ms for up to `limit`, then fails naming `what`:
/// for a bound the test asserts ("killed within 5 s").
#[track_caller]
pub fn wait_until_within(limit: Duration, mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 20 s) for `path` to exist.
#[track_caller]
pub fn wait_for_file(path: &Path) {
    wait_until(|| path.exists(), &path.display().to_string());
}

/// Whether process `pid` still runs (a zombie counts as ended).
pub fn alive(pid: impl std::fmt::Display) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// Sends `signal` (a name such as `TERM`) to process `pid` with kill(1).
#[track_caller]
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The pid a process wrote to `path`.
#[track_caller]
pub fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

/// Waits (up to 20 s) for `child` to exit: its exit code (fails when it was
/// killed by a signal).
#[track_caller]
pub fn exit_code(child: &mut Child) -> i32 {
    let mut status = None;
    wait_until(
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
        "rebound to exit",
    );
    status
        .unwrap()
        .code()
        .expect("rebound itself was killed by a signal")
}

/// The children of process `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Fails, saying what is missing, unless `unshare --fork --pid
/// --mount-proc` works here (what makes rebound PID 1 in the tests). Not a
/// skip: PID 1 behaviour is part of the contract and must be checked.
#[track_caller]
pub fn require_unshare() {
    let probe = Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "true"])
        .status();
    assert!(
        probe.as_ref().is_ok_and(|s| s.success()),
        "this test needs `unshare --fork --pid --mount-proc` (util-linux, run as root or \
         with user namespaces) to make rebound PID 1: {probe:?}"
    );
}

/// Runs the shell command `inner` on a pseudo-terminal (`script -qec`,
/// util-linux) to its end; the terminal's output is stdout.
#[track_caller]
pub fn on_a_terminal(inner: &str) -> Outcome {
    Outcome::command(
        Command::new("script").args(["-qec", inner, "/dev/null"]),
        "`script` (util-linux) for a pseudo-terminal",
    )
}

/// Reads `child`'s piped stderr line by line until a line contains
/// `needle` or the stream ends: whether it was seen, the text read, and the
/// stream for the rest.
pub fn stderr_until(child: &mut Child, needle: &str) -> (bool, String, BufReader<ChildStderr>) {
    let mut reader = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return (false, seen, reader);
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return (true, seen, reader);
        }
    }
}

/// Writes `spec.yaml` in `dir`: an init whose one step `only` runs
/// `init.run` with `with` (YAML flow), followed by `extra` (more lines of
/// the step, indented six spaces).
pub fn one_step_spec(dir: &Path, with: &str, extra: &str) -> PathBuf {
    write_file(
        dir,
        "spec.yaml",
        &format!(
            "init:\n  steps:\n    - id: only\n      uses: init.run\n      with: {with}\n{extra}"
        ),
    )
}

/// [`one_step_spec`] whose step succeeds at once.
pub fn quick_spec(dir: &Path) -> PathBuf {
    one_step_spec(dir, "{ command: 'true' }", "")
}

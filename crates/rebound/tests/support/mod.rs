//! What the integration tests of the `rebound` binary share: a driver for
//! running it (`Cli::new().args([...]).run().code(2).stderr_has("...")`),
//! free ports, files, processes and a running agent.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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
        let output = self.cmd.output().expect("run rebound");
        Outcome { output }
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

    /// Starts rebound in the background with stdout and stderr piped.
    pub fn spawn(self) -> Child {
        let mut cmd = self.cmd;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn rebound")
    }
}

/// What a finished `rebound` run produced.
pub struct Outcome {
    /// The raw output.
    pub output: Output,
}

impl Outcome {
    /// Waits for a child started with [`Cli::spawn`] and captures its output.
    pub fn of(child: Child) -> Self {
        Self {
            output: child.wait_with_output().expect("wait for rebound"),
        }
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.output.status.code(),
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts stderr does not contain `needle`.
    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Self {
        assert!(
            !self.stderr().contains(needle),
            "stderr has {needle:?}\n--- stderr\n{}",
            self.stderr()
        );
        self
    }
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

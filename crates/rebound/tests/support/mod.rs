//! A small driver for running the `rebound` binary in integration tests:
//! `Cli::new().args([...]).run().code(2).stderr_has("...")`.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
}

/// What a finished `rebound` run produced.
pub struct Outcome {
    /// The raw output.
    pub output: Output,
}

impl Outcome {
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

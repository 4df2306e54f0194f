//! Every exit code `rebound` can end with, in one place.
//!
//! The table is printed by `rebound --help` (see [`EXIT_CODES_HELP`]) and in
//! the README; scripts depend on it, so codes are never reused or renumbered.

use std::fmt;
use std::process::ExitCode;

use crate::output::StdoutError;
use nix::sys::signal::Signal;

/// Success.
pub const OK: i32 = 0;
/// Bad usage, an invalid flag, spec or config: nothing was run.
pub const USAGE: i32 = 2;
/// A step or wait target failed, a recovery was given up, or an operation
/// failed at run time (database, I/O, a socket rebound may not open).
pub const FAILED: i32 = 3;
/// A deadline or timeout ran out (the convention of GNU timeout).
pub const TIMEOUT: i32 = 124;
/// The command cannot be executed (found, but not executable): the shell's
/// code, used by `rebound retry`, `rebound init -- CMD`, and read from
/// `sh -c` by `rebound recovery run`.
pub const CANNOT_EXECUTE: i32 = 126;
/// The command is not found: the shell's code, as [`CANNOT_EXECUTE`].
pub const NOT_FOUND: i32 = 127;
/// Interrupted by SIGINT (128 + 2).
pub const INTERRUPTED: i32 = signal_exit(Signal::SIGINT as i32);
/// Terminated by SIGTERM (128 + 15).
pub const TERMINATED: i32 = signal_exit(Signal::SIGTERM as i32);

/// The exit code for signal number `signal`: 128 + N, the shell's way of
/// saying that signal N ended a process (or, for rebound, stopped it).
pub const fn signal_exit(signal: i32) -> i32 {
    128 + signal
}

// What happened to a target, in sysexits.h terms, so that a migrate command
// made of rebound commands gets the right strategy from `rebound recovery
// run`'s default exit-code table (see `cmd::recovery::exec::ExitKinds`).

/// `rebound ensure`: the agent could not be reached on any call for the
/// whole `--wait` (EX_UNAVAILABLE): recovery kind `target_unreachable`.
pub const UNAVAILABLE: i32 = 69;
/// `rebound ensure`: the node cannot run the runtime (EX_CONFIG): the
/// runtime failed for good (its agent will not start it again within
/// `--wait`), or the agent has no runtime of that name. Recovery kind
/// `incompatible_target`.
pub const INCOMPATIBLE: i32 = 78;

/// `rebound retry --breaker-file`: the breaker is open (or a half-open
/// trial run is in progress), so the command was not run; try again later
/// (EX_TEMPFAIL, "temporary failure, the user is invited to retry", which
/// is what cron jobs and mail transfer agents already treat as "later").
pub const BREAKER_OPEN: i32 = 75;

/// The exit-code table shown at the end of `rebound --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  2    bad usage, invalid flag, spec or config (nothing was run)
  3    a step or wait target failed, a recovery was given up,
       or a run-time error (I/O, database)
  69   ensure: the agent could not be reached for the whole --wait
  75   retry --breaker-file: the breaker is open (or a trial run is in
       progress); the command was not run
  78   ensure: the node cannot run the runtime: it failed for good,
       or the agent has no runtime of that name
  124  a deadline or timeout ran out (ensure: the agent answered, the
       runtime was still starting)
  130  interrupted (SIGINT); 143 terminated (SIGTERM)
  N    `rebound retry` and `rebound init -- CMD` end with the child's own
       exit code (128+N when signal N ended it)";

/// An error that carries the exit code it should end the process with.
#[derive(Debug)]
pub struct CliError {
    /// The process exit code.
    pub code: i32,
    message: String,
}

impl CliError {
    /// An error with an explicit exit code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Bad usage or invalid input: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    /// A failure at run time: exit 3.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(FAILED, message)
    }

    /// A timeout or deadline ran out: exit 124.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(TIMEOUT, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Turns a command's result into the process exit code, printing the error.
///
/// The one place that decides what a failed write to stdout means: a
/// reader that went away ([`StdoutError::reader_gone`], `rebound ... | head`)
/// ends the command quietly with exit 0; any other write error is exit 3
/// ("cannot write to standard output: ..."). Any other error without a
/// [`CliError`] in its chain is a run-time failure (3).
pub fn report(result: anyhow::Result<i32>) -> ExitCode {
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            let stdout = err.chain().find_map(|e| e.downcast_ref::<StdoutError>());
            if stdout.is_some_and(StdoutError::reader_gone) {
                return ExitCode::SUCCESS;
            }
            let code = match stdout {
                Some(_) => FAILED,
                None => err
                    .chain()
                    .find_map(|e| e.downcast_ref::<CliError>())
                    .map_or(FAILED, |e| e.code),
            };
            crate::output::err!("rebound: error: {err:#}");
            code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_states_the_codes_defined_here() {
        for code in [
            OK,
            USAGE,
            FAILED,
            BREAKER_OPEN,
            TIMEOUT,
            INTERRUPTED,
            TERMINATED,
        ] {
            assert!(
                EXIT_CODES_HELP.contains(&format!("  {code}  "))
                    || EXIT_CODES_HELP.contains(&format!("{code} ")),
                "{code} is missing from the table"
            );
        }
        assert_eq!(signal_exit(Signal::SIGHUP as i32), 129);
        assert_eq!((INTERRUPTED, TERMINATED), (130, 143));
    }
}

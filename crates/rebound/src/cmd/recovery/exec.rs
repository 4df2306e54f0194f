//! The migrate and rollback commands of `rebound recovery run`, and the
//! exit-code table that classifies a failed migrate command.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use rebound_recovery::{FailureKind, Job, Migrator, RollbackHandler};

use crate::exit::{CANNOT_EXECUTE, NOT_FOUND};

/// Exit code of the migrate command -> failure kind.
#[derive(Debug, Clone)]
pub struct ExitKinds(BTreeMap<i32, FailureKind>);

impl Default for ExitKinds {
    /// The documented table (sysexits.h codes plus GNU timeout's 124). It
    /// classifies `rebound ensure`'s own codes (see `crate::exit`): 69 agent
    /// unreachable, 78 the node cannot run the runtime (failed for good, or
    /// none of that name), 124 still starting when `--wait` ran out.
    fn default() -> Self {
        use FailureKind::*;
        Self(BTreeMap::from([
            (65, StateCorruption),       // EX_DATAERR
            (68, TargetUnreachable),     // EX_NOHOST
            (69, TargetUnreachable),     // EX_UNAVAILABLE
            (73, InsufficientResources), // EX_CANTCREAT
            (75, NetworkTransient),      // EX_TEMPFAIL
            (76, NetworkPermanent),      // EX_PROTOCOL
            (78, IncompatibleTarget),    // EX_CONFIG
            (124, Timeout),              // GNU timeout
        ]))
    }
}

impl ExitKinds {
    /// The default table with `overrides` applied.
    pub fn with(overrides: &[(i32, FailureKind)]) -> Self {
        let mut table = Self::default();
        for (code, kind) in overrides {
            table.0.insert(*code, *kind);
        }
        table
    }

    /// Parses one `CODE=KIND` entry of `--exit-kind`.
    pub fn parse_entry(text: &str) -> Result<(i32, FailureKind), String> {
        let (code, kind) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not CODE=KIND, e.g. 75=network_transient"))?;
        let code: i32 = code
            .trim()
            .parse()
            .ok()
            .filter(|c| (1..=255).contains(c))
            .ok_or_else(|| format!("{code:?} is not an exit code from 1 to 255"))?;
        let kind = kind
            .trim()
            .parse::<FailureKind>()
            .map_err(|e| e.to_string())?;
        Ok((code, kind))
    }

    /// Whether `code` has an entry (a default or an `--exit-kind`).
    pub fn maps(&self, code: i32) -> bool {
        self.0.contains_key(&code)
    }

    /// The kind for a failed command's status: unknown when the code is not
    /// in the table or a signal ended the command.
    pub fn kind(&self, status: ExitStatus) -> FailureKind {
        status
            .code()
            .and_then(|c| self.0.get(&c).copied())
            .unwrap_or(FailureKind::Unknown)
    }
}

/// A migrate or rollback command that did not succeed.
#[derive(Debug)]
pub struct CommandError {
    /// The classified kind (migrate commands).
    pub kind: FailureKind,
    message: String,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandError {}

/// The two commands, run with `sh -c` and the job's fields in the
/// environment. Their stdout goes to our stderr, so that `--json` output
/// stays clean.
#[derive(Debug, Clone)]
pub struct Commands {
    pub migrate: Arc<str>,
    pub rollback: Arc<str>,
    pub exit_kinds: Arc<ExitKinds>,
    /// Told when a command could not be run at all (see [`not_run`]).
    pub setup_error: tokio::sync::mpsc::UnboundedSender<String>,
}

/// What `sh -c` exit code 126 or 127 (with no `--exit-kind` entry) says:
/// the command, or one it ran, was not found or could not be executed. That
/// is this controller's setup (a typo in `--migrate-cmd`, a tool not
/// installed), not a failed migration: counted as one, a typo would roll
/// back (or give up) every due recovery.
fn not_run(which: &str, status: ExitStatus, table: &ExitKinds) -> Option<String> {
    let code = status
        .code()
        .filter(|c| matches!(*c, CANNOT_EXECUTE | NOT_FOUND))?;
    if table.maps(code) {
        return None;
    }
    let what = if code == NOT_FOUND {
        "not found"
    } else {
        "not executable"
    };
    Some(format!(
        "the {which} command could not be run (sh exited with {code}: a command {what}); \
         fix --{which}-cmd. The attempt was not counted, and its recovery was handed back"
    ))
}

impl Commands {
    async fn run(&self, which: &str, cmd: &str, job: &Job) -> Result<(), CommandError> {
        let failed = |message: String| CommandError {
            kind: FailureKind::Unknown,
            message,
        };
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let snapshot = job
            .snapshot
            .as_ref()
            .map(|s| s.path.display().to_string())
            .unwrap_or_default();
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("REBOUND_MIGRATION", &job.migration)
            .env("REBOUND_WORKLOAD", &job.workload)
            .env("REBOUND_SOURCE", &job.source)
            .env("REBOUND_TARGET", &job.target)
            .env("REBOUND_SNAPSHOT", snapshot)
            .env("REBOUND_STRATEGY", job.strategy.as_str())
            .env("REBOUND_RETRY_COUNT", job.retry_count.to_string())
            .stdin(Stdio::null())
            .stdout(stdout)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("{which} command could not start: {e}")))?;
        let pgid = child.id().and_then(|pid| i32::try_from(pid).ok());
        let mut group = GroupKill(pgid);
        let status = {
            let wait = child.wait();
            tokio::pin!(wait);
            tokio::select! {
                status = &mut wait => status,
                () = job.cancel.cancelled() => {
                    // Cancelled: ask the whole group to stop; the worker
                    // drops this attempt (SIGKILL through `GroupKill`)
                    // after its cancel grace.
                    let Some(group) = pgid.map(nix::unistd::Pid::from_raw) else {
                        return Err(failed(format!("{which} command cancelled")));
                    };
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
                    let status = wait.await;
                    // What `sh` started may outlive it: wait for the whole
                    // group to be gone (or for the worker to drop this
                    // attempt and kill what is left).
                    while group_runs(group.as_raw()) {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    status
                }
            }
        }
        .map_err(|e| failed(format!("waiting for the {which} command failed: {e}")))?;
        group.0 = None;
        if status.success() {
            return Ok(());
        }
        if let Some(message) = not_run(which, status, &self.exit_kinds) {
            let _ = self.setup_error.send(message);
            // Never ends: `run` stops, and drops this attempt unrecorded.
            std::future::pending::<()>().await;
        }
        let how = match status.code() {
            Some(code) => format!("exited with {code}"),
            None => "was killed by a signal".to_owned(),
        };
        Err(CommandError {
            kind: self.exit_kinds.kind(status),
            message: format!("{which} command {how}"),
        })
    }
}

/// Whether a process of group `pgid` still runs (zombies, which only wait
/// to be reaped, do not count), from `/proc/PID/stat`: the fields after
/// the command name's closing parenthesis are the state, the parent and
/// the group. Without `/proc`, says no: the worker's drop of the attempt
/// kills what is left anyway.
fn group_runs(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = after.split_ascii_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        group == Some(pgid) && state != Some("Z")
    })
}

/// Kills a command's whole process group when the attempt is dropped
/// before the command ended (the recovery timeout ran out, the lease was
/// lost, `run` was stopped): killing `sh` alone would leave what it started
/// migrating on after the recovery was given up or handed over.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH: the group is already gone; nothing else can fail here.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Migrator for Commands {
    type Error = CommandError;
    async fn migrate(&self, job: &Job) -> Result<(), CommandError> {
        let cmd = Arc::clone(&self.migrate);
        self.run("migrate", &cmd, job).await
    }
}

impl RollbackHandler for Commands {
    type Error = CommandError;
    async fn rollback(&self, job: &Job) -> Result<(), CommandError> {
        let cmd = Arc::clone(&self.rollback);
        self.run("rollback", &cmd, job).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn table_defaults_overrides_and_signals() {
        let t = ExitKinds::with(&[
            (75, FailureKind::Timeout),
            (9, FailureKind::IncompatibleTarget),
        ]);
        assert_eq!(t.kind(ExitStatus::from_raw(75 << 8)), FailureKind::Timeout);
        assert_eq!(
            t.kind(ExitStatus::from_raw(9 << 8)),
            FailureKind::IncompatibleTarget
        );
        assert_eq!(
            t.kind(ExitStatus::from_raw(69 << 8)),
            FailureKind::TargetUnreachable
        );
        assert_eq!(t.kind(ExitStatus::from_raw(1 << 8)), FailureKind::Unknown);
        // Killed by SIGKILL.
        assert_eq!(t.kind(ExitStatus::from_raw(9)), FailureKind::Unknown);
    }

    #[test]
    fn rebound_ensure_codes_get_the_strategy_their_failure_needs() {
        use crate::exit;
        let table = ExitKinds::default();
        let kind = |code: i32| table.kind(ExitStatus::from_raw(code << 8));
        // A dead node and a node that cannot run the workload: another
        // target. A runtime still starting: the same target again.
        assert_eq!(kind(exit::UNAVAILABLE), FailureKind::TargetUnreachable);
        assert_eq!(kind(exit::INCOMPATIBLE), FailureKind::IncompatibleTarget);
        assert_eq!(kind(exit::TIMEOUT), FailureKind::Timeout);
        // Bad usage and errors retrying cannot fix: roll back.
        assert_eq!(kind(exit::USAGE), FailureKind::Unknown);
        assert_eq!(kind(exit::FAILED), FailureKind::Unknown);
    }

    #[test]
    fn commands_that_could_not_run_are_told_apart() {
        let table = ExitKinds::default();
        let not_found = not_run("migrate", ExitStatus::from_raw(NOT_FOUND << 8), &table).unwrap();
        assert!(not_found.contains("--migrate-cmd"), "{not_found}");
        assert!(not_found.contains("not found"), "{not_found}");
        assert!(
            not_run(
                "rollback",
                ExitStatus::from_raw(CANNOT_EXECUTE << 8),
                &table
            )
            .is_some()
        );
        assert!(not_run("migrate", ExitStatus::from_raw(1 << 8), &table).is_none());
        assert!(not_run("migrate", ExitStatus::from_raw(9), &table).is_none());
        // An --exit-kind entry for 127 makes it a failure like any other.
        let mapped = ExitKinds::with(&[(NOT_FOUND, FailureKind::IncompatibleTarget)]);
        assert!(not_run("migrate", ExitStatus::from_raw(NOT_FOUND << 8), &mapped).is_none());
    }

    #[test]
    fn a_group_runs_while_a_live_process_is_in_it() {
        let ours = nix::unistd::getpgrp().as_raw();
        assert!(group_runs(ours));
        // No process group has a negative id.
        assert!(!group_runs(-7));
    }

    #[test]
    fn entries_are_checked() {
        assert_eq!(
            ExitKinds::parse_entry("75=network_transient"),
            Ok((75, FailureKind::NetworkTransient))
        );
        assert!(
            ExitKinds::parse_entry("75")
                .unwrap_err()
                .contains("CODE=KIND")
        );
        assert!(
            ExitKinds::parse_entry("300=timeout")
                .unwrap_err()
                .contains("1 to 255")
        );
        assert!(
            ExitKinds::parse_entry("7=flaky")
                .unwrap_err()
                .contains("network_transient")
        );
    }
}

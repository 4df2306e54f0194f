//! Runs the workload after the init, the way a container entrypoint must:
//! signals are forwarded, rebound ends with the workload's exit code, and
//! orphans are reaped: rebound is their parent when it runs as PID 1, and
//! elsewhere it makes itself a child subreaper (as `tini -s` does) so that
//! the workload's orphans are re-parented to it rather than left as zombies.
//!
//! This does not use `crate::child` (a `tokio::process::Child` waited by
//! tokio): reaping orphans takes `waitpid(-1)`, which would also collect
//! the workload's status behind tokio's back. So the workload is spawned
//! with std and waited for with `waitpid` here, woken by SIGCHLD.

use std::ffi::OsString;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::exit::{CANNOT_EXECUTE, CliError, NOT_FOUND, signal_exit};
use crate::signal::{self, Signal};

/// Runs `command` to its end, forwarding the [`signal::WORKLOAD`] signals
/// to it, and returns its exit code (128+N when signal N ended it).
///
/// `early` is the listener the caller opened before (the signals that
/// cancel the init): it is forwarded from, so that such a signal arriving
/// after the init ended but before the workload started is delivered to the
/// workload once it runs instead of being lost.
pub async fn run(command: &[OsString], early: signal::Listener) -> anyhow::Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::usage("no workload command after `--`").into());
    };
    // Listen before spawning, so that no SIGCHLD or forwarded signal is
    // missed between the spawn and the loop.
    let mut child_events = signal::Listener::new(&[Signal::SIGCHLD])?;
    let mut forwarded = early;
    forwarded.add(signal::WORKLOAD)?;
    // Become the reaper of the workload's orphans (a no-op as PID 1). The
    // init steps are over: daemons they started keep their parent.
    let reap_all = std::process::id() == 1 || nix::sys::prctl::set_child_subreaper(true).is_ok();
    let child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| {
            // The shell's codes (and `rebound retry`'s, and a container
            // runtime's): 127 not found, 126 found but not executable.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                NOT_FOUND
            } else {
                CANNOT_EXECUTE
            };
            CliError::new(
                code,
                format!(
                    "cannot start the workload `{}`: {e}",
                    program.to_string_lossy()
                ),
            )
        })?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // The std handle is not used to wait (see the module doc); dropping it
    // neither kills nor waits.
    drop(child);
    let forwarder = tokio::spawn(async move {
        loop {
            let sig = forwarded.recv().await;
            tracing::debug!(signal = ?sig, pid = pid.as_raw(), "forwarding to the workload");
            // ESRCH: the workload just exited; its status comes next.
            let _ = kill(pid, sig);
        }
    });
    let result = loop {
        match reap(pid, reap_all) {
            Ok(None) => {}
            done => break done,
        }
        tokio::select! {
            _ = child_events.recv() => {}
            // A safety net: SIGCHLD is coalesced, never lost, but a missed
            // wake-up would hang an entrypoint forever.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    forwarder.abort();
    result.map(|code| code.unwrap_or(crate::exit::FAILED))
}

/// Collects exited children without blocking. Returns the workload's exit
/// code once it has exited. With `reap_all` (rebound is PID 1 or a child
/// subreaper), orphans are reaped too.
fn reap(workload: Pid, reap_all: bool) -> anyhow::Result<Option<i32>> {
    let target = if reap_all { None } else { Some(workload) };
    loop {
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => {
                return Ok(Some(signal_exit(sig as i32)));
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            // An orphan reaped, or a stop/continue report.
            Ok(_) if reap_all => {}
            Ok(_) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(err) => {
                return Err(CliError::failed(format!(
                    "lost track of the workload (pid {workload}): {err}"
                ))
                .into());
            }
        }
    }
}

// No unit tests here: `run` reaps every child of the process
// (`waitpid(-1)`), which would steal the children of other tests running in
// the same test binary. crates/rebound/tests/init.rs drives it through the
// real binary instead (exit codes, every forwarded signal, orphan reaping
// as a subreaper and as PID 1).

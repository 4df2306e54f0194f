//! Runs the workload after the init, the way a container entrypoint must:
//! signals are forwarded, rebound ends with the workload's exit code, and
//! orphans are reaped: rebound is their parent when it runs as PID 1, and
//! elsewhere it makes itself a child subreaper (as `tini -s` does) so that
//! the workload's orphans are re-parented to it rather than left as zombies.
//!
//! The workload runs in a process group of its own (as with tini). When
//! rebound runs in the foreground of the terminal that is its stdin, the
//! workload's group is made the terminal's foreground group
//! (`tcsetpgrp`), so that a Ctrl-C reaches the workload once, from the
//! terminal, and not a second time forwarded by rebound; rebound takes the
//! terminal back when the workload ends.
//!
//! Job control (as dumb-init): SIGTSTP, SIGTTIN or SIGTTOU sent to rebound
//! is forwarded, then rebound stops itself (SIGSTOP); SIGCONT resumes
//! rebound and is forwarded. A workload stopped by the terminal (Ctrl-Z
//! while it is in the foreground) stops rebound too, so that the shell sees
//! its job stopped; `fg` hands the terminal back to the workload. As PID 1
//! rebound cannot stop (the kernel ignores SIGSTOP sent to a namespace's
//! init from inside it): it only forwards.
//!
//! This does not use `crate::child` (a `tokio::process::Child` waited by
//! tokio): reaping orphans takes `waitpid(-1)`, which would also collect
//! the workload's status behind tokio's back. So the workload is spawned
//! with std and waited for with `waitpid` here, woken by SIGCHLD (which is
//! coalesced but never lost: there is no periodic wake-up).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, kill, killpg, pthread_sigmask, raise};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgrp, getpid, tcgetpgrp, tcsetpgrp};

use crate::exit::{CANNOT_EXECUTE, CliError, NOT_FOUND, signal_exit};
use crate::notify::Notifier;
use crate::signal::{self, DefaultAction, Signal, default_action};

/// How the workload is run and signalled.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Signals the parent left ignored: they are not listened to, so they
    /// stay ignored for rebound and for the workload.
    pub ignored: Vec<Signal>,
    /// Forward to the workload's whole process group, not only to it.
    pub signal_group: bool,
    /// `--rewrite FROM:TO`: a received FROM is forwarded as TO (`None`:
    /// not forwarded).
    pub rewrite: Vec<(Signal, Option<Signal>)>,
    /// `--success-exit N`: these exit codes of the workload become 0.
    pub success_exits: Vec<i32>,
    /// How long descendants left running when the workload exits get
    /// between SIGTERM and SIGKILL; `None` (`--no-kill-leftovers`): they
    /// are left alone.
    pub grace: Option<Duration>,
    /// The service manager to tell (`NOTIFY_SOCKET`).
    pub notifier: Option<Notifier>,
    /// `--notify-ready`: `READY=1` once the workload started.
    pub notify_ready: bool,
}

impl Options {
    /// The signals forwarded to the workload: [`signal::WORKLOAD`] but
    /// those left ignored.
    pub fn forwarded(&self) -> Vec<Signal> {
        signal::WORKLOAD
            .iter()
            .copied()
            .filter(|s| !self.ignored.contains(s))
            .collect()
    }
}

/// Runs `command` to its end, forwarding the [`Options::forwarded`]
/// signals to it, and returns its exit code (128+N when signal N ended it).
///
/// `early` is the listener the caller opened before (the signals that
/// cancel the init): it is forwarded from, so that such a signal arriving
/// after the init ended but before the workload started is delivered to the
/// workload once it runs instead of being lost.
pub async fn run(
    command: &[OsString],
    early: signal::Listener,
    options: &Options,
) -> anyhow::Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::usage("no workload command after `--`").into());
    };
    // Listen before spawning, so that no SIGCHLD or forwarded signal is
    // missed between the spawn and the loop.
    let mut child_events = signal::Listener::new(&[Signal::SIGCHLD])?;
    let mut forwarded = early;
    forwarded.add(&options.forwarded())?;
    // Become the reaper of the workload's orphans (a no-op as PID 1). The
    // init steps are over: daemons they started keep their parent.
    let pid1 = std::process::id() == 1;
    let reap_all = pid1 || nix::sys::prctl::set_child_subreaper(true).is_ok();
    let terminal = Terminal::foreground_stdin();
    let mut command = match socket_activation() {
        // LISTEN_PID must be the workload's pid, known only once it is
        // forked: rebound re-executes itself in the child, sets it there
        // and executes the workload (a safe stand-in for code between fork
        // and exec).
        true => {
            let mut trampoline = std::process::Command::new("/proc/self/exe");
            trampoline
                .args(["init", "-", "--"])
                .arg(program)
                .args(args)
                .env(super::TRAMPOLINE, "1");
            trampoline
        }
        false => {
            let mut direct = std::process::Command::new(program);
            direct.args(args);
            direct
        }
    };
    command.process_group(0);
    // A no-op setgid(2) to the effective group, so that std forks and
    // execs instead of using glibc's posix_spawn, which leaves glibc's
    // internal signals (32 and 33) ignored in the child, and so ignored
    // for the workload. musl's posix_spawn resets every caught signal and
    // leaves only those ignored that were ignored: the static build keeps
    // it, and with it a vfork-like spawn that copies no page tables and
    // leaves rebound's memory without copy-on-write faults afterwards (a
    // good part of the entrypoint's start-up time, docs/benchmarks.md).
    #[cfg(not(target_env = "musl"))]
    command.gid(rustix::process::getegid().as_raw());
    let child = command.spawn().map_err(|e| {
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
    let job = Job {
        pid,
        terminal,
        pid1,
        group: options.signal_group,
        rewrite: options.rewrite.clone(),
    };
    job.give_terminal();
    if let Some(notifier) = &options.notifier {
        let status = format!("STATUS=running {} (pid {pid})", program.to_string_lossy());
        if options.notify_ready {
            notifier.notify(&format!("READY=1\n{status}"));
        } else {
            notifier.notify(&status);
        }
    }
    let result = loop {
        match reap(pid, reap_all) {
            Ok(Reaped::Nothing) => {}
            Ok(Reaped::Stopped(sig)) => job.stopped(sig),
            Ok(Reaped::Exited(code)) => break Ok(code),
            Err(err) => break Err(err),
        }
        // Signals first: after a stop, the SIGCONT that resumed rebound
        // is forwarded before the workload's state is looked at again.
        tokio::select! {
            biased;
            sig = forwarded.recv() => job.on_signal(sig),
            _ = child_events.recv() => {}
        }
    };
    job.take_terminal_back();
    let code = result?;
    if let Some(grace) = options.grace {
        end_leftovers(pid, grace, &mut child_events, reap_all).await;
    }
    Ok(if options.success_exits.contains(&code) {
        crate::exit::OK
    } else {
        code
    })
}

/// Whether rebound was socket-activated: `LISTEN_FDS` is set for it
/// (`LISTEN_PID` is its pid, or unset). The descriptors are inherited by the
/// workload, and `LISTEN_PID` must then name the workload.
fn socket_activation() -> bool {
    std::env::var_os("LISTEN_FDS").is_some()
        && std::env::var("LISTEN_PID")
            .map_or(true, |pid| pid.trim() == std::process::id().to_string())
}

/// rebound re-executed in the workload's child process (see
/// [`socket_activation`]): sets `LISTEN_PID` to its own pid, which the
/// workload keeps, and executes the workload. Returns only on failure, with
/// the shell's code (127 not found, 126 not executable).
pub fn trampoline(command: &[OsString]) -> i32 {
    let Some((program, args)) = command.split_first() else {
        return crate::exit::USAGE;
    };
    let err = std::process::Command::new(program)
        .args(args)
        .env_remove(super::TRAMPOLINE)
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    crate::output::err!(
        "rebound: error: cannot start the workload `{}`: {err}",
        program.to_string_lossy()
    );
    if err.kind() == std::io::ErrorKind::NotFound {
        NOT_FOUND
    } else {
        CANNOT_EXECUTE
    }
}

/// Ends what the workload left running when it exited: SIGTERM to its
/// process group and to every child rebound has (orphans re-parented to
/// it as PID 1 or subreaper; those orphaned later get theirs as they
/// come), then, after `grace`, SIGKILL to whatever is left; returns when
/// none is left. Without `reap_all` rebound cannot see orphans: the
/// group alone gets SIGTERM, then SIGKILL after `grace`.
async fn end_leftovers(
    workload: Pid,
    grace: Duration,
    child_events: &mut signal::Listener,
    reap_all: bool,
) {
    let deadline = tokio::time::Instant::now() + grace;
    let mut termed = Vec::new();
    let _ = killpg(workload, Signal::SIGTERM);
    loop {
        reap_orphans(reap_all);
        let group_alive = killpg(workload, None).is_ok();
        let may_have_children = reap_all && has_children();
        if !group_alive && !may_have_children {
            return; // the common case, known without reading /proc
        }
        let left = children();
        if left.is_empty() && !group_alive {
            return;
        }
        for (pid, group) in left {
            // Those in the workload's group had theirs from killpg.
            if group == workload || termed.contains(&pid) {
                continue;
            }
            tracing::debug!(pid = pid.as_raw(), "SIGTERM to a leftover process");
            let _ = kill(pid, Signal::SIGTERM);
            termed.push(pid);
        }
        tokio::select! {
            _ = child_events.recv() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    if !reap_all {
        let _ = killpg(workload, Signal::SIGKILL);
        return;
    }
    loop {
        let _ = killpg(workload, Signal::SIGKILL);
        reap_orphans(reap_all);
        let left = children();
        if left.is_empty() {
            return;
        }
        for (pid, _) in left {
            tracing::debug!(pid = pid.as_raw(), "SIGKILL to a leftover process");
            let _ = kill(pid, Signal::SIGKILL);
        }
        child_events.recv().await;
    }
}

/// Reaps every exited child, without blocking.
fn reap_orphans(reap_all: bool) {
    if !reap_all {
        return;
    }
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Whether rebound has a child (living or not yet reaped).
fn has_children() -> bool {
    !matches!(
        waitpid(None, Some(WaitPidFlag::WNOHANG)),
        Err(Errno::ECHILD)
    )
}

/// rebound's living children (zombies left out) and their process
/// groups, from /proc.
fn children() -> Vec<(Pid, Pid)> {
    let me = getpid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (state, ppid, group) = parent_of(&stat)?;
            (ppid == me && state != "Z" && state != "X")
                .then(|| (Pid::from_raw(pid), Pid::from_raw(group)))
        })
        .collect()
}

/// The state, parent pid and process group of a `/proc/PID/stat` line
/// (the fields after the command name, which is in parentheses and may
/// hold anything).
fn parent_of(stat: &str) -> Option<(&str, i32, i32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, ppid, group))
}

/// The running workload and what rebound does with the signals it gets.
struct Job {
    pid: Pid,
    terminal: Option<Terminal>,
    pid1: bool,
    group: bool,
    rewrite: Vec<(Signal, Option<Signal>)>,
}

impl Job {
    fn send(&self, sig: Signal) {
        tracing::debug!(signal = ?sig, pid = self.pid.as_raw(), group = self.group, "forwarding to the workload");
        // ESRCH: the workload just exited; its status comes next.
        let _ = if self.group {
            killpg(self.pid, sig)
        } else {
            kill(self.pid, sig)
        };
    }

    fn on_signal(&self, received: Signal) {
        let sig = match self.rewrite.iter().find(|(from, _)| *from == received) {
            Some((_, Some(to))) => *to,
            Some((_, None)) => return,
            None => received,
        };
        match default_action(sig) {
            DefaultAction::Stop => {
                self.send(sig);
                self.stop_self();
            }
            _ if sig == Signal::SIGCONT => {
                // Resumed (`fg` or `kill -CONT`): when rebound is back in
                // the foreground, so is the workload.
                self.give_terminal();
                self.send(sig);
            }
            _ => self.send(sig),
        }
    }

    /// The workload stopped on `sig`.
    fn stopped(&self, sig: Signal) {
        let Some(terminal) = &self.terminal else {
            return; // stopped from outside; rebound has no job to stop
        };
        if matches!(sig, Signal::SIGTTIN | Signal::SIGTTOU)
            && terminal.foreground() == Some(self.pid)
        {
            // It used the terminal in the instant between its start and
            // the hand-over; it has the terminal now.
            let _ = killpg(self.pid, Signal::SIGCONT);
            return;
        }
        // Ctrl-Z on the terminal reached the workload's group only: stop
        // rebound too, so that the shell sees its job stopped.
        self.stop_self();
    }

    fn stop_self(&self) {
        if !self.pid1 {
            tracing::debug!("stopping until SIGCONT");
            let _ = raise(Signal::SIGSTOP);
        }
    }

    /// Makes the workload's group the terminal's foreground group, when
    /// rebound's is (rebound started in the foreground, or `fg` resumed it).
    fn give_terminal(&self) {
        if let Some(terminal) = &self.terminal
            && terminal.foreground() == Some(getpgrp())
        {
            terminal.set_foreground(self.pid);
        }
    }

    /// Back to rebound's group, if the workload's group still holds it.
    fn take_terminal_back(&self) {
        if let Some(terminal) = &self.terminal
            && terminal.foreground() == Some(self.pid)
        {
            terminal.set_foreground(getpgrp());
        }
    }
}

/// Stdin, when it is the terminal rebound runs in the foreground of.
struct Terminal;

impl Terminal {
    fn foreground_stdin() -> Option<Self> {
        let stdin = std::io::stdin();
        (stdin.is_terminal() && tcgetpgrp(stdin.as_fd()).is_ok_and(|g| g == getpgrp()))
            .then_some(Terminal)
    }

    fn foreground(&self) -> Option<Pid> {
        tcgetpgrp(std::io::stdin().as_fd()).ok()
    }

    /// `tcsetpgrp`, with SIGTTOU blocked on this thread: from the
    /// background (after the hand-over) the call would otherwise send
    /// rebound SIGTTOU instead of acting.
    fn set_foreground(&self, group: Pid) {
        let ttou = SigSet::from(Signal::SIGTTOU);
        let mut before = SigSet::empty();
        if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut before)).is_err() {
            return;
        }
        if let Err(err) = tcsetpgrp(std::io::stdin().as_fd(), group) {
            tracing::debug!(%err, group = group.as_raw(), "tcsetpgrp");
        }
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    }
}

/// What [`reap`] found about the workload.
enum Reaped {
    Nothing,
    Stopped(Signal),
    Exited(i32),
}

/// Collects exited children without blocking. Returns the workload's exit
/// code once it has exited, or that it stopped. With `reap_all` (rebound is
/// PID 1 or a child subreaper), orphans are reaped too.
fn reap(workload: Pid, reap_all: bool) -> anyhow::Result<Reaped> {
    let target = if reap_all { None } else { Some(workload) };
    loop {
        match waitpid(target, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => {
                return Ok(Reaped::Exited(code));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => {
                return Ok(Reaped::Exited(signal_exit(sig as i32)));
            }
            Ok(WaitStatus::Stopped(pid, sig)) if pid == workload => {
                return Ok(Reaped::Stopped(sig));
            }
            Ok(WaitStatus::StillAlive) => return Ok(Reaped::Nothing),
            // An orphan reaped, or an orphan's stop.
            Ok(_) if reap_all => {}
            Ok(_) => return Ok(Reaped::Nothing),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_parent_and_group_after_any_command_name() {
        let stat = "4242 (a) b (c) S 17 4240 4240 0 -1 4194560 99 0 0 0";
        assert_eq!(parent_of(stat), Some(("S", 17, 4240)));
        assert_eq!(parent_of("4242 (x) Z"), None);
        assert_eq!(parent_of("no parentheses"), None);
    }
}

// No tests of `run` here: it reaps every child of the process
// (`waitpid(-1)`), which would steal the children of other tests running in
// the same test binary. crates/rebound/tests/init.rs and
// crates/rebound/tests/entrypoint.rs drive it through the real binary
// instead (exit codes, every forwarded signal, job control, the terminal,
// orphan reaping as a subreaper and as PID 1).

//! Running a child process for `rebound retry`: spawning it (in its own
//! process group unless it may need the terminal), sending it the signals
//! rebound receives (listened to with [`crate::signal`]), and mapping its
//! status to a shell-style exit code (its own code, or 128+N when signal N
//! ended it).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::{kill, killpg};
use nix::unistd::{Pid, getpgrp, tcgetpgrp};
use tokio::process::{Child, Command};

use crate::exit::signal_exit;
use crate::signal::Signal;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    /// The exit code to report: the child's own, or 128+N for signal N.
    pub code: i32,
    /// The last signal rebound received and forwarded while the child ran.
    pub signalled: Option<i32>,
    /// The signal that ended the child, if one did (then `code` is 128+N).
    pub killed_by: Option<i32>,
}

impl ChildExit {
    /// The exit of a child that ended with `status`.
    pub fn from_status(status: ExitStatus, signalled: Option<i32>) -> Self {
        Self {
            code: exit_code(status),
            signalled,
            killed_by: status.signal(),
        }
    }
}

/// Whether children get their own process group: yes unless rebound runs
/// in the foreground of its controlling terminal. A child in its own group
/// can be killed together with whatever it started (`sh -c 'a; b'`), but
/// the terminal treats it as a background job: reading from it, even through
/// `/dev/tty` (a password prompt), would stop the child (SIGTTIN). So in the
/// terminal's foreground the child stays in rebound's group, where it can
/// read the terminal and gets the terminal's Ctrl-C directly.
pub fn own_group_by_default() -> bool {
    !in_terminal_foreground()
}

/// Whether rebound's process group is the foreground group of its
/// controlling terminal (false when it has none).
fn in_terminal_foreground() -> bool {
    // Opening /dev/tty works whatever stdin is, and never stops a
    // background process.
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    tcgetpgrp(&tty).is_ok_and(|group| group == getpgrp())
}

/// Where forwarded signals go: a child, or its whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pid: u32,
    group: bool,
}

impl Target {
    /// Sends `sig`. Best effort: a child that has just exited (ESRCH) is
    /// ignored.
    pub fn send(self, sig: Signal) {
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        let pid = Pid::from_raw(pid);
        let _ = if self.group {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        };
    }
}

/// A spawned child. Dropping it before [`Running::wait`] returned kills
/// the child, and its whole process group when it has one (so a cancelled
/// attempt leaves nothing running that holds rebound's stdout open).
pub struct Running {
    child: Child,
    target: Option<Target>,
    reaped: bool,
}

impl Running {
    /// Spawns `cmd`, as the leader of a new process group when `own_group`.
    ///
    /// # Errors
    ///
    /// The spawn error (e.g. `NotFound` for an unknown program).
    pub fn spawn(cmd: &mut Command, own_group: bool) -> io::Result<Self> {
        cmd.kill_on_drop(true);
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn()?;
        let target = child.id().map(|pid| Target {
            pid,
            group: own_group,
        });
        Ok(Self {
            child,
            target,
            reaped: false,
        })
    }

    /// Where signals for this child go (`None` once it has been reaped).
    pub fn target(&self) -> Option<Target> {
        self.target.filter(|_| !self.reaped)
    }

    /// Waits for the child to exit.
    ///
    /// # Errors
    ///
    /// An error waiting for the child.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not reaped yet, so the group id cannot have been reused. The child
        // itself is then killed by `kill_on_drop`.
        if let Some(target) = self.target() {
            if target.group {
                target.send(Signal::SIGKILL);
            }
        }
    }
}

/// A shell-style exit code: the child's code, or 128+N for signal N.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => signal_exit(signal),
        // Neither (stopped/continued are not reported by `wait`): as if
        // an unknown signal had ended it.
        (None, None) => signal_exit(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    async fn exit_of(script: &str) -> ChildExit {
        let mut child = Running::spawn(&mut sh(script), true).unwrap();
        ChildExit::from_status(child.wait().await.unwrap(), None)
    }

    /// Waits (in real time: a real process writes it) for `path`.
    async fn wait_for(path: &Path) {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether process `pid` still runs (a zombie counts as ended).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").starts_with(" Z"))
    }

    #[tokio::test]
    async fn maps_exit_codes_and_signals() {
        assert_eq!(
            exit_of("exit 7").await,
            ChildExit {
                code: 7,
                signalled: None,
                killed_by: None,
            }
        );
        let exit = exit_of("kill -KILL $$").await;
        assert_eq!((exit.code, exit.killed_by), (signal_exit(9), Some(9)));
        // A plain exit with a code above 128 is not a signal.
        let exit = exit_of("exit 143").await;
        assert_eq!((exit.code, exit.killed_by), (143, None));
    }

    #[tokio::test]
    async fn unknown_program_is_a_not_found_error() {
        let err = Running::spawn(&mut Command::new("/nonexistent/rebound-test"), true)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_group_target_reaches_what_the_child_started() {
        // SIGUSR1 ends the shell (default action) and, sent to the group,
        // also reaches the grandchild, which records it.
        let dir = tempfile::tempdir().unwrap();
        let (ready, got) = (dir.path().join("ready"), dir.path().join("got"));
        let script = format!(
            "sh -c 'trap \"touch {got}; exit 0\" USR1; touch {ready}; while :; do sleep 0.01; done' & wait",
            got = got.display(),
            ready = ready.display()
        );
        let mut child = Running::spawn(&mut sh(&script), true).unwrap();
        wait_for(&ready).await;
        child.target().unwrap().send(Signal::SIGUSR1);
        let exit = ChildExit::from_status(child.wait().await.unwrap(), None);
        assert_eq!(exit.killed_by, Some(Signal::SIGUSR1 as i32));
        assert_eq!(child.target(), None, "reaped: nothing to signal");
        tokio::time::timeout(Duration::from_secs(20), wait_for(&got))
            .await
            .expect("the grandchild never got SIGUSR1");
    }

    #[tokio::test]
    async fn dropping_a_running_child_kills_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!(
            "sleep 30 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
            pid_file.display()
        );
        let child = Running::spawn(&mut sh(&script), true).unwrap();
        wait_for(&pid_file).await;
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let grandchild = grandchild.trim();
        assert!(alive(grandchild));
        drop(child);
        for _ in 0..500 {
            if !alive(grandchild) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the grandchild {grandchild} survived");
    }
}

//! Running a child process while forwarding the signals rebound receives.
//!
//! Used by `rebound retry` and `rebound init -- CMD`: rebound stays the
//! parent (so it can retry or report), and every listed signal it gets is
//! passed on to the child, which decides how to end. The child's status is
//! mapped to a shell-style exit code: its own code, or 128+N when signal N
//! ended it.

use std::future::poll_fn;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::task::Poll;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

/// The signals `rebound retry` forwards (and that stop its retries).
pub const RETRY_SIGNALS: [SignalKind; 2] = [SignalKind::interrupt(), SignalKind::terminate()];

/// The signals a supervisor such as `rebound init -- CMD` forwards.
#[allow(dead_code)]
pub const SUPERVISOR_SIGNALS: [SignalKind; 6] = [
    SignalKind::terminate(),
    SignalKind::interrupt(),
    SignalKind::hangup(),
    SignalKind::quit(),
    SignalKind::user_defined1(),
    SignalKind::user_defined2(),
];

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

/// Listens for a set of signals; create it before spawning so that no
/// signal falls between the spawn and the first wait.
pub struct Forwarder {
    listeners: Vec<(i32, tokio::signal::unix::Signal)>,
}

impl Forwarder {
    /// Starts listening for `signals`. Must run inside a tokio runtime.
    ///
    /// Note that listening replaces the default action of these signals for
    /// the rest of the process's life (tokio never uninstalls a handler).
    pub fn new(signals: &[SignalKind]) -> io::Result<Self> {
        let listeners = signals
            .iter()
            .map(|kind| Ok((kind.as_raw_value(), signal(*kind)?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { listeners })
    }

    /// Waits for the next signal among those listened to, and returns its
    /// number. Pending forever when there are no listeners.
    pub async fn recv(&mut self) -> i32 {
        poll_fn(|cx| {
            for (number, listener) in &mut self.listeners {
                if let Poll::Ready(Some(())) = listener.poll_recv(cx) {
                    return Poll::Ready(*number);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Spawns `cmd`, forwards every signal received to it until it exits,
    /// and maps its status. The child is killed if this future is dropped.
    ///
    /// # Errors
    ///
    /// The spawn error (e.g. `NotFound` for an unknown program), or an error
    /// waiting for the child.
    pub async fn run(&mut self, cmd: &mut Command) -> io::Result<ChildExit> {
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let mut signalled = None;
        loop {
            tokio::select! {
                status = child.wait() => {
                    return Ok(ChildExit::from_status(status?, signalled));
                }
                number = self.recv() => {
                    signalled = Some(number);
                    if let Some(pid) = pid {
                        send_signal(pid, number);
                    }
                }
            }
        }
    }
}

/// Spawns `cmd`, forwards `signals` to it while it runs, waits, and maps the
/// status to an exit code (128+N for signal N).
///
/// # Errors
///
/// Installing a signal listener, spawning or waiting failed.
#[allow(dead_code)]
pub async fn run_forwarding(cmd: &mut Command, signals: &[SignalKind]) -> io::Result<ChildExit> {
    Forwarder::new(signals)?.run(cmd).await
}

/// Sends signal `number` to process `pid`. Best effort: a child that has
/// just exited (ESRCH) or an unknown signal number is ignored.
pub fn send_signal(pid: u32, number: i32) {
    if let (Ok(pid), Ok(sig)) = (i32::try_from(pid), Signal::try_from(number)) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// A shell-style exit code: the child's code, or 128+N for signal N.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        // Neither (stopped/continued are not reported by `wait`).
        (None, None) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[tokio::test]
    async fn maps_exit_codes_and_signals() {
        let exit = run_forwarding(&mut sh("exit 7"), &[]).await.unwrap();
        assert_eq!(
            exit,
            ChildExit {
                code: 7,
                signalled: None,
                killed_by: None,
            }
        );
        let exit = run_forwarding(&mut sh("kill -KILL $$"), &[]).await.unwrap();
        assert_eq!((exit.code, exit.killed_by), (128 + 9, Some(9)));
        // A plain exit with a code above 128 is not a signal.
        let exit = run_forwarding(&mut sh("exit 143"), &[]).await.unwrap();
        assert_eq!((exit.code, exit.killed_by), (143, None));
    }

    #[tokio::test]
    async fn unknown_program_is_a_not_found_error() {
        let err = run_forwarding(&mut Command::new("/nonexistent/rebound-test"), &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn forwards_a_received_signal_to_the_child() {
        // SIGUSR1 is sent to this test process; the child traps it and exits
        // with 42, which proves it was forwarded.
        let mut fwd = Forwarder::new(&[SignalKind::user_defined1()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'exit 42' USR1; touch {}; while :; do sleep 0.01; done",
            ready.display()
        );
        let mut cmd = sh(&script);
        let run = fwd.run(&mut cmd);
        let send = async {
            while !ready.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            kill(Pid::this(), Signal::SIGUSR1).unwrap();
        };
        let (exit, ()) = tokio::join!(run, send);
        let exit = exit.unwrap();
        assert_eq!(exit.code, 42);
        assert_eq!(exit.signalled, Some(Signal::SIGUSR1 as i32));
    }
}

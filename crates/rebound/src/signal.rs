//! The signals rebound listens for: the named sets each command reacts to,
//! and one [`Listener`] for any of them.
//!
//! Which set a command uses, and why:
//! - [`STOP`] (SIGINT, SIGTERM): `rebound wait`, `rebound agent` and
//!   `rebound recovery run` stop on them; nothing of theirs outlives
//!   rebound, so the other signals keep their default action.
//! - [`END_JOB`] (adds SIGHUP, SIGQUIT): every signal a supervisor or a
//!   terminal sends to end a job. `rebound retry` forwards them to its
//!   command and `rebound init` cancels its steps on them: left to its
//!   default action, one of them would end rebound and leave a child running,
//!   orphaned, in its own process group.
//! - [`WORKLOAD`] (adds SIGUSR1, SIGUSR2): what `rebound init -- CMD` passes
//!   on to the workload, as a container entrypoint must.
//!
//! A command that ends because of signal N exits with
//! [`crate::exit::signal_exit`]`(N)`, 128 + N.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

pub use nix::sys::signal::Signal;
use tokio::signal::unix::SignalKind;

/// SIGINT and SIGTERM: stop (`wait`, `agent`, `recovery run`).
pub const STOP: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM];

/// Every signal that ends a job: [`STOP`] plus SIGHUP and SIGQUIT (`retry`
/// forwards them, `init` cancels its steps on them).
pub const END_JOB: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// What `rebound init` forwards to its workload: [`END_JOB`] plus SIGUSR1
/// and SIGUSR2.
pub const WORKLOAD: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Listens for a set of signals. Create it before whatever the signals
/// should reach (a child, a step), so that none falls in between.
///
/// Listening replaces the default action of these signals for the rest of
/// the process's life (tokio never uninstalls a handler).
pub struct Listener {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Listener {
    /// Starts listening for `signals`. Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// A handler could not be installed.
    pub fn new(signals: &[Signal]) -> io::Result<Self> {
        let mut listener = Self {
            streams: Vec::with_capacity(signals.len()),
        };
        listener.add(signals)?;
        Ok(listener)
    }

    /// Listens for `signals` too (those already listened to keep their
    /// stream, and with it any signal it holds).
    ///
    /// # Errors
    ///
    /// A handler could not be installed.
    pub fn add(&mut self, signals: &[Signal]) -> io::Result<()> {
        for &sig in signals {
            if !self.streams.iter().any(|(s, _)| *s == sig) {
                let stream = tokio::signal::unix::signal(SignalKind::from_raw(sig as i32))?;
                self.streams.push((sig, stream));
            }
        }
        Ok(())
    }

    /// Waits for the next signal among those listened to. Pending forever
    /// when there are none.
    pub async fn recv(&mut self) -> Signal {
        poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                if let Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Installs the [`STOP`] handlers (SIGINT, SIGTERM) now; the
/// future resolves to the exit code for the first of them (130, 143).
pub fn stop_exit_code() -> impl Future<Output = i32> {
    let signals = Listener::new(STOP);
    async move {
        match signals {
            Ok(mut signals) => crate::exit::signal_exit(signals.recv().await as i32),
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_set_holds_the_one_before() {
        assert!(STOP.iter().all(|s| END_JOB.contains(s)));
        assert!(END_JOB.iter().all(|s| WORKLOAD.contains(s)));
    }

    #[tokio::test]
    async fn reports_each_signal_received_once_listened_to() {
        let mut listener = Listener::new(&[Signal::SIGUSR1]).unwrap();
        listener.add(&[Signal::SIGUSR1, Signal::SIGUSR2]).unwrap();
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        assert_eq!(listener.recv().await, Signal::SIGUSR2);
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert_eq!(listener.recv().await, Signal::SIGUSR1);
    }
}

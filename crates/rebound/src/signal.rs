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
//! - [`WORKLOAD`] (every signal that can be caught but SIGCHLD): what
//!   `rebound init -- CMD` passes on to the workload, as a container
//!   entrypoint must (dumb-init's set). What rebound does with each while
//!   no workload runs yet follows the signal's [`default_action`].
//!
//! Signals the parent left ignored (`nohup`, `trap '' HUP`) are read with
//! [`ignored_at_start`] before any handler is installed and are left alone,
//! so that they stay ignored for rebound and, across `exec`, for the
//! workload.
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

/// What `rebound init` forwards to its workload: every signal a process can
/// catch (signal handlers cannot be installed for SIGKILL and SIGSTOP, nor,
/// safely, for the fault signals SIGILL, SIGFPE and SIGSEGV) except SIGCHLD,
/// which tells rebound that a child ended. 25 signals, as dumb-init.
pub const WORKLOAD: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGURG,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGALRM,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSYS,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGBUS,
    Signal::SIGSTKFLT,
    Signal::SIGPIPE,
];

/// What a signal does to a process that neither catches nor ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Ends the process (some also dump core).
    End,
    /// Nothing (SIGCHLD, SIGCONT, SIGURG, SIGWINCH).
    Ignore,
    /// Stops the process: the job-control signals SIGTSTP, SIGTTIN and
    /// SIGTTOU (and SIGSTOP, which cannot be caught).
    Stop,
}

/// The default action of `sig` (signal(7)). SIGCONT is counted as
/// [`DefaultAction::Ignore`]: it resumes a stopped process whatever its
/// disposition.
pub fn default_action(sig: Signal) -> DefaultAction {
    match sig {
        Signal::SIGCHLD | Signal::SIGCONT | Signal::SIGURG | Signal::SIGWINCH => {
            DefaultAction::Ignore
        }
        Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGSTOP => {
            DefaultAction::Stop
        }
        _ => DefaultAction::End,
    }
}

/// Parses a signal given on the command line: a name with or without
/// `SIG`, in any case (`TERM`, `SIGTERM`, `term`), or a number (`15`).
///
/// # Errors
///
/// The text names no signal (the message says what was given).
pub fn parse(text: &str) -> Result<Signal, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("no signal has the number {number}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().map_err(|_| {
        format!("unknown signal `{text}` (expected a name such as TERM or a number such as 15)")
    })
}

/// The signals this process ignores now, as the kernel reports them
/// (`SigIgn` in `/proc/self/status`). Called before rebound installs any
/// handler, it returns what the parent left ignored (`nohup`, `trap ''`),
/// except SIGPIPE: Rust's runtime ignores SIGPIPE itself before `main`, and
/// the standard library resets it to its default in every child, so whether
/// the parent ignored it cannot be told nor passed on.
///
/// # Errors
///
/// `/proc/self/status` cannot be read or has no well-formed `SigIgn` line.
pub fn ignored_at_start() -> io::Result<Vec<Signal>> {
    use std::io::Read as _;
    // Room for the whole file (about 1.5 KiB) from the start: one read
    // instead of a chain of small ones (a /proc file reports no size).
    let mut status = String::with_capacity(4096);
    std::fs::File::open("/proc/self/status")?.read_to_string(&mut status)?;
    parse_sig_ign(&status)
}

/// The signals of the `SigIgn:` line of a `/proc/PID/status` text (a
/// 64-bit hexadecimal mask; bit N-1 is signal N), SIGPIPE left out.
fn parse_sig_ign(status: &str) -> io::Result<Vec<Signal>> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/self/status: {what}"),
        )
    };
    let value = status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| *key == "SigIgn")
        .map(|(_, value)| value.trim())
        .ok_or_else(|| bad("no SigIgn line"))?;
    let mask =
        u64::from_str_radix(value, 16).map_err(|e| bad(&format!("SigIgn value {value:?}: {e}")))?;
    Ok(Signal::iterator()
        .filter(|&sig| sig != Signal::SIGPIPE)
        .filter(|&sig| {
            let n = sig as i32;
            (1..=64).contains(&n) && mask & (1u64 << (n - 1)) != 0
        })
        .collect())
}

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

    #[test]
    fn workload_set_is_every_catchable_signal_but_sigchld() {
        let uncatchable = [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGILL,
            Signal::SIGFPE,
            Signal::SIGSEGV,
            Signal::SIGCHLD,
        ];
        for sig in Signal::iterator() {
            assert_eq!(
                WORKLOAD.contains(&sig),
                !uncatchable.contains(&sig),
                "{sig:?}"
            );
        }
        assert_eq!(WORKLOAD.len(), 25);
    }

    #[test]
    fn parses_names_and_numbers() {
        for text in ["TERM", "SIGTERM", "term", " 15 "] {
            assert_eq!(parse(text), Ok(Signal::SIGTERM), "{text}");
        }
        assert_eq!(parse("winch"), Ok(Signal::SIGWINCH));
        assert!(parse("TREM").unwrap_err().contains("unknown signal `TREM`"));
        assert!(
            parse("99")
                .unwrap_err()
                .contains("no signal has the number 99")
        );
    }

    #[test]
    fn default_actions() {
        assert_eq!(default_action(Signal::SIGWINCH), DefaultAction::Ignore);
        assert_eq!(default_action(Signal::SIGCONT), DefaultAction::Ignore);
        assert_eq!(default_action(Signal::SIGTTOU), DefaultAction::Stop);
        assert_eq!(default_action(Signal::SIGALRM), DefaultAction::End);
        assert_eq!(default_action(Signal::SIGPWR), DefaultAction::End);
    }

    #[test]
    fn parses_the_ignored_mask() {
        // SIGHUP (bit 0), SIGPIPE (bit 12, left out) and SIGUSR1 (bit 9).
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001201\nSigCgt:\t0\n";
        assert_eq!(
            parse_sig_ign(status).unwrap(),
            [Signal::SIGHUP, Signal::SIGUSR1]
        );
        let err = parse_sig_ign("SigIgn:\tzz\n").unwrap_err();
        assert!(err.to_string().contains("SigIgn value \"zz\""), "{err}");
        assert!(parse_sig_ign("Name: x\n").is_err());
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

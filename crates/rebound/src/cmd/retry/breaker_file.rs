//! `rebound retry --breaker-file PATH`: a circuit breaker shared by every
//! `rebound retry` (cron jobs, scripts) that names the same file.
//!
//! The unit is a *run*: the whole retried command. `--breaker-failures N`
//! failed runs in a row open the breaker; while it is open, `rebound retry`
//! does not run the command and exits [`BREAKER_OPEN`] (75) at once, saying
//! until when. After the cool-down, one process is let through as the trial
//! run (half-open): it takes a lease, written to the file, so that other
//! processes starting meanwhile are refused too. A successful run (trial or
//! not) closes the breaker; a failed trial opens it again for a cool-down
//! twice as long as the previous one (up to one hour, or the first cool-down
//! if that is longer), computed by rebound-retry's [`Exponential`] backoff.
//!
//! The state is a small JSON document (`"version": 1`) in the file itself,
//! read and written under an exclusive lock on that file (`flock`, as
//! std's `File::lock`); the lock is held only while the state is read and
//! updated, never while the command runs. The file is created with mode
//! 0600 at the given path; nothing else is written. Times are wall-clock
//! (RFC 3339, UTC), since several processes share them; a time in the file
//! further ahead than its cool-down (the clock was set back) is cut to
//! the cool-down.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rebound_retry::{BreakerState, CircuitBreaker, Exponential, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use crate::exit::{BREAKER_OPEN, CliError};

/// The version of the state file this code reads and writes.
const VERSION: u32 = 1;
/// `--breaker-failures` when not given.
pub(super) const DEFAULT_FAILURES: u32 = 5;
/// `--breaker-cooldown` when not given.
pub(super) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);
/// The cap on a growing cool-down (unless the first one is longer).
const MAX_COOLDOWN: Duration = Duration::from_secs(3600);
/// `--breaker-trial-lease` when neither it nor `--deadline` is given.
const DEFAULT_LEASE: Duration = Duration::from_secs(600);
/// Added to `--deadline` for the default lease: the run ends shortly after
/// its deadline, and then records its result.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// The breaker settings of one `rebound retry`, checked.
#[derive(Debug)]
pub(super) struct Settings {
    path: PathBuf,
    failures: u32,
    /// Cool-down `n` (1 for the first opening) is `cooldown.nominal(n)`.
    cooldown: Exponential,
    lease: Duration,
}

/// How the run ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunOutcome {
    /// The command succeeded (exit 0).
    Success,
    /// It failed: attempts ran out, an exit code not retried, the deadline.
    Failure,
    /// Says nothing about the endpoint: the command could not be started,
    /// or rebound was interrupted by a signal.
    NotCounted,
}

/// What [`Settings::admit`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ticket {
    /// The breaker is closed.
    Closed,
    /// This run is the half-open trial.
    Trial,
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    /// `closed`, `open` or `half-open`.
    state: String,
    /// Failed runs in a row (reset by a success).
    consecutive_failures: u32,
    /// Openings since the breaker last closed: the cool-down's exponent.
    #[serde(default)]
    openings: u32,
    /// The cool-down of the current opening, humantime (`1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cooldown: Option<String>,
    /// Open: no run before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_until: Option<String>,
    /// Half-open: a trial run holds the lease until this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trial_until: Option<String>,
    /// Half-open: the process id of the trial run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trial_pid: Option<u32>,
}

/// [`StateFile`], read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    state: BreakerState,
    consecutive_failures: u32,
    openings: u32,
    cooldown: Duration,
    open_until: Option<SystemTime>,
    trial_until: Option<SystemTime>,
    trial_pid: Option<u32>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            openings: 0,
            cooldown: Duration::ZERO,
            open_until: None,
            trial_until: None,
            trial_pid: None,
        }
    }
}

/// Why an admission was refused (exit [`BREAKER_OPEN`]).
#[derive(Debug)]
pub(super) struct Rejection {
    /// `open` or `half-open`.
    pub(super) state: BreakerState,
    /// No run before this time.
    pub(super) until: SystemTime,
    /// How long from now.
    pub(super) retry_in: Duration,
    /// The sentence for stderr.
    pub(super) message: String,
}

impl Settings {
    /// Checks the flags: `None` without `--breaker-file`.
    ///
    /// # Errors
    ///
    /// Exit 2 naming the flag: `--breaker-failures 0`, a cool-down the
    /// breaker refuses.
    pub(super) fn new(
        path: Option<&Path>,
        failures: Option<u32>,
        cooldown: Option<Duration>,
        lease: Option<Duration>,
        deadline: Option<Duration>,
    ) -> Result<Option<Self>, CliError> {
        let Some(path) = path else {
            return Ok(None);
        };
        let failures = failures.unwrap_or(DEFAULT_FAILURES);
        let first = cooldown.unwrap_or(DEFAULT_COOLDOWN);
        let max = first.max(MAX_COOLDOWN);
        // The library's breaker checks the same settings the same way.
        CircuitBreaker::builder()
            .with_consecutive_failures(failures)
            .with_cooldown(first)
            .with_max_cooldown(max)
            .with_cooldown_multiplier(2.0)
            .build()
            .map_err(|e| {
                let flag = match e.setting() {
                    "consecutive_failures" => "--breaker-failures",
                    _ => "--breaker-cooldown",
                };
                CliError::usage(format!("{flag}: {e}"))
            })?;
        let cooldown = ExponentialBuilder::new()
            .with_initial_delay(first)
            .with_max_delay(max)
            .with_multiplier(2.0)
            .without_jitter()
            .forever()
            .build()
            .map_err(|e| CliError::usage(format!("--breaker-cooldown: {e}")))?;
        let lease = lease
            .unwrap_or_else(|| deadline.map_or(DEFAULT_LEASE, |d| d.saturating_add(LEASE_GRACE)));
        Ok(Some(Self {
            path: path.to_path_buf(),
            failures,
            cooldown,
            lease,
        }))
    }

    /// Before the run: lets it through (closed, or as the half-open trial)
    /// or refuses it.
    ///
    /// # Errors
    ///
    /// `Ok(Err(rejection))` when the breaker refuses the run; `Err` (exit
    /// 2) when the file cannot be opened, locked, read or written, or is
    /// not a breaker state file.
    pub(super) fn admit(&self, now: SystemTime) -> Result<Result<Ticket, Rejection>, CliError> {
        let mut file = self.open_locked()?;
        let mut state = self.read(&mut file)?;
        if state.state == BreakerState::Closed {
            return Ok(Ok(Ticket::Closed));
        }
        // A time further ahead than the cool-down (the clock was set back)
        // is cut to it.
        let bound = match state.cooldown {
            Duration::ZERO => self.cooldown.nominal(state.openings),
            cooldown => cooldown,
        };
        if let Some(until) = state
            .open_until
            .map(|t| t.min(now + bound))
            .filter(|t| *t > now)
        {
            return Ok(Err(self.rejection(&state, BreakerState::Open, until, now)));
        }
        if let Some(until) = state
            .trial_until
            .map(|t| t.min(now + self.lease))
            .filter(|t| *t > now)
        {
            return Ok(Err(self.rejection(
                &state,
                BreakerState::HalfOpen,
                until,
                now,
            )));
        }
        // The cool-down is over and no trial holds a lease: this run is it.
        state.state = BreakerState::HalfOpen;
        state.trial_until = Some(now + self.lease);
        state.trial_pid = Some(std::process::id());
        self.write(&mut file, &state)?;
        Ok(Ok(Ticket::Trial))
    }

    /// After the run: records its outcome. A success closes the breaker;
    /// a failure counts (opening it at the threshold, or again after a
    /// failed trial, with a longer cool-down).
    ///
    /// # Errors
    ///
    /// Those of [`admit`](Self::admit) for the file.
    pub(super) fn record(
        &self,
        ticket: Ticket,
        outcome: RunOutcome,
        now: SystemTime,
    ) -> Result<(), CliError> {
        let mut file = self.open_locked()?;
        let mut state = self.read(&mut file)?;
        let our_trial = ticket == Ticket::Trial
            && state.state == BreakerState::HalfOpen
            && state.trial_pid == Some(std::process::id());
        match outcome {
            RunOutcome::Success => state = State::default(),
            RunOutcome::Failure => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let open = if our_trial {
                    true
                } else {
                    state.state == BreakerState::Closed
                        && state.consecutive_failures >= self.failures
                };
                if open {
                    state.openings = state.openings.saturating_add(1);
                    state.cooldown = self.cooldown.nominal(state.openings);
                    state.state = BreakerState::Open;
                    state.open_until = now.checked_add(state.cooldown);
                    state.trial_until = None;
                    state.trial_pid = None;
                }
            }
            RunOutcome::NotCounted => {
                if our_trial {
                    // Give the trial back: the next run may take it.
                    state.state = BreakerState::Open;
                    state.trial_until = None;
                    state.trial_pid = None;
                }
            }
        }
        self.write(&mut file, &state)
    }

    fn rejection(
        &self,
        state: &State,
        which: BreakerState,
        until: SystemTime,
        now: SystemTime,
    ) -> Rejection {
        let retry_in = until.duration_since(now).unwrap_or_default();
        // Whole seconds, rounded up: "in 0s" would read as "now".
        let secs = retry_in.as_secs() + u64::from(retry_in.subsec_nanos() > 0);
        let when = format!(
            "{} (in {})",
            humantime::format_rfc3339_seconds(until),
            humantime::format_duration(Duration::from_secs(secs))
        );
        let path = self.path.display();
        let message = match which {
            BreakerState::Open => format!(
                "breaker open (--breaker-file {path}: {} failed run(s) in a row); \
                 not running the command until {when}",
                state.consecutive_failures
            ),
            _ => format!(
                "breaker half-open (--breaker-file {path}): a trial run (pid {}) is in \
                 progress; not running the command until it ends, at the latest {when}",
                state.trial_pid.unwrap_or(0)
            ),
        };
        Rejection {
            state: which,
            until,
            retry_in,
            message,
        }
    }

    /// Opens (creating it 0600 if missing) and locks the file.
    fn open_locked(&self) -> Result<File, CliError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.error(format!("cannot open it: {e}")))?;
        // flock(LOCK_EX), which is what std's `File::lock` does on Unix;
        // that method needs Rust 1.89 and the workspace supports 1.85.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.error(format!("cannot lock it: {}", std::io::Error::from(e))))?;
        Ok(file)
    }

    fn error(&self, what: String) -> CliError {
        CliError::usage(format!("--breaker-file {}: {what}", self.path.display()))
    }

    /// The state in the file; an empty file is a closed breaker.
    fn read(&self, file: &mut File) -> Result<State, CliError> {
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| self.error(format!("cannot read it: {e}")))?;
        State::parse(&text).map_err(|e| self.error(e))
    }

    /// Replaces the file's content with `state` (in place: the lock is on
    /// this file).
    fn write(&self, file: &mut File, state: &State) -> Result<(), CliError> {
        let text = state
            .render()
            .map_err(|e| self.error(format!("cannot encode the state: {e}")))?;
        let written = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.set_len(text.len() as u64))
            .and_then(|()| file.flush());
        written.map_err(|e| self.error(format!("cannot write it: {e}")))
    }
}

impl State {
    /// The state a file's text holds; empty text (a new file) is a closed
    /// breaker. The error says what is wrong, for `--breaker-file PATH:`.
    pub(crate) fn parse(text: &str) -> Result<State, String> {
        if text.trim().is_empty() {
            return Ok(State::default());
        }
        let reset = "remove the file to reset the breaker";
        let raw: StateFile = serde_json::from_str(text)
            .map_err(|e| format!("not a rebound breaker state file ({e}); {reset}"))?;
        if raw.version != VERSION {
            return Err(format!(
                "state file version {} is not supported (this rebound reads version \
                 {VERSION}); {reset}",
                raw.version
            ));
        }
        let bad = |what: &str| format!("invalid {what} in the state file; {reset}");
        let time = |field: &str, text: Option<String>| {
            text.map(|t| humantime::parse_rfc3339(&t).map_err(|_| bad(field)))
                .transpose()
        };
        let state = match raw.state.as_str() {
            "closed" => BreakerState::Closed,
            "open" => BreakerState::Open,
            "half-open" => BreakerState::HalfOpen,
            _ => return Err(bad("\"state\"")),
        };
        let cooldown = raw
            .cooldown
            .map(|c| rebound_retry::duration::parse(&c).map_err(|_| bad("\"cooldown\"")))
            .transpose()?
            .unwrap_or_default();
        Ok(State {
            state,
            consecutive_failures: raw.consecutive_failures,
            openings: raw.openings,
            cooldown,
            open_until: time("\"open_until\"", raw.open_until)?,
            trial_until: time("\"trial_until\"", raw.trial_until)?,
            trial_pid: raw.trial_pid,
        })
    }

    /// The file's text for this state (pretty JSON and a newline; times to
    /// the millisecond).
    pub(crate) fn render(&self) -> Result<String, serde_json::Error> {
        let time =
            |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_millis(t).to_string());
        let raw = StateFile {
            version: VERSION,
            state: self.state.to_string(),
            consecutive_failures: self.consecutive_failures,
            openings: self.openings,
            cooldown: (!self.cooldown.is_zero())
                .then(|| humantime::format_duration(self.cooldown).to_string()),
            open_until: time(self.open_until),
            trial_until: time(self.trial_until),
            trial_pid: self.trial_pid,
        };
        let mut text = serde_json::to_string_pretty(&raw)?;
        text.push('\n');
        Ok(text)
    }
}

/// The error for a refused run: exit [`BREAKER_OPEN`].
pub(super) fn refused(rejection: &Rejection) -> CliError {
    CliError::new(BREAKER_OPEN, rejection.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &tempfile::TempDir, failures: u32, cooldown: u64) -> Settings {
        Settings::new(
            Some(&dir.path().join("breaker.json")),
            Some(failures),
            Some(Duration::from_secs(cooldown)),
            Some(Duration::from_secs(30)),
            None,
        )
        .unwrap()
        .unwrap()
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn opens_after_n_failures_then_one_trial_and_a_longer_cooldown() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, 2, 10);
        for _ in 0..2 {
            assert_eq!(s.admit(t(0)).unwrap().unwrap(), Ticket::Closed);
            s.record(Ticket::Closed, RunOutcome::Failure, t(0)).unwrap();
        }
        let r = s.admit(t(4)).unwrap().unwrap_err();
        assert_eq!(
            (r.state, r.until, r.retry_in),
            (BreakerState::Open, t(10), Duration::from_secs(6))
        );
        assert!(r.message.contains("(in 6s)"), "{}", r.message);
        // After the cool-down: one trial, the next is refused while it runs.
        assert_eq!(s.admit(t(10)).unwrap().unwrap(), Ticket::Trial);
        let r = s.admit(t(11)).unwrap().unwrap_err();
        assert_eq!((r.state, r.until), (BreakerState::HalfOpen, t(40)));
        // The trial fails: open again for twice as long.
        s.record(Ticket::Trial, RunOutcome::Failure, t(12)).unwrap();
        let r = s.admit(t(12)).unwrap().unwrap_err();
        assert_eq!((r.state, r.until), (BreakerState::Open, t(32)));
        // The next trial succeeds: closed, and the cool-down starts over.
        assert_eq!(s.admit(t(32)).unwrap().unwrap(), Ticket::Trial);
        s.record(Ticket::Trial, RunOutcome::Success, t(33)).unwrap();
        assert_eq!(
            s.read(&mut s.open_locked().unwrap()).unwrap(),
            State::default()
        );
    }

    #[test]
    fn an_interrupted_trial_gives_the_lease_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, 1, 10);
        s.record(Ticket::Closed, RunOutcome::Failure, t(0)).unwrap();
        assert_eq!(s.admit(t(10)).unwrap().unwrap(), Ticket::Trial);
        s.record(Ticket::Trial, RunOutcome::NotCounted, t(11))
            .unwrap();
        assert_eq!(s.admit(t(11)).unwrap().unwrap(), Ticket::Trial);
    }

    #[test]
    fn a_time_set_back_is_cut_to_the_cooldown() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, 1, 10);
        s.record(Ticket::Closed, RunOutcome::Failure, t(1000))
            .unwrap();
        // The clock went back 1000 s: still at most 10 s from "now".
        let r = s.admit(t(0)).unwrap().unwrap_err();
        assert_eq!(r.until, t(10));
    }

    #[test]
    fn cooldown_grows_to_an_hour_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&dir, 1, 60);
        assert_eq!(s.cooldown.nominal(1), Duration::from_secs(60));
        assert_eq!(s.cooldown.nominal(2), Duration::from_secs(120));
        assert_eq!(s.cooldown.nominal(30), MAX_COOLDOWN);
        let long = settings(&dir, 1, 7200);
        assert_eq!(long.cooldown.nominal(9), Duration::from_secs(7200));
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let err = |f, c| {
            Settings::new(Some(Path::new("x")), f, c, None, None)
                .unwrap_err()
                .to_string()
        };
        assert!(err(Some(0), None).starts_with("--breaker-failures:"));
        assert!(err(None, Some(Duration::ZERO)).starts_with("--breaker-cooldown:"));
        assert!(err(None, Some(Duration::from_secs(u64::MAX))).starts_with("--breaker-cooldown:"));
    }
}

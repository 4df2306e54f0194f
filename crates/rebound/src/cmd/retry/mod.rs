//! `rebound retry`: run a command until it exits 0 or the retry policy says
//! stop, printing each failed attempt and the delay before the next.

use std::ffi::OsString;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rebound_retry::classify::ExitCodes;
use rebound_retry::duration;
use rebound_retry::{
    Classify, Decision, Exponential, ExponentialBuilder, Jitter, PolicyError, RetryError,
    Retryable, StopReason, presets,
};
use tokio::process::Command;

use crate::child::{ChildExit, Running, Target, own_group_by_default};
use crate::exit::{CANNOT_EXECUTE, CliError, NOT_FOUND, TIMEOUT, signal_exit};
use crate::signal::{self, Signal};

pub(crate) mod breaker_file;
mod report;

use breaker_file::RunOutcome;
use report::{Report, describe};

const AFTER_HELP: &str = "\
Flags override the preset. Durations are humantime text (250ms, 5s, 1m30s)
or a bare number of seconds (30 is 30s).
Each failed attempt is reported on stderr with the delay before the next;
with --json, one JSON object per attempt is written to stderr instead (stdout
stays the child's). The child's stdout and stderr pass through unchanged.

Exit code: the child's last exit code (128+N when signal N ended it);
2 for a bad flag or an invalid policy (nothing is run); 75 when the
--breaker-file breaker is open (nothing is run); 124 when --deadline
ran out; 126/127 when CMD cannot be executed / is not found; 128+N when
signal N (SIGINT 130, SIGTERM 143, SIGHUP 129, SIGQUIT 131) arrived between
attempts. SIGINT, SIGTERM, SIGHUP and SIGQUIT received while the child runs
are forwarded to it and stop the retries.

Unless rebound runs in the foreground of a terminal, CMD runs in its own
process group: forwarded signals go to the whole group, and --deadline
kills the whole group, so nothing CMD started keeps running (or holds the
output open) after it. In a terminal's foreground CMD stays in rebound's
group so that it can read the terminal; there only CMD itself is signalled
and killed.

With --breaker-file PATH, every `rebound retry` naming PATH shares one
circuit breaker (state in PATH, JSON, created 0600, locked while read and
updated, not while CMD runs): after --breaker-failures failed runs in a row
(a run is the whole retried command) it opens, and `rebound retry` exits 75
at once without running CMD, saying until when. After the cool-down one
process runs CMD as the trial (the others still exit 75): success closes the
breaker, failure opens it again for twice as long. Runs that could not start
CMD or were interrupted by a signal do not count. A file that is not a
breaker state is an error (exit 2); remove it to reset the breaker.

Examples:
  rebound retry -- curl -fsS http://127.0.0.1:8080/health
  rebound retry --preset network --attempts 6 --retry-on-exit 75,111 -- ./sync.sh
  rebound retry --delay 1s --max-delay 30 --deadline 2m --json -- make deploy
  rebound retry --breaker-file /var/tmp/api.breaker --breaker-failures 3 \
      --breaker-cooldown 5m -- curl -fsS https://api.example/v1/sync";

/// Arguments of `rebound retry`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Starting policy: default (3 attempts, 100ms, cap 5s, x2), network
    /// (4, 500ms, 5s) or connection (3, 50ms, 2s); all with equal jitter.
    #[arg(long, value_enum, default_value_t = Preset::Default, value_name = "P")]
    preset: Preset,

    /// Total attempts, the first included (at least 1).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    attempts: Option<u32>,

    /// Delay before the first retry.
    #[arg(long, value_name = "D", value_parser = parse_duration, allow_hyphen_values = true)]
    delay: Option<Duration>,

    /// Cap on every delay.
    #[arg(long, value_name = "D", value_parser = parse_duration, allow_hyphen_values = true)]
    max_delay: Option<Duration>,

    /// Growth factor between delays (finite, at least 1).
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    multiplier: Option<f64>,

    /// Jitter mode: none, full, equal or decorrelated (the presets use
    /// equal).
    #[arg(long, value_name = "J")]
    jitter: Option<Jitter>,

    /// Deadline for the whole run: a running attempt is killed (with its
    /// process group) when it passes, and no retry is started when its delay
    /// would reach it (rebound stops at once instead of sleeping).
    #[arg(long, value_name = "D", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    deadline: Option<Duration>,

    /// Exit codes to retry: `any` non-zero code, or a list such as 75,111.
    #[arg(long, value_name = "CODES|any", default_value = "any")]
    retry_on_exit: ExitCodes,

    /// Report attempts as JSON objects, one per line, on stderr.
    #[arg(long)]
    json: bool,

    /// Share a circuit breaker, kept in this file, with every `rebound
    /// retry` naming it: after --breaker-failures failed runs in a row the
    /// command is not run (exit 75) until the cool-down is over.
    #[arg(long, value_name = "PATH")]
    breaker_file: Option<PathBuf>,

    /// Failed runs in a row that open the breaker [default: 5].
    #[arg(
        long,
        value_name = "N",
        requires = "breaker_file",
        allow_negative_numbers = true
    )]
    breaker_failures: Option<u32>,

    /// First cool-down of an open breaker; it doubles after each failed
    /// trial run, up to 1h (or the first cool-down if longer) [default: 1m].
    #[arg(long, value_name = "D", requires = "breaker_file", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    breaker_cooldown: Option<Duration>,

    /// How long a half-open trial run keeps other processes out if it never
    /// reports back (killed) [default: --deadline + 5s, or 10m].
    #[arg(long, value_name = "D", requires = "breaker_file", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    breaker_trial_lease: Option<Duration>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// `--preset` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Preset {
    Default,
    Network,
    Connection,
}

/// A duration in rebound's one grammar ([`rebound_retry::duration`]):
/// humantime text or a bare number of seconds. Negative text reaches here
/// (the duration flags allow a leading `-`) so that it is named as such,
/// instead of clap's "unexpected argument '-1'".
fn parse_duration(text: &str) -> Result<Duration, String> {
    not_a_flag(text)?;
    duration::parse(text).map_err(|e| e.to_string())
}

/// [`parse_duration`], refusing zero (`--deadline`, `--breaker-cooldown`).
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    not_a_flag(text)?;
    duration::parse_positive(text).map_err(|e| e.to_string())
}

/// A flag given where a value is needed (`--delay --json`).
fn not_a_flag(text: &str) -> Result<(), String> {
    if text.starts_with("--") {
        return Err(format!("a duration is needed here, not the flag {text}"));
    }
    Ok(())
}

/// Runs `rebound retry`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    // Validate everything before running anything.
    let backoff = build_policy(&args)?;
    let breaker = breaker_file::Settings::new(
        args.breaker_file.as_deref(),
        args.breaker_failures,
        args.breaker_cooldown,
        args.breaker_trial_lease,
        args.deadline,
    )?;
    // The breaker's lock is held only here and after the run, never while
    // the command runs.
    let ticket = match &breaker {
        Some(breaker) => match breaker.admit(SystemTime::now())? {
            Ok(ticket) => Some(ticket),
            Err(rejection) => {
                if args.json {
                    report::breaker_rejected(&rejection);
                }
                return Err(breaker_file::refused(&rejection).into());
            }
        },
        None => None,
    };
    let mut outcome = RunOutcome::NotCounted;
    let result = crate::runtime::build()
        .and_then(|rt| rt.block_on(run_attempts(args, backoff, &mut outcome)));
    if let (Some(breaker), Some(ticket)) = (&breaker, ticket) {
        // The command has run: its exit code stands even if the breaker
        // cannot record it.
        if let Err(err) = breaker.record(ticket, outcome, SystemTime::now()) {
            report::warning(&format!("cannot record the run in the breaker: {err}"));
        }
    }
    result
}

/// The backoff from the preset and the flags that override it.
fn build_policy(args: &Args) -> Result<Exponential, CliError> {
    let mut builder: ExponentialBuilder = match args.preset {
        Preset::Default => presets::default(),
        Preset::Network => presets::network(),
        Preset::Connection => presets::connection(),
    };
    if let Some(n) = args.attempts {
        builder = builder.with_max_attempts(n);
    }
    if let Some(d) = args.delay {
        builder = builder.with_initial_delay(d);
    }
    if let Some(d) = args.max_delay {
        builder = builder.with_max_delay(d);
    }
    if let Some(m) = args.multiplier {
        builder = builder.with_multiplier(m);
    }
    if let Some(j) = args.jitter {
        builder = builder.with_jitter(j);
    }
    builder
        .build()
        .map_err(|e| CliError::usage(format!("{}: {e}", flag_of(&e, args))))
}

/// The flag to blame for an invalid policy, from the error's variant.
fn flag_of(error: &PolicyError, args: &Args) -> &'static str {
    match error {
        PolicyError::InvalidMultiplier { .. } => "--multiplier",
        PolicyError::ZeroAttempts => "--attempts",
        // Max below initial: blame the flag the user gave (if only --delay
        // was raised above the preset's cap, that is --delay).
        PolicyError::MaxBelowInitial { .. } if args.max_delay.is_none() => "--delay",
        PolicyError::MaxBelowInitial { .. } => "--max-delay",
        // A variant added later: the preset is where the settings came from.
        _ => "--preset",
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum AttemptError {
    /// The command could not be started.
    Spawn(std::io::Error),
    /// It ran and exited non-zero (or was killed by a signal).
    Exit(ChildExit),
}

/// Retries exit codes in the `--retry-on-exit` set; never a spawn error or
/// a run during which rebound was signalled.
struct ExitClassifier(ExitCodes, Arc<Shared>);

impl Classify<AttemptError> for ExitClassifier {
    fn classify(&self, error: &AttemptError) -> Decision {
        if self.1.stop_signal().is_some() {
            return Decision::Stop;
        }
        match error {
            AttemptError::Spawn(_) => Decision::Stop,
            AttemptError::Exit(exit) if exit.signalled.is_some() => Decision::Stop,
            AttemptError::Exit(exit) => self.0.classify(&exit.code),
        }
    }
}

/// What the attempts and the signal listener share.
#[derive(Debug, Default)]
struct Shared {
    /// The running child (or its process group), if any: signals received
    /// go to it.
    target: Mutex<Option<Target>>,
    /// The signal that stopped the retries (0: none yet).
    stop: AtomicI32,
}

impl Shared {
    fn stop_signal(&self) -> Option<i32> {
        Some(self.stop.load(Ordering::SeqCst)).filter(|n| *n != 0)
    }

    /// A signal arrived: forward it to the running child and return true,
    /// or return false when no child runs (between attempts).
    fn forward(&self, sig: Signal) -> bool {
        let target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        self.stop.store(sig as i32, Ordering::SeqCst);
        match *target {
            Some(target) => {
                target.send(sig);
                true
            }
            None => false,
        }
    }
}

/// Registers the running child as the signal target, and clears it however
/// the run ends.
struct TargetGuard(Arc<Shared>);

impl TargetGuard {
    fn new(shared: &Arc<Shared>, target: Option<Target>) -> Self {
        *shared.target.lock().unwrap_or_else(PoisonError::into_inner) = target;
        Self(Arc::clone(shared))
    }
}

impl Drop for TargetGuard {
    fn drop(&mut self) {
        *self.0.target.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Runs the attempts; `outcome` says, for the breaker, how the run ended.
async fn run_attempts(
    args: Args,
    backoff: Exponential,
    outcome: &mut RunOutcome,
) -> anyhow::Result<i32> {
    let report = Report {
        json: args.json,
        max_attempts: backoff.max_attempts().unwrap_or(u32::MAX),
    };
    // clap requires CMD, so the list is never empty; stay defensive anyway.
    let Some((name, rest)) = args.command.split_first() else {
        return Err(CliError::usage("missing CMD after `--`").into());
    };
    let program = Arc::new((name.clone(), rest.to_vec()));
    let shared = Arc::new(Shared::default());
    let attempts = Arc::new(AtomicU32::new(0));
    // One listener for the whole run, installed before the first spawn so
    // that no signal is missed: during an attempt a signal is forwarded to
    // the child and stops the retries; between attempts it stops at once.
    let mut signals = signal::Listener::new(signal::END_JOB)?;
    let own_group = own_group_by_default();

    let op = {
        let (program, shared, attempts) = (
            Arc::clone(&program),
            Arc::clone(&shared),
            Arc::clone(&attempts),
        );
        move || {
            let (program, shared) = (Arc::clone(&program), Arc::clone(&shared));
            attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut cmd = Command::new(&program.0);
                cmd.args(&program.1);
                // Dropped when --deadline cancels the attempt: that kills
                // the child (and its process group, if it has its own).
                let mut child = Running::spawn(&mut cmd, own_group).map_err(AttemptError::Spawn)?;
                let guard = TargetGuard::new(&shared, child.target());
                let status = child.wait().await.map_err(AttemptError::Spawn)?;
                drop(guard);
                let exit = ChildExit::from_status(status, shared.stop_signal());
                if exit.code == 0 {
                    Ok(exit)
                } else {
                    Err(AttemptError::Exit(exit))
                }
            }
        }
    };
    let mut retried = op
        .retry(backoff)
        .classify(ExitClassifier(
            args.retry_on_exit.clone(),
            Arc::clone(&shared),
        ))
        .notify(|e: &AttemptError, attempt: u32, delay: Duration| {
            if let AttemptError::Exit(exit) = e {
                report.retrying(attempt, exit, delay);
            }
        })
        .name("rebound retry");
    if let Some(deadline) = args.deadline {
        retried = retried.deadline(deadline);
    }
    let mut retried = pin!(retried);

    let result = loop {
        tokio::select! {
            result = &mut retried => break result,
            sig = signals.recv() => {
                if !shared.forward(sig) {
                    let attempt = attempts.load(Ordering::SeqCst);
                    report.interrupted(attempt, sig as i32);
                    return Ok(signal_exit(sig as i32));
                }
                // Forwarded to the running child; the classifier stops the
                // retries once it exits.
            }
        }
    };
    let attempt = attempts.load(Ordering::SeqCst);
    match result {
        Ok(exit) => {
            *outcome = RunOutcome::Success;
            report.succeeded(attempt, &exit);
            Ok(0)
        }
        Err(err) => {
            *outcome = breaker_outcome(&err);
            finish(&report, err, &program.0, args.deadline, &args.retry_on_exit)
        }
    }
}

/// What a failed run tells the breaker: a command that could not be
/// started, or a run rebound was signalled during, says nothing about the
/// endpoint; the rest (attempts exhausted, a code not retried, the
/// deadline) is a failure.
fn breaker_outcome(err: &RetryError<AttemptError>) -> RunOutcome {
    match err.last_error() {
        Some(AttemptError::Spawn(_)) => RunOutcome::NotCounted,
        Some(AttemptError::Exit(exit)) if exit.signalled.is_some() => RunOutcome::NotCounted,
        Some(AttemptError::Exit(_)) => RunOutcome::Failure,
        None if err.reason() == StopReason::Deadline => RunOutcome::Failure,
        None => RunOutcome::NotCounted,
    }
}

/// Reports why the retries stopped and picks the exit code.
fn finish(
    report: &Report,
    err: RetryError<AttemptError>,
    program: &OsString,
    deadline: Option<Duration>,
    retry_on: &ExitCodes,
) -> anyhow::Result<i32> {
    let attempt = err.attempts();
    let reason = err.reason();
    let timed_out = err.last_attempt_timed_out();
    match (reason, err.into_last_error()) {
        (_, Some(AttemptError::Spawn(e))) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                NOT_FOUND
            } else {
                CANNOT_EXECUTE
            };
            report.stopped(attempt, None, "spawn_error", None);
            Err(CliError::new(
                code,
                format!("cannot run `{}`: {e}", program.to_string_lossy()),
            )
            .into())
        }
        (StopReason::Deadline, last) => {
            let exit = last.as_ref().and_then(|e| match e {
                AttemptError::Exit(exit) => Some(exit),
                AttemptError::Spawn(_) => None,
            });
            report.stopped(attempt, exit, "deadline", None);
            let deadline = humantime::format_duration(deadline.unwrap_or_default());
            let what = if timed_out {
                "the running attempt was killed".to_string()
            } else {
                "the next retry could not start before it".to_string()
            };
            Err(CliError::new(
                TIMEOUT,
                format!("--deadline {deadline} ran out after {attempt} attempt(s): {what}"),
            )
            .into())
        }
        (reason, Some(AttemptError::Exit(exit))) => {
            let why = match (reason, exit.signalled) {
                (_, Some(sig)) => {
                    report.stopped(attempt, Some(&exit), "signal", Some(sig));
                    return Ok(exit.code);
                }
                (StopReason::Permanent, None) => {
                    report.stopped(attempt, Some(&exit), "not_retried", None);
                    format!(
                        "exit code {} is not in --retry-on-exit {retry_on}",
                        exit.code
                    )
                }
                _ => {
                    report.stopped(attempt, Some(&exit), "exhausted", None);
                    "no attempts left".to_string()
                }
            };
            if !report.json {
                report.line(&format!(
                    "attempt {attempt}/{} failed ({}); {why}",
                    report.max_attempts,
                    describe(&exit)
                ));
            }
            Ok(exit.code)
        }
        (reason, None) => Err(CliError::failed(format!("retries stopped: {reason}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    fn args(flags: &[&str]) -> Args {
        let mut argv = vec!["retry"];
        argv.extend_from_slice(flags);
        argv.extend_from_slice(&["--", "true"]);
        Wrapper::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn flags_override_the_preset() {
        let b = build_policy(&args(&[
            "--preset",
            "network",
            "--attempts",
            "6",
            "--delay",
            "1s",
            "--max-delay",
            "3s",
            "--jitter",
            "none",
        ]))
        .unwrap();
        assert_eq!(b.max_attempts(), Some(6));
        let v: Vec<_> = b.map(|d| d.as_millis()).collect();
        assert_eq!(v, [1000, 2000, 3000, 3000, 3000]);
    }

    #[test]
    fn negative_durations_are_named_as_such() {
        for flag in ["--delay", "--max-delay", "--deadline"] {
            let err = Wrapper::try_parse_from(["retry", flag, "-1s", "--", "true"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("negative duration"), "{flag}: {err}");
            assert!(err.contains(flag), "{flag}: {err}");
        }
        let err = Wrapper::try_parse_from(["retry", "--delay", "--json", "--", "true"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the flag --json"), "{err}");
    }

    #[test]
    fn invalid_policies_name_the_flag() {
        let err = |flags: &[&str]| build_policy(&args(flags)).unwrap_err().to_string();
        assert!(err(&["--multiplier", "0.5"]).starts_with("--multiplier:"));
        assert!(err(&["--attempts", "0"]).starts_with("--attempts:"));
        assert!(err(&["--delay", "10s"]).starts_with("--delay:"));
        assert!(err(&["--delay", "2s", "--max-delay", "1s"]).starts_with("--max-delay:"));
    }

    #[test]
    fn classifier_retries_only_listed_codes_and_never_signalled_runs() {
        let shared = Arc::new(Shared::default());
        let c = ExitClassifier("75".parse().unwrap(), Arc::clone(&shared));
        let exit = |code, signalled| {
            AttemptError::Exit(ChildExit {
                code,
                signalled,
                killed_by: None,
            })
        };
        assert_eq!(c.classify(&exit(75, None)), Decision::Retry);
        assert_eq!(c.classify(&exit(1, None)), Decision::Stop);
        assert_eq!(c.classify(&exit(75, Some(15))), Decision::Stop);
        let spawn = AttemptError::Spawn(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(c.classify(&spawn), Decision::Stop);
        // Once rebound has been signalled nothing is retried.
        assert!(!shared.forward(Signal::SIGTERM), "no child runs");
        assert_eq!(c.classify(&exit(75, None)), Decision::Stop);
    }
}

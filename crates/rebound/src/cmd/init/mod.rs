//! `rebound init`: validate a spec, run its init steps with live progress,
//! then run the workload.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use rebound_init::events::Event;
use rebound_init::orchestrator::{InitErrorKind, Runner};
use rebound_init::spec::Spec;

use crate::exit::{self, CliError, signal_exit};
use crate::notify::Notifier;
use crate::output::{STILL_WAITING_EVERY, StdoutError, out};
use crate::signal::{self, Signal};

mod progress;
mod workload;

use progress::Progress;

const AFTER_HELP: &str = "\
Examples:
  rebound init examples/quickstart.yaml -- echo \"workload started\"
  rebound init --check deploy.yaml --service api
  rebound init --json init.yaml -- ./server --port 8080

As a container entrypoint:  ENTRYPOINT [\"rebound\", \"init\", \"/etc/init.yaml\", \"--\"]
  CMD [\"./server\"]   (signals are forwarded; zombies are reaped when PID 1)
  Add --quiet (or REBOUND_QUIET=1) to print only errors; see docs/init.md
  for --signal-group, --rewrite, --success-exit, --grace.

Exit codes: 0 ok (or the workload's own code, 128+N when signal N ended
it); 2 invalid spec or usage; 3 a step failed; 124 a step timed out;
126/127 the workload cannot be executed / is not found; 128+N when signal N
(SIGINT 130, SIGTERM 143, SIGHUP 129, SIGQUIT 131, ...) stopped the init.";

/// Arguments of `rebound init`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The spec: a YAML file with `init` (and `errors`), or a ZLayer
    /// deployment with `services`.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,

    /// In a deployment file, the service whose `init` runs (optional when
    /// exactly one service has an `init` section).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Only validate the spec: print what would run and exit (0 or 2).
    #[arg(long)]
    pub check: bool,

    /// Print one JSON object per event on stdout instead of progress lines.
    #[arg(long)]
    pub json: bool,

    /// Print nothing on success; only errors (a failed step, the summary
    /// of a failed init, the final error). Also REBOUND_QUIET=1.
    #[arg(
        long,
        short = 'q',
        env = "REBOUND_QUIET",
        conflicts_with = "json",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub quiet: bool,

    /// Forward signals to the workload's whole process group (what it
    /// started too), not only to the workload (tini -g).
    #[arg(long)]
    pub signal_group: bool,

    /// Forward signal FROM as signal TO (names or numbers, e.g. TERM:QUIT;
    /// TO 0 drops FROM). Repeatable (dumb-init --rewrite).
    #[arg(long, value_name = "FROM:TO", value_parser = parse_rewrite)]
    pub rewrite: Vec<(Signal, Option<Signal>)>,

    /// Exit with 0 when the workload exits with CODE (e.g. 143 for a
    /// SIGTERM it does not handle). Repeatable (tini -e).
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(i32).range(0..=255))]
    pub success_exit: Vec<i32>,

    /// When the workload exits, how long the processes it left running get
    /// between SIGTERM and SIGKILL (`5s`, `250ms`, or a number of seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = rebound_retry::duration::parse)]
    pub grace: std::time::Duration,

    /// Leave the processes the workload left running alone when it exits
    /// (by default: SIGTERM, then SIGKILL after --grace).
    #[arg(long)]
    pub no_kill_leftovers: bool,

    /// The signal rebound gets when its parent dies (PR_SET_PDEATHSIG,
    /// tini -p); like any other, it is forwarded to the workload, or ends
    /// the init.
    #[arg(long, value_name = "SIGNAL", value_parser = signal::parse)]
    pub parent_death_signal: Option<Signal>,

    /// With NOTIFY_SOCKET set (a systemd service of Type=notify), send
    /// READY=1 once the init is done and the workload started (STATUS=
    /// lines are sent in any case).
    #[arg(long)]
    pub notify_ready: bool,

    /// The workload to run once the init succeeded (after `--`); rebound
    /// forwards signals to it and exits with its exit code.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Set in the environment of rebound re-executed as the workload's
/// trampoline (socket activation, see [`workload`]).
const TRAMPOLINE: &str = "REBOUND_INIT_TRAMPOLINE";

/// Runs `rebound init`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if std::env::var_os(TRAMPOLINE).is_some() {
        return Ok(workload::trampoline(&args.command));
    }
    let notifier = Notifier::from_env().map_err(|e| CliError::usage(e.to_string()))?;
    let spec = Spec::load(&args.spec, args.service.as_deref())
        .map_err(|err| CliError::usage(format!("invalid spec: {err}")))?;
    if args.check {
        return Ok(check(&args, &spec)?);
    }
    // Before any handler is installed: what the parent left ignored stays
    // ignored (for rebound, and for the workload across exec).
    let options = workload::Options {
        // Without /proc (a bare chroot) nothing is known to be ignored.
        ignored: signal::ignored_at_start().unwrap_or_else(|err| {
            tracing::debug!(%err, "cannot read the ignored signals");
            Vec::new()
        }),
        signal_group: args.signal_group,
        rewrite: args.rewrite.clone(),
        success_exits: args.success_exit.clone(),
        grace: (!args.no_kill_leftovers).then_some(args.grace),
        notifier: notifier.clone(),
        notify_ready: args.notify_ready,
    };
    if let Some(sig) = args.parent_death_signal {
        nix::sys::prctl::set_pdeathsig(sig).map_err(|e| {
            CliError::failed(format!("--parent-death-signal {}: {e}", sig.as_str()))
        })?;
    }
    let progress = Arc::new(Progress::choose(args.json, args.quiet));
    // One thread: the init's steps and the workload's supervision are
    // I/O- and signal-driven; an entrypoint that idles beside its workload
    // should hold one thread and little memory (docs/benchmarks.md).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Listen before the first step to every signal the workload will
        // get (but SIGPIPE, which rebound's own writes could raise), so
        // that none falls between the init and the workload, and so that
        // none ends rebound by its default action while a step's command
        // runs in its own group (it would be left running).
        let init_signals: Vec<Signal> = options
            .forwarded()
            .into_iter()
            .filter(|&s| s != Signal::SIGPIPE)
            .collect();
        let mut stops = signal::Listener::new(&init_signals)?;
        let sink = progress.clone();
        let status = notifier.clone();
        let runner = Runner::new(&spec).on_event(move |e| {
            sink.event(e);
            if let Some(notifier) = &status {
                notify_event(notifier, e);
            }
        });
        let still_waiting = {
            let progress = progress.clone();
            async move {
                let mut every = still_waiting_ticks();
                loop {
                    every.tick().await;
                    progress.still_waiting();
                }
            }
        };
        let run = runner.run();
        // Both end with this block (the "still waiting" timer included):
        // nothing wakes rebound on a timer while the workload runs.
        let outcome = {
            tokio::pin!(run, still_waiting);
            loop {
                tokio::select! {
                    outcome = &mut run => break outcome,
                    never = &mut still_waiting => match never {},
                    sig = stops.recv() => match signal::default_action(sig) {
                        // A signal that would end rebound ends the init,
                        // cleanly: dropping the run kills the running step's
                        // process group.
                        signal::DefaultAction::End => {
                            let what = match sig {
                                Signal::SIGINT => "interrupted",
                                _ => "terminated",
                            };
                            progress.interrupted(sig.as_str(), signal_exit(sig as i32));
                            return Err(CliError::new(
                                signal_exit(sig as i32),
                                format!("{what} during the init ({})", sig.as_str()),
                            )
                            .into());
                        }
                        // Job control: rebound stops (its steps, in their own
                        // groups, go on) until SIGCONT. As PID 1 it cannot.
                        signal::DefaultAction::Stop => {
                            if std::process::id() != 1 {
                                let _ = nix::sys::signal::raise(Signal::SIGSTOP);
                            }
                        }
                        // SIGWINCH, SIGURG, SIGCONT: nothing to do yet.
                        signal::DefaultAction::Ignore => {}
                    },
                }
            }
        };
        match outcome {
            Ok(summary) => {
                progress.summary(&summary, true);
                if let Some(notifier) = &notifier {
                    notifier.status("init done");
                }
            }
            Err(err) => {
                progress.summary(err.summary(), false);
                if let Some(notifier) = &notifier {
                    notifier.status(&format!("init failed: {err}"));
                }
                let code = match err.kind() {
                    InitErrorKind::StepTimedOut => exit::TIMEOUT,
                    _ => exit::FAILED,
                };
                return Err(CliError::new(code, err.to_string()).into());
            }
        }
        if args.command.is_empty() {
            return Ok(exit::OK);
        }
        // The workload runner forwards from this same listener: a SIGTERM
        // that arrives now, before the workload has started, still
        // reaches it (a new listener would not see it).
        workload::run(&args.command, stops, &options).await
    })
}

/// The "still waiting" ticks: the first one period from now, then every
/// period. Not `interval(period)`, whose "immediate" first tick is still a
/// timer entry that the time driver rounds up to the next millisecond: the
/// runtime then parked with a 1 ms timeout and woke once, for nothing,
/// while the first step ran (docs/benchmarks.md).
fn still_waiting_ticks() -> tokio::time::Interval {
    tokio::time::interval_at(
        tokio::time::Instant::now() + STILL_WAITING_EVERY,
        STILL_WAITING_EVERY,
    )
}

/// `STATUS=` for the init events a service manager shows.
fn notify_event(notifier: &Notifier, event: &Event) {
    match event {
        Event::StepStarted { step, target, .. } => {
            notifier.status(&format!("init: [{step}] {target}"));
        }
        Event::InitRestarted {
            restart,
            max_retries,
            resume_at,
            ..
        } => notifier.status(&format!(
            "init: restart {restart}/{max_retries}, resuming at [{resume_at}]"
        )),
        _ => {}
    }
}

/// `--rewrite FROM:TO`: two signals (TO may be 0: drop FROM).
fn parse_rewrite(text: &str) -> Result<(Signal, Option<Signal>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected FROM:TO, e.g. TERM:QUIT"))?;
    let from = signal::parse(from)?;
    let to = if to.trim() == "0" {
        None
    } else {
        Some(signal::parse(to)?)
    };
    Ok((from, to))
}

/// `--check`: the spec is valid (loading succeeded); say what would run.
fn check(args: &Args, spec: &Spec) -> Result<i32, StdoutError> {
    if args.json {
        let steps: Vec<_> = spec
            .init
            .steps
            .iter()
            .map(|s| serde_json::json!({ "id": s.id, "uses": s.action.name(), "target": s.action.describe() }))
            .collect();
        out!(
            "{}",
            serde_json::json!({ "event": "check", "ok": true, "spec": args.spec.display().to_string(), "service": spec.service, "steps": steps })
        )?;
    } else {
        let service = spec
            .service
            .as_deref()
            .map(|s| format!(" (service {s})"))
            .unwrap_or_default();
        match spec.init.steps.len() {
            0 => out!(
                "{}: ok{service}, no init steps (the workload starts at once)",
                args.spec.display()
            )?,
            n => out!(
                "{}: ok{service}, {n} step{}",
                args.spec.display(),
                if n == 1 { "" } else { "s" }
            )?,
        }
        let width = spec
            .init
            .steps
            .iter()
            .map(|s| s.id.len())
            .max()
            .unwrap_or(0);
        for step in &spec.init.steps {
            out!(
                "  {:<width$}  {:<14}  {}",
                step.id,
                step.action.name(),
                step.action.describe()
            )?;
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: the ticks came from `interval(STILL_WAITING_EVERY)`, whose
    // first tick was due at once, so that a one-step init armed a timer due
    // within a millisecond and woke on it while its step ran.
    #[tokio::test(start_paused = true)]
    async fn the_first_still_waiting_tick_is_one_period_away() {
        let start = tokio::time::Instant::now();
        let mut every = still_waiting_ticks();
        let first = every.tick().await;
        assert_eq!(first - start, STILL_WAITING_EVERY);
        let second = every.tick().await;
        assert_eq!(second - first, STILL_WAITING_EVERY);
    }
}

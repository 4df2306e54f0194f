//! `rebound wait`: wait for TCP ports, HTTP endpoints and files, in
//! parallel, using the same actions as the init steps.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rebound_init::actions::{ActionContext, ActionError, LastProblem};
use serde_json::json;
use tokio::task::JoinSet;

use crate::exit::{CliError, OK};
use crate::output::{STILL_WAITING_EVERY, StdoutError, err, out};
use crate::signal::stop_exit_code;

pub(crate) mod target;

use target::Target;

const AFTER_HELP: &str = "\
Targets:
  tcp://HOST:PORT     ready when a connection is accepted
  http(s)://URL       ready on a 2xx answer; a 4xx other than 408/429 fails
  http+unix://%2FSOCKET/PATH
                      the same over a Unix socket (the host is the socket's
                      path, percent-encoded)
  file:///PATH        ready when the file exists (%20 and other %XX escapes
                      in PATH are decoded)
  unix:///PATH        ready when the Unix stream socket accepts a connection
  dns://NAME[?type=A|AAAA|CNAME|TXT&expect=VALUE&server=IP:PORT]
                      ready when the name resolves (to VALUE); A and AAAA
                      through the system resolver
  postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME]
                      ready when a login and SELECT 1 succeed (and the
                      table exists); postgresql:// too; the password may
                      come from PGPASSWORD instead; plaintext only
  mysql://USER:PASSWORD@HOST:PORT/DB[?table=NAME]
                      the same for MySQL and MariaDB (MYSQL_PWD)
  redis://[:PASSWORD@]HOST:PORT[/DB][?key=NAME], rediss:// (TLS)
                      ready when PING answers PONG (and the key exists)
  grpc://HOST:PORT[/SERVICE], grpcs://...
                      ready when grpc.health.v1.Health/Check answers SERVING
                      (for SERVICE, or the whole server); grpcs:// trusts the
                      system's roots (and SSL_CERT_FILE)
  --exec 'CMD'        ready when the shell command exits 0 (run again and
                      again, each run in its own process group)

Examples:
  rebound wait tcp://127.0.0.1:5432
  rebound wait --timeout 30s tcp://db:5432 http://api:8080/health file:///run/ready
  rebound wait http+unix://%2Fvar%2Frun%2Fdocker.sock/_ping
  rebound wait --timeout 1m grpc://api:50051/shop.Orders
  rebound wait --exec 'pg_isready -h db' --timeout 1m
  rebound wait --until-gone --timeout 30s tcp://127.0.0.1:8080 file:///run/app.pid
  rebound wait --json-path status --json-equals ok http://api:8080/health
  rebound wait --timeout 1m 'postgres://app@db/app?table=schema_migrations' redis://cache:6379

Exit codes: 0 all ready, 2 bad target, 3 a target failed for good,
124 the --timeout ran out (the targets not ready are named).";

/// Arguments of `rebound wait`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Give up after this long (e.g. 30s, 2m, 1m30s); exit 124.
    #[arg(long, value_name = "D", value_parser = timeout_flag, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,

    /// Print one JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,

    /// HTTP targets: a regular expression the body must match.
    #[arg(long, value_name = "RE")]
    pub body_regex: Option<String>,

    /// HTTP targets: a header the answer must have, `Name` or `Name: value`.
    #[arg(long, value_name = "HEADER")]
    pub header: Option<String>,

    /// HTTP targets: a JSONPath (`$.status`, or `status`) that must select
    /// something in the JSON body.
    #[arg(long, value_name = "PATH")]
    pub json_path: Option<String>,

    /// HTTP targets: the value (JSON, or else text) that --json-path must
    /// select.
    #[arg(long, value_name = "VALUE", requires = "json_path")]
    pub json_equals: Option<String>,

    /// Wait for each target to go instead: a tcp or unix socket closed, a
    /// file absent, an HTTP endpoint giving no answer at all.
    #[arg(long)]
    pub until_gone: bool,

    /// Also wait until this shell command (`sh -c`) exits 0; it runs again
    /// and again, each run in its own process group. Repeatable.
    #[arg(long, value_name = "CMD")]
    pub exec: Vec<String>,

    /// What to wait for: tcp://HOST:PORT, http(s)://...,
    /// http+unix://%2FSOCKET/PATH, file:///PATH, unix:///PATH, dns://NAME,
    /// postgres://..., mysql://..., redis://... (rediss://).
    #[arg(required_unless_present = "exec", value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// `--timeout`: a duration in the one grammar of rebound's durations
/// (`rebound_retry::duration::parse`: humantime, or a bare number of
/// seconds; a negative one is named as such). The flag allows a leading
/// `-` so that `-1s` reaches that parser instead of being taken for an
/// unknown flag; a value that is itself a flag (`--timeout --json`) is
/// refused here.
fn timeout_flag(text: &str) -> Result<Duration, String> {
    if text.starts_with("--") {
        return Err(format!("a duration is needed here, not the flag {text}"));
    }
    rebound_retry::duration::parse(text).map_err(|e| e.to_string())
}

/// Runs `rebound wait`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let targets = targets(&args)?;
    run_targets(args, targets)
}

/// The targets of the command line, checked: what `rebound wait` would
/// wait for, or the usage error it would exit 2 with.
pub(crate) fn targets(args: &Args) -> Result<Vec<Target>, CliError> {
    let checks = target::HttpChecks::new(
        args.body_regex.as_deref(),
        args.header.as_deref(),
        args.json_path.as_deref(),
        args.json_equals.as_deref(),
    )
    .map_err(CliError::usage)?;
    let targets = args
        .targets
        .iter()
        .map(|t| target::parse(t, &checks))
        .chain(args.exec.iter().map(|cmd| target::exec(cmd)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::usage)?;
    let targets = if args.until_gone {
        if !checks.is_empty() {
            return Err(CliError::usage(
                "--until-gone waits for no answer at all: --body-regex, --header and --json-path do not apply",
            ));
        }
        targets
            .into_iter()
            .map(target::until_gone)
            .collect::<Result<Vec<_>, _>>()
            .map_err(CliError::usage)?
    } else {
        targets
    };
    if !checks.is_empty()
        && !targets
            .iter()
            .any(|t| matches!(t.action, rebound_init::actions::ActionSpec::WaitHttp(_)))
    {
        return Err(CliError::usage(
            "--body-regex, --header and --json-path apply to http targets, and there is none",
        ));
    }
    Ok(targets)
}

/// Waits for the checked `targets`.
fn run_targets(args: Args, targets: Vec<Target>) -> anyhow::Result<i32> {
    let runtime = crate::runtime::build()?;
    let result = runtime.block_on(async {
        // Handlers first, so that a SIGTERM right after the "waiting" lines
        // is already ours.
        let signals = stop_exit_code();
        let mut report = Report::new(args.json, &targets)?;
        wait_all(&targets, args.timeout, signals, &mut report).await
    });
    // Do not wait for the blocking DNS lookups of abandoned targets.
    runtime.shutdown_background();
    result
}

/// How a wait ended early.
enum Stop {
    Failed(usize, ActionError),
    Panicked(usize),
    TimedOut(Duration),
    Signal(i32),
    /// Stdout cannot be written (see `crate::output`).
    Output(StdoutError),
}

async fn wait_all(
    targets: &[Target],
    timeout: Option<Duration>,
    signals: impl Future<Output = i32>,
    report: &mut Report,
) -> anyhow::Result<i32> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    // Why each target is not ready yet, named when the timeout runs out.
    let mut problems = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let action = t.action.clone();
        let ctx = ActionContext::new(t.text.clone(), std::sync::Arc::new(|_, _, _| {}));
        problems.push(ctx.last_problem.clone());
        tasks.spawn(async move { (i, action.attempt(&ctx).await) });
    }
    let mut ready = vec![false; targets.len()];
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    tokio::pin!(signals);
    let mut still_waiting = tokio::time::interval(STILL_WAITING_EVERY);
    still_waiting.tick().await; // the first tick is immediate

    let stop = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break None,
                Some(Ok((i, Ok(())))) => {
                    ready[i] = true;
                    if let Err(e) = report.ready(i, start.elapsed()) {
                        break Some(Stop::Output(e));
                    }
                }
                Some(Ok((i, Err(e)))) => break Some(Stop::Failed(i, e)),
                Some(Err(e)) => {
                    let i = ready.iter().position(|r| !r).unwrap_or(0);
                    tracing::error!("a wait task panicked: {e}");
                    break Some(Stop::Panicked(i));
                }
            },
            _ = still_waiting.tick() => report.still_waiting(&ready, start.elapsed()),
            () = &mut deadline => break Some(Stop::TimedOut(timeout.unwrap_or_default())),
            code = &mut signals => break Some(Stop::Signal(code)),
        }
    };
    tasks.abort_all();
    let elapsed = start.elapsed();
    // When the wait ends in failure, its own exit code says more than a
    // report line that could not be written: those write errors are
    // dropped, and only success yields to a stdout error.
    match stop {
        None => {
            report.done(elapsed)?;
            Ok(OK)
        }
        Some(Stop::Output(e)) => Err(e.into()),
        Some(Stop::Failed(i, e)) => {
            let _ = report.failed(i, e.message(), elapsed);
            Err(CliError::failed(format!("{} failed: {e}", targets[i].text)).into())
        }
        Some(Stop::Panicked(i)) => {
            let _ = report.failed(i, "internal error", elapsed);
            Err(CliError::failed(format!("waiting for {} failed", targets[i].text)).into())
        }
        Some(Stop::TimedOut(limit)) => {
            let not_ready = not_ready(targets.iter().map(|t| t.text.as_str()), &ready);
            let why = last_problems(&ready, &problems);
            let _ = report.timed_out(&not_ready, &why, elapsed);
            Err(CliError::timeout(format!(
                "timed out after {}; not ready: {}",
                humantime::format_duration(limit),
                with_reasons(&not_ready, &why)
            ))
            .into())
        }
        Some(Stop::Signal(code)) => {
            let _ = report.interrupted(code);
            Ok(code)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `0.4ms`, `12.0ms`, `1s 250ms`: elapsed time for people.
fn short(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        humantime::format_duration(Duration::from_millis(millis(d))).to_string()
    }
}

/// Where progress goes: JSON lines, spinners on a terminal, or plain lines.
enum Report {
    Json(Vec<String>),
    Terminal {
        texts: Vec<String>,
        bars: Vec<ProgressBar>,
        _multi: MultiProgress,
    },
    Plain(Vec<String>),
}

impl Report {
    fn new(json: bool, targets: &[Target]) -> Result<Self, StdoutError> {
        let texts: Vec<String> = targets.iter().map(|t| t.text.clone()).collect();
        if json {
            for t in targets {
                emit(&json!({"event": "waiting", "target": t.text, "what": t.action.describe()}))?;
            }
            return Ok(Report::Json(texts));
        }
        if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = targets
                .iter()
                .map(|t| {
                    let bar = multi.add(
                        ProgressBar::new_spinner()
                            .with_style(style.clone())
                            .with_prefix(t.text.clone())
                            .with_message("waiting"),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                })
                .collect();
            return Ok(Report::Terminal {
                texts,
                bars,
                _multi: multi,
            });
        }
        for t in targets {
            err!("rebound: {}", waiting_line(&t.text, &t.action.describe()));
        }
        Ok(Report::Plain(texts))
    }

    fn ready(&mut self, i: usize, elapsed: Duration) -> Result<(), StdoutError> {
        match self {
            Report::Json(texts) => {
                emit(&json!({"event": "ready", "target": texts[i], "elapsed_ms": millis(elapsed)}))?
            }
            Report::Terminal { bars, texts, .. } => {
                bars[i].set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let line = format!("ready {} after {}", texts[i], short(elapsed));
                if !std::io::stdout().is_terminal() {
                    out!("{line}")?;
                }
                bars[i].finish_with_message(line);
            }
            Report::Plain(texts) => out!("ready {} after {}", texts[i], short(elapsed))?,
        }
        Ok(())
    }

    fn failed(&mut self, i: usize, error: &str, elapsed: Duration) -> Result<(), StdoutError> {
        match self {
            Report::Json(texts) => emit(&json!({
                "event": "failed", "target": texts[i], "error": error,
                "elapsed_ms": millis(elapsed),
            }))?,
            Report::Terminal { bars, .. } => {
                for bar in bars.iter() {
                    bar.abandon();
                }
                bars[i].abandon_with_message("failed");
            }
            Report::Plain(_) => {}
        }
        Ok(())
    }

    fn timed_out(
        &mut self,
        not_ready: &[&str],
        why: &[Option<String>],
        elapsed: Duration,
    ) -> Result<(), StdoutError> {
        match self {
            Report::Json(_) => emit(&json!({
                "event": "timeout", "not_ready": not_ready, "last_errors": why,
                "elapsed_ms": millis(elapsed),
            }))?,
            Report::Terminal { bars, .. } => {
                for bar in bars.iter().filter(|b| !b.is_finished()) {
                    bar.abandon_with_message("not ready");
                }
            }
            Report::Plain(_) => {}
        }
        Ok(())
    }

    fn interrupted(&mut self, code: i32) -> Result<(), StdoutError> {
        match self {
            Report::Json(_) => emit(&json!({"event": "interrupted", "exit_code": code}))?,
            Report::Terminal { bars, .. } => {
                for bar in bars.iter().filter(|b| !b.is_finished()) {
                    bar.abandon_with_message("interrupted");
                }
            }
            Report::Plain(_) => {}
        }
        Ok(())
    }

    /// Plain output only (the others show progress on their own): which
    /// targets are still not ready.
    fn still_waiting(&mut self, ready: &[bool], elapsed: Duration) {
        if let Report::Plain(texts) = self {
            err!("{}", still_waiting_line(texts, ready, elapsed));
        }
    }

    fn done(&mut self, elapsed: Duration) -> Result<(), StdoutError> {
        if let Report::Json(texts) = self {
            emit(&json!({"event": "done", "ready": texts.len(), "elapsed_ms": millis(elapsed)}))?;
        }
        Ok(())
    }
}

/// The texts of the targets that are not ready, in order.
fn not_ready<'a>(texts: impl Iterator<Item = &'a str>, ready: &[bool]) -> Vec<&'a str> {
    texts
        .zip(ready)
        .filter(|(_, r)| !**r)
        .map(|(t, _)| t)
        .collect()
}

/// The last problem of each target that is not ready, in order (`None`:
/// it reported none).
fn last_problems(ready: &[bool], problems: &[LastProblem]) -> Vec<Option<String>> {
    ready
        .iter()
        .zip(problems)
        .filter(|(r, _)| !**r)
        .map(|(_, p)| p.get())
        .collect()
}

/// `tcp://db:5432 (connection refused), file:///run/ready (not found)`
fn with_reasons(not_ready: &[&str], why: &[Option<String>]) -> String {
    not_ready
        .iter()
        .zip(why)
        .map(|(target, why)| match why {
            Some(why) => format!("{target} ({why})"),
            None => (*target).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `waiting for tcp://db:5432 (tcp db:5432)`; a description that starts
/// with the target's own text (an http one's) is not repeated:
/// `waiting for http://api/health (expect 2xx)`.
fn waiting_line(text: &str, described: &str) -> String {
    match described.strip_prefix(text) {
        Some(rest) if !rest.trim().is_empty() => format!("waiting for {text}{rest}"),
        Some(_) => format!("waiting for {text}"),
        None => format!("waiting for {text} ({described})"),
    }
}

/// `rebound: still waiting for tcp://db:5432, file:///run/ready (30s)`
fn still_waiting_line(texts: &[String], ready: &[bool], elapsed: Duration) -> String {
    let waiting = not_ready(texts.iter().map(String::as_str), ready);
    format!(
        "rebound: still waiting for {} ({})",
        waiting.join(", "),
        humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
    )
}

fn emit(value: &serde_json::Value) -> Result<(), StdoutError> {
    out!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_flag_reads_rebound_s_one_duration_grammar() {
        assert_eq!(timeout_flag("1m30s"), Ok(Duration::from_secs(90)));
        // A bare number is seconds, fractions too (rebound_retry's grammar).
        assert_eq!(timeout_flag("1.5"), Ok(Duration::from_millis(1500)));
        assert!(
            timeout_flag("-1s")
                .unwrap_err()
                .contains("negative duration")
        );
        assert!(
            timeout_flag("--json")
                .unwrap_err()
                .contains("not the flag --json")
        );
    }

    #[test]
    fn waiting_lines_do_not_repeat_the_url() {
        assert_eq!(
            waiting_line("http://api/health", "http://api/health (expect 2xx)"),
            "waiting for http://api/health (expect 2xx)"
        );
        assert_eq!(
            waiting_line("tcp://db:5432", "tcp db:5432"),
            "waiting for tcp://db:5432 (tcp db:5432)"
        );
        assert_eq!(waiting_line("x", "x"), "waiting for x");
    }

    #[test]
    fn timeout_names_why_each_target_is_not_ready() {
        let problems = [
            LastProblem::default(),
            LastProblem::default(),
            LastProblem::default(),
        ];
        problems[0].set("Connection refused (os error 111)");
        problems[2].set("old news");
        let why = last_problems(&[false, false, true], &problems);
        assert_eq!(
            why,
            [Some("Connection refused (os error 111)".to_owned()), None]
        );
        assert_eq!(
            with_reasons(&["tcp://db:5432", "file:///run/ready"], &why),
            "tcp://db:5432 (Connection refused (os error 111)), file:///run/ready"
        );
    }

    #[test]
    fn still_waiting_lists_only_targets_not_ready() {
        let texts = ["tcp://db:5432".to_owned(), "file:///run/ready".to_owned()];
        assert_eq!(
            still_waiting_line(&texts, &[true, false], Duration::from_millis(30_400)),
            "rebound: still waiting for file:///run/ready (30s)"
        );
        assert_eq!(
            still_waiting_line(&texts, &[false, false], Duration::from_secs(15)),
            "rebound: still waiting for tcp://db:5432, file:///run/ready (15s)"
        );
    }
}

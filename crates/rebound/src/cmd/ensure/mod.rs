//! `rebound ensure`: ask an agent to ensure a runtime is started, and poll
//! until it is ready.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use rebound_retry::presets;
use serde_json::json;
use tokio::time::Instant;

use crate::agent::addr::{Addr, AddrError};
use crate::agent::client::{CallError, Client};
use crate::agent::protocol::EnsureReply;
use crate::exit::{CliError, FAILED, OK, TIMEOUT, USAGE};

const AFTER_HELP: &str = "\
Polls the agent with the `connection` backoff (50 ms doubling to 2 s, with
jitter), honouring the agent's retry_after_ms, until the runtime is ready or
--wait runs out. Prints the endpoint on stdout when ready; progress goes to
stderr. A refused connection (agent still starting) is retried.

Failed for good: the agent answers `failed` and its retry_after_ms (the
backoff before the next start) does not end before --wait does, or gives
none. Then the command exits 3 at once instead of waiting.

Examples:
  rebound ensure --agent unix:/run/rebound/agent.sock docker
  REBOUND_AGENT_TOKEN=... rebound ensure --agent tcp:127.0.0.1:7070 --wait 5m --json docker

Exit codes: 0 ready, 2 bad usage or refused by the agent (unknown runtime,
bad token), 3 failed for good, 124 --wait ran out.";

/// Arguments of `rebound ensure`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The agent: unix:PATH, tcp:HOST:PORT, vsock:CID:PORT or
    /// hvsock:PATH:PORT (a Firecracker / Cloud Hypervisor guest's vsock
    /// port through the VMM's Unix socket at PATH).
    #[arg(long, value_name = "ADDR", env = "REBOUND_AGENT")]
    pub agent: String,

    /// The runtime's name in the agent config.
    pub name: String,

    /// Only probe: never start the runtime; poll what the probe finds.
    #[arg(long)]
    pub probe: bool,

    /// How long to poll until ready.
    #[arg(long, value_name = "D", default_value = "2m", value_parser = humantime::parse_duration)]
    pub wait: Duration,

    /// Print one JSON object per answer, then a result object, on stdout.
    #[arg(long)]
    pub json: bool,

    /// A file with the agent's bearer token (else $REBOUND_AGENT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Runs `rebound ensure`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let addr: Addr = args
        .agent
        .parse()
        .map_err(|e: AddrError| CliError::usage(format!("--agent {e}")))?;
    if let Some(why) = addr.unconnectable() {
        return Err(CliError::usage(format!("--agent `{}`: {why}", args.agent)).into());
    }
    let plain = !args.name.is_empty()
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(CliError::usage(format!(
            "`{}` is not a runtime name (letters, digits, `-`, `_`, `.`)",
            args.name
        ))
        .into());
    }
    let token = match &args.token_file {
        Some(path) => Some(crate::agent::token::read(path)?),
        None => std::env::var("REBOUND_AGENT_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
    };
    let client = Client::new(addr, token);
    let runtime = crate::runtime::build()?;
    runtime.block_on(poll(&client, &args))
}

/// A moment no --wait reaches (about 30 years on), for waits too long
/// for the clock.
fn far_future(now: Instant) -> Instant {
    let mut span = Duration::from_secs(1 << 30);
    loop {
        if let Some(at) = now.checked_add(span) {
            return at;
        }
        span /= 2;
    }
}

/// How one poll loop ends.
enum End {
    Ready(EnsureReply),
    Failed(String),
    TimedOut(String),
}

async fn poll(client: &Client, args: &Args) -> anyhow::Result<i32> {
    let begun = Instant::now();
    // A --wait too long for the clock (`--wait 1000000y`) waits for ever.
    let deadline = begun
        .checked_add(args.wait)
        .unwrap_or_else(|| far_future(begun));
    let backoff = presets::connection()
        .forever()
        .build()
        .map_err(|e| anyhow::anyhow!("connection preset: {e}"))?;
    let mut progress = Progress::new(&args.name, args.json);
    let mut retry = 0u32;
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Probe-only calls may take the probe's own timeout.
        let per_call = Duration::from_secs(10).min(left.max(Duration::from_secs(1)));
        let pause = match client.ensure(&args.name, !args.probe, per_call).await {
            Ok(reply) if reply.ready => break End::Ready(reply),
            Ok(reply) => {
                progress.answer(&reply, begun.elapsed());
                if reply.status == "failed" {
                    let Some(after) = reply.retry_after_ms.map(Duration::from_millis) else {
                        break End::Failed(reply.message);
                    };
                    // (With nothing left to wait out, this is the end of
                    // --wait, a timeout below, not a start beyond it.)
                    if after > deadline.saturating_duration_since(Instant::now()) {
                        break End::Failed(format!(
                            "{} (next start in {}, after --wait runs out)",
                            reply.message,
                            humantime::format_duration(after)
                        ));
                    }
                    if args.probe {
                        // A probe starts nothing: once the agent's backoff
                        // is over it answers `failed` with 0 ms left on
                        // every call, so poll at the usual pace.
                        retry = retry.saturating_add(1);
                        backoff.sample(retry).max(after)
                    } else {
                        // Wait out the agent's backoff, plus a little jitter
                        // so that many clients do not arrive in lock step.
                        after + Duration::from_millis(fastrand::u64(0..=50))
                    }
                } else {
                    retry = retry.saturating_add(1);
                    backoff.sample(retry)
                }
            }
            Err(CallError::Unreachable(why)) => {
                progress.unreachable(&why, begun.elapsed());
                retry = retry.saturating_add(1);
                backoff.sample(retry)
            }
            Err(CallError::Refused { status, reply }) => {
                let names = reply
                    .runtimes
                    .map(|n| format!(" (runtimes: {})", n.join(", ")))
                    .unwrap_or_default();
                progress.finish(&json!({"event": "result", "outcome": "refused", "status": status, "error": reply.error}));
                return Err(CliError::new(
                    USAGE,
                    format!("the agent refused: {}{names}", reply.error),
                )
                .into());
            }
            Err(CallError::Fatal(why)) => break End::Failed(why),
        };
        let now = Instant::now();
        if now >= deadline {
            break End::TimedOut(progress.last.clone());
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
    };
    let elapsed_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    match end {
        End::Ready(reply) => {
            progress.finish(&json!({
                "event": "result", "outcome": "ready", "status": reply.status,
                "endpoint": reply.endpoint, "message": reply.message, "elapsed_ms": elapsed_ms,
            }));
            if !args.json {
                println!("{}", reply.endpoint);
            }
            Ok(OK)
        }
        End::Failed(message) => {
            progress.finish(&json!({"event": "result", "outcome": "failed", "message": message, "elapsed_ms": elapsed_ms}));
            Err(CliError::new(FAILED, format!("{}: failed: {message}", args.name)).into())
        }
        End::TimedOut(last) => {
            progress.finish(&json!({"event": "result", "outcome": "timeout", "message": last, "elapsed_ms": elapsed_ms}));
            Err(CliError::new(
                TIMEOUT,
                format!(
                    "{}: not ready after {} (last: {last})",
                    args.name,
                    humantime::format_duration(args.wait)
                ),
            )
            .into())
        }
    }
}

/// Progress on stderr: a spinner on a terminal, else one line per change;
/// with `--json`, one object per answer on stdout instead.
struct Progress {
    name: String,
    json: bool,
    bar: Option<indicatif::ProgressBar>,
    last: String,
}

impl Progress {
    fn new(name: &str, json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            // `wide_msg` cuts the line to the terminal's width, so that a
            // long message never wraps and breaks the redraw.
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {wide_msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            name: name.to_owned(),
            json,
            bar,
            last: String::new(),
        }
    }

    fn answer(&mut self, reply: &EnsureReply, elapsed: Duration) {
        if self.json {
            let mut value = json!(reply);
            value["event"] = json!("answer");
            value["elapsed_ms"] = json!(elapsed.as_millis() as u64);
            println!("{value}");
        }
        self.show(format!("{}: {}", reply.status, reply.message), elapsed);
    }

    fn unreachable(&mut self, why: &str, elapsed: Duration) {
        if self.json {
            println!(
                "{}",
                json!({"event": "unreachable", "error": why, "elapsed_ms": elapsed.as_millis() as u64})
            );
        }
        self.show(format!("agent unreachable: {why}"), elapsed);
    }

    fn show(&mut self, line: String, elapsed: Duration) {
        let changed = line != self.last;
        self.last = line;
        match &self.bar {
            Some(bar) => bar.set_message(format!(
                "{} {}s: {}",
                self.name,
                elapsed.as_secs(),
                self.last
            )),
            None if changed && !self.json => eprintln!("rebound: {}: {}", self.name, self.last),
            None => {}
        }
    }

    fn finish(&mut self, result: &serde_json::Value) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.json {
            println!("{result}");
        }
    }
}

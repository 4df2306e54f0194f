//! `rebound ensure`: ask an agent to ensure a runtime is started, and wait
//! until it is ready: on the agent's watch stream when it has one, else by
//! polling. `--watch` prints a runtime's events until interrupted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use rebound_retry::presets;
use serde_json::json;
use tokio::time::Instant;

use crate::agent::addr::{Addr, AddrError};
use crate::agent::client::EventStream;
use crate::agent::client::{CallError, Client};
use crate::agent::protocol::{EnsureReply, Handshake, PROTOCOL_MAJOR, RuntimeEntry, capability};
use crate::exit::{CliError, FAILED, INCOMPATIBLE, OK, TIMEOUT, UNAVAILABLE, USAGE};
use crate::output::{StdoutError, err, out};

mod watch;

const AFTER_HELP: &str = "\
Reads the agent's handshake (GET /v1) first. An agent that offers `watch`
pushes the runtime's state changes: after its ensure request the command
waits on that stream (ready is seen the moment the agent sees it). An agent
without the handshake is polled with the `connection` backoff (50 ms doubling
to 2 s, with jitter), as is any agent with --probe. Either way the agent's
retry_after_ms is honoured, until the runtime is ready or --wait runs out.
Prints the endpoint on stdout when ready; progress goes to stderr. A refused
connection (agent still starting) is retried. A --wait shorter than the
runtime's start budget on the agent (start_timeout + probe timeout) is
warned about: it gives up on cold starts that would succeed.

--watch NAME prints NAME's events (its state first, then each change) as
lines, or JSON objects with --json, until SIGINT (exit 130) or SIGTERM
(exit 143); a lost agent is reconnected to.

Failed for good: the agent answers `failed` and gives no retry_after_ms, or
one (the backoff before the next start) longer than --wait itself. Then the
command exits 78 at once instead of waiting. A shorter backoff that still
ends after --wait does means the wait ran out between retries: exit 124 at
once, naming the failure.

Examples:
  rebound ensure --agent unix:/run/rebound/agent.sock docker
  REBOUND_AGENT_TOKEN=... rebound ensure --agent tcp:127.0.0.1:7070 --wait 5m --json docker
  rebound ensure --agent unix:/run/rebound/agent.sock --watch docker

Exit codes: 0 ready, 2 bad usage or a refused request (bad token, a
protocol version or handshake this rebound does not know), 3 an error
retrying cannot fix (permission denied on the socket, an answer that is not
the protocol), 69 the agent could not be reached for the whole --wait, 78
the node cannot run the runtime (it failed for good, or the agent has no
runtime of that name), 124 --wait ran out while the agent answered,
130/143 --watch interrupted. `rebound recovery run` reads 69 as
target_unreachable, 78 as incompatible_target and 124 as timeout.";

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

    /// How long to poll until ready (`2m`, `30s`, or a number of seconds).
    #[arg(long, value_name = "D", default_value = "2m", value_parser = rebound_retry::duration::parse)]
    pub wait: Duration,

    /// Print one JSON object per answer, then a result object, on stdout.
    #[arg(long)]
    pub json: bool,

    /// A file with the agent's bearer token (else $REBOUND_AGENT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Start nothing: print the runtime's events (its state, then every
    /// change) until interrupted.
    #[arg(long, conflicts_with_all = ["probe", "wait"])]
    pub watch: bool,

    /// Poll even an agent that pushes its events (for comparisons).
    #[arg(long, hide = true)]
    pub no_watch: bool,
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
    let token = crate::agent::token::from_file_or_env(args.token_file.as_deref())?;
    let client = Client::new(addr, token);
    let runtime = crate::runtime::build()?;
    if args.watch {
        return runtime.block_on(watch::run(&client, &args));
    }
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
    /// The runtime failed for good.
    Failed(String),
    /// A call failed in a way retrying cannot fix.
    Fatal(String),
    TimedOut,
}

/// Where the next answer comes from.
enum Next {
    /// Ask the agent (`POST .../ensure`).
    Ask,
    /// Read the watch stream: a start is running and the agent will say
    /// how it ends.
    Stream,
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
    let per_call = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        // Probe-only calls may take the probe's own timeout.
        Duration::from_secs(10).min(left.max(Duration::from_secs(1)))
    };
    // The handshake, once (retried while the agent is unreachable): whether
    // the agent pushes its events. Polling is forced by --no-watch, and
    // used with --probe (a probe's finding is not a state change).
    let mut watch = false;
    if !args.no_watch {
        let handshake = loop {
            match client.handshake(per_call(deadline)).await {
                Ok(handshake) => {
                    progress.answered = true;
                    break handshake;
                }
                Err(CallError::Unreachable(why)) => {
                    progress.unreachable(&why, begun.elapsed())?;
                    retry = retry.saturating_add(1);
                    let now = Instant::now();
                    if now >= deadline {
                        return timed_out(args, &mut progress, begun);
                    }
                    tokio::time::sleep(backoff.sample(retry).min(deadline - now)).await;
                }
                Err(CallError::Refused { status, reply }) => {
                    return refused(&mut progress, status, reply);
                }
                Err(CallError::Fatal(why)) => {
                    let _ = progress
                        .finish(&json!({"event": "result", "outcome": "refused", "error": why}));
                    return Err(CliError::new(USAGE, why).into());
                }
            }
        };
        if let Some(handshake) = handshake {
            check_handshake(&handshake, args)?;
            watch = handshake.can(capability::WATCH) && !args.probe;
        }
    }
    let mut stream: Option<EventStream> = None;
    let mut next = Next::Ask;
    let end = loop {
        let (answer, from_stream) = match (&next, stream.as_mut()) {
            (Next::Stream, Some(events)) => {
                match tokio::time::timeout_at(deadline, next_state(events)).await {
                    Err(_) => break End::TimedOut,
                    Ok(Ok(reply)) => (Ok(reply), true),
                    Ok(Err(why)) => {
                        // The agent went away or stopped: ask again, which
                        // also opens a new stream.
                        stream = None;
                        (Err(CallError::Unreachable(why)), true)
                    }
                }
            }
            _ => (
                client
                    .ensure(&args.name, !args.probe, per_call(deadline))
                    .await,
                false,
            ),
        };
        next = Next::Ask;
        let pause = match answer {
            Ok(reply) if reply.ready => break End::Ready(reply),
            Ok(reply) => {
                if from_stream {
                    progress.event(&reply, begun.elapsed())?;
                } else {
                    progress.answer(&reply, begun.elapsed())?;
                }
                if reply.status == "failed" {
                    let Some(after) = reply.retry_after_ms.map(Duration::from_millis) else {
                        break End::Failed(reply.message);
                    };
                    // (With nothing left to wait out, this is the end of
                    // --wait, a timeout below, not a start beyond it.)
                    if after > deadline.saturating_duration_since(Instant::now()) {
                        if after <= args.wait {
                            // The agent retries sooner than a whole --wait,
                            // just not within what is left of it: the wait
                            // ran out between its retries (a timeout, now
                            // that every failure is pushed, as it was when
                            // polling saw it between two polls).
                            break End::TimedOut;
                        }
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
                } else if from_stream && reply.status == "not_started" {
                    // Found dead after it was ready: ask for a start now.
                    Duration::ZERO
                } else if watch && reply.status == "starting" {
                    if stream.is_none() {
                        match client.watch(&args.name, per_call(deadline)).await {
                            Ok(events) => stream = Some(events),
                            Err(CallError::Refused { status, reply }) => {
                                return refused(&mut progress, status, reply);
                            }
                            Err(CallError::Unreachable(why) | CallError::Fatal(why)) => {
                                progress.unreachable(&why, begun.elapsed())?;
                            }
                        }
                    }
                    if stream.is_some() {
                        next = Next::Stream;
                        Duration::ZERO
                    } else {
                        retry = retry.saturating_add(1);
                        backoff.sample(retry)
                    }
                } else {
                    retry = retry.saturating_add(1);
                    backoff.sample(retry)
                }
            }
            Err(CallError::Unreachable(why)) => {
                progress.unreachable(&why, begun.elapsed())?;
                retry = retry.saturating_add(1);
                backoff.sample(retry)
            }
            Err(CallError::Refused { status, reply }) => {
                return refused(&mut progress, status, reply);
            }
            Err(CallError::Fatal(why)) => break End::Fatal(why),
        };
        if pause.is_zero() {
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            break End::TimedOut;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
    };
    let elapsed_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    match end {
        End::Ready(reply) => {
            progress.finish(&json!({
                "event": "result", "outcome": "ready", "status": reply.status,
                "endpoint": reply.endpoint, "message": reply.message, "elapsed_ms": elapsed_ms,
            }))?;
            if !args.json {
                out!("{}", reply.endpoint)?;
            }
            Ok(OK)
        }
        End::Failed(message) => {
            let _ = progress.finish(&json!({"event": "result", "outcome": "failed", "message": message, "elapsed_ms": elapsed_ms}));
            Err(CliError::new(INCOMPATIBLE, format!("{}: failed: {message}", args.name)).into())
        }
        End::Fatal(message) => {
            let _ = progress.finish(&json!({"event": "result", "outcome": "failed", "message": message, "elapsed_ms": elapsed_ms}));
            Err(CliError::new(FAILED, format!("{}: failed: {message}", args.name)).into())
        }
        End::TimedOut => timed_out(args, &mut progress, begun),
    }
}

/// The end of --wait: exit 124, naming the last thing heard.
fn timed_out(args: &Args, progress: &mut Progress, begun: Instant) -> anyhow::Result<i32> {
    let elapsed_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    let last = progress.last.clone();
    if !progress.answered {
        // Not one call reached the agent: the node is down, or its agent
        // is (exit 69, recovery kind target_unreachable).
        let _ = progress.finish(&json!({"event": "result", "outcome": "unreachable", "message": last, "elapsed_ms": elapsed_ms}));
        return Err(CliError::new(
            UNAVAILABLE,
            format!(
                "{}: the agent could not be reached for {} (last: {last})",
                args.name,
                humantime::format_duration(args.wait)
            ),
        )
        .into());
    }
    let _ = progress.finish(&json!({"event": "result", "outcome": "timeout", "message": last, "elapsed_ms": elapsed_ms}));
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

/// A 4xx from the agent: exit 2 with its explanation, or 78 for a 404
/// naming the agent's runtimes (this node has no such runtime, so it cannot
/// run the workload).
fn refused(
    progress: &mut Progress,
    status: u16,
    reply: crate::agent::protocol::ErrorReply,
) -> anyhow::Result<i32> {
    let names = reply
        .runtimes
        .map(|n| format!(" (runtimes: {})", n.join(", ")))
        .unwrap_or_default();
    let _ = progress.finish(
        &json!({"event": "result", "outcome": "refused", "status": status, "error": reply.error}),
    );
    let code = if status == 404 && !names.is_empty() {
        INCOMPATIBLE
    } else {
        USAGE
    };
    Err(CliError::new(code, format!("the agent refused: {}{names}", reply.error)).into())
}

/// Refuses a protocol major version this build does not know (exit 2), and
/// warns when --wait is shorter than the runtime's start budget.
fn check_handshake(handshake: &Handshake, args: &Args) -> anyhow::Result<()> {
    let major = handshake.major().map_err(|why| {
        CliError::usage(format!(
            "the agent's handshake (GET /v1) is not the protocol: {why}"
        ))
    })?;
    if major != PROTOCOL_MAJOR {
        return Err(CliError::usage(format!(
            "the agent speaks protocol {} (agent version {}); this rebound knows only {PROTOCOL_MAJOR}.x: use a rebound of the agent's version",
            handshake.protocol, handshake.agent_version
        ))
        .into());
    }
    if let Some(budget) = handshake.runtime(&args.name) {
        let budget_time = Duration::from_millis(budget.start_budget_ms);
        if !args.watch && !args.probe && args.wait < budget_time {
            err!(
                "rebound: warning: --wait {} is shorter than {}'s start budget on the agent, {} (start_timeout {} + probe timeout {}): a host deadline below the guest's budget fails cold boots",
                humantime::format_duration(args.wait),
                args.name,
                humantime::format_duration(budget_time),
                humantime::format_duration(Duration::from_millis(budget.start_timeout_ms)),
                humantime::format_duration(Duration::from_millis(budget.probe_timeout_ms)),
            );
        }
    }
    Ok(())
}

/// The next state event of a watch stream, as an ensure answer would say
/// it; an error when the stream ended or broke, or sent something that is
/// not the protocol.
async fn next_state(events: &mut EventStream) -> Result<EnsureReply, String> {
    loop {
        let event = match events.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Err("the agent ended the event stream".to_owned()),
            Err(e) => return Err(call_error_text(e)),
        };
        if !matches!(
            event.event.as_str(),
            "starting" | "ready" | "failed" | "not_started" | "resync"
        ) {
            continue;
        }
        let entry: RuntimeEntry = serde_json::from_str(&event.data)
            .map_err(|e| format!("an event of the agent is not the protocol: {e}"))?;
        return Ok(reply_of(entry));
    }
}

/// A state event as the answer an ensure call would give.
fn reply_of(entry: RuntimeEntry) -> EnsureReply {
    let ready = entry.state == "ready";
    // Said as the agent's ensure answer says it.
    let message = match (entry.state.as_str(), entry.message) {
        ("starting", Some(why)) => format!("runtime start in progress ({why})"),
        ("starting", None) => "runtime start in progress".to_owned(),
        (_, message) => message.unwrap_or_default(),
    };
    EnsureReply {
        ready,
        endpoint: entry.endpoint.unwrap_or_default(),
        message,
        status: if ready {
            "reused".to_owned()
        } else {
            entry.state
        },
        retry_after_ms: entry.retry_after_ms,
    }
}

fn call_error_text(e: CallError) -> String {
    match e {
        CallError::Unreachable(why) | CallError::Fatal(why) => why,
        CallError::Refused { status, reply } => format!("agent error {status}: {}", reply.error),
    }
}

/// Progress on stderr: a spinner on a terminal, else one line per change;
/// with `--json`, one object per answer on stdout instead.
struct Progress {
    name: String,
    json: bool,
    bar: Option<indicatif::ProgressBar>,
    last: String,
    /// Whether the agent answered at least once.
    answered: bool,
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
            answered: false,
        }
    }

    fn answer(&mut self, reply: &EnsureReply, elapsed: Duration) -> Result<(), StdoutError> {
        self.answered = true;
        if self.json {
            let mut value = json!(reply);
            value["event"] = json!("answer");
            value["elapsed_ms"] = json!(elapsed.as_millis() as u64);
            out!("{value}")?;
        }
        self.show(format!("{}: {}", reply.status, reply.message), elapsed);
        Ok(())
    }

    /// A state pushed on the watch stream.
    fn event(&mut self, reply: &EnsureReply, elapsed: Duration) -> Result<(), StdoutError> {
        self.answered = true;
        if self.json {
            let mut value = json!(reply);
            value["event"] = json!("watch");
            value["elapsed_ms"] = json!(elapsed.as_millis() as u64);
            out!("{value}")?;
        }
        self.show(format!("{}: {}", reply.status, reply.message), elapsed);
        Ok(())
    }

    fn unreachable(&mut self, why: &str, elapsed: Duration) -> Result<(), StdoutError> {
        if self.json {
            out!(
                "{}",
                json!({"event": "unreachable", "error": why, "elapsed_ms": elapsed.as_millis() as u64})
            )?;
        }
        self.show(format!("agent unreachable: {why}"), elapsed);
        Ok(())
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
            None if changed && !self.json => err!("rebound: {}: {}", self.name, self.last),
            None => {}
        }
    }

    fn finish(&mut self, result: &serde_json::Value) -> Result<(), StdoutError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.json {
            out!("{result}")?;
        }
        Ok(())
    }
}

//! `rebound recovery targets`: the breaker of each target node in the
//! journal (closed, open, half-open), and `targets reset NODE` to close one
//! by hand.

use std::io::Write;

use rebound_recovery::{
    AnyJournal, Clock, Journal, JournalAddress, JournalError, JournalErrorKind, RecoveryConfig,
    SystemClock, TargetBreaker,
};
use rebound_retry::BreakerState;
use serde_json::json;

use crate::exit::{CliError, FAILED, OK, USAGE};
use crate::output::with_stdout;

/// `rebound recovery targets`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TargetsArgs {
    /// One JSON object per node.
    #[arg(long)]
    pub json: bool,
    /// `reset NODE` closes a node's breaker.
    #[command(subcommand)]
    pub command: Option<TargetsCommand>,
}

/// The subcommands of `rebound recovery targets`.
#[derive(Debug, clap::Subcommand)]
pub enum TargetsCommand {
    /// Close a target node's breaker by hand (its failures and cool-down
    /// are forgotten).
    #[command(after_help = "Examples:
  rebound recovery targets reset node-b
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound targets reset node-b --json

Exit codes: 0 reset; 2 the journal has no breaker for NODE (no migration to it
has failed), or bad input; 3 journal unreachable or of a newer schema.")]
    Reset {
        /// The node.
        #[arg(value_name = "NODE")]
        node: String,
        /// Print the node's breaker as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn journal_error(e: JournalError) -> anyhow::Error {
    let code = match e.kind() {
        JournalErrorKind::Invalid => USAGE,
        _ => FAILED,
    };
    CliError::new(code, e.to_string()).into()
}

/// Runs `rebound recovery targets` on the journal at `address`.
pub(super) async fn run(
    address: &JournalAddress,
    config: RecoveryConfig,
    args: TargetsArgs,
) -> anyhow::Result<i32> {
    // Nothing recorded yet: do not create the file to read it.
    let missing = matches!(address, JournalAddress::Sqlite(path) if !path.exists());
    let now = SystemClock.now_ms();
    match args.command {
        None => {
            let nodes = if missing {
                Vec::new()
            } else {
                let journal = AnyJournal::open_read_only(address, config.clone())
                    .await
                    .map_err(journal_error)?;
                journal.targets().await.map_err(journal_error)?
            };
            with_stdout(|out| print(out, &nodes, &config, args.json, now))?;
            Ok(OK)
        }
        Some(TargetsCommand::Reset { node, json }) => {
            if missing {
                return Err(CliError::usage(format!(
                    "{} in {address}",
                    JournalError::UnknownTarget(node)
                ))
                .into());
            }
            let journal = AnyJournal::open(address, config.clone())
                .await
                .map_err(journal_error)?;
            let breaker = match journal.reset_target(&node, now).await {
                Ok(b) => b,
                Err(e @ JournalError::UnknownTarget(_)) => {
                    return Err(CliError::usage(format!("{e} in {}", journal.describe())).into());
                }
                Err(e) => return Err(journal_error(e)),
            };
            with_stdout(|out| {
                if json {
                    writeln!(out, "{}", row_json(&breaker, &config, now))
                } else {
                    writeln!(out, "{}: breaker closed", breaker.node)
                }
            })?;
            Ok(OK)
        }
    }
}

/// One node as JSON.
fn row_json(b: &TargetBreaker, config: &RecoveryConfig, now: u64) -> serde_json::Value {
    let state = b.state(now);
    let reopens = match state {
        BreakerState::Closed => None,
        _ => b.open_until_ms,
    };
    json!({
        "node": b.node,
        "state": state.to_string(),
        "failures_in_window": b.failures_in_window(now, &config.breaker),
        "window_ms": u64::try_from(config.breaker.window.as_millis()).unwrap_or(u64::MAX),
        "reopens_at_ms": reopens,
        "reopens_at": reopens.map(super::output::timestamp),
        "openings": b.openings,
        "probe_migration": if state == BreakerState::HalfOpen { b.probe_migration.as_deref() } else { None },
        "last_kind": b.last_kind,
        "last_failure_ms": b.last_failure_ms,
    })
}

/// Prints the nodes as a table, or one JSON object per line.
fn print(
    out: &mut impl Write,
    nodes: &[TargetBreaker],
    config: &RecoveryConfig,
    json: bool,
    now: u64,
) -> std::io::Result<()> {
    if json {
        for b in nodes {
            writeln!(out, "{}", row_json(b, config, now))?;
        }
        return Ok(());
    }
    let window = humantime::format_duration(config.breaker.window);
    let rows: Vec<[String; 5]> = nodes
        .iter()
        .map(|b| {
            let state = b.state(now);
            let reopens = match (state, b.open_until_ms) {
                (BreakerState::Open, Some(t)) => format!(
                    "{} ({})",
                    super::output::relative(t, now),
                    super::output::timestamp(t)
                ),
                (BreakerState::HalfOpen, _) => match &b.probe_migration {
                    Some(m) if b.probe_until_ms.is_some_and(|t| t > now) => {
                        format!("now (probed by {m})")
                    }
                    _ => "now".to_owned(),
                },
                _ => "-".to_owned(),
            };
            let last = match (b.last_kind, b.last_failure_ms) {
                (Some(kind), Some(t)) => format!("{kind} {}", super::output::relative(t, now)),
                _ => "-".to_owned(),
            };
            [
                b.node.clone(),
                state.to_string(),
                format!("{} in {window}", b.failures_in_window(now, &config.breaker)),
                reopens,
                last,
            ]
        })
        .collect();
    super::output::table(
        out,
        ["NODE", "STATE", "FAILURES", "REOPENS", "LAST FAILURE"],
        &rows,
    )
}

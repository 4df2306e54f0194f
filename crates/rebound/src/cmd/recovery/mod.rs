//! `rebound recovery`: record, inspect and run recoveries of failed
//! migrations in a durable journal.

use std::path::PathBuf;
use std::time::Duration;

use rebound_recovery::{FailureKind, RecoveryState};
use rebound_retry::Jitter;

mod exec;
mod metrics;
mod output;
mod run;
mod targets;
mod wake;
mod watch;

pub use targets::TargetsArgs;

use exec::ExitKinds;

/// The failure kinds, listed in every subcommand's help.
macro_rules! kinds_help {
    () => {
        "Failure kinds (--kind, --exit-kind, LAST KIND):
  network_transient network_permanent insufficient_resources incompatible_target
  state_corruption timeout target_unreachable unknown"
    };
}

/// The migrate command's exit-code table (`--exit-kind` overrides it).
macro_rules! exit_kinds_help {
    () => {
        "Migrate-command exit codes (override with --exit-kind CODE=KIND):
  0 success        65 state_corruption    68 target_unreachable
  69 target_unreachable  73 insufficient_resources  75 network_transient
  76 network_permanent   78 incompatible_target     124 timeout
  anything else, or killed by a signal: unknown
  126/127 (command not executable/found): run stops with exit 2, nothing counted"
    };
}

const AFTER_HELP: &str = concat!(
    "\
Journal:
  sqlite:PATH        a SQLite file (default: $XDG_STATE_HOME/rebound/journal.db,
                     else ~/.local/state/rebound/journal.db)
  postgres://...     PostgreSQL, for several controllers (TLS with libpq's
                     sslmode=verify-full&sslrootcert=CA.pem; default prefer)

",
    kinds_help!(),
    "

",
    exit_kinds_help!(),
    "

Examples:
  rebound recovery record --migration m-42 --workload web --source node-a \\
      --target node-b --kind target_unreachable --message 'no route' \\
      --candidates node-c,node-d --snapshot /var/lib/snap/web.img
  rebound recovery list --state pending
  rebound recovery show m-42 --json
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound run \\
      --migrate-cmd ./migrate.sh --rollback-cmd ./restore.sh --workers 4
  rebound recovery targets
  rebound recovery targets reset node-b

Durations: 250ms, 30s, 1m30s, 2h, or a bare number of seconds (30 = 30s).

Target breakers: a node whose migrations failed with target_unreachable,
insufficient_resources, incompatible_target or timeout --target-breaker-failures
times within --target-breaker-window is skipped by target rotation for
--target-breaker-cooldown (doubling while half-open probes fail, up to
--target-breaker-max-cooldown); a migration that goes through closes it.

Exit codes: 0 done; 2 bad input (nothing written); 3 journal unreachable,
newer journal schema, or (run --once) a recovery was given up;
130/143 run stopped by SIGINT/SIGTERM."
);

const RECORD_HELP: &str = concat!(
    kinds_help!(),
    "

Examples:
  rebound recovery record --migration m-42 --workload web --source node-a \\
      --target node-b --kind target_unreachable --message 'no route' \\
      --candidates node-c,node-d --snapshot /var/lib/snap/web.img
  rebound recovery --journal sqlite:/tmp/j.db record --migration m-7 \\
      --workload db --source n1 --target n2 --kind timeout --message 'slow copy'

Another failure of a recorded migration adds to its history and retry count;
it must name the same workload and source (else exit 2). A failure given up
at once (a rollback with no --snapshot recorded) says why on stderr.
Exit codes: 0 recorded; 2 bad input (nothing written); 3 journal unreachable
or of a newer schema."
);

const LIST_HELP: &str = concat!(
    "States: pending running succeeded rolled_back given_up cancelled

",
    kinds_help!(),
    "

Examples:
  rebound recovery list
  rebound recovery list --state given_up --json
  rebound recovery list --watch --json

--watch prints the listing, then one line per change as it happens, until
SIGINT or SIGTERM (exit 0); with --json, {\"event\": \"listed\"|\"changed\",
\"recovery\": {...}} or {\"event\": \"removed\", \"migration\": ID} per line.
Exit codes: 0 listed (or watched until a signal); 2 bad input; 3 journal
unreachable (also when it goes away while watched) or of a newer schema."
);

const SHOW_HELP: &str = concat!(
    kinds_help!(),
    "

Examples:
  rebound recovery show m-42
  rebound recovery show m-42 --json

Exit codes: 0 shown; 2 no such migration or bad input; 3 journal unreachable
or of a newer schema."
);

const DUE_HELP: &str = concat!(
    kinds_help!(),
    "

Examples:
  rebound recovery due
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound due --json

Exit codes: 0 listed; 2 bad input; 3 journal unreachable or of a newer schema."
);

const CANCEL_HELP: &str = concat!(
    kinds_help!(),
    "

Examples:
  rebound recovery cancel m-42 --reason 'workload retired'
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound cancel m-7

A pending recovery ends cancelled at once. A running one ends cancelled too,
and the worker that holds it sends SIGTERM to its command's process group
within about a second (SIGKILL after run's --cancel-grace).
Exit codes: 0 cancelled; 2 no such migration, or it has already ended
(succeeded, rolled_back, given_up or cancelled; nothing changed), or bad
input; 3 journal unreachable or of a newer schema."
);

const PRUNE_HELP: &str = concat!(
    kinds_help!(),
    "

Examples:
  rebound recovery prune --older-than 30d
  rebound recovery prune --older-than 7d --state succeeded,cancelled --json

Deletes finished recoveries (succeeded, rolled_back, given_up, cancelled; all
of them unless --state says which) last changed longer ago than --older-than,
with their history, 1,000 per transaction. Pending and running ones are never
deleted. `run --prune-after D` does the same periodically.
Exit codes: 0 pruned (prints how many); 2 bad input (a duration that is not
one, a state that is not finished; nothing deleted); 3 journal unreachable or
of a newer schema."
);

const RUN_HELP: &str = concat!(
    kinds_help!(),
    "

",
    exit_kinds_help!(),
    "

Examples:
  rebound recovery run --migrate-cmd ./migrate.sh --rollback-cmd ./restore.sh --once
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound run \\
      --migrate-cmd 'migrate --to \"$REBOUND_TARGET\"' \\
      --rollback-cmd 'restore --from \"$REBOUND_SNAPSHOT\"' \\
      --workers 4 --exit-kind 70=state_corruption

A journal that becomes unreachable while `run` works (the database restarted,
its connection was ended) is waited out: `run` says so on stderr, tries again
after 100 ms doubling to 30 s, and goes on when it answers, with nothing lost.

Exit codes: 0 done; 2 bad input, or a command could not be run (sh exit
126/127); 3 journal unreachable at the start or of a newer schema, or (--once)
unreachable or a recovery was given up; 130/143 stopped by SIGINT/SIGTERM."
);

const TARGETS_HELP: &str = concat!(
    kinds_help!(),
    "

Each target node a migration failed to with a target-side kind
(target_unreachable, insufficient_resources, incompatible_target, timeout) has
a breaker in the journal, shared by every controller using it:
  closed     target rotation may pick the node
  open       --target-breaker-failures failures within --target-breaker-window:
             rotation skips the node until its cool-down ends (REOPENS); a
             recovery with no other candidate rolls back (or gives up), and
             its reason says so
  half-open  the cool-down is over: one recovery at a time probes the node; a
             failure opens it again for twice as long (up to
             --target-breaker-max-cooldown), a success closes it
FAILURES counts the failures within the window.

Examples:
  rebound recovery targets
  rebound recovery --journal postgres://rebound@127.0.0.1/rebound targets --json
  rebound recovery targets reset node-b

Exit codes: 0 listed or reset; 2 no breaker for that node (reset), or bad
input; 3 journal unreachable or of a newer schema."
);

/// The heading of the journal and settings options in every help.
const HEADING: &str = "Journal and recovery settings";

/// Arguments of `rebound recovery`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The journal: sqlite:PATH or postgres://... (default: the SQLite file
    /// under the user's state directory).
    #[arg(long, env = "REBOUND_JOURNAL", value_name = "ADDR", global = true, help_heading = HEADING)]
    pub journal: Option<String>,

    /// Retries before rolling back (or giving up).
    #[arg(long, allow_hyphen_values = true, value_name = "N", default_value_t = 3, global = true, help_heading = HEADING)]
    pub max_retries: u32,

    /// Delay before the first retry; doubles on each retry.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "10s", value_parser = duration, global = true, help_heading = HEADING)]
    pub initial_delay: Duration,

    /// Cap on the delay between retries.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "300s", value_parser = duration, global = true, help_heading = HEADING)]
    pub max_delay: Duration,

    /// Keep the delay at --initial-delay instead of doubling it.
    #[arg(long, global = true, help_heading = HEADING)]
    pub constant_delay: bool,

    /// Randomness added to each delay: none, full, equal or decorrelated
    /// (which acts as full: a stored recovery keeps no previous delay).
    #[arg(long, value_name = "J", default_value = "equal", global = true, help_heading = HEADING)]
    pub jitter: Jitter,

    /// Give a recovery up this long after its first failure.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "600s", value_parser = duration, global = true, help_heading = HEADING)]
    pub recovery_timeout: Duration,

    /// Give up instead of rolling back on permanent failures.
    #[arg(long, global = true, help_heading = HEADING)]
    pub no_auto_rollback: bool,

    /// History entries kept per migration (all are counted).
    #[arg(long, allow_hyphen_values = true, value_name = "N", default_value_t = 50, global = true, help_heading = HEADING)]
    pub history: u32,

    /// Snapshots older than this are not rolled back to.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "24h", value_parser = duration, global = true, help_heading = HEADING)]
    pub snapshot_max_age: Duration,

    /// Give a recovery up once its worker has been lost (its lease ran
    /// out while it ran) this many times ("worker lost N times").
    #[arg(long, allow_hyphen_values = true, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), global = true, help_heading = HEADING)]
    pub max_rescues: u32,

    /// Target-side failures (target_unreachable, insufficient_resources,
    /// incompatible_target, timeout) within --target-breaker-window that
    /// open a target node's breaker: rotation skips it for a cool-down.
    #[arg(long, allow_hyphen_values = true, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), global = true, help_heading = HEADING)]
    pub target_breaker_failures: u32,

    /// How far back a target node's failures count.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "10m", value_parser = positive_duration, global = true, help_heading = HEADING)]
    pub target_breaker_window: Duration,

    /// How long an opened target node is skipped; doubles each time a
    /// half-open probe fails.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "1m", value_parser = positive_duration, global = true, help_heading = HEADING)]
    pub target_breaker_cooldown: Duration,

    /// Cap on a target node's cool-down as it grows.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "30m", value_parser = positive_duration, global = true, help_heading = HEADING)]
    pub target_breaker_max_cooldown: Duration,

    /// Count no failures against target nodes and skip none.
    #[arg(long, global = true, help_heading = HEADING)]
    pub no_target_breaker: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Sub,
}

impl Args {
    /// The per-target breaker settings these flags give, checked by
    /// rebound-retry's breaker rules (exit 2 naming the flag).
    pub fn breaker(&self) -> Result<rebound_recovery::TargetBreakerConfig, crate::exit::CliError> {
        let config = rebound_recovery::TargetBreakerConfig {
            enabled: !self.no_target_breaker,
            failures: self.target_breaker_failures,
            window: self.target_breaker_window,
            cooldown: self.target_breaker_cooldown,
            max_cooldown: self.target_breaker_max_cooldown,
            ..Default::default()
        };
        config.validate().map_err(|e| {
            let flag = match &e {
                rebound_recovery::ConfigError::TargetBreaker(b) => match b.setting() {
                    "consecutive_failures" => "--target-breaker-failures",
                    "cooldown" => "--target-breaker-cooldown",
                    _ => "--target-breaker-max-cooldown",
                },
                _ => "--target-breaker-window",
            };
            crate::exit::CliError::usage(format!("{flag}: {e}"))
        })?;
        Ok(config)
    }
}

/// The subcommands of `rebound recovery`.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Record a failed migration (or another failure of a recorded one).
    #[command(after_help = RECORD_HELP)]
    Record(RecordArgs),
    /// List recoveries.
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// Show one recovery with its whole kept history.
    #[command(after_help = SHOW_HELP)]
    Show(ShowArgs),
    /// List the recoveries a worker would claim now.
    #[command(after_help = DUE_HELP)]
    Due(DueArgs),
    /// Claim due recoveries and run the migrate or rollback command.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Cancel a pending or running recovery.
    #[command(after_help = CANCEL_HELP)]
    Cancel(CancelArgs),
    /// Delete finished recoveries older than a given age.
    #[command(after_help = PRUNE_HELP)]
    Prune(PruneArgs),
    /// List target nodes with their breaker state, or reset one.
    #[command(after_help = TARGETS_HELP)]
    Targets(TargetsArgs),
}

/// `rebound recovery prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Delete finished recoveries last changed longer ago than this,
    /// e.g. 30d.
    #[arg(long, allow_hyphen_values = true, value_name = "D", value_parser = duration)]
    pub older_than: Duration,
    /// Only these finished states (comma-separated): succeeded,
    /// rolled_back, given_up, cancelled (default: all four).
    #[arg(long, value_name = "STATE,...", value_delimiter = ',')]
    pub state: Vec<RecoveryState>,
    /// Print {"pruned": N}.
    #[arg(long)]
    pub json: bool,
}

/// `rebound recovery cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The migration's id.
    #[arg(value_name = "ID")]
    pub migration: String,
    /// Why (kept in the recovery's reason and history).
    #[arg(long, value_name = "TEXT", default_value = "cancelled by an operator", value_parser = non_empty)]
    pub reason: String,
    /// Print the cancelled recovery as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `rebound recovery record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The migration's id.
    #[arg(long, value_name = "ID", value_parser = name)]
    pub migration: String,
    /// The workload being moved.
    #[arg(long, value_name = "W", value_parser = name)]
    pub workload: String,
    /// The node it moves from.
    #[arg(long, value_name = "S", value_parser = name)]
    pub source: String,
    /// The node the failed attempt went to.
    #[arg(long, value_name = "T", value_parser = name)]
    pub target: String,
    /// Why it failed (see the list below).
    #[arg(long, value_name = "KIND")]
    pub kind: FailureKind,
    /// What the failure said.
    #[arg(long, value_name = "M", value_parser = non_empty)]
    pub message: String,
    /// Other targets to try, in order (comma-separated).
    #[arg(long, value_name = "A,B", value_delimiter = ',', value_parser = name)]
    pub candidates: Vec<String>,
    /// The snapshot file a rollback restores (its CRC32C is recorded now).
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Print the recovery as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `rebound recovery list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only recoveries in this state: pending, running, succeeded,
    /// rolled_back, given_up, cancelled.
    #[arg(long, value_name = "STATE")]
    pub state: Option<RecoveryState>,
    /// One JSON object per recovery.
    #[arg(long)]
    pub json: bool,
    /// After the listing, print each change as it happens (new, changed,
    /// removed recoveries; with --json one {"event": ...} object per line)
    /// until SIGINT or SIGTERM (exit 0).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: how often to read the journal again when no change
    /// was announced (LISTEN/NOTIFY on PostgreSQL, a watch on the SQLite
    /// files).
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "1s", value_parser = positive_duration, requires = "watch")]
    pub poll: Duration,
}

/// `rebound recovery show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The migration's id.
    #[arg(value_name = "ID")]
    pub migration: String,
    /// One JSON object with the recovery and its history.
    #[arg(long)]
    pub json: bool,
}

/// `rebound recovery due`.
#[derive(Debug, clap::Args)]
pub struct DueArgs {
    /// One JSON object per recovery.
    #[arg(long)]
    pub json: bool,
}

/// `rebound recovery run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Shell command (sh -c) that retries a migration. It gets
    /// REBOUND_MIGRATION, REBOUND_WORKLOAD, REBOUND_SOURCE, REBOUND_TARGET,
    /// REBOUND_SNAPSHOT, REBOUND_STRATEGY and REBOUND_RETRY_COUNT.
    #[arg(long, value_name = "CMD", value_parser = non_empty)]
    pub migrate_cmd: String,
    /// Shell command that restores the workload on REBOUND_SOURCE from the
    /// verified REBOUND_SNAPSHOT; same variables.
    #[arg(long, value_name = "CMD", value_parser = non_empty)]
    pub rollback_cmd: String,
    /// Workers claiming in parallel (each with its own journal connection).
    #[arg(long, allow_hyphen_values = true, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Run what is due now, then exit (exit 3 if any recovery was given up).
    #[arg(long)]
    pub once: bool,
    /// How long a claim lasts without renewal; a dead worker's recoveries
    /// are retaken after this.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "30s", value_parser = positive_duration)]
    pub lease: Duration,
    /// How often to look for due recoveries when idle, at most: a record,
    /// cancel or completion (LISTEN/NOTIFY on PostgreSQL, a watch on the
    /// SQLite file) and a recovery's due time wake the workers sooner.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "1s", value_parser = positive_duration)]
    pub poll: Duration,
    /// Serve Prometheus metrics at GET /metrics on tcp:IP:PORT or
    /// unix:PATH: recoveries by state, attempts by strategy and outcome,
    /// attempt and claim duration histograms, rescues.
    #[arg(long, value_name = "ADDR", value_parser = metrics::parse_addr)]
    pub metrics_listen: Option<metrics::MetricsAddr>,
    /// Do not listen for other processes' changes (PostgreSQL LISTEN, a
    /// watch on the SQLite files): poll only, e.g. behind a connection
    /// pooler in transaction mode, where LISTEN does not work.
    #[arg(long, env = "REBOUND_RECOVERY_NO_LISTEN")]
    pub no_listen: bool,
    /// Delete finished recoveries older than this, at start and then
    /// periodically (every tenth of it, between 1 s and 1 h).
    #[arg(long, allow_hyphen_values = true, value_name = "D", value_parser = positive_duration)]
    pub prune_after: Option<Duration>,
    /// How long a cancelled attempt's command has after SIGTERM before its
    /// process group gets SIGKILL.
    #[arg(long, allow_hyphen_values = true, value_name = "D", default_value = "5s", value_parser = duration)]
    pub cancel_grace: Duration,
    /// Map a migrate-command exit code to a failure kind (repeatable),
    /// e.g. 75=network_transient.
    #[arg(long = "exit-kind", value_name = "CODE=KIND", value_parser = ExitKinds::parse_entry)]
    pub exit_kinds: Vec<(i32, FailureKind)>,
    /// One JSON object per attempt and a final summary.
    #[arg(long)]
    pub json: bool,
}

/// A duration in rebound's one grammar (rebound_retry::duration): humantime
/// text or a bare number of seconds.
fn duration(text: &str) -> Result<Duration, String> {
    rebound_retry::duration::parse(text).map_err(|e| format!("not a duration: {e}"))
}

/// A duration above zero: a zero lease expires as it is taken, and a zero
/// poll interval queries the journal in a busy loop.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match rebound_retry::duration::parse_positive(text) {
        Ok(d) => Ok(d),
        Err(rebound_retry::duration::DurationError::Zero { .. }) => {
            Err("must be greater than zero, e.g. 500ms or 30s".to_owned())
        }
        Err(e) => Err(format!("not a duration: {e}")),
    }
}

/// An id or node name: not empty, and without control characters (a
/// newline or tab in one broke every table that shows it).
fn name(text: &str) -> Result<String, String> {
    let text = non_empty(text)?;
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters (found {c:?})"));
    }
    Ok(text)
}

fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// Runs `rebound recovery`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    run::run(args)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    // The help's exit-code table is typed by hand: it must say exactly what
    // the default table does.
    #[test]
    fn help_lists_exactly_the_default_exit_code_table() {
        let table = ExitKinds::default();
        let mut listed = 0;
        for code in 1..=255 {
            let kind = table.kind(ExitStatus::from_raw(code << 8));
            let entry = format!("{code} {kind}");
            if kind == FailureKind::Unknown {
                assert!(!RUN_HELP.contains(&entry), "{entry} listed");
            } else {
                listed += 1;
                assert!(RUN_HELP.contains(&entry), "{entry} missing");
                assert!(AFTER_HELP.contains(&entry), "{entry} missing");
            }
        }
        assert_eq!(listed, 8);
    }

    #[test]
    fn every_help_lists_every_kind() {
        for help in [
            AFTER_HELP,
            RECORD_HELP,
            LIST_HELP,
            SHOW_HELP,
            DUE_HELP,
            RUN_HELP,
            CANCEL_HELP,
            PRUNE_HELP,
            TARGETS_HELP,
        ] {
            for kind in FailureKind::ALL {
                assert!(help.contains(kind.as_str()), "{kind} missing:\n{help}");
            }
            assert!(help.contains("Examples:\n  rebound recovery"), "{help}");
        }
    }
}

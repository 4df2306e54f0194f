//! Running `rebound recovery`: the journal, the subcommands and their output.

use std::sync::Arc;

use anyhow::Context;
use rebound_recovery::worker::JournalOutage;
use rebound_recovery::{
    AnyJournal, Clock, ConfigError, FailureReport, Journal, JournalAddress, JournalError,
    JournalErrorKind, RecoveryConfig, RecoveryWorker, SnapshotRef, SystemClock, WorkerReport,
};
use serde_json::json;

use super::exec::{CommandError, Commands, ExitKinds};
use super::{Args, CancelArgs, DueArgs, ListArgs, PruneArgs, RecordArgs, RunArgs, ShowArgs, Sub};
use crate::exit::{CliError, FAILED, INTERRUPTED, OK, TERMINATED};
use crate::output::{err, out, with_stdout};
use crate::signal::{self, Signal};

/// Runs `rebound recovery`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let config = config(&args)?;
    // An empty --journal / REBOUND_JOURNAL means the default.
    let journal = args.journal.as_deref().filter(|j| !j.is_empty());
    let address = address(journal)?;
    // Checked before the journal is opened: bad input writes nothing.
    let snapshot = match &args.command {
        Sub::Record(r) => r.snapshot.as_deref().map(capture).transpose()?,
        _ => None,
    };
    if let Sub::Prune(p) = &args.command {
        // Checked before the journal is opened: bad input deletes nothing.
        if let Some(open) = p.state.iter().find(|s| !s.is_final()) {
            return Err(CliError::usage(format!(
                "--state {open}: only finished recoveries are pruned (succeeded, rolled_back, \
                 given_up, cancelled)"
            ))
            .into());
        }
    }
    let runtime = crate::runtime::build()?;
    runtime.block_on(async move {
        let read_only = matches!(args.command, Sub::List(_) | Sub::Show(_) | Sub::Due(_));
        // `list --watch` waits for a journal not created yet.
        let watching = matches!(&args.command, Sub::List(l) if l.watch);
        if read_only && !watching {
            if let JournalAddress::Sqlite(path) = &address {
                if !path.exists() {
                    // Nothing recorded yet; do not create the file for a read.
                    return empty(&args.command);
                }
            }
        } else if let (Sub::Prune(p), JournalAddress::Sqlite(path)) = (&args.command, &address) {
            if !path.exists() {
                // Nothing to delete; do not create the file.
                print_pruned(0, p.json)?;
                return Ok(OK);
            }
        } else if journal.is_none() {
            if let JournalAddress::Sqlite(path) = &address {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("creating the journal directory {}", dir.display())
                    })?;
                }
            }
        }
        match args.command {
            Sub::Targets(t) => super::targets::run(&address, config, t).await,
            Sub::Record(r) => record(open(&address, config).await?, r, snapshot).await,
            Sub::List(l) if l.watch => super::watch::watch(&address, config, l).await,
            Sub::List(l) => list(open_read_only(&address, config).await?, l).await,
            Sub::Show(s) => show(open_read_only(&address, config).await?, s).await,
            Sub::Due(d) => due(open_read_only(&address, config).await?, d).await,
            Sub::Run(r) => run_workers(&address, config, r).await,
            Sub::Cancel(c) => cancel(open(&address, config).await?, c).await,
            Sub::Prune(p) => prune(open(&address, config).await?, p).await,
        }
    })
    // `rebound recovery list | head`: a reader that went away ends the
    // command quietly (exit 0) through `crate::exit::report`; what was
    // asked is done by then (a record is written before it is printed).
}

fn config(args: &Args) -> anyhow::Result<RecoveryConfig> {
    let config = RecoveryConfig {
        max_retries: args.max_retries,
        initial_delay: args.initial_delay,
        max_delay: args.max_delay,
        exponential: !args.constant_delay,
        jitter: args.jitter,
        recovery_timeout: args.recovery_timeout,
        auto_rollback: !args.no_auto_rollback,
        history_limit: args.history,
        snapshot_max_age: args.snapshot_max_age,
        max_rescues: args.max_rescues,
        breaker: args.breaker()?,
    };
    config
        .validate()
        .map_err(|e| CliError::usage(settings_error(&e)))?;
    Ok(config)
}

/// A settings error in terms of the flags that set them.
fn settings_error(e: &ConfigError) -> String {
    let d = |d: &std::time::Duration| humantime::format_duration(*d).to_string();
    match e {
        ConfigError::ZeroInitialDelay => "--initial-delay must be greater than zero".to_owned(),
        ConfigError::MaxBelowInitial { initial, max } => format!(
            "--max-delay ({}) must be at least --initial-delay ({})",
            d(max),
            d(initial)
        ),
        ConfigError::ZeroRecoveryTimeout => {
            "--recovery-timeout must be greater than zero".to_owned()
        }
        ConfigError::ZeroHistoryLimit => "--history must be at least 1".to_owned(),
        ConfigError::ZeroSnapshotMaxAge => {
            "--snapshot-max-age must be greater than zero".to_owned()
        }
        ConfigError::ZeroMaxRescues => "--max-rescues must be at least 1".to_owned(),
        other => format!("recovery settings: {other}"),
    }
}

fn address(journal: Option<&str>) -> anyhow::Result<JournalAddress> {
    match journal {
        Some(text) => match text.parse::<JournalAddress>() {
            // The library's in-process journal: nothing would outlive the
            // command.
            Ok(JournalAddress::Memory) => Err(CliError::usage(
                "--journal: memory: keeps nothing once the command ends; use sqlite:PATH or \
                 postgres://...",
            )
            .into()),
            Ok(address) => Ok(address),
            Err(e) => Err(CliError::usage(format!("--journal: {e}")).into()),
        },
        None => rebound_recovery::journal::default_sqlite_path()
            .map(JournalAddress::Sqlite)
            .ok_or_else(|| {
                CliError::usage(
                    "no journal: set --journal, REBOUND_JOURNAL, XDG_STATE_HOME or HOME",
                )
                .into()
            }),
    }
}

fn capture(path: &std::path::Path) -> anyhow::Result<SnapshotRef> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    SnapshotRef::capture(&absolute, SystemClock.now_ms())
        .map_err(|e| CliError::usage(format!("--snapshot: {e}")).into())
}

pub(super) fn journal_error(e: JournalError) -> anyhow::Error {
    let code = match e.kind() {
        JournalErrorKind::Invalid => crate::exit::USAGE,
        _ => FAILED,
    };
    CliError::new(code, e.to_string()).into()
}

pub(super) async fn open(
    address: &JournalAddress,
    config: RecoveryConfig,
) -> anyhow::Result<AnyJournal> {
    AnyJournal::open(address, config)
        .await
        .map_err(journal_error)
}

/// For list, show and due: a SQLite journal is read without writing (see
/// `AnyJournal::open_read_only`).
async fn open_read_only(
    address: &JournalAddress,
    config: RecoveryConfig,
) -> anyhow::Result<AnyJournal> {
    AnyJournal::open_read_only(address, config)
        .await
        .map_err(journal_error)
}

fn empty(command: &Sub) -> anyhow::Result<i32> {
    match command {
        Sub::Show(s) => {
            Err(CliError::usage(format!("no recovery for migration {:?}", s.migration)).into())
        }
        Sub::List(ListArgs { json, .. }) | Sub::Due(DueArgs { json }) => {
            with_stdout(|out| super::output::recoveries(out, &[], *json, 0))?;
            Ok(OK)
        }
        _ => Ok(OK),
    }
}

async fn record(
    journal: AnyJournal,
    args: RecordArgs,
    snapshot: Option<SnapshotRef>,
) -> anyhow::Result<i32> {
    let mut report = FailureReport::new(
        args.migration,
        args.workload,
        args.source,
        args.target,
        args.kind,
        args.message,
    )
    .with_candidates(args.candidates);
    report.snapshot = snapshot;
    let now = SystemClock.now_ms();
    let rec = journal.record(report, now).await.map_err(journal_error)?;
    if args.json {
        let line = serde_json::to_string(&rec)?;
        out!("{line}")?;
    } else {
        with_stdout(|out| super::output::recoveries(out, std::slice::from_ref(&rec), false, now))?;
    }
    if rec.state == rebound_recovery::RecoveryState::GivenUp {
        // Recorded, and nothing will be run for it: say why, off stdout.
        err!(
            "rebound: recovery {} was given up: {}",
            rec.migration,
            rec.reason.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(OK)
}

async fn list(journal: AnyJournal, args: ListArgs) -> anyhow::Result<i32> {
    let recs = journal.list(args.state).await.map_err(journal_error)?;
    let now = SystemClock.now_ms();
    with_stdout(|out| super::output::recoveries(out, &recs, args.json, now))?;
    Ok(OK)
}

async fn show(journal: AnyJournal, args: ShowArgs) -> anyhow::Result<i32> {
    let Some(rec) = journal.get(&args.migration).await.map_err(journal_error)? else {
        return Err(CliError::usage(format!(
            "no recovery for migration {:?} in {}",
            args.migration,
            journal.describe()
        ))
        .into());
    };
    let history = journal
        .history(&args.migration)
        .await
        .map_err(journal_error)?;
    let now = SystemClock.now_ms();
    with_stdout(|out| super::output::show(out, &rec, &history, args.json, now))?;
    Ok(OK)
}

async fn due(journal: AnyJournal, args: DueArgs) -> anyhow::Result<i32> {
    let now = SystemClock.now_ms();
    let recs = journal.due(now).await.map_err(journal_error)?;
    with_stdout(|out| super::output::recoveries(out, &recs, args.json, now))?;
    Ok(OK)
}

async fn cancel(journal: AnyJournal, args: CancelArgs) -> anyhow::Result<i32> {
    let now = SystemClock.now_ms();
    let rec = match journal.cancel(&args.migration, &args.reason, now).await {
        Ok(rec) => rec,
        Err(e @ (JournalError::NotFound(_) | JournalError::Finished { .. })) => {
            return Err(CliError::usage(format!("{e} in {}", journal.describe())).into());
        }
        Err(e) => return Err(journal_error(e)),
    };
    if args.json {
        let line = serde_json::to_string(&rec)?;
        out!("{line}")?;
    } else {
        with_stdout(|out| super::output::recoveries(out, std::slice::from_ref(&rec), false, now))?;
    }
    Ok(OK)
}

/// The cutoff for "older than `age`": now less `age`.
fn cutoff(age: std::time::Duration) -> u64 {
    let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    SystemClock.now_ms().saturating_sub(age)
}

fn print_pruned(pruned: u64, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", json!({ "pruned": pruned }))?;
    } else {
        out!("pruned {pruned} finished recoveries")?;
    }
    Ok(())
}

async fn prune(journal: AnyJournal, args: PruneArgs) -> anyhow::Result<i32> {
    let pruned = journal
        .prune(cutoff(args.older_than), &args.state)
        .await
        .map_err(journal_error)?;
    print_pruned(pruned, args.json)?;
    Ok(OK)
}

/// `run --prune-after`: prunes finished recoveries older than `age` now
/// and then every tenth of `age` (between 1 s and 1 h), over a connection
/// of its own. A failure is reported and tried again next time.
async fn prune_periodically(journal: AnyJournal, age: std::time::Duration, json: bool) {
    use std::time::Duration;
    let every = (age / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        match journal.prune(cutoff(age), &[]).await {
            Ok(0) => {}
            Ok(pruned) if json => {
                let _ = out!("{}", json!({ "event": "prune", "pruned": pruned }));
            }
            Ok(pruned) => {
                let _ = out!("pruned {pruned} finished recoveries");
            }
            Err(e) => err!(
                "rebound: pruning the journal failed (tried again in {}): {e}",
                humantime::format_duration(every)
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// Which signal stopped `run`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Interrupted,
    Terminated,
}

async fn run_workers(
    address: &JournalAddress,
    config: RecoveryConfig,
    args: RunArgs,
) -> anyhow::Result<i32> {
    let mut signals = signal::Listener::new(signal::STOP)?;
    let (setup_tx, mut setup_rx) = tokio::sync::mpsc::unbounded_channel();
    let commands = Commands {
        migrate: args.migrate_cmd.as_str().into(),
        rollback: args.rollback_cmd.as_str().into(),
        exit_kinds: Arc::new(ExitKinds::with(&args.exit_kinds)),
        setup_error: setup_tx,
    };
    // Every worker has its own connection; open them all before running
    // anything, so that a bad journal fails before any command runs.
    let mut journals = Vec::new();
    // One wake-up signal for all the workers: each connection raises it
    // after its changes, and so does the listener for other processes'.
    let wake = rebound_recovery::journal::Wake::new();
    for _ in 0..args.workers {
        journals.push(open(address, config.clone()).await?.with_wake(wake.clone()));
    }
    let _listener = match journals.first() {
        Some(journal) if !args.no_listen => super::wake::listen(journal).await,
        _ => None,
    };
    let pruner = match args.prune_after {
        Some(age) => {
            let journal = open(address, config.clone()).await?;
            Some(tokio::spawn(prune_periodically(journal, age, args.json)))
        }
        None => None,
    };
    let metrics = super::metrics::RunMetrics::new(config.breaker.clone());
    // Its own connection: a scrape never waits for a worker's change.
    let _metrics_server = match &args.metrics_listen {
        Some(addr) => {
            let journal = open(address, config.clone()).await?;
            Some(DropAbort(
                super::metrics::serve(addr, metrics.clone(), journal)
                    .await
                    .map_err(|e| CliError::usage(e.to_string()))?,
            ))
        }
        None => None,
    };
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "rebound".to_owned());
    let json = args.json;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Running);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, journal) in journals.into_iter().enumerate() {
        let worker = RecoveryWorker::new(journal, commands.clone(), commands.clone())
            .with_classifier(|e: &CommandError| e.kind)
            .with_owner(format!("{host}-{}-{i}", std::process::id()))
            .with_lease(args.lease)
            // One claim at a time: a worker runs its batch in turn, so a
            // larger batch would leave the other workers idle while one
            // holds (and runs one by one) everything that is due.
            .with_batch(1)
            .with_poll_interval(args.poll)
            .with_cancel_grace(args.cancel_grace)
            .with_on_claim({
                let metrics = metrics.clone();
                move |took, claims| metrics.claim(took, claims)
            })
            // The journal gone (the database restarting, a connection
            // ended): the worker waits and tries again; one line each time.
            .with_on_outage({
                let who = if args.workers > 1 {
                    format!("worker {i}: ")
                } else {
                    String::new()
                };
                move |outage| outage_line(&who, outage)
            })
            .with_notify({
                let metrics = metrics.clone();
                move |claim, done| {
                    metrics.attempt(claim, done);
                    let line = super::output::attempt(claim, done, json, SystemClock.now_ms());
                    // Best effort: a reader that went away must not stop the
                    // workers in the middle of their recoveries.
                    let _ = out!("{line}");
                }
            });
        let mut stop = stop_rx.clone();
        let once = args.once;
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s != Stop::Running).await;
            };
            if once {
                worker.drain(stopped).await
            } else {
                worker.run(stopped).await
            }
        });
    }
    let mut total = WorkerReport::default();
    let mut failure = None;
    let mut setup_error = None;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(report))) => total.add(report),
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                    let _ = stop_tx.send(Stop::Terminated);
                }
                Some(Err(e)) => return Err(anyhow::anyhow!("a worker failed: {e}")),
            },
            Some(message) = setup_rx.recv() => {
                setup_error.get_or_insert(message);
                let _ = stop_tx.send(Stop::Terminated);
            }
            sig = signals.recv() => {
                let _ = stop_tx.send(match sig {
                    Signal::SIGINT => Stop::Interrupted,
                    _ => Stop::Terminated,
                });
            }
        }
    }
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    let summary = json!({
        "event": "summary",
        "claimed": total.claimed,
        "succeeded": total.succeeded,
        "rolled_back": total.rolled_back,
        "retrying": total.retrying,
        "given_up": total.given_up,
        "cancelled": total.cancelled,
        "lease_lost": total.lease_lost,
        "released": total.released,
    });
    let printed = if json {
        out!("{summary}")
    } else {
        out!(
            "claimed {}, succeeded {}, rolled back {}, retrying {}, given up {}, lease lost {}, \
             handed back {}, cancelled {}",
            total.claimed,
            total.succeeded,
            total.rolled_back,
            total.retrying,
            total.given_up,
            total.lease_lost,
            total.released,
            total.cancelled
        )
    };
    if let Some(e) = failure {
        return Err(journal_error(e));
    }
    if let Some(message) = setup_error {
        return Err(CliError::usage(message).into());
    }
    let code = match *stop_tx.borrow() {
        Stop::Interrupted => INTERRUPTED,
        Stop::Terminated => TERMINATED,
        Stop::Running if total.given_up > 0 => FAILED,
        Stop::Running => OK,
    };
    // A summary that could not be written yields to any outcome other than
    // success: the exit code says more than the missing line.
    if code == OK {
        printed?;
    }
    Ok(code)
}

/// `run`'s line on stderr for an unavailable journal, and for one that
/// is back.
fn outage_line(who: &str, outage: &JournalOutage<'_>) {
    match outage {
        JournalOutage::Unavailable { error, retry_in } => err!(
            "rebound: {who}{error}; retrying in {:.1}s",
            retry_in.as_secs_f64()
        ),
        JournalOutage::Back { journal, down_for } => err!(
            "rebound: {who}journal {journal} is back (unavailable for {:.1}s)",
            down_for.as_secs_f64()
        ),
        _ => {}
    }
}

/// Aborts the task when dropped (the metrics server, when `run` ends).
struct DropAbort(tokio::task::JoinHandle<()>);

impl Drop for DropAbort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

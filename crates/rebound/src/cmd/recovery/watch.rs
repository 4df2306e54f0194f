//! `rebound recovery list --watch`: the listing, then each change as it
//! happens, until SIGINT or SIGTERM.
//!
//! Changes arrive the way idle workers hear of them (LISTEN/NOTIFY on
//! PostgreSQL, a watch on the SQLite files), with `--poll` as the
//! fallback; each wake-up reads the list again and prints what differs
//! from the last one: a recovery that is new or changed, or one that is
//! gone (pruned).

use std::collections::BTreeMap;
use std::time::Duration;

use rebound_recovery::{Clock, Journal, JournalAddress, Recovery, RecoveryConfig, SystemClock};
use serde_json::json;

use super::ListArgs;
use super::run::{journal_error, open};
use crate::exit::OK;
use crate::output::{out, with_stdout};
use crate::signal;

/// One line for a change.
fn changed(rec: &Recovery, json: bool) -> String {
    if json {
        return json!({ "event": "changed", "recovery": rec }).to_string();
    }
    let mut line = format!(
        "{} {}: {} ({}, target {}, retries {}",
        timestamp(SystemClock.now_ms()),
        rec.migration,
        rec.state,
        rec.strategy,
        rec.target,
        rec.retry_count
    );
    if let Some(owner) = &rec.lease_owner {
        line.push_str(&format!(", held by {owner}"));
    }
    line.push(')');
    if let Some(reason) = &rec.reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

fn removed(migration: &str, json: bool) -> String {
    if json {
        json!({ "event": "removed", "migration": migration }).to_string()
    } else {
        format!(
            "{} {migration}: removed (pruned)",
            timestamp(SystemClock.now_ms())
        )
    }
}

fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Prints the differences between `before` and `now`; returns `now` by id.
fn print_changes(
    before: &BTreeMap<String, Recovery>,
    now: Vec<Recovery>,
    json: bool,
) -> anyhow::Result<BTreeMap<String, Recovery>> {
    let now: BTreeMap<String, Recovery> =
        now.into_iter().map(|r| (r.migration.clone(), r)).collect();
    for (id, rec) in &now {
        if before.get(id) != Some(rec) {
            out!("{}", changed(rec, json))?;
        }
    }
    for id in before.keys().filter(|id| !now.contains_key(*id)) {
        out!("{}", removed(id, json))?;
    }
    Ok(now)
}

/// Runs `list --watch`: exit 0 on SIGINT/SIGTERM; a journal that cannot
/// be read (the database went away) ends it with the journal's error
/// (exit 3).
pub(super) async fn watch(
    address: &JournalAddress,
    config: RecoveryConfig,
    args: ListArgs,
) -> anyhow::Result<i32> {
    let mut signals = signal::Listener::new(signal::STOP)?;
    let poll = args.poll;
    // A SQLite journal not created yet: wait for it rather than create it.
    if let JournalAddress::Sqlite(path) = address {
        while !path.exists() {
            tokio::select! {
                _ = signals.recv() => return Ok(OK),
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
    // Opened as a writer would (it changes nothing): a SQLite reader
    // without the `-shm` file a writer keeps reads the file as it was when
    // opened, and would never see a change.
    let journal = open(address, config).await?;
    let _listener = super::wake::listen(&journal).await;
    let mut woken = journal.wake().map(|w| w.listen());
    let first = journal.list(args.state).await.map_err(journal_error)?;
    let now = SystemClock.now_ms();
    if args.json {
        for rec in &first {
            out!("{}", json!({ "event": "listed", "recovery": rec }))?;
        }
    } else {
        with_stdout(|out| super::output::recoveries(out, &first, false, now))?;
    }
    let mut seen: BTreeMap<String, Recovery> = first
        .into_iter()
        .map(|r| (r.migration.clone(), r))
        .collect();
    loop {
        // A change announced since the last read ends this wait at once.
        let wait = async {
            match woken.as_mut() {
                Some(w) => {
                    tokio::select! {
                        () = w.wait() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
        };
        tokio::select! {
            _ = signals.recv() => return Ok(OK),
            () = wait => {}
        }
        if let Some(w) = woken.as_mut() {
            w.mark_seen();
        }
        let now = journal.list(args.state).await.map_err(journal_error)?;
        seen = print_changes(&seen, now, args.json)?;
    }
}

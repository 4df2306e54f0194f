//! Human tables and JSON lines for `rebound recovery`.

use std::io::Write;

use rebound_recovery::{Attempt, Claim, Recovery, RecoveryState};
use serde_json::json;

/// `when` relative to `now` (ms since the epoch): `in 9s`, `3s ago`.
pub(super) fn relative(when: u64, now: u64) -> String {
    let fmt =
        |ms: u64| humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string();
    if when > now {
        format!("in {}", fmt(when - now + 999))
    } else if now - when < 1000 {
        "now".to_owned()
    } else {
        format!("{} ago", fmt(now - when))
    }
}

/// An RFC 3339 time for ms since the epoch.
pub(super) fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn next(rec: &Recovery, now: u64) -> String {
    match rec.state {
        RecoveryState::Pending => rec
            .next_attempt_ms
            .map_or_else(|| "-".to_owned(), |t| relative(t, now)),
        RecoveryState::Running => rec.lease_expires_ms.map_or_else(
            || "-".to_owned(),
            |t| format!("lease ends {}", relative(t, now)),
        ),
        _ => "-".to_owned(),
    }
}

/// Prints recoveries as a table, or one JSON object per line.
pub fn recoveries(
    out: &mut impl Write,
    recs: &[Recovery],
    json: bool,
    now: u64,
) -> std::io::Result<()> {
    if json {
        for rec in recs {
            writeln!(out, "{}", serde_json::to_string(rec).unwrap_or_default())?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 8]> = recs
        .iter()
        .map(|r| {
            [
                r.migration.clone(),
                r.state.to_string(),
                r.strategy.to_string(),
                r.kind.to_string(),
                r.retry_count.to_string(),
                r.rescues.to_string(),
                r.target.clone(),
                next(r, now),
            ]
        })
        .collect();
    table(
        out,
        [
            "MIGRATION",
            "STATE",
            "STRATEGY",
            "LAST KIND",
            "RETRIES",
            "RESCUES",
            "TARGET",
            "NEXT",
        ],
        &rows,
    )
}

pub(super) fn table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Prints one recovery with its history.
pub fn show(
    out: &mut impl Write,
    rec: &Recovery,
    history: &[Attempt],
    json: bool,
    now: u64,
) -> std::io::Result<()> {
    if json {
        let value = json!({ "recovery": rec, "history": history });
        return writeln!(out, "{value}");
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let fields = [
        ("migration", rec.migration.clone()),
        ("workload", rec.workload.clone()),
        ("source", rec.source.clone()),
        ("target", rec.target.clone()),
        ("candidates", rec.candidates.join(", ")),
        ("failed targets", rec.failed_targets.join(", ")),
        ("state", rec.state.to_string()),
        ("strategy", rec.strategy.to_string()),
        ("reason", opt(&rec.reason)),
        ("last failure", format!("{}: {}", rec.kind, rec.message)),
        ("retries", rec.retry_count.to_string()),
        ("rescues", rec.rescues.to_string()),
        ("first failure", timestamp(rec.first_failure_ms)),
        ("last failure at", timestamp(rec.last_failure_ms)),
        ("next", next(rec, now)),
        (
            "snapshot",
            rec.snapshot.as_ref().map_or_else(
                || "-".to_owned(),
                |s| format!("{} ({}, {} bytes)", s.path.display(), s.checksum, s.size),
            ),
        ),
        ("lease owner", opt(&rec.lease_owner)),
    ];
    for (k, v) in fields {
        writeln!(out, "{:<17}{v}", format!("{k}:"))?;
    }
    writeln!(
        out,
        "\nhistory ({} kept of {}):",
        history.len(),
        rec.attempts_total
    )?;
    let rows: Vec<[String; 6]> = history
        .iter()
        .map(|a| {
            [
                a.number.to_string(),
                timestamp(a.at_ms),
                a.strategy
                    .map_or_else(|| "reported".to_owned(), |s| s.to_string()),
                opt(&a.target),
                match a.kind {
                    Some(k) => format!("{} ({k})", a.result.as_str()),
                    None => a.result.as_str().to_owned(),
                },
                opt(&a.message),
            ]
        })
        .collect();
    table(
        out,
        ["#", "AT", "STRATEGY", "TARGET", "RESULT", "MESSAGE"],
        &rows,
    )
}

/// One line about an attempt a worker finished.
pub fn attempt(claim: &Claim, done: &Recovery, json: bool, now: u64) -> String {
    let before = &claim.recovery;
    if json {
        return json!({
            "event": "attempt",
            "migration": done.migration,
            "worker": claim.owner,
            "strategy": before.strategy,
            "target": if before.strategy == rebound_recovery::Strategy::Rollback { &before.source } else { &before.target },
            "state": done.state,
            "next_strategy": if done.state == RecoveryState::Pending { Some(done.strategy) } else { None },
            "kind": if done.state == RecoveryState::Pending { Some(done.kind) } else { None },
            "message": if done.state == RecoveryState::Pending { Some(&done.message) } else { None },
            "reason": done.reason,
            "next_attempt_ms": done.next_attempt_ms,
        })
        .to_string();
    }
    let what = match before.strategy {
        rebound_recovery::Strategy::Rollback => format!("rollback to {}", before.source),
        rebound_recovery::Strategy::GiveUp => "give up".to_owned(),
        _ => format!("migrate to {}", before.target),
    };
    let detail = match done.state {
        // A target skipped by its breaker: not a failure of this attempt.
        RecoveryState::Pending if done.retry_count == before.retry_count => format!(
            "{}; next: {} {}",
            done.reason.as_deref().unwrap_or("handed back"),
            done.strategy,
            next(done, now)
        ),
        RecoveryState::Pending => match &done.reason {
            Some(why) => format!(
                "failed ({}: {}); {why}; next: {} {}",
                done.kind,
                done.message,
                done.strategy,
                next(done, now)
            ),
            None => format!(
                "failed ({}: {}); next: {} {}",
                done.kind,
                done.message,
                done.strategy,
                next(done, now)
            ),
        },
        state => match &done.reason {
            Some(reason) => format!("{state}: {reason}"),
            None => state.to_string(),
        },
    };
    format!("{}: {what}: {detail}", done.migration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(11_000, 1_000), "in 10s");
        assert_eq!(relative(1_000, 1_500), "now");
        assert_eq!(relative(1_000, 61_000), "1m ago");
    }
}

//! The breaker per target node in a SQLite journal (see
//! `journal::targets`): counted inside the `BEGIN IMMEDIATE` transaction
//! of the `record` or `complete` whose outcome it counts.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::targets::{BREAKER_COLUMNS, BreakerRow, Touch, counted, open_view};
use super::{Failure, SqliteJournal, append, load, store};
use crate::error::JournalError;
use crate::model::{Admission, Attempt, OpenTargets, Recovery, TargetBreaker};
use rebound_retry::BreakerState;

fn read_breaker(r: &rusqlite::Row<'_>) -> Result<BreakerRow, rusqlite::Error> {
    Ok(BreakerRow {
        node: r.get(0)?,
        failures: r.get(1)?,
        openings: r.get(2)?,
        open_until_ms: r.get(3)?,
        probe_migration: r.get(4)?,
        probe_until_ms: r.get(5)?,
        last_kind: r.get(6)?,
        last_failure_ms: r.get(7)?,
        updated_ms: r.get(8)?,
    })
}

fn load_breaker(conn: &Connection, node: &str) -> Result<Option<TargetBreaker>, Failure> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {BREAKER_COLUMNS} FROM target_breakers WHERE node = ?1"
        ))?
        .query_row([node], read_breaker)
        .optional()?;
    Ok(row.map(BreakerRow::into_breaker).transpose()?)
}

fn query_breakers(conn: &Connection, filter: &str) -> Result<Vec<TargetBreaker>, Failure> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BREAKER_COLUMNS} FROM target_breakers {filter} ORDER BY node"
    ))?;
    let rows = stmt
        .query_map([], read_breaker)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(BreakerRow::into_breaker)
        .collect::<Result<_, _>>()?)
}

fn store_breaker(conn: &Connection, b: &TargetBreaker) -> Result<(), rusqlite::Error> {
    let r = BreakerRow::from_breaker(b);
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO target_breakers ({BREAKER_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        r.node,
        r.failures,
        r.openings,
        r.open_until_ms,
        r.probe_migration,
        r.probe_until_ms,
        r.last_kind,
        r.last_failure_ms,
        r.updated_ms,
    ])?;
    Ok(())
}

impl SqliteJournal {
    /// One change of `migration` that may count an outcome against a
    /// target's breaker, as one `BEGIN IMMEDIATE` transaction: `touch`
    /// names the breaker from the recovery as it is, `apply` plans among
    /// the open nodes; the recovery, its history entry and the breaker are
    /// written together.
    pub(super) async fn change_targets<T, A>(
        &self,
        migration: &str,
        now_ms: u64,
        touch: T,
        apply: A,
    ) -> Result<Recovery, JournalError>
    where
        T: FnOnce(Option<&Recovery>) -> Result<Option<Touch>, JournalError> + Send + 'static,
        A: FnOnce(Option<Recovery>, &OpenTargets) -> Result<(Recovery, Attempt), JournalError>
            + Send
            + 'static,
    {
        let migration = migration.to_owned();
        let config = self.config.clone();
        let wal = self.wal();
        self.with_journal(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = load(&tx, &migration)?;
            let changed = match touch(current.as_ref())? {
                Some(t) => counted(&t, load_breaker(&tx, t.node())?, &config, now_ms),
                None => None,
            };
            let rows = query_breakers(&tx, "WHERE open_until_ms IS NOT NULL")?;
            let open = open_view(&rows, changed.as_ref(), now_ms, &config);
            let (rec, entry) = apply(current, &open)?;
            store(&tx, &rec)?;
            append(&tx, &rec.migration, &entry, config.history_limit)?;
            if let Some(b) = &changed {
                store_breaker(&tx, b)?;
            }
            super::commit(tx, &wal, true)?;
            Ok(rec)
        })
        .await
        .inspect(|_| self.wake.signal())
    }

    pub(super) async fn list_breakers(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        self.with_journal(|conn| query_breakers(conn, "")).await
    }

    pub(super) async fn reset_breaker(
        &self,
        node: &str,
        now_ms: u64,
    ) -> Result<TargetBreaker, JournalError> {
        let node = node.to_owned();
        let wal = self.wal();
        self.with_journal(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut breaker =
                load_breaker(&tx, &node)?.ok_or_else(|| JournalError::UnknownTarget(node))?;
            breaker.succeed(now_ms);
            store_breaker(&tx, &breaker)?;
            super::commit(tx, &wal, true)?;
            Ok(breaker)
        })
        .await
    }

    pub(super) async fn admit_breaker(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold_ms: u64,
    ) -> Result<Admission, JournalError> {
        if !self.config.breaker.enabled {
            return Ok(Admission::Closed);
        }
        let (node, migration) = (node.to_owned(), migration.to_owned());
        let wal = self.wal();
        self.with_journal(move |conn| {
            // Closed or open: a read decides. Half-open: the probe is
            // taken under the write lock.
            match load_breaker(conn, &node)? {
                None => return Ok(Admission::Closed),
                Some(b) if b.state(now_ms) != BreakerState::HalfOpen => {
                    return Ok(b.clone().admit(&migration, now_ms, hold_ms));
                }
                Some(_) => {}
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut breaker) = load_breaker(&tx, &node)? else {
                return Ok(Admission::Closed);
            };
            let admission = breaker.admit(&migration, now_ms, hold_ms);
            store_breaker(&tx, &breaker)?;
            super::commit(tx, &wal, true)?;
            Ok(admission)
        })
        .await
    }
}

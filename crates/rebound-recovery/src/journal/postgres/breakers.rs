//! The breaker per target node in a PostgreSQL journal (see
//! `journal::targets`): counted inside the transaction of the `record` or
//! `complete` whose outcome it counts, with the node's row locked, so that
//! controllers sharing the journal never lose a failure or disagree on a
//! node's state.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rebound_retry::BreakerState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::super::row::{AttemptRow, RecoveryRow, int};
use super::super::targets::{BREAKER_COLUMNS, BreakerRow, Touch, counted, open_view};
use super::{
    Failure, PostgresJournal, RollbackOnDrop, Session, append_params, read_row, store_params,
};
use crate::error::JournalError;
use crate::model::{Admission, Attempt, OpenTargets, Recovery, TargetBreaker};

/// The breaker statements, prepared once per connection.
#[derive(Debug)]
pub(super) struct Statements {
    /// Every breaker that is not closed.
    open: Statement,
    /// One node's breaker, its row locked.
    lock: Statement,
    /// One node's breaker, its row created when missing, and locked.
    lock_or_create: Statement,
    /// Writes one breaker.
    store: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let updates = BREAKER_COLUMNS
            .split(", ")
            .skip(1)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            open: client
                .prepare(&format!(
                    "SELECT {BREAKER_COLUMNS} FROM target_breakers \
                     WHERE open_until_ms IS NOT NULL ORDER BY node"
                ))
                .await?,
            lock: client
                .prepare(&format!(
                    "SELECT {BREAKER_COLUMNS} FROM target_breakers WHERE node = $1 FOR UPDATE"
                ))
                .await?,
            lock_or_create: client
                .prepare(&format!(
                    "INSERT INTO target_breakers (node, failures, openings, updated_ms) \
                     VALUES ($1, '[]', 0, $2) \
                     ON CONFLICT (node) DO UPDATE SET node = EXCLUDED.node \
                     RETURNING {BREAKER_COLUMNS}"
                ))
                .await?,
            store: client
                .prepare(&format!(
                    "INSERT INTO target_breakers ({BREAKER_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (node) DO UPDATE SET {updates}"
                ))
                .await?,
        })
    }
}

fn read_breaker(r: &Row) -> Result<TargetBreaker, JournalError> {
    BreakerRow {
        node: r.get(0),
        failures: r.get(1),
        openings: r.get(2),
        open_until_ms: r.get(3),
        probe_migration: r.get(4),
        probe_until_ms: r.get(5),
        last_kind: r.get(6),
        last_failure_ms: r.get(7),
        updated_ms: r.get(8),
    }
    .into_breaker()
}

fn breaker_params(r: &BreakerRow) -> [&(dyn ToSql + Sync); 9] {
    [
        &r.node,
        &r.failures,
        &r.openings,
        &r.open_until_ms,
        &r.probe_migration,
        &r.probe_until_ms,
        &r.last_kind,
        &r.last_failure_ms,
        &r.updated_ms,
    ]
}

impl PostgresJournal {
    /// One change of `migration` that may count an outcome against a
    /// target's breaker, as one transaction: `BEGIN`, the recovery's row
    /// locked and the breakers that are not closed read (pipelined); the
    /// touched node's row created if missing and locked; then the
    /// recovery, its history entry and the breaker written, pipelined with
    /// `COMMIT`.
    pub(super) async fn change_targets<T, A>(
        &self,
        migration: &str,
        now_ms: u64,
        touch: T,
        apply: A,
    ) -> Result<Recovery, Failure>
    where
        T: FnOnce(Option<&Recovery>) -> Result<Option<Touch>, JournalError>,
        A: FnOnce(Option<Recovery>, &OpenTargets) -> Result<(Recovery, Attempt), JournalError>,
    {
        let session = self.conn().await?;
        self.open_tx.store(true, Ordering::SeqCst);
        let guard = RollbackOnDrop {
            session: Arc::clone(&self.session),
            open_tx: Arc::clone(&self.open_tx),
        };
        let result = self
            .change_targets_in(&session, migration, now_ms, touch, apply)
            .await;
        if result.is_err() {
            // Harmless when the transaction already ended.
            let _ = session.client.batch_execute("ROLLBACK").await;
        }
        self.open_tx.store(false, Ordering::SeqCst);
        drop(guard);
        result
    }

    async fn change_targets_in<T, A>(
        &self,
        session: &Session,
        migration: &str,
        now_ms: u64,
        touch: T,
        apply: A,
    ) -> Result<Recovery, Failure>
    where
        T: FnOnce(Option<&Recovery>) -> Result<Option<Touch>, JournalError>,
        A: FnOnce(Option<Recovery>, &OpenTargets) -> Result<(Recovery, Attempt), JournalError>,
    {
        let Session { client, stmts } = session;
        let load_params: [&(dyn ToSql + Sync); 1] = [&migration];
        let (begin, row, open_rows) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.query_opt(&stmts.load_for_update, &load_params),
            client.query(&stmts.breakers.open, &[]),
        );
        begin?;
        let current = row?.map(|r| read_row(&r).into_recovery()).transpose()?;
        let rows = open_rows?
            .iter()
            .map(read_breaker)
            .collect::<Result<Vec<_>, _>>()?;
        let changed = match touch(current.as_ref())? {
            Some(t @ Touch::Fail(..)) => {
                let node = t.node().to_owned();
                let row = client
                    .query_one(&stmts.breakers.lock_or_create, &[&node, &int(now_ms)])
                    .await?;
                counted(&t, Some(read_breaker(&row)?), &self.config, now_ms)
            }
            Some(t @ Touch::Succeed(_)) => {
                let node = t.node().to_owned();
                let row = client.query_opt(&stmts.breakers.lock, &[&node]).await?;
                let row = row.as_ref().map(read_breaker).transpose()?;
                counted(&t, row, &self.config, now_ms)
            }
            None => None,
        };
        let open = open_view(&rows, changed.as_ref(), now_ms, &self.config);
        let (rec, entry) = apply(current, &open)?;
        let r = RecoveryRow::from_recovery(&rec);
        let store = store_params(&r);
        let a = AttemptRow::from_attempt(&entry);
        let keep_after = a.number - i64::from(self.config.history_limit);
        let append = append_params(&r.migration, &a);
        let trim: [&(dyn ToSql + Sync); 2] = [&r.migration, &keep_after];
        let b = changed.as_ref().map(BreakerRow::from_breaker);
        let breaker = async {
            match &b {
                Some(b) => client
                    .execute(&stmts.breakers.store, &breaker_params(b))
                    .await
                    .map(drop),
                None => Ok(()),
            }
        };
        let (store, append, trim, breaker, commit) = tokio::join!(
            client.execute(&stmts.store, &store),
            client.execute(&stmts.append, &append),
            client.execute(&stmts.trim, &trim),
            breaker,
            // COMMIT of a failed transaction rolls it back.
            client.batch_execute("COMMIT"),
        );
        store?;
        append?;
        trim?;
        breaker?;
        commit?;
        Ok(rec)
    }

    pub(super) async fn list_breakers(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        let session = self.conn().await?;
        let rows = session
            .client
            .query(
                &format!("SELECT {BREAKER_COLUMNS} FROM target_breakers ORDER BY node"),
                &[],
            )
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(read_breaker).collect()
    }

    /// Loads `node`'s breaker with its row locked, applies `f` and writes
    /// it back, in one transaction; `None` when the journal has none.
    async fn with_locked<R>(
        &self,
        node: &str,
        f: impl FnOnce(&mut TargetBreaker) -> R,
    ) -> Result<Option<(TargetBreaker, R)>, JournalError> {
        let mut session = self.conn().await?;
        let Session { client, stmts } = &mut *session;
        let db = |e| self.db(e);
        let tx = client.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(&stmts.breakers.lock, &[&node])
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let mut breaker = read_breaker(&row)?;
        let out = f(&mut breaker);
        let b = BreakerRow::from_breaker(&breaker);
        tx.execute(&stmts.breakers.store, &breaker_params(&b))
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some((breaker, out)))
    }

    pub(super) async fn reset_breaker(
        &self,
        node: &str,
        now_ms: u64,
    ) -> Result<TargetBreaker, JournalError> {
        self.with_locked(node, |b| b.succeed(now_ms))
            .await?
            .map(|(b, ())| b)
            .ok_or_else(|| JournalError::UnknownTarget(node.to_owned()))
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
        // Closed or open: a read decides. Half-open: the probe is taken
        // with the node's row locked.
        let current = {
            let session = self.conn().await?;
            let row = session
                .client
                .query_opt(
                    &format!("SELECT {BREAKER_COLUMNS} FROM target_breakers WHERE node = $1"),
                    &[&node],
                )
                .await
                .map_err(|e| self.db(e))?;
            row.as_ref().map(read_breaker).transpose()?
        };
        match current {
            None => return Ok(Admission::Closed),
            Some(mut b) if b.state(now_ms) != BreakerState::HalfOpen => {
                return Ok(b.admit(migration, now_ms, hold_ms));
            }
            Some(_) => {}
        }
        Ok(self
            .with_locked(node, |b| b.admit(migration, now_ms, hold_ms))
            .await?
            .map_or(Admission::Closed, |(_, admission)| admission))
    }
}

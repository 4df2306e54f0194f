//! The shared journal: PostgreSQL, for several controller processes.
//!
//! Due recoveries are claimed with `SELECT ... FOR UPDATE SKIP LOCKED` and
//! a lease (owner, expiry, fencing number): two workers never claim the
//! same recovery, and a recovery whose worker died is claimable again once
//! its lease has run out. Every change is one transaction; PostgreSQL's
//! default `synchronous_commit = on` makes it durable before the call
//! returns.
//!
//! A lost connection (a server restart, `pg_terminate_backend`, the
//! network) fails the call that finds out with
//! [`JournalError::Unavailable`], and the next call connects again with
//! the same settings and prepares its statements anew; a change that was
//! in flight is gone with its transaction, never replayed.
//!
//! TLS follows libpq's URL parameters, read by rebound (tokio-postgres
//! knows neither `sslrootcert` nor the `verify-*` modes): `sslmode` is
//! `disable`, `prefer` (the default: TLS when the server offers it, its
//! certificate not checked, as libpq), `require` (TLS, the certificate
//! chain checked against the roots: stricter than libpq, which checks
//! nothing), `verify-ca` (the same) or `verify-full` (the chain, and that
//! the certificate names the host). `sslrootcert=PATH` is a PEM file of CA
//! certificates; without it (or with `sslrootcert=system`) the system's
//! roots are used (rustls-native-certs, which honours `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`). `sslrootcert` without `sslmode` means `verify-full`.
//! Client certificates (`sslcert`, `sslkey`) are refused as
//! [`JournalError::Invalid`]. TLS is rustls with the `ring` provider; both
//! connections (this one, reconnecting, and the `LISTEN` one) use it.
//!
//! ```no_run
//! # async fn f() -> Result<(), rebound_recovery::JournalError> {
//! use rebound_recovery::PostgresJournal;
//! // A managed server (RDS, Cloud SQL, Azure): its CA bundle, checked in full.
//! let journal = PostgresJournal::connect(
//!     "postgres://rebound@db.example.com:5432/rebound\
//!      ?sslmode=verify-full&sslrootcert=/etc/rebound/rds-global-bundle.pem",
//!     Default::default(),
//! )
//! .await?;
//! # let _ = journal; Ok(()) }
//! ```

mod breakers;
pub(crate) mod tls;

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Statement};

use self::tls::MakeRustls;
use super::address::{RootCerts, SslMode, postgres_params, redact};
use super::row::{ATTEMPT_COLUMNS, AttemptRow, COLUMNS, RecoveryRow, columns, int};
use super::schema::{LATEST, MIGRATIONS, VERSION_TABLE, statements};
use super::targets;
use super::wake::{ChangeListener, Wake};
use super::{
    Claim, Journal, PRUNE_BATCH, abandoned, cancelled, lease_end, lost_too_often, prunable,
    released, renewed,
};
use crate::error::JournalError;
use crate::model::{Admission, OpenTargets, TargetBreaker};
use crate::model::{Attempt, FailureReport, Outcome, Recovery, RecoveryConfig, RecoveryState};

/// The advisory lock key migrations hold ("rebound" in ASCII).
const MIGRATION_LOCK: i64 = 0x0072_6562_6f75_6e64;

/// A journal in a PostgreSQL database, over one connection at a time.
///
/// Open one per worker for parallel work: the connection is used by one
/// transaction at a time. When it is lost, the call that finds out fails
/// as [`Unavailable`](crate::JournalErrorKind::Unavailable) and the next
/// call opens a new one (see the [module](self) documentation); waiting
/// between tries is the caller's to decide, as
/// [`RecoveryWorker::run`](crate::RecoveryWorker::run) does.
///
/// ```no_run
/// # async fn f() -> Result<(), rebound_recovery::JournalError> {
/// use rebound_recovery::{Journal, PostgresJournal};
/// let journal = PostgresJournal::connect("postgres://rebound@127.0.0.1:5432/rebound", Default::default()).await?;
/// println!("{} recoveries", journal.list(None).await?.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PostgresJournal {
    name: String,
    config: RecoveryConfig,
    /// The connection and its prepared statements; replaced by a new one
    /// when it is found closed (see [`PostgresJournal::conn`]).
    session: Arc<Mutex<Session>>,
    /// Set while a transaction is open on the connection; still set when
    /// the next caller takes the connection means the previous change was
    /// cancelled mid-way, and its transaction is rolled back first.
    open_tx: Arc<AtomicBool>,
    /// Set when a call failed because the connection was lost (the error
    /// was [`JournalError::Unavailable`]): the next call opens a new one
    /// even if the driver has not noticed yet.
    broken: Arc<AtomicBool>,
    /// Raised after each change that can make work claimable (see
    /// [`Journal::wake`]); other processes hear of it through NOTIFY.
    wake: Wake,
    /// The connection settings, for the LISTEN connection and for
    /// reconnecting.
    settings: tokio_postgres::Config,
    /// The TLS connector (by `sslmode`), for every connection.
    tls: MakeRustls,
}

/// One connection and the statements prepared on it: a statement belongs
/// to the connection that prepared it, so both are replaced together.
#[derive(Debug)]
struct Session {
    client: Client,
    stmts: Statements,
}

#[derive(Debug)]
struct Statements {
    load_for_update: Statement,
    store: Statement,
    append: Statement,
    trim: Statement,
    claim: Statement,
    any_due: Statement,
    breakers: breakers::Statements,
}

impl Statements {
    /// Prepares every statement on `client` (a new connection's first
    /// round trips).
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            load_for_update: client
                .prepare(&format!("SELECT {COLUMNS} FROM recoveries WHERE migration = $1 FOR UPDATE"))
                .await?,
            store: client
                .prepare(&format!(
                    "INSERT INTO recoveries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
                     ON CONFLICT (migration) DO UPDATE SET {}",
                    COLUMNS
                        .split(", ")
                        .skip(1)
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .await?,
            append: client
                .prepare(&format!(
                    "INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .await?,
            trim: client
                .prepare("DELETE FROM attempts WHERE migration = $1 AND number <= $2")
                .await?,
            claim: client.prepare(CLAIM_SQL).await?,
            any_due: client
                .prepare(&format!(
                    "SELECT EXISTS (SELECT 1 FROM recoveries WHERE ({DUE}) AND {WORKLOAD_IDLE})"
                ))
                .await?,
            breakers: breakers::Statements::prepare(client).await?,
        })
    }
}

/// Opens a connection with `settings` and drives it in a task of its own
/// until it ends; a failure is [`JournalError::Unavailable`].
async fn connect_client(
    settings: &tokio_postgres::Config,
    tls: &MakeRustls,
    name: &str,
) -> Result<Client, JournalError> {
    let (client, connection) = settings
        .connect(tls.clone())
        .await
        .map_err(|e| unavailable(name, e))?;
    let conn_name = name.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(journal = %conn_name, error = %error_text(&e), "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl PostgresJournal {
    /// Connects (10 s connect timeout unless the URL sets one) and brings
    /// the schema up to date.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rebound_recovery::JournalError> {
    /// use rebound_recovery::PostgresJournal;
    /// let journal = PostgresJournal::connect("postgres://rebound@127.0.0.1/rebound", Default::default()).await?;
    /// # let _ = journal; Ok(()) }
    /// ```
    pub async fn connect(url: &str, config: RecoveryConfig) -> Result<Self, JournalError> {
        config.validate()?;
        let name = redact(url);
        let params = postgres_params(url)?;
        let mut pg: tokio_postgres::Config = params.driver_url.parse().map_err(|e| {
            JournalError::Invalid(format!(
                "journal address {name} is not a valid PostgreSQL URL: {e}"
            ))
        })?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        // A URL the url crate could not read went to the driver as it
        // was: its own sslmode (require checks the chain, as ours).
        let mode = params.sslmode.unwrap_or(match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        });
        let roots = if params.sslmode.is_some() {
            params.roots
        } else {
            RootCerts::System
        };
        let tls = MakeRustls::new(mode, &roots, &name)?;
        let settings = pg.clone();
        let mut client = connect_client(&settings, &tls, &name).await?;
        migrate(&mut client, &name).await?;
        let stmts = Statements::prepare(&client)
            .await
            .map_err(|e| database(&name, e))?;
        Ok(Self {
            name,
            config,
            session: Arc::new(Mutex::new(Session { client, stmts })),
            open_tx: Arc::new(AtomicBool::new(false)),
            broken: Arc::new(AtomicBool::new(false)),
            wake: Wake::new(),
            settings,
            tls,
        })
    }

    /// Shares `wake` with other journal handles of this process: each
    /// raises it after its changes (see [`Journal::wake`]).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rebound_recovery::JournalError> {
    /// use rebound_recovery::{Journal, PostgresJournal, journal::Wake};
    /// let shared = Wake::new();
    /// let journal = PostgresJournal::connect("postgres://rebound@127.0.0.1/rebound", Default::default())
    ///     .await?
    ///     .with_wake(shared.clone());
    /// assert!(journal.wake().unwrap().same_as(&shared));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = wake;
        self
    }

    /// Opens a connection of its own that `LISTEN`s for the changes other
    /// processes announce and raises this handle's [`Wake`] on each (see
    /// [`pg_listen`](super::pg_listen)); it reconnects with backoff when
    /// dropped, and stops when the returned listener is dropped.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), rebound_recovery::JournalError> {
    /// use rebound_recovery::{Journal, PostgresJournal};
    /// let journal = PostgresJournal::connect("postgres://rebound@127.0.0.1/rebound", Default::default()).await?;
    /// let _listening = journal.listen().await;
    /// let mut idle = journal.wake().unwrap().listen();
    /// idle.wait().await; // another process recorded, cancelled or completed something
    /// # Ok(()) }
    /// ```
    pub async fn listen(&self) -> ChangeListener {
        super::pg_listen::listen(
            &self.settings,
            self.tls.clone(),
            self.name.clone(),
            self.wake.clone(),
        )
        .await
    }

    /// Tells this process's workers (the [`Wake`]) and every other
    /// process's (`NOTIFY`) that work may have become claimable.
    async fn announce(&self) {
        self.wake.signal();
        if let Ok(session) = self.conn().await {
            super::pg_listen::notify(&session.client, &self.name).await;
        }
    }

    /// The schema version stored in the database.
    ///
    /// ```no_run
    /// # async fn f(journal: rebound_recovery::PostgresJournal) -> Result<(), rebound_recovery::JournalError> {
    /// assert_eq!(journal.schema_version().await?, rebound_recovery::journal::schema::LATEST);
    /// # Ok(()) }
    /// ```
    pub async fn schema_version(&self) -> Result<u32, JournalError> {
        let session = self.conn().await?;
        read_version(&session.client).await.map_err(|e| self.db(e))
    }

    /// The driver's error as a journal error; one that says the
    /// connection is lost marks it for replacement at the next call.
    fn db(&self, e: tokio_postgres::Error) -> JournalError {
        let error = database(&self.name, e);
        if matches!(error, JournalError::Unavailable { .. }) {
            self.broken.store(true, Ordering::SeqCst);
        }
        error
    }

    async fn query(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Recovery>, JournalError> {
        let session = self.conn().await?;
        let rows = session
            .client
            .query(sql, args)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(|r| read_row(r).into_recovery()).collect()
    }

    /// The connection and its statements. A connection that was lost
    /// (closed, or a call on it said so) is replaced first by a new one
    /// with the same settings, its statements prepared again; a failure to
    /// connect is [`JournalError::Unavailable`], and the next call tries
    /// again (the caller decides how long to wait). A transaction that was
    /// open on the lost connection is gone with it: PostgreSQL rolled it
    /// back, and nothing of it is replayed. On a live connection, a
    /// transaction a cancelled change left open is rolled back first.
    async fn conn(&self) -> Result<MutexGuard<'_, Session>, JournalError> {
        let mut session = self.session.lock().await;
        if self.broken.load(Ordering::SeqCst) || session.client.is_closed() {
            let client = connect_client(&self.settings, &self.tls, &self.name).await?;
            let stmts = Statements::prepare(&client).await.map_err(|e| self.db(e))?;
            *session = Session { client, stmts };
            self.broken.store(false, Ordering::SeqCst);
            self.open_tx.store(false, Ordering::SeqCst);
            tracing::info!(journal = %self.name, "reconnected to the journal's database");
        } else if self.open_tx.swap(false, Ordering::SeqCst) {
            session
                .client
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| self.db(e))?;
        }
        Ok(session)
    }

    /// One state change of `migration` as one transaction, in two round
    /// trips: `BEGIN` pipelined with the row's `SELECT ... FOR UPDATE`, then
    /// the writes pipelined with `COMMIT` (a failed write turns the COMMIT
    /// into a rollback). `apply` gets the recovery as it is and returns it
    /// changed, with the history entry to add, if any, and what the call
    /// answers.
    async fn change<T>(
        &self,
        migration: &str,
        apply: impl FnOnce(Option<Recovery>) -> Result<(Recovery, Option<Attempt>, T), JournalError>,
    ) -> Result<T, Failure> {
        let session = self.conn().await?;
        self.open_tx.store(true, Ordering::SeqCst);
        let guard = RollbackOnDrop {
            session: Arc::clone(&self.session),
            open_tx: Arc::clone(&self.open_tx),
        };
        let result = self.change_in(&session, migration, apply).await;
        if result.is_err() {
            // Harmless when the transaction already ended.
            let _ = session.client.batch_execute("ROLLBACK").await;
        }
        self.open_tx.store(false, Ordering::SeqCst);
        drop(guard);
        result
    }

    async fn change_in<T>(
        &self,
        session: &Session,
        migration: &str,
        apply: impl FnOnce(Option<Recovery>) -> Result<(Recovery, Option<Attempt>, T), JournalError>,
    ) -> Result<T, Failure> {
        let Session { client, stmts } = session;
        let load_params: [&(dyn ToSql + Sync); 1] = [&migration];
        let (begin, row) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.query_opt(&stmts.load_for_update, &load_params)
        );
        begin?;
        let current = row?.map(|r| read_row(&r).into_recovery()).transpose()?;
        let (rec, entry, answer) = apply(current)?;
        let r = RecoveryRow::from_recovery(&rec);
        let store_params = store_params(&r);
        let Some(entry) = entry else {
            let (store, commit) = tokio::join!(
                client.execute(&stmts.store, &store_params),
                // COMMIT of a failed transaction rolls it back.
                client.batch_execute("COMMIT"),
            );
            store?;
            commit?;
            return Ok(answer);
        };
        let a = AttemptRow::from_attempt(&entry);
        let keep_after = a.number - i64::from(self.config.history_limit);
        let append_params = append_params(&r.migration, &a);
        let trim_params: [&(dyn ToSql + Sync); 2] = [&r.migration, &keep_after];
        let (store, append, trim, commit) = tokio::join!(
            client.execute(&stmts.store, &store_params),
            client.execute(&stmts.append, &append_params),
            client.execute(&stmts.trim, &trim_params),
            // COMMIT of a failed transaction rolls it back.
            client.batch_execute("COMMIT"),
        );
        store?;
        append?;
        trim?;
        commit?;
        Ok(answer)
    }
}

impl PostgresJournal {
    /// Stores `rec` and appends `entry` to its history, inside the
    /// caller's transaction.
    async fn write(
        &self,
        client: &impl GenericClient,
        stmts: &Statements,
        rec: &Recovery,
        entry: &Attempt,
    ) -> Result<(), tokio_postgres::Error> {
        let r = RecoveryRow::from_recovery(rec);
        let store_params = store_params(&r);
        client.execute(&stmts.store, &store_params).await?;
        let a = AttemptRow::from_attempt(entry);
        let append_params = append_params(&r.migration, &a);
        client.execute(&stmts.append, &append_params).await?;
        let keep_after = a.number - i64::from(self.config.history_limit);
        client
            .execute(&stmts.trim, &[&r.migration, &keep_after])
            .await?;
        Ok(())
    }
}

/// Rolls back the transaction of a change whose future was dropped
/// mid-way, so that its row locks do not wait for the connection's next
/// use. Whoever takes the connection first (this task or the next caller)
/// sees `open_tx` and rolls back.
struct RollbackOnDrop {
    session: Arc<Mutex<Session>>,
    open_tx: Arc<AtomicBool>,
}

impl Drop for RollbackOnDrop {
    fn drop(&mut self) {
        if !self.open_tx.load(Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = Arc::clone(&self.session);
        let open_tx = Arc::clone(&self.open_tx);
        runtime.spawn(async move {
            let session = session.lock().await;
            if open_tx.swap(false, Ordering::SeqCst) {
                let _ = session.client.batch_execute("ROLLBACK").await;
            }
        });
    }
}

/// A driver error or a journal rule broken inside a change.
type Failure = super::row::Failure<tokio_postgres::Error>;

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl PostgresJournal {
    fn fail(&self, f: Failure) -> JournalError {
        f.resolve(|e| self.db(e))
    }
}

/// Claims one due recovery: the inner SELECT skips rows another
/// transaction holds, so concurrent claimers never get the same recovery,
/// and skips a recovery whose workload already has one running (one
/// recovery per workload at a time). It sets what
/// [`transition::claim`](crate::model::transition::claim) sets and takes
/// due recoveries in the order of [`Journal::due`] (soonest first, then by
/// migration id), as the other backends do. Parameters: `$1` now (ms),
/// `$2` the owner, `$3` the lease's end (ms), `$4` how many at most.
///
/// [`Journal::claim`] runs it with `$4 = 1`, once per recovery of its
/// batch, in one transaction that first takes [`CLAIM_LOCK`]: claims are
/// serialised, so the running rows a claim's NOT EXISTS sees include every
/// earlier claim, its own batch's too. Public so that the journal
/// benchmark can run the same SQL through `pgbench`.
pub const CLAIM_SQL: &str = concat!(
    "UPDATE recoveries SET rescues = rescues + CASE WHEN state = 'running' THEN 1 ELSE 0 END, \
     state = 'running', lease_owner = $2, \
     lease_expires_ms = $3, next_attempt_ms = NULL, claim_seq = claim_seq + 1, updated_ms = $1 \
     WHERE migration IN (SELECT migration FROM recoveries \
       WHERE ((state = 'pending' AND next_attempt_ms <= $1) \
          OR (state = 'running' AND lease_expires_ms <= $1)) \
         AND NOT EXISTS (SELECT 1 FROM recoveries AS busy WHERE busy.workload = recoveries.workload \
           AND busy.state = 'running' AND busy.migration <> recoveries.migration) \
       ORDER BY COALESCE(next_attempt_ms, lease_expires_ms), migration \
       LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    columns!()
);

/// The transaction-level advisory lock every claim takes first ("rebound
/// claim" in ASCII, truncated), so that two claims never both see a
/// workload idle and start two of its recoveries at once.
pub const CLAIM_LOCK: i64 = 0x7265_6263_6c61_696d;

/// The driver's error as text: for an error the server sent, its SQLSTATE
/// code and message; for a TLS failure, the driver's message and what it
/// means (see [`tls::hint`]).
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let text = crate::error::error_chain(e);
            match tls::hint(e) {
                Some(hint) => format!("{text} ({hint})"),
                None => text,
            }
        }
    }
}

fn unavailable(name: &str, e: tokio_postgres::Error) -> JournalError {
    JournalError::Unavailable {
        journal: name.to_owned(),
        message: error_text(&e),
        source: Some(Box::new(e)),
    }
}

fn database(name: &str, e: tokio_postgres::Error) -> JournalError {
    if e.is_closed()
        || e.as_db_error().is_none()
            && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        || e.code().is_some_and(connection_lost)
    {
        return unavailable(name, e);
    }
    JournalError::Database {
        journal: name.to_owned(),
        message: error_text(&e),
        source: Box::new(e),
    }
}

/// Whether a server's error code says the connection is gone or cannot be
/// had now: the server shutting down or restarting (57P01 admin_shutdown,
/// 57P02 crash_shutdown, 57P03 cannot_connect_now: an administrator's
/// `pg_terminate_backend` is 57P01 too) or any connection exception
/// (class 08). The journal connects again at its next call.
fn connection_lost(code: &SqlState) -> bool {
    *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || code.code().starts_with("08")
}

async fn read_version(client: &impl GenericClient) -> Result<u32, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
            &[],
        )
        .await?;
    let v: i64 = row.get(0);
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

async fn migrate(client: &mut Client, name: &str) -> Result<(), JournalError> {
    let db = |e| database(name, e);
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(VERSION_TABLE).await.map_err(db)?;
    let current = read_version(&tx).await.map_err(db)?;
    if current > LATEST {
        return Err(JournalError::NewerSchema {
            journal: name.to_owned(),
            found: current,
            supported: LATEST,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for statement in statements(sql) {
            tx.batch_execute(statement).await.map_err(db)?;
        }
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
            &[&i64::from(*version), &int(crate::clock::now_ms())],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

fn read_row(r: &Row) -> RecoveryRow {
    RecoveryRow {
        migration: r.get(0),
        workload: r.get(1),
        source: r.get(2),
        target: r.get(3),
        candidates: r.get(4),
        failed_targets: r.get(5),
        kind: r.get(6),
        message: r.get(7),
        state: r.get(8),
        strategy: r.get(9),
        reason: r.get(10),
        retry_count: r.get(11),
        attempts_total: r.get(12),
        first_failure_ms: r.get(13),
        last_failure_ms: r.get(14),
        next_attempt_ms: r.get(15),
        snapshot: r.get(16),
        lease_owner: r.get(17),
        lease_expires_ms: r.get(18),
        claim_seq: r.get(19),
        updated_ms: r.get(20),
        rescues: r.get(21),
    }
}

const DUE: &str = "(state = 'pending' AND next_attempt_ms <= $1) OR (state = 'running' AND lease_expires_ms <= $1)";

/// No other recovery of the row's workload is running.
const WORKLOAD_IDLE: &str = "NOT EXISTS (SELECT 1 FROM recoveries AS busy \
     WHERE busy.workload = recoveries.workload AND busy.state = 'running' \
     AND busy.migration <> recoveries.migration)";

impl Journal for PostgresJournal {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    async fn record(&self, report: FailureReport, now_ms: u64) -> Result<Recovery, JournalError> {
        let touch = |_: Option<&Recovery>| Ok(targets::record_touch(&report, &self.config));
        let apply = |existing: Option<Recovery>, open: &OpenTargets| {
            targets::recorded_among(existing, &report, &self.config, now_ms, open)
        };
        let recorded = match self
            .change_targets(&report.migration, now_ms, touch, apply)
            .await
        {
            // Two first failures of one migration at once: the loser's
            // history entry hits the primary key; its retry sees the
            // winner's row and adds to it.
            Err(Failure::Sql(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // `touch` and `apply` only borrow: they are Copy and serve again.
                self.change_targets(&report.migration, now_ms, touch, apply)
                    .await
                    .map_err(|f| self.fail(f))
            }
            other => other.map_err(|f| self.fail(f)),
        };
        if recorded.is_ok() {
            self.announce().await;
        }
        recorded
    }

    async fn get(&self, migration: &str) -> Result<Option<Recovery>, JournalError> {
        let session = self.conn().await?;
        let row = session
            .client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM recoveries WHERE migration = $1"),
                &[&migration],
            )
            .await
            .map_err(|e| self.db(e))?;
        row.map(|r| read_row(&r).into_recovery()).transpose()
    }

    async fn history(&self, migration: &str) -> Result<Vec<Attempt>, JournalError> {
        let session = self.conn().await?;
        let rows = session
            .client
            .query(
                "SELECT number, at_ms, strategy, target, result, kind, message \
                 FROM attempts WHERE migration = $1 ORDER BY number",
                &[&migration],
            )
            .await
            .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|r| {
                AttemptRow {
                    number: r.get(0),
                    at_ms: r.get(1),
                    strategy: r.get(2),
                    target: r.get(3),
                    result: r.get(4),
                    kind: r.get(5),
                    message: r.get(6),
                }
                .into_attempt(migration)
            })
            .collect()
    }

    async fn list(&self, state: Option<RecoveryState>) -> Result<Vec<Recovery>, JournalError> {
        match state {
            Some(s) => {
                self.query(
                    &format!(
                        "SELECT {COLUMNS} FROM recoveries WHERE state = $1 ORDER BY migration"
                    ),
                    &[&s.as_str()],
                )
                .await
            }
            None => {
                self.query(
                    &format!("SELECT {COLUMNS} FROM recoveries ORDER BY migration"),
                    &[],
                )
                .await
            }
        }
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<Recovery>, JournalError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM recoveries WHERE {DUE} \
                 ORDER BY COALESCE(next_attempt_ms, lease_expires_ms), migration"
            ),
            &[&int(now_ms)],
        )
        .await
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, JournalError> {
        let expires = lease_end(now_ms, lease);
        let mut session = self.conn().await?;
        let Session { client, stmts } = &mut *session;
        let one: i64 = 1;
        let args: [&(dyn ToSql + Sync); 4] = [&int(now_ms), &owner, &int(expires), &one];
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
            .await
            .map_err(|e| self.db(e))?;
        // Running recoveries whose worker was lost too often: given up,
        // not retaken.
        let expired = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM recoveries WHERE state = 'running' \
                     AND lease_expires_ms <= $1 ORDER BY migration FOR UPDATE SKIP LOCKED"
                ),
                &[&int(now_ms)],
            )
            .await
            .map_err(|e| self.db(e))?;
        for row in &expired {
            let rec = read_row(row).into_recovery()?;
            if lost_too_often(&rec, &self.config) {
                let (rec, entry) = abandoned(rec, now_ms);
                self.write(&tx, stmts, &rec, &entry)
                    .await
                    .map_err(|e| self.db(e))?;
            }
        }
        let mut rows = Vec::new();
        // One recovery per statement: each sees the ones this batch
        // claimed before it, so the batch takes one per workload.
        while rows.len() < limit {
            let mut got = Vec::new();
            // An empty claim can be spurious: a row inserted after this
            // statement's snapshot is invisible to it, while an older one
            // it could see is locked by a concurrent change. A new
            // statement gets a new snapshot, so try again while due rows
            // exist (bounded).
            for _ in 0..3 {
                got = tx
                    .query(&stmts.claim, &args)
                    .await
                    .map_err(|e| self.db(e))?;
                if !got.is_empty() {
                    break;
                }
                let any_due: bool = tx
                    .query_one(&stmts.any_due, &[&int(now_ms)])
                    .await
                    .map_err(|e| self.db(e))?
                    .get(0);
                if !any_due {
                    break;
                }
            }
            if got.is_empty() {
                break;
            }
            rows.extend(got);
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        drop(session);
        if !rows.is_empty() {
            self.announce().await;
        }
        rows.iter()
            .map(|r| {
                let rec = read_row(r).into_recovery()?;
                Ok(Claim {
                    owner: owner.to_owned(),
                    claim_seq: rec.claim_seq,
                    lease_expires_ms: expires,
                    recovery: rec,
                })
            })
            .collect()
    }

    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        let apply = |current| {
            let renewed = renewed(current, claim, now_ms, lease)?;
            Ok((renewed.recovery.clone(), None, renewed))
        };
        self.change(&claim.recovery.migration, apply)
            .await
            .map_err(|f| self.fail(f))
    }

    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        let apply = |current| {
            let rec = released(current, claim, now_ms)?;
            Ok((rec.clone(), None, rec))
        };
        let released = self
            .change(&claim.recovery.migration, apply)
            .await
            .map_err(|f| self.fail(f))?;
        self.announce().await;
        Ok(released)
    }

    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let seen = outcome.clone();
        let touch = |current: Option<&Recovery>| {
            targets::complete_touch(current, claim, &seen, &self.config)
        };
        let apply = |current, open: &OpenTargets| {
            targets::completed_among(current, claim, outcome, &self.config, now_ms, open)
        };
        let completed = self
            .change_targets(&claim.recovery.migration, now_ms, touch, apply)
            .await
            .map_err(|f| self.fail(f))?;
        self.announce().await;
        Ok(completed)
    }

    async fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let apply = |current| {
            let (rec, entry) = cancelled(current, migration, reason, now_ms)?;
            Ok((rec.clone(), Some(entry), rec))
        };
        let cancelled = self
            .change(migration, apply)
            .await
            .map_err(|f| self.fail(f))?;
        self.announce().await;
        Ok(cancelled)
    }

    async fn prune(&self, before_ms: u64, states: &[RecoveryState]) -> Result<u64, JournalError> {
        let states: Vec<&str> = prunable(states)?.iter().map(|s| s.as_str()).collect();
        // One statement (one transaction) per batch; rows a change holds
        // are skipped, and one reopened meanwhile no longer matches.
        let sql = format!(
            "WITH doomed AS (SELECT migration FROM recoveries \
               WHERE state = ANY($1) AND updated_ms < $2 \
               ORDER BY migration LIMIT {PRUNE_BATCH} FOR UPDATE SKIP LOCKED), \
             history AS (DELETE FROM attempts WHERE migration IN (SELECT migration FROM doomed)) \
             DELETE FROM recoveries WHERE migration IN (SELECT migration FROM doomed)"
        );
        let mut total = 0;
        loop {
            let session = self.conn().await?;
            let deleted = session
                .client
                .execute(&sql, &[&states, &int(before_ms)])
                .await
                .map_err(|e| self.db(e))?;
            drop(session);
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                if total > 0 {
                    // For watchers (`list --watch`): nothing became due.
                    self.announce().await;
                }
                return Ok(total);
            }
        }
    }

    async fn targets(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        self.list_breakers().await
    }

    async fn reset_target(&self, node: &str, now_ms: u64) -> Result<TargetBreaker, JournalError> {
        self.reset_breaker(node, now_ms).await
    }

    async fn admit_target(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold: Duration,
    ) -> Result<Admission, JournalError> {
        self.admit_breaker(node, migration, now_ms, lease_end(0, hold))
            .await
    }

    async fn next_due_after(&self, now_ms: u64) -> Result<Option<u64>, JournalError> {
        let session = self.conn().await?;
        let due: Option<i64> = session
            .client
            .query_one(NEXT_DUE, &[&int(now_ms)])
            .await
            .map_err(|e| self.db(e))?
            .get(0);
        Ok(due.map(|t| u64::try_from(t).unwrap_or(0)))
    }

    fn wake(&self) -> Option<Wake> {
        Some(self.wake.clone())
    }
}

/// [`Journal::next_due_after`]: the earliest delay end or lease end after
/// `$1` (each half served by its partial index).
const NEXT_DUE: &str = "SELECT MIN(t) FROM (\
     SELECT MIN(next_attempt_ms) AS t FROM recoveries WHERE state = 'pending' AND next_attempt_ms > $1 \
     UNION ALL \
     SELECT MIN(lease_expires_ms) FROM recoveries WHERE state = 'running' AND lease_expires_ms > $1) AS due";

/// The parameters of the `store` statement, in its column order.
fn store_params(r: &RecoveryRow) -> [&(dyn ToSql + Sync); 22] {
    [
        &r.migration,
        &r.workload,
        &r.source,
        &r.target,
        &r.candidates,
        &r.failed_targets,
        &r.kind,
        &r.message,
        &r.state,
        &r.strategy,
        &r.reason,
        &r.retry_count,
        &r.attempts_total,
        &r.first_failure_ms,
        &r.last_failure_ms,
        &r.next_attempt_ms,
        &r.snapshot,
        &r.lease_owner,
        &r.lease_expires_ms,
        &r.claim_seq,
        &r.updated_ms,
        &r.rescues,
    ]
}

/// The parameters of the `append` statement (one history entry).
fn append_params<'a>(migration: &'a String, a: &'a AttemptRow) -> [&'a (dyn ToSql + Sync); 8] {
    [
        migration,
        &a.number,
        &a.at_ms,
        &a.strategy,
        &a.target,
        &a.result,
        &a.kind,
        &a.message,
    ]
}

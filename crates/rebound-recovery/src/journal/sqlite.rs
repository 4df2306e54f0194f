//! The default journal: one SQLite file, WAL, `synchronous=FULL`.
//!
//! Each state change is one `BEGIN IMMEDIATE` transaction, committed (and
//! so fsynced) before the call returns. Several processes may share the
//! file: the write lock serialises their changes, and claims use the same
//! lease rules as PostgreSQL.
//!
//! The journal path must be a regular file, or a missing one in an
//! existing directory: anything else (a device such as `/dev/null`, a
//! directory, a FIFO) is refused before SQLite opens it, so that SQLite
//! never creates its `-journal`, `-wal` or `-shm` files beside a device.
//! A new journal file is created with mode 0600 (SQLite gives its side
//! files the main file's mode): the journal holds migration details
//! others on the host need not read.

mod breakers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::row::{ATTEMPT_COLUMNS, AttemptRow, COLUMNS, RecoveryRow, int};
use super::schema::{LATEST, MIGRATIONS, VERSION_TABLE, statements};
use super::targets;
use super::wake::{ChangeListener, Wake};
use super::{
    Claim, Journal, PRUNE_BATCH, abandoned, cancelled, claimed, lease_end, lost_too_often,
    prunable, released, renewed,
};
use crate::error::JournalError;
use crate::model::{Admission, TargetBreaker};
use crate::model::{Attempt, FailureReport, Outcome, Recovery, RecoveryConfig, RecoveryState};

/// A journal in a SQLite file.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::{Journal, SqliteJournal};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = SqliteJournal::open(dir.path().join("journal.db"), Default::default()).await.unwrap();
/// assert_eq!(journal.schema_version().await.unwrap(), rebound_recovery::journal::schema::LATEST);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SqliteJournal {
    path: PathBuf,
    config: RecoveryConfig,
    conn: Arc<Mutex<Connection>>,
    /// Raised after each change (see [`Journal::wake`]); clones share it.
    wake: Wake,
}

impl SqliteJournal {
    /// Opens the file (creating it with mode 0600, but not its
    /// directory), sets WAL and `synchronous=FULL`, and brings the schema
    /// up to date. A path that exists and is not a regular file, or whose
    /// directory is not one, is refused
    /// ([`JournalError::UnusablePath`]) before anything is opened.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{JournalErrorKind, SqliteJournal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = SqliteJournal::open(dir.path().join("journal.db"), Default::default()).await.unwrap();
    /// assert!(journal.path().is_file());
    /// // A missing directory is not created.
    /// assert!(SqliteJournal::open(dir.path().join("no/j.db"), Default::default()).await.is_err());
    /// // A device is not a journal.
    /// let err = SqliteJournal::open("/dev/null", Default::default()).await.unwrap_err();
    /// assert_eq!(err.kind(), JournalErrorKind::Invalid);
    /// # });
    /// ```
    pub async fn open(
        path: impl AsRef<Path>,
        config: RecoveryConfig,
    ) -> Result<Self, JournalError> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_conn(&p))
            .await
            .map_err(|e| unavailable(&path, e))??;
        Ok(Self {
            path,
            config,
            conn: Arc::new(Mutex::new(conn)),
            wake: Wake::new(),
        })
    }

    /// Opens an existing journal of the current schema read-only, for
    /// reading it (list, get, history, due) without write access to the
    /// file or its directory (SQLite reads a WAL file read-only while its
    /// `-wal` and `-shm` files exist, as they do while a writer has it
    /// open). A file with no schema or an older one is opened as by
    /// [`open`](Self::open), which brings it up to date; a newer one is
    /// refused, and so is a path that is not a regular file. Changes
    /// through a read-only journal fail.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{Journal, SqliteJournal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = dir.path().join("journal.db");
    /// drop(SqliteJournal::open(&file, Default::default()).await.unwrap());
    /// let reader = SqliteJournal::open_read_only(&file, Default::default()).await.unwrap();
    /// assert!(reader.list(None).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn open_read_only(
        path: impl AsRef<Path>,
        config: RecoveryConfig,
    ) -> Result<Self, JournalError> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_read_only_conn(&p))
            .await
            .map_err(|e| unavailable(&path, e))??;
        match conn {
            Some(conn) => Ok(Self {
                path,
                config,
                conn: Arc::new(Mutex::new(conn)),
                wake: Wake::new(),
            }),
            None => Self::open(path, config).await,
        }
    }

    /// The schema version stored in the file.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::SqliteJournal;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = SqliteJournal::open(dir.path().join("journal.db"), Default::default()).await.unwrap();
    /// assert_eq!(journal.schema_version().await.unwrap(), rebound_recovery::journal::schema::LATEST);
    /// # });
    /// ```
    pub async fn schema_version(&self) -> Result<u32, JournalError> {
        self.with(|conn| read_version(conn)).await
    }

    /// The file.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::SqliteJournal;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = SqliteJournal::open(dir.path().join("journal.db"), Default::default()).await.unwrap();
    /// assert_eq!(journal.path(), dir.path().join("journal.db"));
    /// # });
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shares `wake` with other journal handles of this process: each
    /// raises it after its changes (see [`Journal::wake`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{Journal, SqliteJournal, journal::Wake};
    /// let dir = tempfile::tempdir().unwrap();
    /// let shared = Wake::new();
    /// let journal = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// let journal = journal.with_wake(shared.clone());
    /// assert!(journal.wake().unwrap().same_as(&shared));
    /// # });
    /// ```
    #[must_use]
    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = wake;
        self
    }

    /// Watches the journal's files (the database and its `-wal`) with
    /// inotify and raises this handle's [`Wake`] when another connection
    /// (another process's `record`, say) committed a change: see
    /// [`file_watch`](super::file_watch). Stops when the returned listener
    /// is dropped.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use rebound_recovery::{FailureKind, FailureReport, Journal, SqliteJournal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let worker = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// let _watch = worker.watch_files().unwrap();
    /// let mut idle = worker.wake().unwrap().listen();
    /// // Another connection (another process would do the same) records.
    /// let other = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
    /// other.record(FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// idle.wait().await;
    /// # });
    /// ```
    pub fn watch_files(&self) -> Result<ChangeListener, JournalError> {
        super::file_watch::watch(&self.path, self.wake.clone())
    }

    /// The journal's write-ahead log, `PATH-wal`: where other processes
    /// hear of its commits (see [`commit`]).
    fn wal(&self) -> PathBuf {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    async fn with<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.with_journal(move |conn| f(conn).map_err(Failure::Sql))
            .await
    }

    async fn with_journal<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| unavailable(&path, e))?;
        joined.map_err(|e| e.resolve(|e| database(&self.path, e)))
    }

    /// One change of `migration` as one `BEGIN IMMEDIATE` transaction:
    /// `apply` gets the recovery as it is and returns it changed, with the
    /// history entry to add, if any, and what the call answers.
    async fn change<T, F>(&self, migration: &str, apply: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(Option<Recovery>) -> Result<(Recovery, Option<Attempt>, T), JournalError>
            + Send
            + 'static,
    {
        let migration = migration.to_owned();
        let limit = self.config.history_limit;
        let wal = self.wal();
        self.with_journal(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = load(&tx, &migration)?;
            let (rec, entry, answer) = apply(current)?;
            store(&tx, &rec)?;
            if let Some(entry) = entry {
                append(&tx, &rec.migration, &entry, limit)?;
            }
            commit(tx, &wal, true)?;
            Ok(answer)
        })
        .await
        .inspect(|_| self.wake.signal())
    }
}

/// Commits a transaction and, when it `wrote` anything, tells the
/// processes that watch the journal's files (idle workers, `list --watch`)
/// that its change can be seen now: see `file_watch::announce`. One that
/// wrote nothing announces nothing, so that watchers do not wake each
/// other up for nothing.
pub(super) fn commit(
    tx: rusqlite::Transaction<'_>,
    wal: &Path,
    wrote: bool,
) -> rusqlite::Result<()> {
    tx.commit()?;
    if wrote {
        super::file_watch::announce(wal);
    }
    Ok(())
}

/// A SQLite error or a journal rule that was broken.
type Failure = super::row::Failure<rusqlite::Error>;

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

fn name(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// The journal cannot be opened, because of `e`.
fn unavailable(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> JournalError {
    JournalError::Unavailable {
        journal: name(path),
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

/// The journal cannot be opened, for a reason no error of ours carries.
fn unavailable_because(path: &Path, message: String) -> JournalError {
    JournalError::Unavailable {
        journal: name(path),
        message,
        source: None,
    }
}

fn database(path: &Path, e: rusqlite::Error) -> JournalError {
    JournalError::Database {
        journal: name(path),
        message: e.to_string(),
        source: Box::new(e),
    }
}

fn unusable(path: &Path, wrong: &Path, problem: impl Into<String>) -> JournalError {
    JournalError::UnusablePath {
        journal: name(path),
        path: wrong.to_path_buf(),
        problem: problem.into(),
    }
}

/// What a file that is not a regular one is, for a message.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Checks, before SQLite touches anything, that `path` can hold a
/// journal: its directory exists and is one, and the path is a regular
/// file (symbolic links followed) or missing. Returns whether it exists.
fn check_path(path: &Path) -> Result<bool, JournalError> {
    use std::io::ErrorKind;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                let kind = kind_of(meta.file_type());
                let kind = if meta.is_file() { "a file" } else { kind };
                return Err(unusable(path, dir, format!("is {kind}, not a directory")));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(unavailable_because(
                    path,
                    format!("directory {} does not exist", dir.display()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => {
                return Err(unusable(
                    path,
                    dir,
                    "is not a directory: a part of it is a file",
                ));
            }
            Err(e) => return Err(unavailable(path, e)),
        }
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(meta) => Err(unusable(
            path,
            path,
            format!(
                "is {}, not a regular file; give the path of a journal file",
                kind_of(meta.file_type())
            ),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(unavailable(path, e)),
    }
}

/// Creates a missing journal file with mode 0600 (before SQLite, which
/// would create it 0644 less the umask); another process creating it
/// first is fine, as long as what it made is a regular file.
fn create_file(path: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if check_path(path)? {
                Ok(())
            } else {
                // `create_new` does not follow a symbolic link.
                Err(unusable(path, path, "is a symbolic link to a missing file"))
            }
        }
        Err(e) => Err(unavailable(path, e)),
    }
}

fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    if !check_path(path)? {
        create_file(path)?;
    }
    let mut conn = Connection::open(path).map_err(|e| unavailable(path, e))?;
    let setup = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    };
    // Switching a new file to WAL while another process opens it too can
    // report "database is locked" at once, without waiting for the busy
    // timeout: wait and try again, within the same timeout.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match setup(&mut conn) {
            Ok(()) => break,
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(unavailable(path, e)),
        }
    }
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// A read-only connection to a journal of the current schema; `None` when
/// the file has no schema yet or an older one.
fn open_read_only_conn(path: &Path) -> Result<Option<Connection>, JournalError> {
    use rusqlite::OpenFlags;
    check_path(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| unavailable(path, e))?;
    if let Err(e) = schema_exists(&conn) {
        // A WAL file needs its `-shm` file, which a reader that may not
        // write the directory cannot create when no writer has the file
        // open. With no `-wal` file either, every change is in the file
        // itself: read it as immutable.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if Path::new(&wal).exists() {
            return Err(unavailable(path, e));
        }
        conn = Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| unavailable(path, e))?;
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| unavailable(path, e))?;
    let has_schema = schema_exists(&conn).map_err(|e| unavailable(path, e))?;
    if !has_schema {
        return Ok(None);
    }
    let current = read_version(&conn).map_err(|e| unavailable(path, e))?;
    if current > LATEST {
        return Err(JournalError::NewerSchema {
            journal: name(path),
            found: current,
            supported: LATEST,
        });
    }
    Ok((current == LATEST).then_some(conn))
}

fn schema_exists(conn: &Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )
}

/// `path` for a `file:` URI: every byte but unreserved ones and `/`
/// percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long a change waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn read_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    let v: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| unavailable(path, e))?;
    tx.execute_batch(VERSION_TABLE)
        .map_err(|e| database(path, e))?;
    let current = read_version(&tx).map_err(|e| database(path, e))?;
    if current > LATEST {
        return Err(JournalError::NewerSchema {
            journal: name(path),
            found: current,
            supported: LATEST,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for statement in statements(sql) {
            tx.execute_batch(statement).map_err(|e| database(path, e))?;
        }
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
            params![i64::from(*version), int(crate::clock::now_ms())],
        )
        .map_err(|e| database(path, e))?;
    }
    tx.commit().map_err(|e| database(path, e))
}

fn read_row(r: &rusqlite::Row<'_>) -> Result<RecoveryRow, rusqlite::Error> {
    Ok(RecoveryRow {
        migration: r.get(0)?,
        workload: r.get(1)?,
        source: r.get(2)?,
        target: r.get(3)?,
        candidates: r.get(4)?,
        failed_targets: r.get(5)?,
        kind: r.get(6)?,
        message: r.get(7)?,
        state: r.get(8)?,
        strategy: r.get(9)?,
        reason: r.get(10)?,
        retry_count: r.get(11)?,
        attempts_total: r.get(12)?,
        first_failure_ms: r.get(13)?,
        last_failure_ms: r.get(14)?,
        next_attempt_ms: r.get(15)?,
        snapshot: r.get(16)?,
        lease_owner: r.get(17)?,
        lease_expires_ms: r.get(18)?,
        claim_seq: r.get(19)?,
        updated_ms: r.get(20)?,
        rescues: r.get(21)?,
    })
}

fn load(conn: &Connection, migration: &str) -> Result<Option<Recovery>, Failure> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM recoveries WHERE migration = ?1"),
            [migration],
            read_row,
        )
        .optional()?;
    Ok(row.map(RecoveryRow::into_recovery).transpose()?)
}

fn query(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Recovery>, Failure> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, read_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(RecoveryRow::into_recovery)
        .collect::<Result<_, _>>()?)
}

fn store(conn: &Connection, rec: &Recovery) -> Result<(), rusqlite::Error> {
    let r = RecoveryRow::from_recovery(rec);
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO recoveries ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
    ))?;
    stmt.execute(params![
        r.migration,
        r.workload,
        r.source,
        r.target,
        r.candidates,
        r.failed_targets,
        r.kind,
        r.message,
        r.state,
        r.strategy,
        r.reason,
        r.retry_count,
        r.attempts_total,
        r.first_failure_ms,
        r.last_failure_ms,
        r.next_attempt_ms,
        r.snapshot,
        r.lease_owner,
        r.lease_expires_ms,
        r.claim_seq,
        r.updated_ms,
        r.rescues,
    ])?;
    Ok(())
}

fn append(
    conn: &Connection,
    migration: &str,
    entry: &Attempt,
    limit: u32,
) -> Result<(), rusqlite::Error> {
    let a = AttemptRow::from_attempt(entry);
    conn.prepare_cached(&format!(
        "INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        migration, a.number, a.at_ms, a.strategy, a.target, a.result, a.kind, a.message
    ])?;
    conn.prepare_cached("DELETE FROM attempts WHERE migration = ?1 AND number <= ?2")?
        .execute(params![migration, a.number - i64::from(limit)])?;
    Ok(())
}

const DUE: &str = "(state = 'pending' AND next_attempt_ms <= ?1) OR (state = 'running' AND lease_expires_ms <= ?1)";

/// [`Journal::next_due_after`]: the earliest delay end or lease end after
/// `?1` (each half served by its partial index).
const NEXT_DUE: &str = "SELECT MIN(t) FROM (\
     SELECT MIN(next_attempt_ms) AS t FROM recoveries WHERE state = 'pending' AND next_attempt_ms > ?1 \
     UNION ALL \
     SELECT MIN(lease_expires_ms) FROM recoveries WHERE state = 'running' AND lease_expires_ms > ?1)";

/// No other recovery of the row's workload is running: a claim takes one
/// recovery per workload at a time.
const WORKLOAD_IDLE: &str = "NOT EXISTS (SELECT 1 FROM recoveries AS busy \
     WHERE busy.workload = recoveries.workload AND busy.state = 'running' \
     AND busy.migration <> recoveries.migration)";

impl Journal for SqliteJournal {
    fn describe(&self) -> String {
        name(&self.path)
    }

    fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    async fn record(&self, report: FailureReport, now_ms: u64) -> Result<Recovery, JournalError> {
        let config = self.config.clone();
        let migration = report.migration.clone();
        let touch = targets::record_touch(&report, &config);
        self.change_targets(
            &migration,
            now_ms,
            move |_| Ok(touch),
            move |existing, open| targets::recorded_among(existing, &report, &config, now_ms, open),
        )
        .await
    }

    async fn get(&self, migration: &str) -> Result<Option<Recovery>, JournalError> {
        let migration = migration.to_owned();
        self.with_journal(move |conn| load(conn, &migration)).await
    }

    async fn history(&self, migration: &str) -> Result<Vec<Attempt>, JournalError> {
        let migration = migration.to_owned();
        self.with_journal(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT number, at_ms, strategy, target, result, kind, message \
                 FROM attempts WHERE migration = ?1 ORDER BY number",
            )?;
            let rows = stmt
                .query_map([&migration], |r| {
                    Ok(AttemptRow {
                        number: r.get(0)?,
                        at_ms: r.get(1)?,
                        strategy: r.get(2)?,
                        target: r.get(3)?,
                        result: r.get(4)?,
                        kind: r.get(5)?,
                        message: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .map(|a| a.into_attempt(&migration))
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn list(&self, state: Option<RecoveryState>) -> Result<Vec<Recovery>, JournalError> {
        self.with_journal(move |conn| match state {
            Some(s) => query(
                conn,
                &format!("SELECT {COLUMNS} FROM recoveries WHERE state = ?1 ORDER BY migration"),
                [s.as_str()],
            ),
            None => query(
                conn,
                &format!("SELECT {COLUMNS} FROM recoveries ORDER BY migration"),
                [],
            ),
        })
        .await
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<Recovery>, JournalError> {
        self.with_journal(move |conn| {
            query(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM recoveries WHERE {DUE} \
                     ORDER BY COALESCE(next_attempt_ms, lease_expires_ms), migration"
                ),
                [int(now_ms)],
            )
        })
        .await
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, JournalError> {
        let owner = owner.to_owned();
        let expires = lease_end(now_ms, lease);
        let config = self.config.clone();
        let wal = self.wal();
        self.with_journal(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Running recoveries whose worker was lost too often: given
            // up, not retaken.
            let expired = query(
                &tx,
                &format!(
                    "SELECT {COLUMNS} FROM recoveries \
                     WHERE state = 'running' AND lease_expires_ms <= ?1 ORDER BY migration"
                ),
                params![int(now_ms)],
            )?;
            let mut wrote = false;
            for rec in expired.into_iter().filter(|r| lost_too_often(r, &config)) {
                let (rec, entry) = abandoned(rec, now_ms);
                store(&tx, &rec)?;
                append(&tx, &rec.migration, &entry, config.history_limit)?;
                wrote = true;
            }
            // One statement per claim: each sees the ones claimed before
            // it in this transaction, so the batch takes one recovery per
            // workload (SQLite has one writer: no other claim runs
            // meanwhile).
            let mut claims = Vec::new();
            while claims.len() < limit {
                let Some(rec) = query(
                    &tx,
                    &format!(
                        "SELECT {COLUMNS} FROM recoveries WHERE ({DUE}) AND {WORKLOAD_IDLE} \
                         ORDER BY COALESCE(next_attempt_ms, lease_expires_ms), migration LIMIT 1"
                    ),
                    params![int(now_ms)],
                )?
                .pop() else {
                    break;
                };
                let claim = claimed(rec, &owner, now_ms, expires);
                store(&tx, &claim.recovery)?;
                claims.push(claim);
            }
            // A claim that took nothing wrote nothing and says nothing:
            // idle workers of several processes do not wake each other.
            commit(tx, &wal, wrote || !claims.is_empty())?;
            Ok(claims)
        })
        .await
        .inspect(|claims| {
            if !claims.is_empty() {
                self.wake.signal();
            }
        })
    }

    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        let claim = claim.clone();
        self.change(&claim.recovery.migration.clone(), move |current| {
            let renewed = renewed(current, &claim, now_ms, lease)?;
            Ok((renewed.recovery.clone(), None, renewed))
        })
        .await
    }

    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        let claim = claim.clone();
        self.change(&claim.recovery.migration.clone(), move |current| {
            let rec = released(current, &claim, now_ms)?;
            Ok((rec.clone(), None, rec))
        })
        .await
    }

    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let (held, config) = (claim.clone(), self.config.clone());
        let (seen, seen_config) = (outcome.clone(), config.clone());
        let claim = claim.clone();
        let touch = move |current: Option<&Recovery>| {
            targets::complete_touch(current, &held, &seen, &seen_config)
        };
        self.change_targets(
            &claim.recovery.migration.clone(),
            now_ms,
            touch,
            move |current, open| {
                targets::completed_among(current, &claim, outcome, &config, now_ms, open)
            },
        )
        .await
    }

    async fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let (id, reason) = (migration.to_owned(), reason.to_owned());
        self.change(migration, move |current| {
            let (rec, entry) = cancelled(current, &id, &reason, now_ms)?;
            Ok((rec.clone(), Some(entry), rec))
        })
        .await
    }

    async fn next_due_after(&self, now_ms: u64) -> Result<Option<u64>, JournalError> {
        self.with(move |conn| {
            let due: Option<i64> = conn
                .prepare_cached(NEXT_DUE)?
                .query_row([int(now_ms)], |r| r.get(0))?;
            Ok(due.map(|t| u64::try_from(t).unwrap_or(0)))
        })
        .await
    }

    fn wake(&self) -> Option<Wake> {
        Some(self.wake.clone())
    }

    async fn prune(&self, before_ms: u64, states: &[RecoveryState]) -> Result<u64, JournalError> {
        let states = prunable(states)?;
        // The names are the enum's own: quoting them is safe.
        let list = states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let doomed = format!(
            "SELECT migration FROM recoveries WHERE state IN ({list}) AND updated_ms < ?1 \
             ORDER BY migration LIMIT {PRUNE_BATCH}"
        );
        let mut total = 0;
        loop {
            let doomed = doomed.clone();
            let wal = self.wal();
            // One transaction per batch: other writers get the lock
            // between batches.
            let deleted = self
                .with(move |conn| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    tx.execute(
                        &format!("DELETE FROM attempts WHERE migration IN ({doomed})"),
                        [int(before_ms)],
                    )?;
                    let n = tx.execute(
                        &format!("DELETE FROM recoveries WHERE migration IN ({doomed})"),
                        [int(before_ms)],
                    )?;
                    commit(tx, &wal, n > 0)?;
                    Ok(n)
                })
                .await?;
            total += deleted as u64;
            if deleted < PRUNE_BATCH {
                if total > 0 {
                    self.wake.signal();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_escape_what_a_uri_would_misread() {
        assert_eq!(uri_path(Path::new("/var/lib/j.db")), "/var/lib/j.db");
        assert_eq!(
            uri_path(Path::new("/a b/c#d?e%f.db")),
            "/a%20b/c%23d%3Fe%25f.db"
        );
    }
}

//! The journal's versioned schema, embedded in the binary.
//!
//! Migrations run in one transaction that first takes the database's write
//! lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`), so
//! running them twice, or from two processes at once, applies each exactly
//! once. A journal whose `schema_version` is above [`LATEST`] is refused.

/// The newest schema version this build knows; a journal this build
/// opened for writing has it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::SqliteJournal;
/// use rebound_recovery::journal::schema::LATEST;
/// let dir = tempfile::tempdir().unwrap();
/// let journal = SqliteJournal::open(dir.path().join("j.db"), Default::default()).await.unwrap();
/// assert_eq!(journal.schema_version().await.unwrap(), LATEST);
/// # });
/// ```
pub const LATEST: u32 = 3;

/// Creates the version table; harmless when it exists.
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    applied_ms BIGINT NOT NULL
)";

/// `(version, statements)`, in order. Statements are separated by `;`.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE recoveries (
        migration TEXT PRIMARY KEY,
        workload TEXT NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        candidates TEXT NOT NULL,
        failed_targets TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        state TEXT NOT NULL,
        strategy TEXT NOT NULL,
        reason TEXT,
        retry_count BIGINT NOT NULL,
        attempts_total BIGINT NOT NULL,
        first_failure_ms BIGINT NOT NULL,
        last_failure_ms BIGINT NOT NULL,
        next_attempt_ms BIGINT,
        snapshot TEXT,
        lease_owner TEXT,
        lease_expires_ms BIGINT,
        claim_seq BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX recoveries_pending ON recoveries (next_attempt_ms) WHERE state = 'pending';
    CREATE INDEX recoveries_running ON recoveries (lease_expires_ms) WHERE state = 'running';
    CREATE INDEX recoveries_state ON recoveries (state, migration);
    CREATE TABLE attempts (
        migration TEXT NOT NULL,
        number BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        strategy TEXT,
        target TEXT,
        result TEXT NOT NULL,
        kind TEXT,
        message TEXT,
        PRIMARY KEY (migration, number)
    )",
    ),
    (
        2,
        "ALTER TABLE recoveries ADD COLUMN rescues BIGINT NOT NULL DEFAULT 0",
    ),
    // The breaker per target node (see `crate::model::breaker`).
    (
        3,
        "CREATE TABLE target_breakers (
        node TEXT PRIMARY KEY,
        failures TEXT NOT NULL,
        openings BIGINT NOT NULL,
        open_until_ms BIGINT,
        probe_migration TEXT,
        probe_until_ms BIGINT,
        last_kind TEXT,
        last_failure_ms BIGINT,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX target_breakers_open ON target_breakers (open_until_ms)
        WHERE open_until_ms IS NOT NULL",
    ),
];

/// The statements of one migration.
pub(crate) fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_end_at_latest() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(LATEST));
        assert_eq!(statements(MIGRATIONS[0].1).count(), 5);
    }

    #[test]
    fn statements_are_split_on_semicolons_and_empty_ones_dropped() {
        let parts: Vec<&str> = statements("CREATE A; ; CREATE B;").collect();
        assert_eq!(parts, ["CREATE A", "CREATE B"]);
    }
}

//! The errors of this crate. Every backend maps its failures onto the same
//! [`JournalError`] variants.

use std::path::PathBuf;

/// A name (kind, strategy, state) that is not one of the valid ones.
///
/// ```
/// let err = "later".parse::<rebound_recovery::RecoveryState>().unwrap_err();
/// assert!(err.to_string().contains("pending"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; valid: {valid}")]
pub struct ParseError {
    what: &'static str,
    value: String,
    valid: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, value: &str, valid: &[&str]) -> Self {
        Self {
            what,
            value: value.to_owned(),
            valid: valid.join(", "),
        }
    }
}

/// A [`RecoveryConfig`](crate::RecoveryConfig) setting out of range.
///
/// ```
/// use std::time::Duration;
/// let config = rebound_recovery::RecoveryConfig {
///     initial_delay: Duration::ZERO,
///     ..Default::default()
/// };
/// assert!(config.validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `initial_delay` is zero.
    #[error("initial_delay must be greater than zero")]
    ZeroInitialDelay,
    /// `max_delay` is below `initial_delay`.
    #[error("max_delay ({max:?}) must be at least initial_delay ({initial:?})")]
    MaxBelowInitial {
        /// The initial delay.
        initial: std::time::Duration,
        /// The cap.
        max: std::time::Duration,
    },
    /// `recovery_timeout` is zero.
    #[error("recovery_timeout must be greater than zero")]
    ZeroRecoveryTimeout,
    /// `history_limit` is zero.
    #[error("history_limit must be at least 1")]
    ZeroHistoryLimit,
    /// `snapshot_max_age` is zero.
    #[error("snapshot_max_age must be greater than zero")]
    ZeroSnapshotMaxAge,
    /// `max_rescues` is zero.
    #[error("max_rescues must be at least 1")]
    ZeroMaxRescues,
    /// rebound-retry rejected the backoff built from the config.
    #[error("backoff policy: {0}")]
    Backoff(#[source] rebound_retry::PolicyError),
    /// A setting of the per-target breakers
    /// ([`TargetBreakerConfig`](crate::model::breaker::TargetBreakerConfig))
    /// that rebound-retry's breaker refuses; [`BreakerError::setting`](rebound_retry::BreakerError::setting)
    /// names it.
    #[error("target breaker: {0}")]
    TargetBreaker(#[source] rebound_retry::BreakerError),
    /// The per-target breakers' failure window is zero or too large.
    #[error("target breaker: the failure window must be above zero and at most {} s", rebound_retry::duration::MAX.as_secs())]
    TargetBreakerWindow,
}

/// A snapshot that cannot be used for a rollback.
///
/// ```
/// use rebound_recovery::SnapshotRef;
/// let err = SnapshotRef::capture("/nonexistent/snapshot.bin", 0).unwrap_err();
/// assert!(err.to_string().contains("/nonexistent/snapshot.bin"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The snapshot file could not be read.
    #[error("snapshot {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is not valid UTF-8: the journal stores paths as text, and
    /// the rollback command gets it in an environment variable.
    #[error("snapshot path {} is not valid UTF-8; rename the file", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The file's checksum differs from the one captured.
    #[error("snapshot {path} is corrupt: checksum {actual} differs from the captured {expected}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The checksum captured when the failure was recorded.
        expected: String,
        /// The checksum of the file now.
        actual: String,
    },
    /// The snapshot is older than the configured maximum age.
    #[error("snapshot {path} expired: {age_secs}s old, the limit is {max_age_secs}s")]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its age.
        age_secs: u64,
        /// The limit.
        max_age_secs: u64,
    },
}

/// Whether a journal error is worth retrying, is bad input, or is final.
///
/// ```
/// use rebound_recovery::{JournalAddress, JournalErrorKind};
/// // A command-line tool's exit code for a journal error: bad input is
/// // the user's to fix (2), the rest is an operational failure (3).
/// let exit_code = |kind| match kind {
///     JournalErrorKind::Invalid => 2,
///     _ => 3,
/// };
/// let err = "mysql://db/journal".parse::<JournalAddress>().unwrap_err();
/// assert_eq!(exit_code(err.kind()), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalErrorKind {
    /// The database could not be reached or opened, or the connection to
    /// it was lost (the server restarting, an administrator ending it):
    /// worth trying again later, as
    /// [`RecoveryWorker::run`](crate::RecoveryWorker::run) does.
    Unavailable,
    /// The journal was written by a newer rebound.
    NewerSchema,
    /// The request was invalid (bad journal address or path, bad field).
    Invalid,
    /// The recovery does not exist.
    NotFound,
    /// The caller's lease is gone: another worker owns the recovery now.
    LeaseLost,
    /// The recovery has already ended (succeeded, rolled back, given up or
    /// cancelled): there is nothing to cancel.
    Finished,
    /// Any other database error.
    Database,
}

/// A journal operation failed.
///
/// ```
/// use rebound_recovery::journal::JournalAddress;
/// let err = "mysql://x".parse::<JournalAddress>().unwrap_err();
/// assert_eq!(err.kind(), rebound_recovery::JournalErrorKind::Invalid);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The database could not be reached or opened.
    #[error("journal {journal} is unavailable: {message}")]
    Unavailable {
        /// The journal (path or address, without credentials).
        journal: String,
        /// What went wrong.
        message: String,
        /// The driver's or the system's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The journal's schema is newer than this build understands.
    #[error(
        "journal {journal} has schema version {found}, newer than the {supported} this rebound supports; upgrade rebound"
    )]
    NewerSchema {
        /// The journal.
        journal: String,
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// The path of a SQLite journal cannot hold one: it exists and is not
    /// a regular file (a device, a directory, a FIFO), or its directory is
    /// not a directory. Refused before anything is opened or created.
    #[error("journal {journal}: {} {problem}", path.display())]
    UnusablePath {
        /// The journal.
        journal: String,
        /// The path that is wrong: the journal file or its directory.
        path: PathBuf,
        /// What is wrong with it, e.g. "is a character device, not a regular file".
        problem: String,
    },
    /// No recovery with that migration id.
    #[error("no recovery for migration {0:?}")]
    NotFound(String),
    /// The journal keeps no breaker for that target node: no migration to
    /// it has failed with a target-side kind.
    #[error("no breaker for target node {0:?}: no migration to it has failed")]
    UnknownTarget(String),
    /// The lease on the recovery expired and another worker took it.
    #[error("lease on migration {migration:?} was lost (held by {owner:?})")]
    LeaseLost {
        /// The migration.
        migration: String,
        /// The worker that lost it.
        owner: String,
    },
    /// The recovery has already ended, so it cannot be cancelled; nothing
    /// was changed.
    #[error("recovery of migration {migration:?} has already ended ({state}); nothing to cancel")]
    Finished {
        /// The migration.
        migration: String,
        /// The final state it is in.
        state: crate::model::RecoveryState,
    },
    /// The recovery settings are invalid.
    #[error("recovery settings: {0}")]
    Config(#[from] ConfigError),
    /// Any other database error.
    #[error("journal {journal}: {message}")]
    Database {
        /// The journal.
        journal: String,
        /// The driver's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl JournalError {
    /// The classification shared by every backend.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use rebound_recovery::*;
    /// let journal = MemoryJournal::new(RecoveryConfig::default()).unwrap();
    /// journal.record(FailureReport::new("m", "web", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
    /// let lease = Duration::from_secs(30);
    /// let first = journal.claim("w1", 60_000, lease, 1).await.unwrap().remove(0);
    /// // w1's lease ran out and w2 took the recovery over.
    /// journal.claim("w2", 90_000, lease, 1).await.unwrap();
    /// let err = journal.complete(&first, Outcome::Migrated, 91_000).await.unwrap_err();
    /// assert_eq!(err.kind(), JournalErrorKind::LeaseLost);
    /// # });
    /// ```
    pub fn kind(&self) -> JournalErrorKind {
        match self {
            Self::Unavailable { .. } => JournalErrorKind::Unavailable,
            Self::NewerSchema { .. } => JournalErrorKind::NewerSchema,
            Self::Invalid(_) | Self::UnusablePath { .. } | Self::Config(_) => {
                JournalErrorKind::Invalid
            }
            Self::NotFound(_) | Self::UnknownTarget(_) => JournalErrorKind::NotFound,
            Self::LeaseLost { .. } => JournalErrorKind::LeaseLost,
            Self::Finished { .. } => JournalErrorKind::Finished,
            Self::Database { .. } => JournalErrorKind::Database,
        }
    }
}

pub(crate) use rebound_retry::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("migrate web to node-b")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("connect: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_chain_joins_sources_and_skips_repeated_text() {
        let e = Outer(Middle(std::io::Error::other("connection refused")));
        // `Middle` already says its source's text: it is not repeated.
        assert_eq!(
            error_chain(&e),
            "migrate web to node-b: connect: connection refused"
        );
    }

    #[test]
    fn a_database_error_keeps_the_drivers_error_as_its_source() {
        let e = JournalError::Database {
            journal: "sqlite:/j.db".into(),
            message: "disk I/O error".into(),
            source: Box::new(std::io::Error::other("disk I/O error")),
        };
        assert_eq!(e.to_string(), "journal sqlite:/j.db: disk I/O error");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.is::<std::io::Error>());
    }
}

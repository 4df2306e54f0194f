//! The mapping between a [`Recovery`] and a SQL row, shared by the SQL
//! backends.

use crate::error::JournalError;
use crate::model::{Attempt, AttemptResult, Recovery};

/// What a change inside a transaction fails with: a driver error `E` or a
/// journal rule that was broken.
pub(crate) enum Failure<E> {
    Sql(E),
    Journal(JournalError),
}

impl<E> From<JournalError> for Failure<E> {
    fn from(e: JournalError) -> Self {
        Self::Journal(e)
    }
}

impl<E> Failure<E> {
    /// The journal error, with driver errors turned into one by `db`.
    pub(crate) fn resolve(self, db: impl FnOnce(E) -> JournalError) -> JournalError {
        match self {
            Self::Sql(e) => db(e),
            Self::Journal(e) => e,
        }
    }
}

/// The columns of `recoveries`, in the order [`RecoveryRow`] uses, as a
/// literal (for `concat!`).
macro_rules! columns {
    () => {
        "migration, workload, source, target, candidates, failed_targets, \
         kind, message, state, strategy, reason, retry_count, attempts_total, first_failure_ms, \
         last_failure_ms, next_attempt_ms, snapshot, lease_owner, lease_expires_ms, claim_seq, updated_ms, \
         rescues"
    };
}
#[cfg(feature = "postgres")]
pub(crate) use columns;

/// The columns of `recoveries`, in the order [`RecoveryRow`] uses.
pub(crate) const COLUMNS: &str = columns!();

/// The columns of `attempts`.
pub(crate) const ATTEMPT_COLUMNS: &str =
    "migration, number, at_ms, strategy, target, result, kind, message";

/// A recovery as plain SQL values.
#[derive(Debug, Clone)]
pub(crate) struct RecoveryRow {
    pub migration: String,
    pub workload: String,
    pub source: String,
    pub target: String,
    pub candidates: String,
    pub failed_targets: String,
    pub kind: String,
    pub message: String,
    pub state: String,
    pub strategy: String,
    pub reason: Option<String>,
    pub retry_count: i64,
    pub attempts_total: i64,
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
    pub next_attempt_ms: Option<i64>,
    pub snapshot: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub claim_seq: i64,
    pub updated_ms: i64,
    pub rescues: i64,
}

/// A u64 as a BIGINT (times past year 292 million saturate).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn bad(migration: &str, what: &str, err: impl std::fmt::Display) -> JournalError {
    JournalError::Invalid(format!(
        "journal entry for migration {migration:?} has a bad {what}: {err}"
    ))
}

impl RecoveryRow {
    pub(crate) fn from_recovery(r: &Recovery) -> Self {
        Self {
            migration: r.migration.clone(),
            workload: r.workload.clone(),
            source: r.source.clone(),
            target: r.target.clone(),
            candidates: serde_json::to_string(&r.candidates).unwrap_or_else(|_| "[]".into()),
            failed_targets: serde_json::to_string(&r.failed_targets)
                .unwrap_or_else(|_| "[]".into()),
            kind: r.kind.as_str().to_owned(),
            message: r.message.clone(),
            state: r.state.as_str().to_owned(),
            strategy: r.strategy.as_str().to_owned(),
            reason: r.reason.clone(),
            retry_count: i64::from(r.retry_count),
            attempts_total: int(r.attempts_total),
            first_failure_ms: int(r.first_failure_ms),
            last_failure_ms: int(r.last_failure_ms),
            next_attempt_ms: r.next_attempt_ms.map(int),
            snapshot: r
                .snapshot
                .as_ref()
                .and_then(|s| serde_json::to_string(s).ok()),
            lease_owner: r.lease_owner.clone(),
            lease_expires_ms: r.lease_expires_ms.map(int),
            claim_seq: int(r.claim_seq),
            updated_ms: int(r.updated_ms),
            rescues: i64::from(r.rescues),
        }
    }

    pub(crate) fn into_recovery(self) -> Result<Recovery, JournalError> {
        let m = self.migration.clone();
        Ok(Recovery {
            candidates: serde_json::from_str(&self.candidates)
                .map_err(|e| bad(&m, "candidates", e))?,
            failed_targets: serde_json::from_str(&self.failed_targets)
                .map_err(|e| bad(&m, "failed_targets", e))?,
            kind: self.kind.parse().map_err(|e| bad(&m, "kind", e))?,
            state: self.state.parse().map_err(|e| bad(&m, "state", e))?,
            strategy: self.strategy.parse().map_err(|e| bad(&m, "strategy", e))?,
            snapshot: self
                .snapshot
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| bad(&m, "snapshot", e))?,
            retry_count: u32::try_from(self.retry_count).unwrap_or(u32::MAX),
            attempts_total: uint(self.attempts_total),
            first_failure_ms: uint(self.first_failure_ms),
            last_failure_ms: uint(self.last_failure_ms),
            next_attempt_ms: self.next_attempt_ms.map(uint),
            lease_expires_ms: self.lease_expires_ms.map(uint),
            claim_seq: uint(self.claim_seq),
            updated_ms: uint(self.updated_ms),
            rescues: u32::try_from(self.rescues).unwrap_or(u32::MAX),
            migration: self.migration,
            workload: self.workload,
            source: self.source,
            target: self.target,
            message: self.message,
            reason: self.reason,
            lease_owner: self.lease_owner,
        })
    }
}

/// An attempt as plain SQL values.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRow {
    pub number: i64,
    pub at_ms: i64,
    pub strategy: Option<String>,
    pub target: Option<String>,
    pub result: String,
    pub kind: Option<String>,
    pub message: Option<String>,
}

impl AttemptRow {
    pub(crate) fn from_attempt(a: &Attempt) -> Self {
        Self {
            number: int(a.number),
            at_ms: int(a.at_ms),
            strategy: a.strategy.map(|s| s.as_str().to_owned()),
            target: a.target.clone(),
            result: a.result.as_str().to_owned(),
            kind: a.kind.map(|k| k.as_str().to_owned()),
            message: a.message.clone(),
        }
    }

    pub(crate) fn into_attempt(self, migration: &str) -> Result<Attempt, JournalError> {
        Ok(Attempt {
            number: uint(self.number),
            at_ms: uint(self.at_ms),
            strategy: self
                .strategy
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad(migration, "attempt strategy", e))?,
            target: self.target,
            result: AttemptResult::parse(&self.result)
                .ok_or_else(|| bad(migration, "attempt result", &self.result))?,
            kind: self
                .kind
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad(migration, "attempt kind", e))?,
            message: self.message,
        })
    }
}

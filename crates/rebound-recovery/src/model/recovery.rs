//! A recovery (one per migration) and the entries of its history.

use serde::{Deserialize, Serialize};

use super::{FailureKind, RecoveryState, SnapshotRef, Strategy};

/// A failed migration, as the caller reports it.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport};
/// let report = FailureReport::new("m-1", "web", "node-a", "node-b", FailureKind::Timeout, "copy stalled")
///     .with_candidates(["node-c", "node-d"]);
/// assert_eq!(report.candidates.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The migration's id; one recovery per id.
    pub migration: String,
    /// The workload being moved.
    pub workload: String,
    /// The node it is moving from.
    pub source: String,
    /// The node the failed attempt went to.
    pub target: String,
    /// Why it failed.
    pub kind: FailureKind,
    /// What the failure said.
    pub message: String,
    /// Other targets to try, in order.
    pub candidates: Vec<String>,
    /// The state to roll back to.
    pub snapshot: Option<SnapshotRef>,
}

impl FailureReport {
    /// A report without candidates or snapshot.
    ///
    /// ```
    /// use rebound_recovery::{FailureKind, FailureReport};
    /// let report = FailureReport::new("m-1", "web", "node-a", "node-b", FailureKind::Timeout, "slow copy");
    /// assert!(report.candidates.is_empty() && report.snapshot.is_none());
    /// ```
    pub fn new(
        migration: impl Into<String>,
        workload: impl Into<String>,
        source: impl Into<String>,
        target: impl Into<String>,
        kind: FailureKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            migration: migration.into(),
            workload: workload.into(),
            source: source.into(),
            target: target.into(),
            kind,
            message: message.into(),
            candidates: Vec::new(),
            snapshot: None,
        }
    }

    /// Adds candidate targets.
    ///
    /// ```
    /// use rebound_recovery::{FailureKind, FailureReport};
    /// let report = FailureReport::new("m-1", "web", "a", "b", FailureKind::TargetUnreachable, "down")
    ///     .with_candidates(["c", "d"]);
    /// assert_eq!(report.candidates, ["c", "d"]);
    /// ```
    pub fn with_candidates<I, S>(mut self, candidates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.candidates
            .extend(candidates.into_iter().map(Into::into));
        self
    }

    /// Sets the snapshot a rollback restores.
    ///
    /// ```
    /// use rebound_recovery::{FailureKind, FailureReport, SnapshotRef};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let file = dir.path().join("state.img");
    /// std::fs::write(&file, b"state").unwrap();
    /// let snapshot = SnapshotRef::capture(&file, 0).unwrap();
    /// let report = FailureReport::new("m-1", "web", "a", "b", FailureKind::StateCorruption, "bad")
    ///     .with_snapshot(snapshot);
    /// assert!(report.snapshot.is_some());
    /// ```
    pub fn with_snapshot(mut self, snapshot: SnapshotRef) -> Self {
        self.snapshot = Some(snapshot);
        self
    }
}

/// The journal's record of one migration's recovery. Times are ms since the
/// Unix epoch.
///
/// Invariants: `state == Running` exactly when `lease_owner` is set;
/// `next_attempt_ms` is set exactly when `state == Pending`; `retry_count`
/// and `attempts_total` only grow.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState, Strategy};
/// use rebound_recovery::model::transition;
/// let report = FailureReport::new("m-1", "web", "a", "b", FailureKind::NetworkTransient, "reset");
/// let (rec, _) = transition::record_failure(None, &report, &RecoveryConfig::default(), 0);
/// assert_eq!(rec.state, RecoveryState::Pending);
/// assert_eq!(rec.strategy, Strategy::RetryOnSameTarget);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The migration's id.
    pub migration: String,
    /// The workload being moved.
    pub workload: String,
    /// The node it moves from (and is rolled back to).
    pub source: String,
    /// The target of the next attempt (after a failure: the one that failed
    /// until a strategy picks another).
    pub target: String,
    /// Candidate targets, in order of preference.
    pub candidates: Vec<String>,
    /// Targets that failed for this migration.
    pub failed_targets: Vec<String>,
    /// The kind of the last failure.
    pub kind: FailureKind,
    /// The message of the last failure.
    pub message: String,
    /// Where the recovery stands.
    pub state: RecoveryState,
    /// The next (or, once final, the last) strategy.
    pub strategy: Strategy,
    /// Why the recovery ended the way it did, when final; while pending,
    /// why its next step is what it is when a target's breaker decided it
    /// (a skipped target, a fallback because every candidate is open).
    pub reason: Option<String>,
    /// Failures after the first; never reset.
    pub retry_count: u32,
    /// History entries ever written (the history keeps the last N).
    pub attempts_total: u64,
    /// When the first failure was recorded.
    pub first_failure_ms: u64,
    /// When the last failure was recorded.
    pub last_failure_ms: u64,
    /// When the next attempt is due (pending only).
    pub next_attempt_ms: Option<u64>,
    /// The state a rollback restores.
    pub snapshot: Option<SnapshotRef>,
    /// The worker holding the lease (running only).
    pub lease_owner: Option<String>,
    /// When the lease runs out.
    pub lease_expires_ms: Option<u64>,
    /// Incremented on every claim; a completion must present the same value.
    pub claim_seq: u64,
    /// Times a worker was lost while running it (its lease ran out) and
    /// a claim found it: retaken, or, the
    /// [`max_rescues`](super::RecoveryConfig::max_rescues)th time, given up.
    #[serde(default)]
    pub rescues: u32,
    /// Last change.
    pub updated_ms: u64,
}

impl Recovery {
    /// When the recovery timeout runs out: the first failure plus the
    /// configured timeout.
    ///
    /// ```
    /// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
    /// # use rebound_recovery::model::transition;
    /// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "t");
    /// let config = RecoveryConfig::default();
    /// let (rec, _) = transition::record_failure(None, &report, &config, 5_000);
    /// assert_eq!(rec.deadline_ms(&config), 605_000);
    /// ```
    pub fn deadline_ms(&self, config: &super::RecoveryConfig) -> u64 {
        let timeout = u64::try_from(config.recovery_timeout.as_millis()).unwrap_or(u64::MAX);
        self.first_failure_ms.saturating_add(timeout)
    }

    /// Whether a worker may claim it at `now_ms`: pending and due, or
    /// running under a lease that has run out.
    ///
    /// ```
    /// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
    /// # use rebound_recovery::model::transition;
    /// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::NetworkTransient, "reset");
    /// let (rec, _) = transition::record_failure(None, &report, &RecoveryConfig::default(), 0);
    /// // The first retry waits the initial delay (10 s, less equal jitter).
    /// assert!(!rec.is_claimable(4_999));
    /// assert!(rec.is_claimable(10_000));
    /// ```
    pub fn is_claimable(&self, now_ms: u64) -> bool {
        match self.state {
            RecoveryState::Pending => self.next_attempt_ms.is_some_and(|t| t <= now_ms),
            RecoveryState::Running => self.lease_expires_ms.is_some_and(|t| t <= now_ms),
            _ => false,
        }
    }
}

/// How one history entry ended.
///
/// ```
/// use rebound_recovery::AttemptResult;
/// assert_eq!(serde_json::to_string(&AttemptResult::RolledBack).unwrap(), "\"rolled_back\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The migration (or the reported original attempt) failed.
    Failed,
    /// The migration went through.
    Succeeded,
    /// The rollback went through.
    RolledBack,
    /// The recovery was given up.
    GivenUp,
    /// An operator cancelled the recovery.
    Cancelled,
    /// The planned target was not tried: its breaker was open (or another
    /// recovery was probing it); the message says until when.
    Skipped,
}

impl AttemptResult {
    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(rebound_recovery::AttemptResult::RolledBack.as_str(), "rolled_back");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled_back",
            Self::GivenUp => "given_up",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Parses the snake_case name.
    ///
    /// ```
    /// use rebound_recovery::AttemptResult;
    /// assert_eq!(AttemptResult::parse("failed"), Some(AttemptResult::Failed));
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Failed,
            Self::Succeeded,
            Self::RolledBack,
            Self::GivenUp,
            Self::Cancelled,
            Self::Skipped,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One entry of a recovery's history: a failure reported by the caller
/// (`strategy` is `None`) or an attempt a worker made.
///
/// ```
/// use rebound_recovery::{AttemptResult, FailureKind, FailureReport, RecoveryConfig};
/// use rebound_recovery::model::transition;
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// let (_, entry) = transition::record_failure(None, &report, &RecoveryConfig::default(), 0);
/// assert_eq!(entry.number, 1);
/// assert_eq!(entry.result, AttemptResult::Failed);
/// assert_eq!(entry.strategy, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based, counting every entry ever written.
    pub number: u64,
    /// When it was written.
    pub at_ms: u64,
    /// The strategy the worker carried out; `None` for a reported failure.
    pub strategy: Option<Strategy>,
    /// The target involved.
    pub target: Option<String>,
    /// How it ended.
    pub result: AttemptResult,
    /// The failure kind, when it failed.
    pub kind: Option<FailureKind>,
    /// The failure message or the reason for giving up.
    pub message: Option<String>,
}

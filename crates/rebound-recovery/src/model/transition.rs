//! The decision table and the state changes every journal backend applies.
//!
//! These functions are pure: a backend loads a recovery inside a
//! transaction, calls one of them, and writes the result and the new
//! history entry back in the same transaction. So every backend behaves the
//! same, and the tests of this module cover all of them.

use super::breaker::{OpenTargets, timestamp};
use super::{
    Attempt, AttemptResult, FailureKind, FailureReport, Recovery, RecoveryConfig, RecoveryState,
    Strategy,
};

/// The decision table: the strategy for a failure of `kind` after
/// `retry_count` retries, given whether an untried target is left.
///
/// | kind | strategy |
/// |---|---|
/// | any, once `retry_count >= max_retries` | rollback (give up without `auto_rollback`) |
/// | `network_transient`, `timeout` | retry on the same target |
/// | `insufficient_resources`, `incompatible_target`, `target_unreachable` | retry on a different target; with none left, rollback (or give up) |
/// | `state_corruption`, `network_permanent`, `unknown` | rollback (or give up) |
///
/// ```
/// use rebound_recovery::{FailureKind, RecoveryConfig, Strategy};
/// use rebound_recovery::model::transition::decide;
/// let config = RecoveryConfig::default();
/// assert_eq!(decide(FailureKind::Timeout, 0, &config, false), Strategy::RetryOnSameTarget);
/// assert_eq!(decide(FailureKind::Timeout, 3, &config, false), Strategy::Rollback);
/// assert_eq!(decide(FailureKind::TargetUnreachable, 0, &config, false), Strategy::Rollback);
/// ```
pub fn decide(
    kind: FailureKind,
    retry_count: u32,
    config: &RecoveryConfig,
    untried_target_left: bool,
) -> Strategy {
    let fallback = if config.auto_rollback {
        Strategy::Rollback
    } else {
        Strategy::GiveUp
    };
    if retry_count >= config.max_retries {
        return fallback;
    }
    match kind {
        FailureKind::NetworkTransient | FailureKind::Timeout => Strategy::RetryOnSameTarget,
        FailureKind::InsufficientResources
        | FailureKind::IncompatibleTarget
        | FailureKind::TargetUnreachable => {
            if untried_target_left {
                Strategy::RetryOnDifferentTarget
            } else {
                fallback
            }
        }
        FailureKind::StateCorruption | FailureKind::NetworkPermanent | FailureKind::Unknown => {
            fallback
        }
    }
}

/// The first candidate that has not failed for this migration.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
/// use rebound_recovery::model::transition::{next_candidate, record_failure};
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::TargetUnreachable, "down")
///     .with_candidates(["b", "c"]);
/// let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// assert_eq!(rec.target, "c");
/// assert_eq!(rec.failed_targets, ["b"]);
/// // `c` is planned and has not failed yet.
/// assert_eq!(next_candidate(&rec), Some("c"));
/// ```
pub fn next_candidate(rec: &Recovery) -> Option<&str> {
    next_available(rec, &OpenTargets::default())
}

/// The first candidate that has not failed for this migration and whose
/// breaker is not open: where target rotation goes next.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
/// use rebound_recovery::model::OpenTargets;
/// use rebound_recovery::model::transition::{next_available, record_failure};
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::TargetUnreachable, "down")
///     .with_candidates(["c", "d"]);
/// let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let mut open = OpenTargets::default();
/// open.insert("c", 60_000);
/// assert_eq!(next_available(&rec, &open), Some("d"));
/// ```
pub fn next_available<'a>(rec: &'a Recovery, open: &OpenTargets) -> Option<&'a str> {
    rec.candidates
        .iter()
        .find(|c| !rec.failed_targets.contains(c) && open.until(c).is_none())
        .map(String::as_str)
}

/// Applies a failure reported by the caller: creates the recovery, or adds
/// to the history and retry count of the existing one (never resetting
/// them), then plans the next step.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
/// use rebound_recovery::model::transition::record_failure;
/// let config = RecoveryConfig::default();
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// let (rec, _) = record_failure(None, &report, &config, 0);
/// let (rec, entry) = record_failure(Some(rec), &report, &config, 1_000);
/// assert_eq!(rec.retry_count, 1);
/// assert_eq!(entry.number, 2);
/// ```
pub fn record_failure(
    existing: Option<Recovery>,
    report: &FailureReport,
    config: &RecoveryConfig,
    now_ms: u64,
) -> (Recovery, Attempt) {
    record_failure_among(existing, report, config, now_ms, &OpenTargets::default())
}

/// [`record_failure`], with target rotation skipping the nodes `open`
/// lists (their breaker is open): the journal passes the breakers as they
/// are in the same transaction.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, Strategy};
/// use rebound_recovery::model::OpenTargets;
/// use rebound_recovery::model::transition::record_failure_among;
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::TargetUnreachable, "down")
///     .with_candidates(["c", "d"]);
/// let mut open = OpenTargets::default();
/// open.insert("c", 60_000);
/// let (rec, _) = record_failure_among(None, &report, &RecoveryConfig::default(), 0, &open);
/// assert_eq!((rec.strategy, rec.target.as_str()), (Strategy::RetryOnDifferentTarget, "d"));
/// assert!(rec.reason.unwrap().contains("skipped c"));
/// ```
pub fn record_failure_among(
    existing: Option<Recovery>,
    report: &FailureReport,
    config: &RecoveryConfig,
    now_ms: u64,
    open: &OpenTargets,
) -> (Recovery, Attempt) {
    let mut rec = match existing {
        Some(mut rec) => {
            rec.retry_count = rec.retry_count.saturating_add(1);
            rec.workload.clone_from(&report.workload);
            rec.source.clone_from(&report.source);
            if report.snapshot.is_some() {
                rec.snapshot.clone_from(&report.snapshot);
            }
            rec
        }
        None => Recovery {
            migration: report.migration.clone(),
            workload: report.workload.clone(),
            source: report.source.clone(),
            target: report.target.clone(),
            candidates: Vec::new(),
            failed_targets: Vec::new(),
            kind: report.kind,
            message: report.message.clone(),
            state: RecoveryState::Pending,
            strategy: Strategy::GiveUp,
            reason: None,
            retry_count: 0,
            attempts_total: 0,
            first_failure_ms: now_ms,
            last_failure_ms: now_ms,
            next_attempt_ms: None,
            snapshot: report.snapshot.clone(),
            lease_owner: None,
            lease_expires_ms: None,
            claim_seq: 0,
            rescues: 0,
            updated_ms: now_ms,
        },
    };
    for c in &report.candidates {
        if !rec.candidates.contains(c) {
            rec.candidates.push(c.clone());
        }
    }
    note_failure(
        &mut rec,
        &report.target,
        report.kind,
        &report.message,
        now_ms,
    );
    let entry = entry(
        &mut rec,
        now_ms,
        None,
        Some(report.target.clone()),
        AttemptResult::Failed,
        Some(report.kind),
        Some(report.message.clone()),
    );
    // A worker holds this recovery: its outcome plans the next step.
    if rec.state != RecoveryState::Running {
        plan(&mut rec, config, now_ms, open);
    }
    (rec, entry)
}

/// Refuses a report that names another workload or source than the
/// recovery recorded under its migration id: an id used again for another
/// migration would otherwise merge two histories, and a rollback would
/// restore the wrong workload, or restore it on the wrong node.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
/// use rebound_recovery::model::transition::{check_same_migration, record_failure};
/// let report = FailureReport::new("m", "web", "a", "b", FailureKind::Timeout, "slow");
/// let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// assert!(check_same_migration(&rec, &report).is_ok());
/// let other = FailureReport::new("m", "db", "a", "b", FailureKind::Timeout, "slow");
/// assert!(check_same_migration(&rec, &other).unwrap_err().to_string().contains("workload web"));
/// ```
pub fn check_same_migration(
    existing: &Recovery,
    report: &FailureReport,
) -> Result<(), crate::error::JournalError> {
    if existing.workload == report.workload && existing.source == report.source {
        return Ok(());
    }
    Err(crate::error::JournalError::Invalid(format!(
        "migration {:?} is recorded for workload {} from source {}; this failure names \
         workload {} from source {}: give another migration id",
        existing.migration, existing.workload, existing.source, report.workload, report.source
    )))
}

/// What a worker's attempt came to.
///
/// ```
/// use rebound_recovery::{FailureKind, Outcome};
/// let failed = Outcome::Failed { kind: FailureKind::Timeout, message: "slow".into(), candidates: vec![] };
/// assert_ne!(failed, Outcome::Migrated);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The migration to the planned target went through.
    Migrated,
    /// The rollback went through.
    RolledBack,
    /// The migration failed again.
    Failed {
        /// The classified kind.
        kind: FailureKind,
        /// What it said.
        message: String,
        /// More candidate targets (from a `TargetSelector`).
        candidates: Vec<String>,
    },
    /// The worker gave up (timeout, bad snapshot, failed rollback).
    GaveUp {
        /// Why.
        reason: String,
    },
    /// The planned target was not tried: its breaker is open until
    /// `until_ms`, or (`probing`) it is half-open and another recovery is
    /// probing it until then. Not a failure: the retry count stays; the
    /// next step goes to another candidate, waits for the probe, or falls
    /// back (rollback or give up) when every candidate is open.
    Skipped {
        /// When the cool-down (or the other probe's hold) ends.
        until_ms: u64,
        /// Half-open with another recovery's probe out, rather than open.
        probing: bool,
    },
}

/// Applies a worker's outcome to the recovery it claimed; releases the lease.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// use rebound_recovery::model::transition::{complete, record_failure, Outcome};
/// let config = RecoveryConfig::default();
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// let (rec, _) = record_failure(None, &report, &config, 0);
/// let (rec, _) = complete(rec, Outcome::Migrated, &config, 20_000);
/// assert_eq!(rec.state, RecoveryState::Succeeded);
/// ```
pub fn complete(
    rec: Recovery,
    outcome: Outcome,
    config: &RecoveryConfig,
    now_ms: u64,
) -> (Recovery, Attempt) {
    complete_among(rec, outcome, config, now_ms, &OpenTargets::default())
}

/// [`complete`], with target rotation skipping the nodes `open` lists.
///
/// ```
/// use rebound_recovery::{FailureKind, FailureReport, Outcome, RecoveryConfig, RecoveryState, Strategy};
/// use rebound_recovery::model::OpenTargets;
/// use rebound_recovery::model::transition::{claim, complete_among, record_failure};
/// let config = RecoveryConfig::default();
/// let report = FailureReport::new("m", "w", "a", "b", FailureKind::TargetUnreachable, "down")
///     .with_candidates(["c", "d"]);
/// let (rec, _) = record_failure(None, &report, &config, 0);
/// assert_eq!(rec.target, "c");
/// // c's breaker opened meanwhile: the worker skipped it; d is next.
/// let skipped = Outcome::Skipped { until_ms: 90_000, probing: false };
/// let (rec, entry) = complete_among(claim(rec, "w1", 30_000, 60_000), skipped, &config, 30_000, &OpenTargets::default());
/// assert_eq!((rec.state, rec.target.as_str(), rec.retry_count), (RecoveryState::Pending, "d", 0));
/// assert!(entry.message.unwrap().contains("c skipped"));
/// ```
pub fn complete_among(
    mut rec: Recovery,
    outcome: Outcome,
    config: &RecoveryConfig,
    now_ms: u64,
    open: &OpenTargets,
) -> (Recovery, Attempt) {
    rec.lease_owner = None;
    rec.lease_expires_ms = None;
    rec.next_attempt_ms = None;
    let strategy = Some(rec.strategy);
    let target = match rec.strategy {
        Strategy::Rollback => Some(rec.source.clone()),
        _ => Some(rec.target.clone()),
    };
    // What to record; only a failed or skipped attempt plans a next step.
    let mut skipped = None;
    let (result, kind, message) = match outcome {
        Outcome::Migrated => {
            rec.state = RecoveryState::Succeeded;
            rec.reason = Some(format!("migrated to {}", rec.target));
            (AttemptResult::Succeeded, None, None)
        }
        Outcome::RolledBack => {
            rec.state = RecoveryState::RolledBack;
            rec.reason = Some(match rec.reason.take() {
                // Why it fell back, when a breaker decided it.
                Some(why) => format!("rolled back to {} ({why})", rec.source),
                None => format!("rolled back to {}", rec.source),
            });
            (AttemptResult::RolledBack, None, None)
        }
        Outcome::GaveUp { reason } => {
            give_up(&mut rec, reason.clone());
            (AttemptResult::GivenUp, None, Some(reason))
        }
        Outcome::Failed {
            kind,
            message,
            candidates,
        } => {
            rec.retry_count = rec.retry_count.saturating_add(1);
            for c in candidates {
                if !rec.candidates.contains(&c) {
                    rec.candidates.push(c);
                }
            }
            let failed = rec.target.clone();
            note_failure(&mut rec, &failed, kind, &message, now_ms);
            rec.state = RecoveryState::Pending;
            (AttemptResult::Failed, Some(kind), Some(message))
        }
        Outcome::Skipped { until_ms, probing } => {
            rec.state = RecoveryState::Pending;
            skipped = Some((until_ms, probing));
            let message = if probing {
                format!(
                    "{} is half-open and another recovery is probing it; waiting until {}",
                    rec.target,
                    timestamp(until_ms)
                )
            } else {
                format!(
                    "{} skipped: its breaker is open until {}",
                    rec.target,
                    timestamp(until_ms)
                )
            };
            (AttemptResult::Skipped, None, Some(message))
        }
    };
    let entry = entry(&mut rec, now_ms, strategy, target, result, kind, message);
    if result == AttemptResult::Failed {
        plan(&mut rec, config, now_ms, open);
    }
    if let Some((until_ms, probing)) = skipped {
        replan_skipped(&mut rec, config, now_ms, open, until_ms, probing, &entry);
    }
    rec.updated_ms = now_ms;
    (rec, entry)
}

/// Hands a claimed recovery back without an outcome (its worker stopped
/// mid-attempt): pending again and due at `now_ms`, the lease cleared,
/// nothing added to the history or the retry count.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// # use rebound_recovery::model::transition::{claim, record_failure, release};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// # let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let rec = release(claim(rec, "w1", 30_000, 40_000), 31_000);
/// assert_eq!((rec.state, rec.next_attempt_ms, rec.lease_owner), (RecoveryState::Pending, Some(31_000), None));
/// assert_eq!(rec.retry_count, 0);
/// ```
pub fn release(mut rec: Recovery, now_ms: u64) -> Recovery {
    rec.state = RecoveryState::Pending;
    rec.lease_owner = None;
    rec.lease_expires_ms = None;
    rec.next_attempt_ms = Some(now_ms);
    rec.updated_ms = now_ms;
    rec
}

/// Cancels a recovery that has not ended: pending (due or not) or
/// running. It ends `cancelled` with `reason`, its lease cleared, and a
/// history entry says so. The fencing number is kept, so that a worker
/// still running an attempt of it can record nothing
/// ([`JournalError::LeaseLost`](crate::JournalError::LeaseLost)); the
/// worker notices the cancel and stops the attempt. A recovery that has
/// already ended is refused
/// ([`JournalError::Finished`](crate::JournalError::Finished)).
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// # use rebound_recovery::model::transition::{cancel, claim, record_failure};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// # let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let running = claim(rec, "w1", 30_000, 40_000);
/// let (rec, entry) = cancel(running, "node drained", 31_000).unwrap();
/// assert_eq!((rec.state, rec.lease_owner.as_deref()), (RecoveryState::Cancelled, None));
/// assert_eq!(entry.message.as_deref(), Some("node drained"));
/// assert!(cancel(rec, "again", 32_000).is_err());
/// ```
pub fn cancel(
    mut rec: Recovery,
    reason: &str,
    now_ms: u64,
) -> Result<(Recovery, Attempt), crate::error::JournalError> {
    if rec.state.is_final() {
        return Err(crate::error::JournalError::Finished {
            migration: rec.migration,
            state: rec.state,
        });
    }
    let strategy = (rec.state == RecoveryState::Running).then_some(rec.strategy);
    rec.state = RecoveryState::Cancelled;
    rec.next_attempt_ms = None;
    rec.lease_owner = None;
    rec.lease_expires_ms = None;
    rec.reason = Some(format!("cancelled: {reason}"));
    rec.updated_ms = now_ms;
    let target = Some(rec.target.clone());
    let entry = entry(
        &mut rec,
        now_ms,
        strategy,
        target,
        AttemptResult::Cancelled,
        None,
        Some(reason.to_owned()),
    );
    Ok((rec, entry))
}

/// Extends the lease of a claimed recovery to `lease_expires_ms`; nothing
/// else changes (the caller has checked that the claim still holds it).
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// # use rebound_recovery::model::transition::{claim, record_failure, renew};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// # let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let claimed = claim(rec, "w1", 30_000, 60_000);
/// let renewed = renew(claimed.clone(), 40_000, 70_000);
/// assert_eq!((renewed.lease_expires_ms, renewed.updated_ms), (Some(70_000), 40_000));
/// // Still the same claim: same owner, same fencing number.
/// assert_eq!((renewed.lease_owner, renewed.claim_seq), (claimed.lease_owner, claimed.claim_seq));
/// ```
pub fn renew(mut rec: Recovery, now_ms: u64, lease_expires_ms: u64) -> Recovery {
    rec.lease_expires_ms = Some(lease_expires_ms);
    rec.updated_ms = now_ms;
    rec
}

/// Marks a pending or expired recovery as claimed by `owner` until
/// `lease_expires_ms`.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// # use rebound_recovery::model::transition::{claim, record_failure};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// # let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let rec = claim(rec, "w1", 30_000, 40_000);
/// assert_eq!(rec.state, RecoveryState::Running);
/// assert_eq!(rec.claim_seq, 1);
/// ```
pub fn claim(mut rec: Recovery, owner: &str, now_ms: u64, lease_expires_ms: u64) -> Recovery {
    if rec.state == RecoveryState::Running {
        // Its worker was lost: this claim rescues it.
        rec.rescues = rec.rescues.saturating_add(1);
    }
    rec.state = RecoveryState::Running;
    rec.lease_owner = Some(owner.to_owned());
    rec.lease_expires_ms = Some(lease_expires_ms);
    rec.next_attempt_ms = None;
    rec.claim_seq = rec.claim_seq.saturating_add(1);
    rec.updated_ms = now_ms;
    rec
}

/// Whether a claimable recovery is running under a lease that ran out for
/// the [`max_rescues`](RecoveryConfig::max_rescues)th time: a claim gives
/// it up ([`abandon`]) instead of retaking it.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig};
/// # use rebound_recovery::model::transition::{claim, lost_too_often, record_failure};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// let config = RecoveryConfig { max_rescues: 2, ..Default::default() };
/// # let (rec, _) = record_failure(None, &report, &config, 0);
/// let rec = claim(rec, "w1", 30_000, 40_000);
/// assert!(!lost_too_often(&rec, &config)); // first loss: retaken
/// let rec = claim(rec, "w2", 40_000, 50_000);
/// assert_eq!(rec.rescues, 1);
/// assert!(lost_too_often(&rec, &config)); // second loss: given up
/// ```
pub fn lost_too_often(rec: &Recovery, config: &RecoveryConfig) -> bool {
    rec.state == RecoveryState::Running && rec.rescues.saturating_add(1) >= config.max_rescues
}

/// Gives up a recovery whose worker was lost too often (see
/// [`lost_too_often`]): the rescue is counted, the reason is "worker lost
/// N times", and a history entry says so.
///
/// ```
/// # use rebound_recovery::{FailureKind, FailureReport, RecoveryConfig, RecoveryState};
/// # use rebound_recovery::model::transition::{abandon, claim, record_failure};
/// # let report = FailureReport::new("m", "w", "a", "b", FailureKind::Timeout, "slow");
/// # let (rec, _) = record_failure(None, &report, &RecoveryConfig::default(), 0);
/// let (rec, entry) = abandon(claim(rec, "w1", 30_000, 40_000), 41_000);
/// assert_eq!(rec.state, RecoveryState::GivenUp);
/// assert_eq!(rec.reason.as_deref(), Some("worker lost 1 times"));
/// assert_eq!(entry.message, rec.reason);
/// ```
pub fn abandon(mut rec: Recovery, now_ms: u64) -> (Recovery, Attempt) {
    rec.rescues = rec.rescues.saturating_add(1);
    let strategy = Some(rec.strategy);
    let target = Some(rec.target.clone());
    let reason = format!("worker lost {} times", rec.rescues);
    give_up(&mut rec, reason.clone());
    rec.updated_ms = now_ms;
    let entry = entry(
        &mut rec,
        now_ms,
        strategy,
        target,
        AttemptResult::GivenUp,
        None,
        Some(reason),
    );
    (rec, entry)
}

fn note_failure(rec: &mut Recovery, target: &str, kind: FailureKind, message: &str, now_ms: u64) {
    rec.kind = kind;
    rec.message = message.to_owned();
    rec.target = target.to_owned();
    rec.last_failure_ms = now_ms;
    rec.updated_ms = now_ms;
    // Any failure counts, whatever its kind: a target that failed once with
    // a passing error is not picked again by a later change of target.
    if !rec.failed_targets.iter().any(|t| t == target) {
        rec.failed_targets.push(target.to_owned());
    }
}

fn entry(
    rec: &mut Recovery,
    now_ms: u64,
    strategy: Option<Strategy>,
    target: Option<String>,
    result: AttemptResult,
    kind: Option<FailureKind>,
    message: Option<String>,
) -> Attempt {
    rec.attempts_total = rec.attempts_total.saturating_add(1);
    Attempt {
        number: rec.attempts_total,
        at_ms: now_ms,
        strategy,
        target,
        result,
        kind,
        message,
    }
}

fn give_up(rec: &mut Recovery, reason: String) {
    rec.state = RecoveryState::GivenUp;
    rec.strategy = Strategy::GiveUp;
    rec.next_attempt_ms = None;
    rec.lease_owner = None;
    rec.lease_expires_ms = None;
    rec.reason = Some(reason);
}

/// The next step after the worker skipped the planned target: wait for
/// another recovery's probe of a half-open node (within the recovery
/// timeout), or plan again with the node counted as open. A retry on the
/// same target (not a change of target: the breaker does not steer it)
/// waits for the cool-down instead.
fn replan_skipped(
    rec: &mut Recovery,
    config: &RecoveryConfig,
    now_ms: u64,
    open: &OpenTargets,
    until_ms: u64,
    probing: bool,
    entry: &Attempt,
) {
    if probing || rec.strategy == Strategy::RetryOnSameTarget {
        let at = until_ms.min(rec.deadline_ms(config)).max(now_ms);
        let strategy = rec.strategy;
        schedule(rec, strategy, at);
        rec.reason.clone_from(&entry.message);
        return;
    }
    let mut open = open.clone();
    open.insert(rec.target.clone(), until_ms);
    plan(rec, config, now_ms, &open);
}

/// Chooses the next step after a failure and when it is due. Target
/// rotation (a change of target) skips the nodes `open` lists; when no
/// candidate is left because of open breakers, the fallback's reason says
/// so, and a pending recovery's reason names the nodes it passed over.
/// A retry on the same target is not steered by breakers.
fn plan(rec: &mut Recovery, config: &RecoveryConfig, now_ms: u64, open: &OpenTargets) {
    rec.lease_owner = None;
    rec.lease_expires_ms = None;
    if now_ms >= rec.deadline_ms(config) {
        let secs = config.recovery_timeout.as_secs();
        return give_up(
            rec,
            format!("recovery timeout of {secs}s since the first failure ran out"),
        );
    }
    let next = next_available(rec, open).map(str::to_owned);
    let strategy = decide(rec.kind, rec.retry_count, config, next.is_some());
    // Untried candidates passed over because their breaker is open; they
    // matter only when the target is to change.
    let skipped: Vec<(String, u64)> = if rec.kind.should_change_target() {
        rec.candidates
            .iter()
            .filter(|c| !rec.failed_targets.contains(c))
            .filter_map(|c| Some((c.clone(), open.until(c)?)))
            .collect()
    } else {
        Vec::new()
    };
    let breakers = Breakers { skipped: &skipped };
    let delay = config.retry_delay(rec.retry_count.saturating_add(1));
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    // A retry that would come after the recovery timeout is due at the
    // timeout instead, where the worker gives the recovery up on time.
    let retry_at = rec
        .last_failure_ms
        .saturating_add(delay_ms)
        .min(rec.deadline_ms(config));
    match strategy {
        Strategy::RetryOnSameTarget => schedule(rec, strategy, retry_at),
        Strategy::RetryOnDifferentTarget => {
            if let Some(target) = next {
                rec.target = target;
            }
            schedule(rec, strategy, retry_at);
            rec.reason = breakers.note();
        }
        Strategy::Rollback if rec.snapshot.is_none() => give_up(
            rec,
            format!(
                "{} needs a rollback but no snapshot was recorded",
                why_fallback(rec, config, &breakers)
            ),
        ),
        Strategy::Rollback => {
            let why = (!skipped.is_empty()).then(|| why_fallback(rec, config, &breakers));
            schedule(rec, strategy, now_ms);
            rec.reason = why;
        }
        Strategy::GiveUp => {
            let reason = format!(
                "{} and auto_rollback is off",
                why_fallback(rec, config, &breakers)
            );
            give_up(rec, reason);
        }
    }
}

/// What the breakers did to a plan.
struct Breakers<'a> {
    /// Untried candidates passed over, with the end of their cool-down.
    skipped: &'a [(String, u64)],
}

impl Breakers<'_> {
    fn list(&self) -> String {
        self.skipped
            .iter()
            .map(|(node, until)| format!("{node} until {}", timestamp(*until)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The reason of a change of target that passed over open nodes.
    fn note(&self) -> Option<String> {
        (!self.skipped.is_empty()).then(|| format!("skipped {} (breaker open)", self.list()))
    }
}

fn schedule(rec: &mut Recovery, strategy: Strategy, at_ms: u64) {
    rec.state = RecoveryState::Pending;
    rec.strategy = strategy;
    rec.next_attempt_ms = Some(at_ms);
    rec.reason = None;
}

fn why_fallback(rec: &Recovery, config: &RecoveryConfig, breakers: &Breakers<'_>) -> String {
    if rec.retry_count >= config.max_retries {
        format!(
            "retries exhausted ({} of {})",
            rec.retry_count, config.max_retries
        )
    } else if rec.kind.should_change_target() && !breakers.skipped.is_empty() {
        format!(
            "{} and every untried target's breaker is open ({})",
            rec.kind,
            breakers.list()
        )
    } else if rec.kind.should_change_target() {
        format!("{} and no untried target left", rec.kind)
    } else {
        format!("{} failure", rec.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnapshotRef;
    use rebound_retry::Jitter;
    use std::time::Duration;

    fn exact() -> RecoveryConfig {
        RecoveryConfig {
            jitter: Jitter::None,
            ..Default::default()
        }
    }

    fn report(kind: FailureKind) -> FailureReport {
        FailureReport::new("m1", "web", "src", "t1", kind, "boom")
    }

    fn snapshot() -> SnapshotRef {
        SnapshotRef {
            path: "/snap".into(),
            checksum: "crc32c:00000000".into(),
            size: 0,
            captured_at_ms: 0,
        }
    }

    #[test]
    fn decision_table_matches_the_seed_for_every_kind() {
        use FailureKind::*;
        use Strategy::*;
        let on = exact();
        let off = RecoveryConfig {
            auto_rollback: false,
            ..exact()
        };
        let table = [
            (NetworkTransient, RetryOnSameTarget, RetryOnSameTarget),
            (Timeout, RetryOnSameTarget, RetryOnSameTarget),
            (
                InsufficientResources,
                RetryOnDifferentTarget,
                RetryOnDifferentTarget,
            ),
            (
                IncompatibleTarget,
                RetryOnDifferentTarget,
                RetryOnDifferentTarget,
            ),
            (
                TargetUnreachable,
                RetryOnDifferentTarget,
                RetryOnDifferentTarget,
            ),
            (StateCorruption, Rollback, GiveUp),
            (NetworkPermanent, Rollback, GiveUp),
            (Unknown, Rollback, GiveUp),
        ];
        for (kind, with_rollback, without) in table {
            assert_eq!(decide(kind, 0, &on, true), with_rollback, "{kind}");
            assert_eq!(decide(kind, 0, &off, true), without, "{kind}");
            // Retries exhausted wins over the kind.
            assert_eq!(decide(kind, 3, &on, true), Rollback, "{kind}");
            assert_eq!(decide(kind, 3, &off, true), GiveUp, "{kind}");
            // No target left: a change of target becomes the fallback.
            let expected = if kind.should_change_target() {
                Rollback
            } else {
                with_rollback
            };
            assert_eq!(decide(kind, 0, &on, false), expected, "{kind}");
        }
    }

    #[test]
    fn next_retry_counts_from_the_last_failure_and_doubles() {
        let c = exact();
        let (rec, _) = record_failure(None, &report(FailureKind::NetworkTransient), &c, 1_000);
        assert_eq!(rec.next_attempt_ms, Some(11_000));
        let rec = claim(rec, "w", 11_000, 41_000);
        let failed = Outcome::Failed {
            kind: FailureKind::NetworkTransient,
            message: "again".into(),
            candidates: vec![],
        };
        let (rec, _) = complete(rec, failed.clone(), &c, 15_000);
        // Second retry: twice the initial delay after the last failure.
        assert_eq!(rec.next_attempt_ms, Some(35_000));
        assert_eq!(rec.first_failure_ms, 1_000);
        let rec = claim(rec, "w", 35_000, 65_000);
        let (rec, _) = complete(rec, failed, &c, 36_000);
        assert_eq!(rec.next_attempt_ms, Some(76_000));
    }

    #[test]
    fn a_new_failure_adds_to_history_and_retry_count_never_resets() {
        let c = exact();
        let (rec, e1) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        let (rec, e2) = record_failure(Some(rec), &report(FailureKind::Timeout), &c, 1_000);
        let (rec, e3) = record_failure(Some(rec), &report(FailureKind::Timeout), &c, 2_000);
        assert_eq!((e1.number, e2.number, e3.number), (1, 2, 3));
        assert_eq!(rec.retry_count, 2);
        assert_eq!(rec.first_failure_ms, 0);
        assert_eq!(rec.next_attempt_ms, Some(2_000 + 30_000 + 10_000));
    }

    #[test]
    fn different_target_walks_the_candidates_then_rolls_back() {
        let c = exact();
        let r = report(FailureKind::InsufficientResources)
            .with_candidates(["t2", "t3"])
            .with_snapshot(snapshot());
        let (rec, _) = record_failure(None, &r, &c, 0);
        assert_eq!(rec.strategy, Strategy::RetryOnDifferentTarget);
        assert_eq!(rec.target, "t2");
        let fail = |rec: Recovery, at| {
            let rec = claim(rec, "w", at, at + 30_000);
            complete(
                rec,
                Outcome::Failed {
                    kind: FailureKind::TargetUnreachable,
                    message: "no route".into(),
                    candidates: vec![],
                },
                &c,
                at,
            )
            .0
        };
        let rec = fail(rec, 20_000);
        assert_eq!(rec.target, "t3");
        assert_eq!(rec.failed_targets, ["t1", "t2"]);
        let rec = fail(rec, 60_000);
        assert_eq!(rec.strategy, Strategy::Rollback);
        assert_eq!(rec.next_attempt_ms, Some(60_000));
    }

    #[test]
    fn no_target_left_and_no_rollback_gives_up_with_the_reason() {
        let c = RecoveryConfig {
            auto_rollback: false,
            ..exact()
        };
        let (rec, _) = record_failure(None, &report(FailureKind::IncompatibleTarget), &c, 0);
        assert_eq!(rec.state, RecoveryState::GivenUp);
        let reason = rec.reason.unwrap();
        assert!(reason.contains("no untried target left"), "{reason}");
    }

    #[test]
    fn rollback_without_snapshot_gives_up() {
        let (rec, _) = record_failure(None, &report(FailureKind::StateCorruption), &exact(), 0);
        assert_eq!(rec.state, RecoveryState::GivenUp);
        assert!(rec.reason.unwrap().contains("no snapshot"));
    }

    #[test]
    fn retries_exhausted_then_rollback() {
        let c = exact();
        let r = report(FailureKind::Timeout).with_snapshot(snapshot());
        let (mut rec, _) = record_failure(None, &r, &c, 0);
        for i in 1..=3u64 {
            assert_eq!(rec.strategy, Strategy::RetryOnSameTarget, "retry {i}");
            let at = rec.next_attempt_ms.unwrap();
            rec = claim(rec, "w", at, at + 1);
            rec = complete(
                rec,
                Outcome::Failed {
                    kind: FailureKind::Timeout,
                    message: "slow".into(),
                    candidates: vec![],
                },
                &c,
                at,
            )
            .0;
        }
        assert_eq!(rec.retry_count, 3);
        assert_eq!(rec.strategy, Strategy::Rollback);
        let (rec, e) = complete(
            claim(rec, "w", 80_000, 90_000),
            Outcome::RolledBack,
            &c,
            80_001,
        );
        assert_eq!(rec.state, RecoveryState::RolledBack);
        assert_eq!(e.target.as_deref(), Some("src"));
        assert_eq!(rec.attempts_total, 5);
    }

    #[test]
    fn recovery_timeout_gives_up() {
        let c = RecoveryConfig {
            recovery_timeout: Duration::from_secs(60),
            ..exact()
        };
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        let rec = claim(rec, "w", 10_000, 20_000);
        let (rec, _) = complete(
            rec,
            Outcome::Failed {
                kind: FailureKind::Timeout,
                message: "slow".into(),
                candidates: vec![],
            },
            &c,
            60_000,
        );
        assert_eq!(rec.state, RecoveryState::GivenUp);
        assert!(rec.reason.unwrap().contains("recovery timeout of 60s"));
    }

    #[test]
    fn a_target_that_failed_with_any_kind_is_not_picked_again() {
        let c = exact();
        let r = report(FailureKind::Timeout).with_candidates(["t1", "t2"]);
        let (rec, _) = record_failure(None, &r, &c, 0);
        assert_eq!(rec.strategy, Strategy::RetryOnSameTarget);
        let moved = FailureReport::new(
            "m1",
            "web",
            "src",
            "t2",
            FailureKind::TargetUnreachable,
            "down",
        );
        let (rec, _) = record_failure(Some(rec), &moved, &c, 1_000);
        assert_eq!(rec.failed_targets, ["t1", "t2"]);
        assert_eq!(next_candidate(&rec), None);
        assert_eq!(rec.state, RecoveryState::GivenUp, "{:?}", rec.reason);
    }

    #[test]
    fn a_retry_past_the_recovery_timeout_is_due_at_the_timeout() {
        let c = RecoveryConfig {
            recovery_timeout: Duration::from_secs(15),
            ..exact()
        };
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        assert_eq!(rec.next_attempt_ms, Some(10_000));
        let rec = claim(rec, "w", 10_000, 20_000);
        let failed = Outcome::Failed {
            kind: FailureKind::Timeout,
            message: "slow".into(),
            candidates: vec![],
        };
        // The second retry would be at 12 s + 20 s; the timeout is at 15 s.
        let (rec, _) = complete(rec, failed, &c, 12_000);
        assert_eq!(rec.state, RecoveryState::Pending);
        assert_eq!(rec.next_attempt_ms, Some(15_000));
    }

    #[test]
    fn a_failure_after_the_end_reopens_without_resetting() {
        let c = exact();
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        let (rec, _) = complete(
            claim(rec, "w", 10_000, 20_000),
            Outcome::Migrated,
            &c,
            11_000,
        );
        assert_eq!(rec.state, RecoveryState::Succeeded);
        let (rec, e) = record_failure(Some(rec), &report(FailureKind::Timeout), &c, 12_000);
        assert_eq!(rec.state, RecoveryState::Pending);
        assert_eq!(rec.retry_count, 1);
        assert_eq!(e.number, 3);
        assert_eq!(rec.next_attempt_ms, Some(12_000 + 20_000));
    }

    #[test]
    fn another_workload_or_source_under_the_same_id_is_refused() {
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &exact(), 0);
        assert!(check_same_migration(&rec, &report(FailureKind::Unknown)).is_ok());
        let mut other = report(FailureKind::Timeout);
        other.workload = "db".into();
        assert!(check_same_migration(&rec, &other).is_err());
        let mut other = report(FailureKind::Timeout);
        other.source = "elsewhere".into();
        let err = check_same_migration(&rec, &other).unwrap_err();
        assert_eq!(err.kind(), crate::error::JournalErrorKind::Invalid);
        assert!(err.to_string().contains("source elsewhere"), "{err}");
    }

    #[test]
    fn a_failure_reported_while_a_worker_holds_it_leaves_the_lease_alone() {
        let c = exact();
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        let rec = claim(rec, "w", 10_000, 40_000);
        let (rec, _) = record_failure(Some(rec), &report(FailureKind::Timeout), &c, 11_000);
        assert_eq!(rec.state, RecoveryState::Running);
        assert_eq!(rec.lease_owner.as_deref(), Some("w"));
        assert_eq!(rec.retry_count, 1);
    }

    #[test]
    fn a_skip_for_a_running_probe_waits_for_it_without_counting_a_retry() {
        let c = exact();
        let r = report(FailureKind::TargetUnreachable).with_candidates(["t2", "t3"]);
        let (rec, _) = record_failure(None, &r, &c, 0);
        assert_eq!(rec.target, "t2");
        let rec = claim(rec, "w", 10_000, 40_000);
        let probing = Outcome::Skipped {
            until_ms: 25_000,
            probing: true,
        };
        let (rec, e) = complete(rec, probing, &c, 10_000);
        assert_eq!(e.result, AttemptResult::Skipped);
        assert_eq!(
            (rec.state, rec.target.as_str(), rec.retry_count),
            (RecoveryState::Pending, "t2", 0)
        );
        assert_eq!(rec.next_attempt_ms, Some(25_000));
        assert!(rec.reason.unwrap().contains("probing"));
        // Open instead: the next candidate at once, t2 not counted as failed.
        let rec = claim(record_failure(None, &r, &c, 0).0, "w", 10_000, 40_000);
        let open = Outcome::Skipped {
            until_ms: 900_000,
            probing: false,
        };
        let (rec, _) = complete(rec, open, &c, 10_000);
        assert_eq!(
            (rec.target.as_str(), rec.next_attempt_ms),
            ("t3", Some(10_000))
        );
        assert_eq!(rec.failed_targets, ["t1"]);
    }

    #[test]
    fn a_wait_for_a_cool_down_never_passes_the_recovery_timeout() {
        let c = RecoveryConfig {
            recovery_timeout: Duration::from_secs(60),
            ..exact()
        };
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &c, 0);
        let skipped = Outcome::Skipped {
            until_ms: 3_600_000,
            probing: false,
        };
        let (rec, _) = complete(claim(rec, "w", 10_000, 40_000), skipped, &c, 10_000);
        assert_eq!(rec.strategy, Strategy::RetryOnSameTarget);
        assert_eq!(rec.next_attempt_ms, Some(60_000));
    }

    #[test]
    fn claimable_when_due_or_lease_expired() {
        let (rec, _) = record_failure(None, &report(FailureKind::Timeout), &exact(), 0);
        assert!(!rec.is_claimable(9_999));
        assert!(rec.is_claimable(10_000));
        let rec = claim(rec, "w", 10_000, 40_000);
        assert!(!rec.is_claimable(39_999));
        assert!(rec.is_claimable(40_000));
    }
}

//! The breaker per target node inside journal changes, once for every
//! backend (see [`crate::model::breaker`]).
//!
//! `record` and `complete` count their outcome against the target's
//! breaker in the same transaction as the recovery: the backend loads the
//! recovery, asks [`record_touch`] or [`complete_touch`] which node the
//! outcome counts against, loads (and, on PostgreSQL, locks) that node's
//! row and every breaker that is not closed, applies [`counted`], plans
//! the recovery with [`open_view`] (rotation skips open nodes), and writes
//! the recovery, its history entry and the changed breaker before it
//! commits. So two controllers sharing a journal agree on every node.

use crate::error::JournalError;
use crate::model::transition;
use crate::model::{
    Attempt, FailureKind, FailureReport, OpenTargets, Outcome, Recovery, RecoveryConfig,
    TargetBreaker,
};

use super::{Claim, held};

/// What an outcome does to a node's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touch {
    /// A target-side failure on the node.
    Fail(String, FailureKind),
    /// A migration to the node went through.
    Succeed(String),
}

impl Touch {
    /// The node touched.
    pub(crate) fn node(&self) -> &str {
        match self {
            Self::Fail(node, _) | Self::Succeed(node) => node,
        }
    }
}

/// The breaker a reported failure counts against.
pub(crate) fn record_touch(report: &FailureReport, config: &RecoveryConfig) -> Option<Touch> {
    (config.breaker.enabled && report.kind.counts_against_target())
        .then(|| Touch::Fail(report.target.clone(), report.kind))
}

/// The breaker a worker's outcome counts against, from the recovery as
/// loaded; the claim must still hold it.
pub(crate) fn complete_touch(
    current: Option<&Recovery>,
    claim: &Claim,
    outcome: &Outcome,
    config: &RecoveryConfig,
) -> Result<Option<Touch>, JournalError> {
    let current = held(current.cloned(), claim)?;
    if !config.breaker.enabled {
        return Ok(None);
    }
    Ok(match outcome {
        Outcome::Failed { kind, .. } if kind.counts_against_target() => {
            Some(Touch::Fail(current.target, *kind))
        }
        Outcome::Migrated => Some(Touch::Succeed(current.target)),
        _ => None,
    })
}

/// `row` (the touched node's breaker, `None` when the journal has none)
/// after `touch`; `None` when nothing is to be written (a success on a
/// node without a breaker).
pub(crate) fn counted(
    touch: &Touch,
    row: Option<TargetBreaker>,
    config: &RecoveryConfig,
    now_ms: u64,
) -> Option<TargetBreaker> {
    match touch {
        Touch::Fail(node, kind) => {
            let mut breaker = row.unwrap_or_else(|| TargetBreaker::new(node.clone()));
            if breaker.fail(*kind, now_ms, &config.breaker) {
                tracing::warn!(
                    node = %node,
                    until_ms = breaker.open_until_ms,
                    openings = breaker.openings,
                    "target breaker opened"
                );
            }
            Some(breaker)
        }
        Touch::Succeed(node) => {
            let mut breaker = row?;
            if breaker.open_until_ms.is_some() {
                tracing::info!(node = %node, "target breaker closed by a migration that went through");
            }
            breaker.succeed(now_ms);
            Some(breaker)
        }
    }
}

/// The open nodes at `now_ms`: `rows` (breakers that are not closed, as
/// loaded) with `changed` in place of its old row.
pub(crate) fn open_view(
    rows: &[TargetBreaker],
    changed: Option<&TargetBreaker>,
    now_ms: u64,
    config: &RecoveryConfig,
) -> OpenTargets {
    if !config.breaker.enabled {
        return OpenTargets::default();
    }
    let others = rows
        .iter()
        .filter(|b| changed.is_none_or(|c| c.node != b.node));
    OpenTargets::at(others.chain(changed), now_ms)
}

/// [`Journal::record`](super::Journal::record) planned among the open
/// nodes `open`.
pub(crate) fn recorded_among(
    existing: Option<Recovery>,
    report: &FailureReport,
    config: &RecoveryConfig,
    now_ms: u64,
    open: &OpenTargets,
) -> Result<(Recovery, Attempt), JournalError> {
    if let Some(existing) = &existing {
        transition::check_same_migration(existing, report)?;
    }
    Ok(transition::record_failure_among(
        existing, report, config, now_ms, open,
    ))
}

/// [`Journal::complete`](super::Journal::complete) planned among the open
/// nodes `open`.
pub(crate) fn completed_among(
    current: Option<Recovery>,
    claim: &Claim,
    outcome: Outcome,
    config: &RecoveryConfig,
    now_ms: u64,
    open: &OpenTargets,
) -> Result<(Recovery, Attempt), JournalError> {
    Ok(transition::complete_among(
        held(current, claim)?,
        outcome,
        config,
        now_ms,
        open,
    ))
}

/// The columns of `target_breakers`, in the order [`BreakerRow`] uses.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const BREAKER_COLUMNS: &str = "node, failures, openings, open_until_ms, \
     probe_migration, probe_until_ms, last_kind, last_failure_ms, updated_ms";

/// A breaker as plain SQL values.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
pub(crate) struct BreakerRow {
    pub node: String,
    pub failures: String,
    pub openings: i64,
    pub open_until_ms: Option<i64>,
    pub probe_migration: Option<String>,
    pub probe_until_ms: Option<i64>,
    pub last_kind: Option<String>,
    pub last_failure_ms: Option<i64>,
    pub updated_ms: i64,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl BreakerRow {
    pub(crate) fn from_breaker(b: &TargetBreaker) -> Self {
        use super::row::int;
        Self {
            node: b.node.clone(),
            failures: serde_json::to_string(&b.failures_ms).unwrap_or_else(|_| "[]".into()),
            openings: i64::from(b.openings),
            open_until_ms: b.open_until_ms.map(int),
            probe_migration: b.probe_migration.clone(),
            probe_until_ms: b.probe_until_ms.map(int),
            last_kind: b.last_kind.map(|k| k.as_str().to_owned()),
            last_failure_ms: b.last_failure_ms.map(int),
            updated_ms: int(b.updated_ms),
        }
    }

    pub(crate) fn into_breaker(self) -> Result<TargetBreaker, JournalError> {
        let uint = |v: i64| u64::try_from(v).unwrap_or(0);
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            JournalError::Invalid(format!(
                "journal breaker of target node {:?} has a bad {what}: {e}",
                self.node
            ))
        };
        Ok(TargetBreaker {
            failures_ms: serde_json::from_str(&self.failures).map_err(|e| bad("failures", &e))?,
            openings: u32::try_from(self.openings).unwrap_or(u32::MAX),
            open_until_ms: self.open_until_ms.map(uint),
            probe_until_ms: self.probe_until_ms.map(uint),
            last_kind: self
                .last_kind
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad("last kind", &e))?,
            last_failure_ms: self.last_failure_ms.map(uint),
            updated_ms: uint(self.updated_ms),
            probe_migration: self.probe_migration.clone(),
            node: self.node.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::breaker::TargetBreakerConfig;

    #[test]
    fn only_target_side_kinds_and_enabled_breakers_count() {
        let config = RecoveryConfig::default();
        let report = |kind| FailureReport::new("m", "w", "a", "b", kind, "x");
        assert_eq!(
            record_touch(&report(FailureKind::Timeout), &config),
            Some(Touch::Fail("b".into(), FailureKind::Timeout))
        );
        assert_eq!(
            record_touch(&report(FailureKind::NetworkTransient), &config),
            None
        );
        let off = RecoveryConfig {
            breaker: TargetBreakerConfig {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(record_touch(&report(FailureKind::Timeout), &off), None);
    }

    #[test]
    fn a_success_on_a_node_without_a_breaker_writes_nothing() {
        let config = RecoveryConfig::default();
        assert_eq!(counted(&Touch::Succeed("b".into()), None, &config, 0), None);
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn rows_round_trip() {
        let config = RecoveryConfig::default();
        let b = counted(
            &Touch::Fail("n".into(), FailureKind::Timeout),
            None,
            &config,
            5,
        )
        .unwrap();
        assert_eq!(BreakerRow::from_breaker(&b).into_breaker().unwrap(), b);
    }
}

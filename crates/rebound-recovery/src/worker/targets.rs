//! The target's breaker, asked before each migrate (see
//! [`crate::model::breaker`]).

use super::RecoveryWorker;
use crate::journal::Journal;
use crate::model::{Admission, Outcome, Recovery};

impl<J: Journal, M, R, C> RecoveryWorker<J, M, R, C> {
    /// What to record instead of migrating when the claimed recovery is to
    /// change target and its new target is open (its breaker opened after the recovery was planned)
    /// or half-open with another recovery probing it; `None` to go ahead.
    /// A half-open target takes this attempt as its probe for the lease's
    /// length. When the journal cannot say, the attempt goes ahead.
    pub(super) async fn skip_open_target(&self, rec: &Recovery, now_ms: u64) -> Option<Outcome> {
        let asked = self
            .journal
            .admit_target(&rec.target, &rec.migration, now_ms, self.lease)
            .await;
        match asked {
            Ok(Admission::Open { until_ms }) => {
                tracing::info!(migration = %rec.migration, target = %rec.target, until_ms, "target skipped: its breaker is open");
                Some(Outcome::Skipped {
                    until_ms,
                    probing: false,
                })
            }
            Ok(Admission::Probing { until_ms, .. }) => Some(Outcome::Skipped {
                until_ms,
                probing: true,
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(migration = %rec.migration, target = %rec.target, error = %e, "asking the target's breaker failed; trying the target");
                None
            }
        }
    }
}

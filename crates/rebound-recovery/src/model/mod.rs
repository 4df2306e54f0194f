//! The recovery model: failure kinds, strategies, settings, the recovery
//! record, snapshots and the pure state changes every journal applies.

pub mod breaker;
pub mod config;
pub mod kind;
pub mod recovery;
pub mod snapshot;
pub mod strategy;
pub mod transition;

pub use breaker::{Admission, OpenTargets, TargetBreaker, TargetBreakerConfig};
pub use config::RecoveryConfig;
pub use kind::FailureKind;
pub use recovery::{Attempt, AttemptResult, FailureReport, Recovery};
pub use snapshot::SnapshotRef;
pub use strategy::{RecoveryState, Strategy};
pub use transition::Outcome;

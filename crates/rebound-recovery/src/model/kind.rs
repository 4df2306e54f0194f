//! The eight kinds of migration failure and what each implies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// Why a migration failed. The snake_case name (`network_transient`, ...) is
/// what the journal, JSON output and the command line use.
///
/// ```
/// use rebound_recovery::FailureKind;
/// let kind: FailureKind = "target_unreachable".parse().unwrap();
/// assert!(kind.should_change_target());
/// assert_eq!(kind.to_string(), "target_unreachable");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A passing network error: try the same target again.
    NetworkTransient,
    /// A network error that will not go away by retrying.
    NetworkPermanent,
    /// The target lacks CPU, memory or disk: try another target.
    InsufficientResources,
    /// The target cannot run this workload: try another target.
    IncompatibleTarget,
    /// The state was damaged in transfer: roll back.
    StateCorruption,
    /// The migration ran out of time: try the same target again.
    Timeout,
    /// The target could not be reached: try another target.
    TargetUnreachable,
    /// Anything else: roll back.
    Unknown,
}

impl FailureKind {
    /// Every kind, in the documented order.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// // Every kind's name, as `--kind` takes it, parses back to the kind.
    /// for kind in FailureKind::ALL {
    ///     assert_eq!(kind.as_str().parse::<FailureKind>().unwrap(), kind);
    /// }
    /// ```
    pub const ALL: [FailureKind; 8] = [
        Self::NetworkTransient,
        Self::NetworkPermanent,
        Self::InsufficientResources,
        Self::IncompatibleTarget,
        Self::StateCorruption,
        Self::Timeout,
        Self::TargetUnreachable,
        Self::Unknown,
    ];

    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(rebound_recovery::FailureKind::Timeout.as_str(), "timeout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkTransient => "network_transient",
            Self::NetworkPermanent => "network_permanent",
            Self::InsufficientResources => "insufficient_resources",
            Self::IncompatibleTarget => "incompatible_target",
            Self::StateCorruption => "state_corruption",
            Self::Timeout => "timeout",
            Self::TargetUnreachable => "target_unreachable",
            Self::Unknown => "unknown",
        }
    }

    /// Whether trying again (on any target) may succeed.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// assert!(FailureKind::NetworkTransient.is_retryable());
    /// assert!(!FailureKind::StateCorruption.is_retryable());
    /// ```
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::NetworkTransient
                | Self::InsufficientResources
                | Self::Timeout
                | Self::TargetUnreachable
        )
    }

    /// Whether the next attempt should go to a different target.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// assert!(FailureKind::IncompatibleTarget.should_change_target());
    /// assert!(!FailureKind::Timeout.should_change_target());
    /// ```
    pub fn should_change_target(self) -> bool {
        matches!(
            self,
            Self::InsufficientResources | Self::IncompatibleTarget | Self::TargetUnreachable
        )
    }

    /// Whether a failure of this kind counts against the target node's
    /// breaker (see [`crate::model::breaker`]): the target-side kinds
    /// `target_unreachable`, `insufficient_resources`,
    /// `incompatible_target` and `timeout`.
    ///
    /// ```
    /// use rebound_recovery::FailureKind;
    /// assert!(FailureKind::Timeout.counts_against_target());
    /// assert!(!FailureKind::NetworkTransient.counts_against_target());
    /// ```
    pub fn counts_against_target(self) -> bool {
        self.should_change_target() || self == Self::Timeout
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError::new("failure kind", s, &Self::ALL.map(Self::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for kind in FailureKind::ALL {
            assert_eq!(kind.as_str().parse::<FailureKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "flaky".parse::<FailureKind>().unwrap_err().to_string();
        assert!(err.contains("flaky"), "{err}");
        assert!(err.contains("network_transient"), "{err}");
    }
}

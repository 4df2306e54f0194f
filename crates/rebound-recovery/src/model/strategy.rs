//! What to do about a failed migration next, and the state of a recovery.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// The next step of a recovery.
///
/// ```
/// use rebound_recovery::Strategy;
/// assert_eq!(Strategy::RetryOnDifferentTarget.to_string(), "retry_on_different_target");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Run the migration again to the same target.
    RetryOnSameTarget,
    /// Run the migration again to the next untried candidate target.
    RetryOnDifferentTarget,
    /// Restore the workload on its source from the snapshot.
    Rollback,
    /// Stop: a person has to look at it.
    GiveUp,
}

impl Strategy {
    /// Every strategy.
    ///
    /// ```
    /// use rebound_recovery::Strategy;
    /// for strategy in Strategy::ALL {
    ///     assert_eq!(strategy.as_str().parse::<Strategy>().unwrap(), strategy);
    /// }
    /// ```
    pub const ALL: [Strategy; 4] = [
        Self::RetryOnSameTarget,
        Self::RetryOnDifferentTarget,
        Self::Rollback,
        Self::GiveUp,
    ];

    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(rebound_recovery::Strategy::Rollback.as_str(), "rollback");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryOnSameTarget => "retry_on_same_target",
            Self::RetryOnDifferentTarget => "retry_on_different_target",
            Self::Rollback => "rollback",
            Self::GiveUp => "give_up",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError::new("strategy", s, &Self::ALL.map(Self::as_str)))
    }
}

/// Where a recovery stands.
///
/// `pending` waits for its next attempt; `running` is leased by a worker;
/// the other four are final. `cancelled` (an operator stopped it, see
/// [`Journal::cancel`](crate::Journal::cancel)) is counted apart from
/// `given_up` (the recovery itself found no way forward).
///
/// ```
/// use rebound_recovery::RecoveryState;
/// assert!(RecoveryState::GivenUp.is_final());
/// assert_eq!("rolled_back".parse::<RecoveryState>().unwrap(), RecoveryState::RolledBack);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a worker that holds a lease on it.
    Running,
    /// The migration went through.
    Succeeded,
    /// The workload was restored on its source.
    RolledBack,
    /// Abandoned; the reason is recorded.
    GivenUp,
    /// Stopped by an operator; the reason is recorded.
    Cancelled,
}

impl RecoveryState {
    /// Every state.
    ///
    /// ```
    /// use rebound_recovery::RecoveryState;
    /// assert_eq!(RecoveryState::ALL.iter().filter(|s| s.is_final()).count(), 4);
    /// ```
    pub const ALL: [RecoveryState; 6] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::RolledBack,
        Self::GivenUp,
        Self::Cancelled,
    ];

    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(rebound_recovery::RecoveryState::GivenUp.as_str(), "given_up");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::RolledBack => "rolled_back",
            Self::GivenUp => "given_up",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more will happen to the recovery.
    ///
    /// ```
    /// assert!(!rebound_recovery::RecoveryState::Running.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::RolledBack | Self::GivenUp | Self::Cancelled
        )
    }
}

impl fmt::Display for RecoveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecoveryState {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError::new("recovery state", s, &Self::ALL.map(Self::as_str)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        for s in RecoveryState::ALL {
            assert_eq!(s.as_str().parse::<RecoveryState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("done".parse::<RecoveryState>().is_err());
    }
}

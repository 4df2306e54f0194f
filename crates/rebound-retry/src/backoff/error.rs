//! The error returned when a backoff policy is built from invalid settings.

use std::time::Duration;

/// A backoff setting is invalid; returned by the builders' `build()`.
///
/// [`PolicyError::setting`] names the offending setting, so a caller (the
/// `rebound` command line, a config loader) can point at its own flag or key.
///
/// ```
/// use rebound_retry::{ExponentialBuilder, PolicyError};
/// let err = ExponentialBuilder::new().with_multiplier(0.5).build().unwrap_err();
/// assert_eq!(err.setting(), "multiplier");
/// assert!(matches!(err, PolicyError::InvalidMultiplier { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The multiplier is below 1, NaN or infinite.
    #[error("multiplier must be a finite number of at least 1, got {value}")]
    InvalidMultiplier {
        /// The rejected multiplier.
        value: f64,
    },
    /// The cap on delays is below the first delay.
    #[error("max delay ({max:?}) is below the initial delay ({initial:?})")]
    MaxBelowInitial {
        /// The initial (or base) delay.
        initial: Duration,
        /// The rejected cap.
        max: Duration,
    },
    /// Zero attempts: the operation would never run.
    #[error("max attempts must be at least 1 (the count includes the first attempt)")]
    ZeroAttempts,
    /// A [`PolicySpec`](crate::PolicySpec) setting that the chosen backoff
    /// does not use (a multiplier for constant backoff).
    #[error("{setting} does not apply to {backoff} backoff")]
    NotApplicable {
        /// The setting given.
        setting: &'static str,
        /// The backoff that does not use it.
        backoff: crate::BackoffKind,
    },
    /// A duration above [`duration::MAX`](crate::duration::MAX).
    #[error("{setting} ({value:?}) is too large (at most {} s, about 136 years)", crate::duration::MAX.as_secs())]
    TooLarge {
        /// The setting at fault.
        setting: &'static str,
        /// The rejected duration.
        value: Duration,
    },
    /// Zero where only a positive duration makes sense (a deadline, an
    /// attempt timeout).
    #[error("{setting} must be above zero")]
    Zero {
        /// The setting at fault.
        setting: &'static str,
    },
}

impl PolicyError {
    /// The setting at fault: `"multiplier"`, `"max_delay"`, `"max_attempts"`,
    /// or for a [`PolicySpec`](crate::PolicySpec) the key at fault
    /// (`"deadline"`, `"attempt_timeout"`, ...).
    ///
    /// ```
    /// # use rebound_retry::ExponentialBuilder;
    /// let err = ExponentialBuilder::new().with_max_attempts(0).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_attempts");
    /// ```
    pub fn setting(&self) -> &'static str {
        match self {
            PolicyError::InvalidMultiplier { .. } => "multiplier",
            PolicyError::MaxBelowInitial { .. } => "max_delay",
            PolicyError::ZeroAttempts => "max_attempts",
            PolicyError::NotApplicable { setting, .. }
            | PolicyError::TooLarge { setting, .. }
            | PolicyError::Zero { setting } => setting,
        }
    }
}

/// Checks the settings every builder shares.
#[inline]
pub(crate) fn check_common(
    initial: Duration,
    max: Duration,
    max_attempts: Option<u32>,
) -> Result<(), PolicyError> {
    if max_attempts == Some(0) {
        return Err(PolicyError::ZeroAttempts);
    }
    if max < initial {
        return Err(PolicyError::MaxBelowInitial { initial, max });
    }
    Ok(())
}

/// Checks a multiplier: finite and at least 1.
pub(crate) fn check_multiplier(value: f64) -> Result<(), PolicyError> {
    if value.is_finite() && value >= 1.0 {
        Ok(())
    } else {
        Err(PolicyError::InvalidMultiplier { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_checks() {
        assert!(check_multiplier(1.0).is_ok());
        assert!(check_multiplier(2.5).is_ok());
        for bad in [0.99, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(check_multiplier(bad).unwrap_err().setting(), "multiplier");
        }
    }

    #[test]
    fn common_checks_name_the_setting() {
        let ms = Duration::from_millis;
        assert!(check_common(ms(1), ms(1), Some(1)).is_ok());
        assert!(check_common(ms(1), ms(2), None).is_ok());
        assert_eq!(
            check_common(ms(2), ms(1), Some(3)),
            Err(PolicyError::MaxBelowInitial {
                initial: ms(2),
                max: ms(1)
            })
        );
        assert_eq!(
            check_common(ms(1), ms(2), Some(0)),
            Err(PolicyError::ZeroAttempts)
        );
    }
}

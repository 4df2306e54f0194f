//! Process exit codes.

use std::fmt;
use std::str::FromStr;

use super::{Classify, Decision};

/// Classifies a process exit code by the BSD `sysexits.h` convention:
/// 0 is success (`Stop`); `EX_TEMPFAIL` (75), `EX_UNAVAILABLE` (69) and
/// `EX_IOERR` (74) are passing (`Retry`); the other sysexits codes (64-78:
/// usage, data, permissions, config) and 126/127 (not executable, not found)
/// are permanent (`Stop`); any other non-zero code is retried.
///
/// ```
/// use rebound_retry::{classify, Decision};
/// assert_eq!(classify::exit_code(75), Decision::Retry);
/// assert_eq!(classify::exit_code(1), Decision::Retry);
/// assert_eq!(classify::exit_code(64), Decision::Stop);
/// assert_eq!(classify::exit_code(127), Decision::Stop);
/// assert_eq!(classify::exit_code(0), Decision::Stop);
/// ```
pub fn exit_code(code: i32) -> Decision {
    match code {
        0 => Decision::Stop,
        69 | 74 | 75 => Decision::Retry,
        64..=78 | 126 | 127 => Decision::Stop,
        _ => Decision::Retry,
    }
}

/// Which non-zero exit codes to retry: any, or only a listed set (what
/// `rebound retry --retry-on-exit` takes). Exit code 0 is never retried.
///
/// ```
/// use rebound_retry::{classify::ExitCodes, Classify, Decision};
/// let only: ExitCodes = "75,111".parse()?;
/// assert_eq!(only.classify(&75), Decision::Retry);
/// assert_eq!(only.classify(&1), Decision::Stop);
/// let any: ExitCodes = "any".parse()?;
/// assert_eq!(any.classify(&1), Decision::Retry);
/// assert_eq!(any.classify(&0), Decision::Stop);
/// # Ok::<(), rebound_retry::classify::ParseExitCodesError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExitCodes {
    /// Every non-zero code.
    #[default]
    Any,
    /// Only these codes.
    Only(Vec<i32>),
}

impl Classify<i32> for ExitCodes {
    fn classify(&self, code: &i32) -> Decision {
        let code = *code;
        Decision::from_bool(
            code != 0
                && match self {
                    ExitCodes::Any => true,
                    ExitCodes::Only(codes) => codes.contains(&code),
                },
        )
    }
}

impl fmt::Display for ExitCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCodes::Any => f.write_str("any"),
            ExitCodes::Only(codes) => {
                for (i, c) in codes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

/// A `--retry-on-exit` value that is neither `any` nor a comma-separated
/// list of codes in 1..=255.
///
/// ```
/// use rebound_retry::classify::ExitCodes;
/// let err = "75,x".parse::<ExitCodes>().unwrap_err();
/// assert!(err.to_string().contains("\"x\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid exit code {item:?}: expected `any` or a comma-separated list of codes 1-255")]
pub struct ParseExitCodesError {
    item: String,
}

impl ParseExitCodesError {
    /// The part of the input that is not a valid code.
    ///
    /// ```
    /// # use rebound_retry::classify::ExitCodes;
    /// assert_eq!("1,,2".parse::<ExitCodes>().unwrap_err().item(), "");
    /// ```
    pub fn item(&self) -> &str {
        &self.item
    }
}

impl FromStr for ExitCodes {
    type Err = ParseExitCodesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("any") {
            return Ok(ExitCodes::Any);
        }
        s.split(',')
            .map(|item| {
                let item = item.trim();
                item.parse::<i32>()
                    .ok()
                    .filter(|c| (1..=255).contains(c))
                    .ok_or_else(|| ParseExitCodesError {
                        item: item.to_owned(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ExitCodes::Only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_any() {
        assert_eq!("any".parse(), Ok(ExitCodes::Any));
        assert_eq!("ANY".parse(), Ok(ExitCodes::Any));
        assert_eq!(" 75 , 111".parse(), Ok(ExitCodes::Only(vec![75, 111])));
        assert_eq!(ExitCodes::Only(vec![1, 2]).to_string(), "1,2");
        for bad in ["", "0", "256", "-1", "75,", "a", "1;2"] {
            assert!(bad.parse::<ExitCodes>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sysexits_table() {
        assert_eq!(exit_code(0), Decision::Stop);
        for c in [1, 2, 3, 69, 74, 75, 124, 137, 255] {
            assert_eq!(exit_code(c), Decision::Retry, "{c}");
        }
        for c in [64, 65, 66, 70, 77, 78, 126, 127] {
            assert_eq!(exit_code(c), Decision::Stop, "{c}");
        }
    }
}

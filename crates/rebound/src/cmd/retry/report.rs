//! What `rebound retry` prints about its attempts on stderr: a line per
//! failed attempt for humans, or one JSON object per attempt with `--json`.

use std::io::Write;
use std::time::Duration;

use super::breaker_file::Rejection;
use crate::child::ChildExit;

/// How a child ended, for humans.
pub(super) fn describe(exit: &ChildExit) -> String {
    match exit.killed_by {
        Some(signal) => format!("exit code {}, killed by signal {signal}", exit.code),
        // A code above 128 the child chose itself is not a signal.
        None => format!("exit code {}", exit.code),
    }
}

/// A delay in milliseconds with microsecond precision, for JSON.
fn delay_ms(delay: Duration) -> f64 {
    // Whole microseconds: jittered delays carry meaningless nanoseconds.
    (delay.as_micros() as f64) / 1000.0
}

/// A delay rounded for humans: to the millisecond from 10 ms up, else to
/// the microsecond.
fn round_delay(delay: Duration) -> Duration {
    if delay >= Duration::from_millis(10) {
        Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    } else {
        Duration::from_micros(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX))
    }
}

/// A line on stderr that does not change the exit code.
pub(super) fn warning(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "rebound: warning: {text}");
}

/// With `--json`: the object for a run the `--breaker-file` breaker
/// refused (the error line follows, as for every error).
pub(super) fn breaker_rejected(rejection: &Rejection) {
    let value = serde_json::json!({
        "attempt": 0,
        "outcome": "breaker_open",
        "state": rejection.state.to_string(),
        "until": humantime::format_rfc3339_seconds(rejection.until).to_string(),
        "retry_in_ms": u64::try_from(rejection.retry_in.as_millis()).unwrap_or(u64::MAX),
    });
    let _ = writeln!(std::io::stderr().lock(), "{value}");
}

/// Writes attempt reports to stderr, as text or JSON lines.
#[derive(Debug, Clone, Copy)]
pub(super) struct Report {
    pub(super) json: bool,
    pub(super) max_attempts: u32,
}

impl Report {
    pub(super) fn line(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "rebound: {text}");
    }

    fn json(&self, value: serde_json::Value) {
        let _ = writeln!(std::io::stderr().lock(), "{value}");
    }

    pub(super) fn retrying(&self, attempt: u32, exit: &ChildExit, delay: Duration) {
        if self.json {
            self.json(serde_json::json!({
                "attempt": attempt,
                "max_attempts": self.max_attempts,
                "exit_code": exit.code,
                "killed_by": exit.killed_by,
                "outcome": "retry",
                "delay_ms": delay_ms(delay),
            }));
        } else {
            self.line(&format!(
                "attempt {attempt}/{} failed ({}); retrying in {}",
                self.max_attempts,
                describe(exit),
                humantime::format_duration(round_delay(delay))
            ));
        }
    }

    pub(super) fn succeeded(&self, attempt: u32, exit: &ChildExit) {
        if self.json {
            self.json(serde_json::json!({
                "attempt": attempt,
                "max_attempts": self.max_attempts,
                "exit_code": exit.code,
                "killed_by": null,
                "outcome": "success",
            }));
        } else if attempt > 1 {
            self.line(&format!(
                "attempt {attempt}/{} succeeded",
                self.max_attempts
            ));
        }
    }

    /// `exit` is how the last attempt ended, if it ran to its end.
    pub(super) fn stopped(
        &self,
        attempt: u32,
        exit: Option<&ChildExit>,
        outcome: &str,
        signal: Option<i32>,
    ) {
        if self.json {
            self.json(serde_json::json!({
                "attempt": attempt,
                "max_attempts": self.max_attempts,
                "exit_code": exit.map(|e| e.code),
                "killed_by": exit.and_then(|e| e.killed_by),
                "outcome": outcome,
                "signal": signal,
            }));
        } else if let Some(sig) = signal {
            self.line(&format!(
                "received signal {sig} during attempt {attempt}; forwarded it and stopped retrying"
            ));
        }
    }

    pub(super) fn interrupted(&self, attempt: u32, signal: i32) {
        if self.json {
            self.json(serde_json::json!({
                "attempt": attempt,
                "max_attempts": self.max_attempts,
                "exit_code": null,
                "killed_by": null,
                "outcome": "interrupted",
                "signal": signal,
            }));
        } else {
            self.line(&format!(
                "received signal {signal} while waiting to retry after attempt {attempt}; stopping"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_a_signal_only_when_one_ended_the_child() {
        let exit = |code, killed_by| ChildExit {
            code,
            signalled: None,
            killed_by,
        };
        assert_eq!(
            describe(&exit(143, Some(15))),
            "exit code 143, killed by signal 15"
        );
        assert_eq!(describe(&exit(143, None)), "exit code 143");
        assert_eq!(describe(&exit(1, None)), "exit code 1");
    }

    #[test]
    fn delays_are_rounded_for_humans_and_json() {
        let d = Duration::from_nanos(1_500_123);
        assert_eq!(round_delay(d), Duration::from_micros(1500));
        assert_eq!(
            round_delay(Duration::from_nanos(97_312_456)),
            Duration::from_millis(97)
        );
        assert_eq!(delay_ms(d), 1.5);
        assert_eq!(delay_ms(Duration::from_nanos(97_312_456)), 97.312);
    }
}

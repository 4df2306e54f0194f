//! The outcome of every step of an init.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::events::ms;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It succeeded.
    Succeeded,
    /// It failed and stopped the init (`on_failure: fail`).
    Failed,
    /// Its timeout (the step's or the action's) ran out and stopped the init.
    TimedOut,
    /// It failed; `on_failure: warn` let the init go on.
    Warned,
    /// It failed; `on_failure: continue` let the init go on quietly.
    Continued,
    /// It never ran (an earlier step stopped the init).
    NotRun,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "ok",
            Outcome::Failed => "FAILED",
            Outcome::TimedOut => "TIMEOUT",
            Outcome::Warned => "warned",
            Outcome::Continued => "continued",
            Outcome::NotRun => "not run",
        }
    }
}

/// One step's line in the [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// The step id.
    pub id: String,
    /// The action it uses.
    pub action: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts made, over every run of the init.
    pub attempts: u32,
    /// Time spent in the step, over every run of the init.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
    /// The last error, for a step that failed.
    pub error: Option<String>,
}

/// Every step's outcome, attempts and time, plus the restarts used.
///
/// Displays as an aligned table, one step a line:
///
/// ```
/// use rebound_init::orchestrator::{Outcome, StepReport, Summary};
/// use std::time::Duration;
///
/// let summary = Summary {
///     steps: vec![StepReport {
///         id: "wait-db".into(),
///         action: "init.wait_tcp",
///         outcome: Outcome::Succeeded,
///         attempts: 2,
///         elapsed: Duration::from_millis(1250),
///         error: None,
///     }],
///     restarts: 0,
///     elapsed: Duration::from_millis(1300),
/// };
/// assert!(summary.is_success());
/// assert!(summary.to_string().contains("wait-db"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// One report per step, in spec order.
    pub steps: Vec<StepReport>,
    /// Times the init was resumed by `errors.on_init_failure`.
    pub restarts: u32,
    /// Time from the start of the init to its end.
    #[serde(rename = "elapsed_ms", serialize_with = "ms")]
    pub elapsed: Duration,
}

impl Summary {
    /// Whether no step stopped the init.
    pub fn is_success(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Failed | Outcome::TimedOut))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
        for step in &self.steps {
            let attempts = match step.attempts {
                1 => "1 attempt".to_owned(),
                n => format!("{n} attempts"),
            };
            write!(
                f,
                "  {:<9} {:<width$}  {:<12} {}",
                step.outcome.label(),
                step.id,
                attempts,
                format_elapsed(step.elapsed),
            )?;
            if let Some(error) = &step.error {
                write!(f, "  ({error})")?;
            }
            writeln!(f)?;
        }
        let restarts = match self.restarts {
            0 => String::new(),
            1 => ", 1 restart".to_owned(),
            n => format!(", {n} restarts"),
        };
        write!(f, "  total {}{restarts}", format_elapsed(self.elapsed))
    }
}

/// `850ms`, `1.25s`, `2m05s`: short and stable for logs.
pub(crate) fn format_elapsed(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let secs = d.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, outcome: Outcome) -> StepReport {
        StepReport {
            id: id.into(),
            action: "init.run",
            outcome,
            attempts: 3,
            elapsed: Duration::from_millis(1500),
            error: (outcome != Outcome::Succeeded).then(|| "exit 1".to_owned()),
        }
    }

    #[test]
    fn failed_or_timed_out_step_is_not_success() {
        let mut summary = Summary {
            steps: vec![
                report("a", Outcome::Succeeded),
                report("b", Outcome::Warned),
            ],
            restarts: 1,
            elapsed: Duration::from_secs(2),
        };
        assert!(summary.is_success());
        summary.steps.push(report("c", Outcome::TimedOut));
        assert!(!summary.is_success());
    }

    #[test]
    fn display_lists_every_step() {
        let summary = Summary {
            steps: vec![
                report("a", Outcome::Succeeded),
                report("long-id", Outcome::Failed),
            ],
            restarts: 2,
            elapsed: Duration::from_secs(75),
        };
        let text = summary.to_string();
        assert_eq!(
            text,
            "  ok        a        3 attempts   1.50s\n  FAILED    long-id  3 attempts   1.50s  (exit 1)\n  total 1m15s, 2 restarts"
        );
    }

    #[test]
    fn elapsed_formats() {
        assert_eq!(format_elapsed(Duration::from_millis(7)), "7ms");
        assert_eq!(format_elapsed(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_elapsed(Duration::from_secs(125)), "2m05s");
    }
}

//! What the orchestrator reports while it runs, for progress displays and
//! library users. Every event serializes to one JSON object with an
//! `event` field naming its kind (`rebound init --json` prints them).

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::actions::Stream;
use crate::spec::OnFailure;

/// Receives every event, in order, from the task running the init.
pub type EventSink = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;

/// One thing that happened during an init.
///
/// ```
/// use rebound_init::events::Event;
/// let event = Event::StepSucceeded {
///     step: "wait-db".into(),
///     attempts: 2,
///     elapsed: std::time::Duration::from_millis(1500),
/// };
/// assert_eq!(
///     serde_json::to_string(&event).unwrap(),
///     r#"{"event":"step_succeeded","step":"wait-db","attempts":2,"elapsed_ms":1500}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A step begins (again, after an init restart).
    StepStarted {
        /// The step id.
        step: String,
        /// The action (`init.wait_tcp` ...).
        action: &'static str,
        /// What the step waits for or does.
        target: String,
        /// Attempts allowed: `retry + 1`, or a `retry:` policy's
        /// `attempts` (`u64::MAX` for `attempts: forever`).
        max_attempts: u64,
        /// A bound on the whole step, when it has one.
        #[serde(rename = "timeout_ms", serialize_with = "opt_ms")]
        timeout: Option<Duration>,
    },
    /// A line a command of the step printed.
    Output {
        /// The step id.
        step: String,
        /// `stdout` or `stderr`.
        #[serde(serialize_with = "stream_name")]
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// One attempt failed.
    AttemptFailed {
        /// The step id.
        step: String,
        /// Which attempt (1 = the first).
        attempt: u32,
        /// Why it failed.
        error: String,
        /// The pause before the next attempt; `None` when no attempt
        /// follows (retries used up, or a permanent error).
        #[serde(rename = "next_delay_ms", serialize_with = "opt_ms")]
        next_delay: Option<Duration>,
    },
    /// The step succeeded.
    StepSucceeded {
        /// The step id.
        step: String,
        /// Attempts it took (over all init runs).
        attempts: u32,
        /// Time spent in it (over all init runs).
        #[serde(rename = "elapsed_ms", serialize_with = "ms")]
        elapsed: Duration,
    },
    /// The step failed and its `on_failure` is `fail`.
    StepFailed {
        /// The step id.
        step: String,
        /// Attempts made in this run of the step.
        attempts: u32,
        /// Time spent in this run of the step.
        #[serde(rename = "elapsed_ms", serialize_with = "ms")]
        elapsed: Duration,
        /// Why.
        error: String,
        /// Whether a timeout (the step's or the action's own) ended it.
        timed_out: bool,
    },
    /// The step failed; its `on_failure` (`warn` or `continue`) lets the
    /// init go on.
    StepSkipped {
        /// The step id.
        step: String,
        /// `warn` (show it) or `continue` (quiet).
        on_failure: OnFailure,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        #[serde(rename = "elapsed_ms", serialize_with = "ms")]
        elapsed: Duration,
        /// Why it failed.
        error: String,
        /// Whether a timeout ended it.
        timed_out: bool,
    },
    /// The init failed and `errors.on_init_failure` resumes it.
    InitRestarted {
        /// Which restart this is (1 = the first).
        restart: u32,
        /// Restarts allowed (`max_retries`).
        max_retries: u32,
        /// The pause before resuming.
        #[serde(rename = "delay_ms", serialize_with = "ms")]
        delay: Duration,
        /// The step the init resumes at (the one that failed).
        resume_at: String,
    },
    /// The init ended.
    InitFinished {
        /// Whether every step with `on_failure: fail` succeeded.
        ok: bool,
        /// Restarts used.
        restarts: u32,
        /// Time since the init began.
        #[serde(rename = "elapsed_ms", serialize_with = "ms")]
        elapsed: Duration,
    },
}

pub(crate) fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

fn stream_name<S: Serializer>(stream: &Stream, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_failed_serializes_next_delay_or_null() {
        let mut event = Event::AttemptFailed {
            step: "db".into(),
            attempt: 1,
            error: "connection refused".into(),
            next_delay: Some(Duration::from_millis(250)),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "attempt_failed");
        assert_eq!(json["next_delay_ms"], 250);
        if let Event::AttemptFailed { next_delay, .. } = &mut event {
            *next_delay = None;
        }
        assert!(serde_json::to_value(&event).unwrap()["next_delay_ms"].is_null());
    }

    #[test]
    fn output_and_skipped_serialize_names() {
        let out = Event::Output {
            step: "m".into(),
            stream: Stream::Stderr,
            line: "hi".into(),
        };
        assert_eq!(serde_json::to_value(&out).unwrap()["stream"], "stderr");
        let skipped = Event::StepSkipped {
            step: "m".into(),
            on_failure: OnFailure::Warn,
            attempts: 1,
            elapsed: Duration::ZERO,
            error: "x".into(),
            timed_out: false,
        };
        assert_eq!(
            serde_json::to_value(&skipped).unwrap()["on_failure"],
            "warn"
        );
    }
}

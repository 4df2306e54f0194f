//! The init runner.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::{InitError, InitErrorKind};
use super::policy::Policies;
use super::summary::{Outcome, StepReport, Summary, format_elapsed};
use crate::actions::{ActionContext, ActionError, ActionErrorKind, OutputSink};
use crate::events::{Event, EventSink};
use crate::spec::{ErrorsSpec, InitFailureAction, OnFailure, Spec, Step};

/// Runs the steps of a [`Spec`] in order.
///
/// - A step gets `retry + 1` attempts; between them it waits with the step
///   backoff of [`Policies`]; an error the action marks permanent ends the
///   step at once.
/// - A step's `timeout` bounds the step as a whole, retries and pauses
///   included; the running attempt is dropped when it runs out.
/// - A failed step with `on_failure: warn` or `continue` lets the init go
///   on; with `fail` it stops the init, and `errors.on_init_failure`
///   decides: `fail` ends it, `restart` and `backoff` resume it at the
///   failed step (steps that succeeded never run again), up to
///   `max_retries` times.
///
/// Cancel by dropping the future of [`Runner::run`].
///
/// ```
/// use rebound_init::events::Event;
/// use rebound_init::orchestrator::Runner;
/// use rebound_init::spec::Spec;
/// use std::sync::{Arc, Mutex};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - id: hello\n      uses: init.run\n      with: { command: 'echo hi' }\n",
///     "inline.yaml",
///     None,
/// )?;
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let summary = Runner::new(&spec)
///     .on_event(move |e: &Event| sink.lock().unwrap().push(e.clone()))
///     .run()
///     .await?;
/// assert!(summary.is_success());
/// assert!(seen.lock().unwrap().iter().any(|e| matches!(e, Event::Output { line, .. } if line == "hi")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runner {
    steps: Vec<Step>,
    errors: ErrorsSpec,
    policies: Policies,
    sink: Option<EventSink>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("steps", &self.steps.len())
            .field("errors", &self.errors)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// How one run of a step ended, before `on_failure` is applied.
struct StepFailure {
    message: String,
    timed_out: bool,
    exit_code: Option<i32>,
}

impl Runner {
    /// A runner for the steps and failure policy of `spec`, with the
    /// default [`Policies`] and no event sink.
    ///
    /// ```
    /// # use rebound_init::{orchestrator::Runner, spec::Spec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = Spec::from_yaml("init:\n  steps: []\n", "empty.yaml", None)?;
    /// let summary = Runner::new(&spec).run().await?;
    /// assert!(summary.is_success() && summary.steps.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn new(spec: &Spec) -> Self {
        Self {
            steps: spec.init.steps.clone(),
            errors: spec.errors.clone(),
            policies: Policies::default(),
            sink: None,
        }
    }

    /// Sends every [`Event`] to `sink`, in order, from the task running the
    /// init. Keep it quick (forward to a channel for slow work).
    ///
    /// ```
    /// # use rebound_init::{events::Event, orchestrator::Runner, spec::Spec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = Spec::from_yaml(
    ///     "init:\n  steps:\n    - id: config\n      uses: init.run\n      with: { command: 'true' }\n",
    ///     "inline.yaml",
    ///     None,
    /// )?;
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    /// let runner = Runner::new(&spec).on_event(move |e| {
    ///     let _ = tx.send(e.clone());
    /// });
    /// runner.run().await?;
    /// let first = rx.recv().await.unwrap();
    /// assert!(matches!(first, Event::StepStarted { step, .. } if step == "config"));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn on_event(mut self, sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Replaces the backoff settings.
    ///
    /// ```
    /// # use rebound_init::{orchestrator::{Outcome, Policies, Runner}, spec::Spec};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = Spec::from_yaml(
    ///     "init:\n  steps:\n    - id: flaky\n      uses: init.run\n      with: { command: 'exit 1' }\n      retry: 2\n      on_failure: continue\n",
    ///     "inline.yaml",
    ///     None,
    /// )?;
    /// let fast = rebound_retry::ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_millis(1))
    ///     .with_max_delay(Duration::from_millis(2))
    ///     .build()?;
    /// let summary = Runner::new(&spec)
    ///     .with_policies(Policies::default().with_step_backoff(fast))
    ///     .run()
    ///     .await?;
    /// assert_eq!(summary.steps[0].attempts, 3);
    /// assert_eq!(summary.steps[0].outcome, Outcome::Continued);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    fn emit(&self, event: Event) {
        if let Some(sink) = &self.sink {
            sink(&event);
        }
    }

    /// Runs the init to its end: every step done (the summary), or a step
    /// that failed for good (the error, with the summary). Drop the future
    /// to cancel: the running attempt is dropped with it.
    ///
    /// ```
    /// # use rebound_init::{orchestrator::{Outcome, Runner}, spec::Spec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = Spec::from_yaml(
    ///     "init:\n  steps:\n    - id: maybe\n      uses: init.run\n      with: { command: 'exit 1' }\n      on_failure: continue\n",
    ///     "inline.yaml",
    ///     None,
    /// )?;
    /// let summary = Runner::new(&spec).run().await?;
    /// assert_eq!(summary.steps[0].outcome, Outcome::Continued);
    /// # Ok(()) }
    /// ```
    pub async fn run(&self) -> Result<Summary, InitError> {
        let started = Instant::now();
        let mut reports: Vec<StepReport> = self
            .steps
            .iter()
            .map(|s| StepReport {
                id: s.id.clone(),
                action: s.action.name(),
                outcome: Outcome::NotRun,
                attempts: 0,
                elapsed: Duration::ZERO,
                error: None,
            })
            .collect();
        let mut next = 0;
        let mut restarts = 0;
        let policy = &self.errors.on_init_failure;
        loop {
            let Some((index, failure)) = self.run_from(next, &mut reports).await else {
                let elapsed = started.elapsed();
                self.emit(Event::InitFinished {
                    ok: true,
                    restarts,
                    elapsed,
                });
                return Ok(Summary {
                    steps: reports,
                    restarts,
                    elapsed,
                });
            };
            let give_up =
                policy.action == InitFailureAction::Fail || restarts >= policy.max_retries;
            if give_up {
                let elapsed = started.elapsed();
                self.emit(Event::InitFinished {
                    ok: false,
                    restarts,
                    elapsed,
                });
                let step = self.steps[index].id.clone();
                let after = match restarts {
                    0 => String::new(),
                    1 => " (after 1 restart)".to_owned(),
                    n => format!(" (after {n} restarts)"),
                };
                return Err(InitError {
                    kind: if failure.timed_out {
                        InitErrorKind::StepTimedOut
                    } else {
                        InitErrorKind::StepFailed
                    },
                    message: format!("init failed at step `{step}`: {}{after}", failure.message),
                    step,
                    exit_code: failure.exit_code,
                    summary: Summary {
                        steps: reports,
                        restarts,
                        elapsed,
                    },
                });
            }
            restarts += 1;
            let delay = match policy.action {
                InitFailureAction::Backoff => self.policies.init_backoff().sample(restarts),
                _ => self.policies.restart_pause(),
            };
            tracing::debug!(
                step = %self.steps[index].id,
                restart = restarts,
                max_retries = policy.max_retries,
                delay_ms = delay.as_millis() as u64,
                "init failed; resuming at the failed step"
            );
            self.emit(Event::InitRestarted {
                restart: restarts,
                max_retries: policy.max_retries,
                delay,
                resume_at: self.steps[index].id.clone(),
            });
            tokio::time::sleep(delay).await;
            next = index;
        }
    }

    /// Runs the steps from `first` on; returns the index of a step that
    /// stopped the init, with why.
    async fn run_from(
        &self,
        first: usize,
        reports: &mut [StepReport],
    ) -> Option<(usize, StepFailure)> {
        for (index, step) in self.steps.iter().enumerate().skip(first) {
            let report = &mut reports[index];
            let began = Instant::now();
            let mut attempts = 0;
            let result = self.run_step(step, &mut attempts).await;
            let elapsed = began.elapsed();
            report.attempts += attempts;
            report.elapsed += elapsed;
            let failure = match result {
                Ok(()) => {
                    report.outcome = Outcome::Succeeded;
                    report.error = None;
                    self.emit(Event::StepSucceeded {
                        step: step.id.clone(),
                        attempts: report.attempts,
                        elapsed: report.elapsed,
                    });
                    continue;
                }
                Err(failure) => failure,
            };
            report.error = Some(failure.message.clone());
            match step.on_failure {
                OnFailure::Fail => {
                    report.outcome = if failure.timed_out {
                        Outcome::TimedOut
                    } else {
                        Outcome::Failed
                    };
                    self.emit(Event::StepFailed {
                        step: step.id.clone(),
                        attempts,
                        elapsed,
                        error: failure.message.clone(),
                        timed_out: failure.timed_out,
                    });
                    return Some((index, failure));
                }
                policy @ (OnFailure::Warn | OnFailure::Continue) => {
                    report.outcome = if policy == OnFailure::Warn {
                        // With a sink, the sink shows the warning (the CLI
                        // does); without one, the log is the only channel.
                        if self.sink.is_none() {
                            tracing::warn!(step = %step.id, error = %failure.message, "step failed; going on (on_failure: warn)");
                        }
                        Outcome::Warned
                    } else {
                        Outcome::Continued
                    };
                    self.emit(Event::StepSkipped {
                        step: step.id.clone(),
                        on_failure: policy,
                        attempts,
                        elapsed,
                        error: failure.message,
                        timed_out: failure.timed_out,
                    });
                }
            }
        }
        None
    }

    /// One run of a step: attempts with backoff, bounded by its timeout.
    async fn run_step(&self, step: &Step, attempts: &mut u32) -> Result<(), StepFailure> {
        self.emit(Event::StepStarted {
            step: step.id.clone(),
            action: step.action.name(),
            target: step.action.describe(),
            max_attempts: u64::from(step.retry) + 1,
            timeout: step.timeout,
        });
        let mut last_error: Option<ActionError> = None;
        let ctx = ActionContext::new(step.id.clone(), self.output_sink());
        let result = match step.timeout {
            None => self.attempts(step, &ctx, attempts, &mut last_error).await,
            Some(limit) => {
                match tokio::time::timeout(
                    limit,
                    self.attempts(step, &ctx, attempts, &mut last_error),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        // What the attempt that was cut off last saw (a wait
                        // action's "connection refused"), else the error of
                        // the attempt before it.
                        let last = match (ctx.last_problem.get(), &last_error) {
                            (Some(problem), _) => format!("; last error: {problem}"),
                            (None, Some(err)) => format!("; last error: {err}"),
                            (None, None) => String::new(),
                        };
                        let tries = match *attempts {
                            1 => "1 attempt".to_owned(),
                            n => format!("{n} attempts"),
                        };
                        return Err(StepFailure {
                            message: format!(
                                "step `{}` timed out after {} waiting for {} ({tries}{last})",
                                step.id,
                                format_elapsed(limit),
                                step.action.describe(),
                            ),
                            timed_out: true,
                            exit_code: None,
                        });
                    }
                }
            }
        };
        result.map_err(|err| StepFailure {
            // The action's own timeout message names what it waited for.
            message: if err.is_timeout() {
                format!("step `{}` timed out: {err}", step.id)
            } else {
                err.to_string()
            },
            timed_out: err.is_timeout(),
            exit_code: err.exit_code(),
        })
    }

    /// Attempts until one succeeds, the retries are used up, or an error is
    /// permanent. Counts attempts and keeps the last error in the caller's
    /// variables, so that they survive when the step timeout drops this
    /// future.
    async fn attempts(
        &self,
        step: &Step,
        ctx: &ActionContext,
        attempts: &mut u32,
        last_error: &mut Option<ActionError>,
    ) -> Result<(), ActionError> {
        loop {
            *attempts = attempts.saturating_add(1);
            ctx.last_problem.clear();
            let err = match step.action.attempt(ctx).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            let more = *attempts <= step.retry && err.kind() != ActionErrorKind::Permanent;
            let next_delay = more.then(|| self.policies.step_backoff().sample(*attempts));
            self.emit(Event::AttemptFailed {
                step: step.id.clone(),
                attempt: *attempts,
                error: err.to_string(),
                next_delay,
            });
            match next_delay {
                None => return Err(err),
                Some(delay) => {
                    *last_error = Some(err);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn output_sink(&self) -> OutputSink {
        let sink = self.sink.clone();
        Arc::new(move |step, stream, line| {
            if let Some(sink) = &sink {
                sink(&Event::Output {
                    step: step.to_owned(),
                    stream,
                    line: line.to_owned(),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_future_is_send_so_it_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let spec = Spec::from_yaml("init:\n  steps: []\n", "t.yaml", None).unwrap();
        let runner = Runner::new(&spec).on_event(|_| {});
        assert_send(&runner.run());
    }
}

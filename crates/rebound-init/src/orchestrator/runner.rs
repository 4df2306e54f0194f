//! The init runner.

use std::sync::Arc;
use std::time::Duration;

use rebound_retry::{AnyBackoff, Exponential, PolicyError, RetryError, Retryable, StopReason};
use tokio::time::Instant;

use super::error::{InitError, InitErrorKind};
use super::policy::Policies;
use super::summary::{Outcome, StepReport, Summary, format_elapsed};
use crate::actions::{ActionContext, ActionError, ActionErrorKind, OutputSink};
use crate::events::{Event, EventSink};
use crate::spec::{ErrorsSpec, InitFailureAction, OnFailure, Spec, Step};

/// Runs the steps of a [`Spec`] in order.
///
/// - Each step runs on rebound-retry's async runner
///   ([`Retryable`](rebound_retry::Retryable)). With `retry: N` it gets
///   `N + 1` attempts and waits the step backoff of [`Policies`] between
///   them; with a `retry:` policy mapping, the attempts, backoff, deadline
///   and attempt timeout its policy says. An error the action marks
///   permanent ends the step at once.
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
        // The delays before restarts, from rebound-retry's backoff
        // iterator (`backoff`) or a fixed pause (`restart`).
        let mut restart_delays = self.restart_delays();
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
            let delay = restart_delays.next(restarts);
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
            max_attempts: max_attempts(step),
            timeout: step.timeout,
        });
        let mut last_error: Option<String> = None;
        let ctx = ActionContext::new(step.id.clone(), self.output_sink());
        let Some(limit) = step.timeout else {
            return self.attempts(step, &ctx, attempts, &mut last_error).await;
        };
        match tokio::time::timeout(limit, self.attempts(step, &ctx, attempts, &mut last_error))
            .await
        {
            Ok(result) => result,
            Err(_) => {
                // What the attempt that was cut off last saw (a wait
                // action's "connection refused"), else the error of the
                // attempt before it.
                Err(StepFailure {
                    message: format!(
                        "step `{}` timed out after {} waiting for {} ({})",
                        step.id,
                        format_elapsed(limit),
                        step.action.describe(),
                        tries_and_last(*attempts, &ctx, last_error.as_deref()),
                    ),
                    timed_out: true,
                    exit_code: None,
                })
            }
        }
    }

    /// Attempts on rebound-retry's async runner until one succeeds, the
    /// policy stops (retries used up, its deadline), or an error is
    /// permanent. Counts attempts and keeps the last error's text in the
    /// caller's variables, so that they survive when the step timeout drops
    /// this future.
    async fn attempts(
        &self,
        step: &Step,
        ctx: &ActionContext,
        attempts: &mut u32,
        last_error: &mut Option<String>,
    ) -> Result<(), StepFailure> {
        let plan = StepPlan::of(step, &self.policies).map_err(|err| StepFailure {
            message: format!("step `{}`: invalid retry policy: {err}", step.id),
            timed_out: false,
            exit_code: None,
        })?;
        let attempt_timeout = plan.attempt_timeout;
        let op = || {
            *attempts = attempts.saturating_add(1);
            ctx.last_problem.clear();
            attempt(step, ctx, attempt_timeout)
        };
        let notify = |err: &ActionError, attempt: u32, delay: Duration| {
            self.emit(Event::AttemptFailed {
                step: step.id.clone(),
                attempt,
                error: err.to_string(),
                next_delay: Some(delay),
            });
            *last_error = Some(err.to_string());
        };
        let mut call = op
            .retry(plan.delays)
            .when(|err: &ActionError| err.kind() != ActionErrorKind::Permanent)
            .notify(notify)
            .name(step.id.clone());
        if let Some(deadline) = plan.deadline {
            call = call.deadline(deadline);
        }
        let Err(stopped) = call.await else {
            return Ok(());
        };
        Err(self.stopped(step, ctx, stopped, plan.deadline, last_error.as_deref()))
    }

    /// The failure of a step whose retried call stopped: the last attempt's
    /// `AttemptFailed` (no attempt follows), then why the step failed.
    fn stopped(
        &self,
        step: &Step,
        ctx: &ActionContext,
        stopped: RetryError<ActionError>,
        deadline: Option<Duration>,
        earlier: Option<&str>,
    ) -> StepFailure {
        let attempts = stopped.attempts();
        let reason = stopped.reason();
        // An attempt cut by the policy's deadline returned no error of its
        // own; an attempt that returned one is reported.
        let cut = stopped.last_attempt_timed_out();
        let last = if cut { None } else { stopped.into_last_error() };
        if let Some(err) = &last {
            self.emit(Event::AttemptFailed {
                step: step.id.clone(),
                attempt: attempts,
                error: err.to_string(),
                next_delay: None,
            });
        }
        match (reason, deadline) {
            (StopReason::Deadline, Some(deadline)) => {
                let text = last.as_ref().map(ToString::to_string);
                StepFailure {
                    message: format!(
                        "step `{}` ran out of its retry deadline ({}) waiting for {} ({})",
                        step.id,
                        format_elapsed(deadline),
                        step.action.describe(),
                        tries_and_last(attempts, ctx, text.as_deref().or(earlier)),
                    ),
                    timed_out: true,
                    exit_code: last.as_ref().and_then(ActionError::exit_code),
                }
            }
            _ => match last {
                Some(err) => StepFailure {
                    // The action's own timeout message names what it waited
                    // for.
                    message: if err.is_timeout() {
                        format!("step `{}` timed out: {err}", step.id)
                    } else {
                        err.to_string()
                    },
                    timed_out: err.is_timeout(),
                    exit_code: err.exit_code(),
                },
                None => StepFailure {
                    message: format!("step `{}`: {reason} after {attempts} attempts", step.id),
                    timed_out: false,
                    exit_code: None,
                },
            },
        }
    }

    /// The delays before init restarts.
    fn restart_delays(&self) -> RestartDelays {
        match self.errors.on_init_failure.action {
            InitFailureAction::Backoff => {
                RestartDelays::Backoff(self.policies.init_backoff().clone())
            }
            _ => RestartDelays::Pause(self.policies.restart_pause()),
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

/// One attempt of a step's action, cut after the policy's
/// `attempt_timeout` when it has one (a cut attempt is a transient timeout
/// error, retried like the action's own timeout).
async fn attempt(
    step: &Step,
    ctx: &ActionContext,
    timeout: Option<Duration>,
) -> Result<(), ActionError> {
    let Some(limit) = timeout else {
        return step.action.attempt(ctx).await;
    };
    match tokio::time::timeout(limit, step.action.attempt(ctx)).await {
        Ok(result) => result,
        Err(_) => {
            let last = ctx
                .last_problem
                .get()
                .map(|p| format!("; last error: {p}"))
                .unwrap_or_default();
            Err(ActionError::timed_out(format!(
                "attempt timed out after {} (retry.attempt_timeout) waiting for {}{last}",
                format_elapsed(limit),
                step.action.describe(),
            )))
        }
    }
}

/// `N attempts; last error: ...` for a step that ran out of time: what the
/// cut attempt last saw, else the error of the attempt before it.
fn tries_and_last(attempts: u32, ctx: &ActionContext, earlier: Option<&str>) -> String {
    let last = match (ctx.last_problem.get(), earlier) {
        (Some(problem), _) => format!("; last error: {problem}"),
        (None, Some(err)) => format!("; last error: {err}"),
        (None, None) => String::new(),
    };
    match attempts {
        1 => format!("1 attempt{last}"),
        n => format!("{n} attempts{last}"),
    }
}

/// The attempts a step may make, for [`Event::StepStarted`]: `retry + 1`,
/// a policy's `attempts`, or `u64::MAX` for `attempts: forever`.
fn max_attempts(step: &Step) -> u64 {
    match &step.retry_policy {
        Some(policy) => policy.attempts.map_or(u64::MAX, u64::from),
        None => u64::from(step.retry) + 1,
    }
}

/// How a step is retried, on rebound-retry's types.
struct StepPlan {
    delays: StepDelays,
    deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
}

impl StepPlan {
    fn of(step: &Step, policies: &Policies) -> Result<StepPlan, PolicyError> {
        Ok(match &step.retry_policy {
            Some(policy) => StepPlan {
                delays: StepDelays::Policy(policy.build()?),
                deadline: policy.deadline(),
                attempt_timeout: policy.attempt_timeout(),
            },
            None => StepPlan {
                delays: StepDelays::Count {
                    backoff: policies.step_backoff().clone(),
                    given: 0,
                    retries: step.retry,
                },
                deadline: None,
                attempt_timeout: None,
            },
        })
    }
}

/// The delays between a step's attempts: one per retry.
enum StepDelays {
    /// ZLayer's `retry: N`: N delays of the runner's step backoff (its own
    /// attempt limit, if any, does not count: the step's `retry` does).
    Count {
        backoff: Exponential,
        given: u32,
        retries: u32,
    },
    /// A `retry:` mapping: the backoff it describes, attempts included.
    Policy(AnyBackoff),
}

impl Iterator for StepDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match self {
            StepDelays::Count {
                backoff,
                given,
                retries,
            } => {
                if *given >= *retries {
                    return None;
                }
                *given += 1;
                Some(backoff.next().unwrap_or_else(|| backoff.sample(*given)))
            }
            StepDelays::Policy(backoff) => backoff.next(),
        }
    }
}

/// The delays before init restarts (their number is `max_retries`).
enum RestartDelays {
    /// `action: backoff`: rebound-retry's backoff iterator (the restart
    /// preset by default).
    Backoff(Exponential),
    /// `action: restart`: a fixed pause.
    Pause(Duration),
}

impl RestartDelays {
    /// The delay before restart `n` (1 for the first).
    fn next(&mut self, n: u32) -> Duration {
        match self {
            // A backoff given with an attempt limit of its own keeps its
            // cap once its delays run out: `max_retries` counts restarts.
            RestartDelays::Backoff(backoff) => backoff.next().unwrap_or_else(|| backoff.sample(n)),
            RestartDelays::Pause(pause) => *pause,
        }
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

//! The delays an init uses: between a step's attempts, and before an init
//! restart.

use std::time::Duration;

use rebound_retry::{Exponential, ExponentialBuilder, PolicyError};

/// The backoff settings of a [`Runner`](super::Runner): rebound-retry
/// backoffs whose delays the runner takes (a step with a `retry:` policy
/// mapping uses the backoff its policy describes instead).
///
/// # Default
/// - between a step's attempts (`retry: N`): 100 ms, x2, capped at 5 s,
///   equal jitter (rebound-retry's `default` preset, with the attempt count
///   taken from the step);
/// - `errors.on_init_failure.action: restart`: a fixed 500 ms pause;
/// - `action: backoff`: 1 s, 2 s, 4 s ... capped at 60 s, equal jitter
///   (rebound-retry's [`presets::restart`](rebound_retry::presets::restart)).
///
/// ```
/// use rebound_init::orchestrator::Policies;
/// use std::time::Duration;
///
/// let policies = Policies::default();
/// assert_eq!(policies.init_backoff().nominal(1), Duration::from_secs(1));
/// assert_eq!(policies.init_backoff().nominal(3), Duration::from_secs(4));
/// assert_eq!(policies.init_backoff().nominal(10), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct Policies {
    step_backoff: Exponential,
    init_backoff: Exponential,
    restart_pause: Duration,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            step_backoff: default_step_backoff(),
            init_backoff: default_init_backoff(),
            restart_pause: Duration::from_millis(500),
        }
    }
}

fn default_step_backoff() -> Exponential {
    // A constant, valid policy: building it cannot fail (tested below).
    match rebound_retry::presets::default().forever().build() {
        Ok(backoff) => backoff,
        Err(_) => unreachable_policy(),
    }
}

fn default_init_backoff() -> Exponential {
    match init_backoff_builder().build() {
        Ok(backoff) => backoff,
        Err(_) => unreachable_policy(),
    }
}

fn init_backoff_builder() -> ExponentialBuilder {
    rebound_retry::presets::restart()
}

#[cold]
fn unreachable_policy() -> ! {
    unreachable!("the built-in backoff constants are valid")
}

impl Policies {
    /// Replaces the backoff between a step's attempts (`retry: N`). Only
    /// its delays are used: the number of attempts always comes from the
    /// step's `retry`.
    ///
    /// ```
    /// # use rebound_init::orchestrator::Policies;
    /// # use std::time::Duration;
    /// let fast = rebound_retry::ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_millis(10))
    ///     .with_max_delay(Duration::from_millis(40))
    ///     .build()?;
    /// let policies = Policies::default().with_step_backoff(fast);
    /// assert_eq!(policies.step_backoff().nominal(1), Duration::from_millis(10));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[must_use]
    pub fn with_step_backoff(mut self, backoff: Exponential) -> Self {
        self.step_backoff = backoff;
        self
    }

    /// Replaces the backoff of `action: backoff` (restart `n` waits about
    /// `nominal(n)`, jittered). The restart count comes from `max_retries`.
    ///
    /// ```
    /// # use rebound_init::orchestrator::Policies;
    /// # use std::time::Duration;
    /// let slow = rebound_retry::ExponentialBuilder::new()
    ///     .with_initial_delay(Duration::from_secs(5))
    ///     .with_max_delay(Duration::from_secs(300))
    ///     .forever()
    ///     .build()?;
    /// let policies = Policies::default().with_init_backoff(slow);
    /// assert_eq!(policies.init_backoff().nominal(2), Duration::from_secs(10));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    #[must_use]
    pub fn with_init_backoff(mut self, backoff: Exponential) -> Self {
        self.init_backoff = backoff;
        self
    }

    /// Replaces the fixed pause of `action: restart`.
    ///
    /// ```
    /// # use rebound_init::{events::Event, orchestrator::{Policies, Runner}, spec::Spec};
    /// # use std::sync::{Arc, Mutex};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = Spec::from_yaml(
    ///     "init:\n  steps:\n    - id: flaky\n      uses: init.run\n      with: { command: 'exit 1' }\nerrors:\n  on_init_failure: { action: restart, max_retries: 1 }\n",
    ///     "inline.yaml",
    ///     None,
    /// )?;
    /// let pauses = Arc::new(Mutex::new(Vec::new()));
    /// let seen = pauses.clone();
    /// let result = Runner::new(&spec)
    ///     .with_policies(Policies::default().with_restart_pause(Duration::from_millis(10)))
    ///     .on_event(move |e| {
    ///         if let Event::InitRestarted { delay, .. } = e {
    ///             seen.lock().unwrap().push(*delay);
    ///         }
    ///     })
    ///     .run()
    ///     .await;
    /// assert!(result.is_err(), "the step fails after its one restart too");
    /// assert_eq!(*pauses.lock().unwrap(), [Duration::from_millis(10)]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_restart_pause(mut self, pause: Duration) -> Self {
        self.restart_pause = pause;
        self
    }

    /// The backoff between a step's attempts.
    pub fn step_backoff(&self) -> &Exponential {
        &self.step_backoff
    }

    /// The backoff of `action: backoff`.
    pub fn init_backoff(&self) -> &Exponential {
        &self.init_backoff
    }

    /// The fixed pause of `action: restart`.
    pub fn restart_pause(&self) -> Duration {
        self.restart_pause
    }

    /// The init backoff with other bounds, e.g. for a shorter cap.
    ///
    /// ```
    /// # use rebound_init::orchestrator::Policies;
    /// # use std::time::Duration;
    /// let policies = Policies::default()
    ///     .with_init_backoff_bounds(Duration::from_millis(100), Duration::from_secs(1))?;
    /// assert_eq!(policies.init_backoff().nominal(5), Duration::from_secs(1));
    /// # Ok::<(), rebound_retry::PolicyError>(())
    /// ```
    pub fn with_init_backoff_bounds(
        self,
        initial: Duration,
        max: Duration,
    ) -> Result<Self, PolicyError> {
        let backoff = init_backoff_builder()
            .with_initial_delay(initial)
            .with_max_delay(max)
            .build()?;
        Ok(self.with_init_backoff(backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policies_build() {
        assert!(rebound_retry::presets::default().forever().build().is_ok());
        assert!(init_backoff_builder().build().is_ok());
    }

    #[test]
    fn init_backoff_doubles_from_one_second_to_a_minute_with_jitter() {
        let b = Policies::default().init_backoff().clone();
        let secs: Vec<u64> = (1..=8).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        for n in 1..=8 {
            let d = b.sample(n);
            assert!(d <= b.nominal(n) && d >= b.nominal(n) / 2, "{n}: {d:?}");
        }
    }
}

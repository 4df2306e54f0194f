//! Why an init failed.

use super::summary::Summary;

/// What stopped the init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitErrorKind {
    /// A step with `on_failure: fail` failed, and the failure policy gave up.
    StepFailed,
    /// Like [`InitErrorKind::StepFailed`], but a timeout (the step's own, or
    /// the action's `with.timeout`) ended the step.
    StepTimedOut,
}

/// An init that failed: which step, why, and the summary of every step.
///
/// ```
/// # use rebound_init::orchestrator::{InitErrorKind, Runner};
/// # use rebound_init::spec::Spec;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - id: boom\n      uses: init.run\n      with: { command: 'exit 7' }\n",
///     "inline.yaml",
///     None,
/// )?;
/// let err = Runner::new(&spec).run().await.unwrap_err();
/// assert_eq!(err.kind(), InitErrorKind::StepFailed);
/// assert_eq!(err.step(), "boom");
/// assert_eq!(err.exit_code(), Some(7));
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InitError {
    pub(crate) kind: InitErrorKind,
    pub(crate) step: String,
    pub(crate) message: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) summary: Summary,
}

impl InitError {
    /// What stopped the init.
    pub fn kind(&self) -> InitErrorKind {
        self.kind
    }

    /// The id of the step that failed.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The exit code of the failed command, for an `init.run` step.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Every step's outcome, attempts and time.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

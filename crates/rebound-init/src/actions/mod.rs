//! The init actions (`uses: init.*`): what one attempt of a step does.
//!
//! Each action lives in its own file with its parameter type (the step's
//! `with:` block, strict serde + JSON Schema) and its execution. The
//! orchestrator (see `crate::orchestrator`) owns timeouts, retries and
//! failure policies; an action only performs one attempt.
//!
//! Contract shared by every action:
//! - [`ActionSpec::attempt`] performs one attempt. Wait actions poll inside
//!   the attempt until the condition holds, their own `with.timeout` (if
//!   any) runs out, or the future is dropped.
//! - Dropping the future cancels the attempt and leaves nothing behind (a
//!   running command's whole process group is killed).
//! - Output of commands goes to [`ActionContext::output`], never straight to
//!   stdout/stderr, so the CLI can draw progress lines around it.

use std::fmt;
use std::sync::Arc;

/// Which stream a line of command output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

/// Receives each line a command prints (without the trailing newline).
pub type OutputSink = Arc<dyn Fn(&str, Stream, &str) + Send + Sync>;

/// What an attempt knows about the step it runs in.
#[derive(Clone)]
pub struct ActionContext {
    /// The step id, used as the prefix of streamed output.
    pub step_id: String,
    /// Where command output goes: `(step_id, stream, line)`.
    pub output: OutputSink,
}

impl fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionContext")
            .field("step_id", &self.step_id)
            .finish_non_exhaustive()
    }
}

/// Whether a failed attempt is worth another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionErrorKind {
    /// Another attempt may succeed (connection refused, 503, exit 1 ...).
    Transient,
    /// Another attempt will fail the same way (bad URL, 404, access denied).
    Permanent,
}

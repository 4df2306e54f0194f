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
use std::sync::{Arc, Mutex, PoisonError};

pub mod duration;
pub mod run;
pub mod s3;
pub mod wait_file;
pub mod wait_http;
pub mod wait_tcp;

#[cfg(feature = "http")]
mod http;
mod process;
#[cfg(feature = "s3")]
mod s3_io;
mod status;
#[cfg(any(feature = "http", feature = "s3"))]
mod tls;
mod validate;

use run::Run;
use s3::{S3Pull, S3Push};
use wait_file::WaitFile;
use wait_http::WaitHttp;
use wait_tcp::WaitTcp;

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
    /// Why a waiting action is not done yet, kept up to date while it
    /// polls, so that whoever cuts it off (a step or `rebound wait`
    /// timeout) can say why the target was not ready.
    pub last_problem: LastProblem,
}

impl ActionContext {
    /// A context for the step `step_id` whose command output goes to
    /// `output`, with an empty [`LastProblem`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use rebound_init::actions::ActionContext;
    /// let ctx = ActionContext::new("db", Arc::new(|_, _, _| {}));
    /// assert_eq!(ctx.step_id, "db");
    /// assert_eq!(ctx.last_problem.get(), None);
    /// ```
    pub fn new(step_id: impl Into<String>, output: OutputSink) -> Self {
        Self {
            step_id: step_id.into(),
            output,
            last_problem: LastProblem::default(),
        }
    }
}

impl fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionContext")
            .field("step_id", &self.step_id)
            .field("last_problem", &self.last_problem)
            .finish_non_exhaustive()
    }
}

/// The latest reason a waiting action gave itself for "not yet"
/// (`connection refused`, `answered 503 ...`, `not found`), shared between
/// the action and the one that waits for it. Clones share the slot.
///
/// ```
/// use rebound_init::actions::LastProblem;
/// let slot = LastProblem::default();
/// let seen = slot.clone();
/// slot.set("connection refused");
/// assert_eq!(seen.get().as_deref(), Some("connection refused"));
/// seen.clear();
/// assert_eq!(slot.get(), None);
/// ```
#[derive(Clone, Default)]
pub struct LastProblem(Arc<Mutex<Option<String>>>);

impl LastProblem {
    /// Records `problem` as the latest.
    pub fn set(&self, problem: impl Into<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem.into());
    }

    /// The latest problem, if any was recorded since the last clear.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the latest problem (a new attempt starts).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl fmt::Debug for LastProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LastProblem").field(&self.get()).finish()
    }
}

/// A context that drops command output, for the unit tests of actions.
#[cfg(test)]
pub(crate) fn quiet_ctx() -> ActionContext {
    ActionContext::new("t", Arc::new(|_, _, _| {}))
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

/// Why an attempt failed. The message never contains secrets.
///
/// ```
/// use rebound_init::actions::{ActionError, ActionErrorKind};
/// let e = ActionError::transient("connection refused").with_exit_code(1);
/// assert_eq!(e.kind(), ActionErrorKind::Transient);
/// assert_eq!(e.exit_code(), Some(1));
/// assert_eq!(e.to_string(), "connection refused");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    kind: ActionErrorKind,
    message: String,
    exit_code: Option<i32>,
    timed_out: bool,
}

impl ActionError {
    /// Another attempt may succeed.
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::transient("503").kind(), ActionErrorKind::Transient);
    /// ```
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ActionErrorKind::Transient,
            message: message.into(),
            exit_code: None,
            timed_out: false,
        }
    }

    /// Another attempt will fail the same way.
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::permanent("404").kind(), ActionErrorKind::Permanent);
    /// ```
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ActionErrorKind::Permanent,
            ..Self::transient(message)
        }
    }

    /// The action's own `with.timeout` ran out (transient).
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// let e = ActionError::timed_out("tcp db:5432 not accepting connections after 5s");
    /// assert!(e.is_timeout());
    /// assert_eq!(e.kind(), ActionErrorKind::Transient);
    /// ```
    pub fn timed_out(message: impl Into<String>) -> Self {
        Self {
            timed_out: true,
            ..Self::transient(message)
        }
    }

    /// Records the exit code of the command that failed.
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::transient("x").with_exit_code(2).exit_code(), Some(2));
    /// ```
    #[must_use]
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// Whether another attempt may succeed.
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::permanent("x").kind(), ActionErrorKind::Permanent);
    /// ```
    pub fn kind(&self) -> ActionErrorKind {
        self.kind
    }

    /// The exit code of a failed `init.run` command (128+N for signal N).
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::transient("x").exit_code(), None);
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Whether the action's own `with.timeout` ran out.
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert!(!ActionError::transient("x").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// The message (same as `Display`).
    ///
    /// ```
    /// # use rebound_init::actions::*;
    /// assert_eq!(ActionError::transient("refused").message(), "refused");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// One parsed action: what `uses:` names, with its `with:` parameters.
///
/// Not `Deserialize` itself: the spec reader dispatches on `uses` and
/// deserializes the matching parameter type.
///
/// ```
/// use rebound_init::actions::{ActionSpec, wait_tcp::WaitTcp};
/// let spec = ActionSpec::WaitTcp(WaitTcp { host: "127.0.0.1".into(), port: 5432, timeout: None });
/// assert_eq!(spec.name(), "init.wait_tcp");
/// assert_eq!(spec.describe(), "tcp 127.0.0.1:5432");
/// assert!(ActionSpec::NAMES.contains(&"init.run"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ActionSpec {
    /// `init.wait_tcp`
    WaitTcp(WaitTcp),
    /// `init.wait_http`
    WaitHttp(WaitHttp),
    /// `init.wait_file`
    WaitFile(WaitFile),
    /// `init.run`
    Run(Run),
    /// `init.s3_push`
    S3Push(S3Push),
    /// `init.s3_pull`
    S3Pull(S3Pull),
}

impl ActionSpec {
    /// Every valid `uses:` name.
    pub const NAMES: &'static [&'static str] = &[
        "init.wait_tcp",
        "init.wait_http",
        "init.wait_file",
        "init.run",
        "init.s3_push",
        "init.s3_pull",
    ];

    /// Reads the `with:` parameters of the action named `uses` straight
    /// into its parameter type (so errors keep the deserializer's
    /// positions). `uses` must be one of [`ActionSpec::NAMES`].
    pub(crate) fn deserialize_params<'de, D: serde::Deserializer<'de>>(
        uses: &str,
        d: D,
    ) -> Result<ActionSpec, D::Error> {
        use serde::Deserialize as _;
        Ok(match uses {
            "init.wait_tcp" => ActionSpec::WaitTcp(WaitTcp::deserialize(d)?),
            "init.wait_http" => ActionSpec::WaitHttp(WaitHttp::deserialize(d)?),
            "init.wait_file" => ActionSpec::WaitFile(WaitFile::deserialize(d)?),
            "init.run" => ActionSpec::Run(Run::deserialize(d)?),
            "init.s3_push" => ActionSpec::S3Push(S3Push::deserialize(d)?),
            "init.s3_pull" => ActionSpec::S3Pull(S3Pull::deserialize(d)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "action `{other}` has no parameter reader"
                )));
            }
        })
    }

    /// The `uses:` name of this action.
    ///
    /// ```
    /// # use rebound_init::actions::{ActionSpec, wait_file::WaitFile};
    /// let a = ActionSpec::WaitFile(WaitFile { path: "/x".into(), non_empty: false, timeout: None });
    /// assert_eq!(a.name(), "init.wait_file");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::WaitTcp(_) => "init.wait_tcp",
            ActionSpec::WaitHttp(_) => "init.wait_http",
            ActionSpec::WaitFile(_) => "init.wait_file",
            ActionSpec::Run(_) => "init.run",
            ActionSpec::S3Push(_) => "init.s3_push",
            ActionSpec::S3Pull(_) => "init.s3_pull",
        }
    }

    /// What the step waits for or does, for messages: `tcp 127.0.0.1:5432`,
    /// `http://x/health (expect 2xx)`, ``command `./migrate up` ``.
    ///
    /// ```
    /// # use rebound_init::actions::{ActionSpec, run::{Run, Command}};
    /// let a = ActionSpec::Run(Run {
    ///     command: Command::Exec(vec!["./migrate".into(), "up".into()]),
    ///     env: Default::default(), cwd: None, timeout: None,
    /// });
    /// assert_eq!(a.describe(), "command `./migrate up`");
    /// ```
    pub fn describe(&self) -> String {
        match self {
            ActionSpec::WaitTcp(a) => a.describe(),
            ActionSpec::WaitHttp(a) => a.describe(),
            ActionSpec::WaitFile(a) => a.describe(),
            ActionSpec::Run(a) => a.describe(),
            ActionSpec::S3Push(a) => a.describe(),
            ActionSpec::S3Pull(a) => a.describe(),
        }
    }

    /// Performs one attempt (see the module docs for the contract).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rebound_init::actions::{ActionContext, ActionSpec, wait_tcp::WaitTcp};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let ctx = ActionContext::new("db", Arc::new(|_, _, _| {}));
    /// let spec = ActionSpec::WaitTcp(WaitTcp { host: "127.0.0.1".into(), port, timeout: None });
    /// spec.attempt(&ctx).await.unwrap();
    /// # }
    /// ```
    pub async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        match self {
            ActionSpec::WaitTcp(a) => a.attempt(ctx).await,
            ActionSpec::WaitHttp(a) => a.attempt(ctx).await,
            ActionSpec::WaitFile(a) => a.attempt(ctx).await,
            ActionSpec::Run(a) => a.attempt(ctx).await,
            ActionSpec::S3Push(a) => a.attempt(ctx).await,
            ActionSpec::S3Pull(a) => a.attempt(ctx).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let spec = ActionSpec::WaitTcp(WaitTcp {
            host: "h".into(),
            port: 1,
            timeout: None,
        });
        let ctx = quiet_ctx();
        assert_send(&spec.attempt(&ctx));
    }

    #[test]
    fn every_name_reads_into_the_variant_of_that_name() {
        let with = |name: &str| match name {
            "init.wait_tcp" => "{ host: db, port: 1 }",
            "init.wait_http" => "{ url: 'http://db/' }",
            "init.wait_file" => "{ path: /x }",
            "init.run" => "{ command: 'true' }",
            "init.s3_push" => "{ source: /x, bucket: b, key: k }",
            "init.s3_pull" => "{ bucket: b, key: k, destination: /x }",
            other => panic!("no test parameters for {other}: add them here"),
        };
        for name in ActionSpec::NAMES {
            let yaml = format!(
                "init:\n  steps:\n    - id: s\n      uses: {name}\n      with: {}\n",
                with(name)
            );
            let spec = crate::spec::Spec::from_yaml(&yaml, "t.yaml", None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.init.steps[0].action.name(), *name);
        }
    }
}

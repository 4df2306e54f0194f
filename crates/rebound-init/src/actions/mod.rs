//! The init actions (`uses: init.*`): what one attempt of a step does.
//!
//! Each action is a module: its parameter type (the step's `with:` block,
//! strict serde + JSON Schema, validated while it is read) and its
//! execution. Where the execution is large or needs a cargo feature it is
//! a child module: `wait_http::io` (reqwest, feature `http`), `s3::io`
//! (object_store, feature `s3`), `run::process` (process groups). Helpers
//! the actions share sit beside them: `duration`, `status`, `validate`,
//! `tls`. The list of actions is declared once, in the `actions!`
//! invocation below; adding an action is one line there and its module.
//! The orchestrator (see `crate::orchestrator`) owns timeouts, retries and
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
pub mod matchers;
pub mod run;
pub mod s3;
pub mod wait_dns;
pub mod wait_exec;
pub mod wait_file;
pub mod wait_grpc;
pub mod wait_http;
pub mod wait_mysql;
pub mod wait_postgres;
pub mod wait_redis;
pub mod wait_tcp;
pub mod wait_unix;

mod db;
mod poll;
mod status;
#[cfg(any(feature = "http", feature = "s3"))]
mod tls;
mod validate;

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
    /// use std::sync::{Arc, Mutex};
    /// use rebound_init::actions::{ActionContext, ActionSpec, Stream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let sink = lines.clone();
    /// let ctx = ActionContext::new(
    ///     "greet",
    ///     Arc::new(move |step: &str, stream: Stream, line: &str| {
    ///         sink.lock().unwrap().push(format!("{step} {stream:?}: {line}"));
    ///     }),
    /// );
    /// let with = serde_json::json!({ "command": "echo hi; echo oops >&2" });
    /// ActionSpec::deserialize_params("init.run", with)?.attempt(&ctx).await?;
    /// let mut seen = lines.lock().unwrap().clone();
    /// seen.sort();
    /// assert_eq!(seen, ["greet Stderr: oops", "greet Stdout: hi"]);
    /// # Ok(()) }
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

/// `text`, a command line as written, with the password of every URL in it
/// and the values of the URLs' secret-looking query parameters (`token`,
/// `key`, `signature`, ...) replaced by `***`; nothing else changes. This is
/// how `init.run` and `init.wait_exec` show their commands in messages,
/// events and progress lines.
///
/// ```
/// use rebound_init::actions::redact_command;
/// assert_eq!(
///     redact_command("curl -fsS 'http://admin:hunter22@api/health?token=t0k'"),
///     "curl -fsS 'http://admin:***@api/health?token=***'"
/// );
/// assert_eq!(redact_command("pg_isready -h db"), "pg_isready -h db");
/// ```
pub fn redact_command(text: &str) -> String {
    validate::redacted_command(text)
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
/// use std::sync::Arc;
/// use rebound_init::actions::{ActionContext, ActionErrorKind, ActionSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ctx = ActionContext::new("migrate", Arc::new(|_, _, _| {}));
/// let with = serde_json::json!({ "command": "echo 'database busy' >&2; exit 3" });
/// let err = ActionSpec::deserialize_params("init.run", with)?
///     .attempt(&ctx)
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ActionErrorKind::Transient);
/// assert_eq!(err.exit_code(), Some(3));
/// assert!(err.to_string().ends_with("exited with code 3: database busy"), "{err}");
/// # Ok(()) }
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
    /// use std::io;
    /// use rebound_init::actions::{ActionError, ActionErrorKind};
    ///
    /// // A check of one's own: a refused connection may be accepted later,
    /// // a host that does not resolve will not be.
    /// fn classify(e: &io::Error) -> ActionError {
    ///     match e.kind() {
    ///         io::ErrorKind::ConnectionRefused => ActionError::transient(e.to_string()),
    ///         _ => ActionError::permanent(e.to_string()),
    ///     }
    /// }
    /// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    /// assert_eq!(classify(&refused).kind(), ActionErrorKind::Transient);
    /// let unknown = io::Error::other("no such host");
    /// assert_eq!(classify(&unknown).kind(), ActionErrorKind::Permanent);
    /// ```
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ActionErrorKind::Transient,
            message: message.into(),
            exit_code: None,
            timed_out: false,
        }
    }

    /// Another attempt will fail the same way (see
    /// [`ActionError::transient`] for an example).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ActionErrorKind::Permanent,
            ..Self::transient(message)
        }
    }

    /// The action's own `with.timeout` ran out (transient; see
    /// [`ActionError::is_timeout`] for an example).
    pub fn timed_out(message: impl Into<String>) -> Self {
        Self {
            timed_out: true,
            ..Self::transient(message)
        }
    }

    /// Records the exit code of the command that failed.
    ///
    /// ```
    /// use rebound_init::actions::ActionError;
    ///
    /// let status = std::process::Command::new("sh").args(["-c", "exit 4"]).status()?;
    /// let err = ActionError::transient(format!("seeding failed: {status}"))
    ///     .with_exit_code(status.code().unwrap_or(1));
    /// assert_eq!(err.exit_code(), Some(4));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// Whether another attempt may succeed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rebound_init::actions::{ActionContext, ActionErrorKind, ActionSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ctx = ActionContext::new("tool", Arc::new(|_, _, _| {}));
    /// let with = serde_json::json!({ "command": ["/nonexistent/rebound-doc-tool"] });
    /// let err = ActionSpec::deserialize_params("init.run", with)?
    ///     .attempt(&ctx)
    ///     .await
    ///     .unwrap_err();
    /// // A missing program stays missing: no retry will help.
    /// assert_eq!(err.kind(), ActionErrorKind::Permanent, "{err}");
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> ActionErrorKind {
        self.kind
    }

    /// The exit code of a failed `init.run` command (128+N for signal N).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rebound_init::actions::{ActionContext, ActionSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ctx = ActionContext::new("killed", Arc::new(|_, _, _| {}));
    /// let with = serde_json::json!({ "command": "kill -TERM $$" });
    /// let err = ActionSpec::deserialize_params("init.run", with)?
    ///     .attempt(&ctx)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.exit_code(), Some(128 + 15));
    /// # Ok(()) }
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Whether the action's own `with.timeout` ran out.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rebound_init::actions::{ActionContext, ActionSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let ctx = ActionContext::new("ready", Arc::new(|_, _, _| {}));
    /// let with = serde_json::json!({ "path": dir.path().join("never"), "timeout": "20ms" });
    /// let err = ActionSpec::deserialize_params("init.wait_file", with)?
    ///     .attempt(&ctx)
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_timeout());
    /// assert!(err.message().ends_with("not ready after 20ms (not found)"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// The message (same as `Display`; see [`ActionError::is_timeout`] for
    /// an example).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Declares every action once: its [`ActionSpec`] variant, its parameter
/// type, its `uses:` name and the cargo feature its I/O needs (if any).
/// Generates the enum, [`ActionSpec::NAMES`], [`ActionSpec::name`],
/// [`ActionSpec::describe`], [`ActionSpec::attempt`],
/// [`ActionSpec::params_schemas`], [`ActionSpec::missing_feature`] and
/// [`ActionSpec::deserialize_params`] from that list. Each parameter type
/// provides `describe(&self) -> String` and
/// `async fn attempt(&self, &ActionContext) -> Result<(), ActionError>`;
/// an action with a feature needs its `attempt` only in builds with that
/// feature (without it, [`ActionSpec::attempt`] fails at once, and
/// [`ActionSpec::deserialize_params`] refuses the action).
macro_rules! actions {
    ($(
        $(#[$doc:meta])*
        $variant:ident($params:ty) = $name:literal $(, feature = $feature:literal)?;
    )*) => {
        /// One parsed action: what `uses:` names, with its `with:`
        /// parameters.
        ///
        /// Not `Deserialize` itself: the spec reader dispatches on `uses`
        /// through [`ActionSpec::deserialize_params`]. Serializes as its
        /// `with:` block (the parameters alone); [`ActionSpec::name`] is the
        /// `uses:` that goes with it.
        ///
        /// ```
        /// use rebound_init::actions::ActionSpec;
        /// use rebound_init::spec::Spec;
        ///
        /// let spec = Spec::from_yaml(
        ///     "init:\n  steps:\n    - id: db\n      uses: init.wait_tcp\n      with: { host: 127.0.0.1, port: 5432 }\n",
        ///     "spec.yaml",
        ///     None,
        /// )?;
        /// let action = &spec.init.steps[0].action;
        /// assert_eq!(action.name(), "init.wait_tcp");
        /// assert_eq!(action.describe(), "tcp 127.0.0.1:5432");
        /// // The parameters, serialized, read back into the same action.
        /// let with = serde_json::to_value(action)?;
        /// assert_eq!(&ActionSpec::deserialize_params(action.name(), with)?, action);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum ActionSpec {
            $( $(#[$doc])* $variant($params), )*
        }

        impl ActionSpec {
            /// Every valid `uses:` name, including those of actions this
            /// build lacks the feature for (see
            /// [`ActionSpec::missing_feature`]).
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The `uses:` name of this action.
            ///
            /// ```
            /// # use rebound_init::actions::ActionSpec;
            /// let with = serde_json::json!({ "path": "/run/ready" });
            /// let action = ActionSpec::deserialize_params("init.wait_file", with)?;
            /// assert_eq!(action.name(), "init.wait_file");
            /// # Ok::<(), serde_json::Error>(())
            /// ```
            pub fn name(&self) -> &'static str {
                match self {
                    $( ActionSpec::$variant(_) => $name, )*
                }
            }

            /// What the step waits for or does, for messages: `tcp
            /// 127.0.0.1:5432`, `http://x/health (expect 2xx)`,
            /// ``command `./migrate up` ``.
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
                    $( ActionSpec::$variant(a) => a.describe(), )*
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
            /// let spec = ActionSpec::WaitTcp(WaitTcp { host: "127.0.0.1".into(), port, timeout: None, state: None });
            /// spec.attempt(&ctx).await.unwrap();
            /// # }
            /// ```
            ///
            /// An action whose cargo feature this build lacks fails at once
            /// with a permanent error naming the feature (the spec loader
            /// refuses such an action; a library user may still build one
            /// by hand).
            pub async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
                match self {
                    $( ActionSpec::$variant(a) => {
                        $(
                            #[cfg(not(feature = $feature))]
                            {
                                let _ = a;
                                return Err(ActionError::permanent(concat!(
                                    $name,
                                    " needs rebound-init's `",
                                    $feature,
                                    "` feature, which this build lacks"
                                )));
                            }
                        )?
                        $( #[cfg(feature = $feature)] )?
                        {
                            return a.attempt(ctx).await;
                        }
                    } )*
                }
            }

            /// The JSON Schema of each action's `with:` block, by `uses:`
            /// name, in the order of [`ActionSpec::NAMES`]; definitions the
            /// schemas share go to `generator`.
            ///
            /// ```
            /// use rebound_init::actions::ActionSpec;
            /// let mut generator = schemars::SchemaGenerator::default();
            /// let schemas = ActionSpec::params_schemas(&mut generator);
            /// let (name, tcp) = &schemas[0];
            /// assert_eq!(*name, "init.wait_tcp");
            /// assert_eq!(tcp.as_value()["$ref"], "#/$defs/WaitTcp");
            /// let required = &generator.definitions()["WaitTcp"]["required"];
            /// assert_eq!(*required, serde_json::json!(["host", "port"]));
            /// ```
            pub fn params_schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, schemars::Schema)> {
                vec![$( ($name, generator.subschema_for::<$params>()), )*]
            }

            /// The cargo feature of rebound-init that the action named
            /// `uses` needs and this build lacks (`None`: it is available,
            /// or the name is unknown).
            ///
            /// ```
            /// use rebound_init::actions::ActionSpec;
            /// assert_eq!(ActionSpec::missing_feature("init.run"), None);
            /// let http = ActionSpec::missing_feature("init.wait_http");
            /// assert_eq!(http.is_none(), cfg!(feature = "http"));
            /// ```
            pub fn missing_feature(uses: &str) -> Option<&'static str> {
                match uses {
                    $( $name => None $( .or(
                        if cfg!(feature = $feature) { None } else { Some($feature) }
                    ) )?, )*
                    _ => None,
                }
            }

            /// Reads the `with:` parameters of the action named `uses`
            /// straight into its parameter type (so errors keep the
            /// deserializer's positions). An unknown name, or the name of
            /// an action whose cargo feature this build lacks, is an error.
            ///
            /// ```
            /// use rebound_init::actions::ActionSpec;
            /// let with = serde_json::json!({ "host": "db", "port": 5432, "timeout": "30s" });
            /// let action = ActionSpec::deserialize_params("init.wait_tcp", with)?;
            /// assert_eq!(action.describe(), "tcp db:5432");
            /// let bad = serde_json::json!({ "host": "db", "port": 0 });
            /// let err = ActionSpec::deserialize_params("init.wait_tcp", bad).unwrap_err();
            /// assert!(err.to_string().contains("port must be 1-65535, got 0"), "{err}");
            /// # Ok::<(), serde_json::Error>(())
            /// ```
            pub fn deserialize_params<'de, D: serde::Deserializer<'de>>(
                uses: &str,
                d: D,
            ) -> Result<ActionSpec, D::Error> {
                use serde::Deserialize as _;
                if let Some(feature) = Self::missing_feature(uses) {
                    return not_built(d, uses, feature);
                }
                Ok(match uses {
                    $( $name => ActionSpec::$variant(<$params>::deserialize(d)?), )*
                    other => {
                        return Err(serde::de::Error::custom(format!(
                            "action `{other}` has no parameter reader"
                        )));
                    }
                })
            }
        }
    };
}

actions! {
    /// `init.wait_tcp`
    WaitTcp(wait_tcp::WaitTcp) = "init.wait_tcp";
    /// `init.wait_http` (cargo feature `http`)
    WaitHttp(wait_http::WaitHttp) = "init.wait_http", feature = "http";
    /// `init.wait_file`
    WaitFile(wait_file::WaitFile) = "init.wait_file";
    /// `init.wait_unix`
    WaitUnix(wait_unix::WaitUnix) = "init.wait_unix";
    /// `init.wait_dns` (CNAME, TXT and `server` need the cargo feature `dns`)
    WaitDns(wait_dns::WaitDns) = "init.wait_dns";
    /// `init.wait_exec`
    WaitExec(wait_exec::WaitExec) = "init.wait_exec";
    /// `init.wait_postgres` (cargo feature `postgres`)
    WaitPostgres(wait_postgres::WaitPostgres) = "init.wait_postgres", feature = "postgres";
    /// `init.wait_mysql` (cargo feature `mysql`)
    WaitMysql(wait_mysql::WaitMysql) = "init.wait_mysql", feature = "mysql";
    /// `init.wait_redis` (cargo feature `redis`)
    WaitRedis(wait_redis::WaitRedis) = "init.wait_redis", feature = "redis";
    /// `init.wait_grpc` (cargo feature `grpc`)
    WaitGrpc(wait_grpc::WaitGrpc) = "init.wait_grpc", feature = "grpc";
    /// `init.run`
    Run(run::Run) = "init.run";
    /// `init.s3_push` (cargo feature `s3`)
    S3Push(s3::S3Push) = "init.s3_push", feature = "s3";
    /// `init.s3_pull` (cargo feature `s3`)
    S3Pull(s3::S3Pull) = "init.s3_pull", feature = "s3";
}

/// Refuses the `with:` block of the action `uses`, compiled out of this
/// build, from inside a visitor: the YAML reader then reports the position
/// of the block.
fn not_built<'de, D: serde::Deserializer<'de>>(
    d: D,
    uses: &str,
    feature: &str,
) -> Result<ActionSpec, D::Error> {
    struct Refuse(String);
    impl Refuse {
        fn refuse<E: serde::de::Error>(self) -> Result<ActionSpec, E> {
            Err(E::custom(self.0))
        }
    }
    impl<'de> serde::de::Visitor<'de> for Refuse {
        type Value = ActionSpec;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the parameters of an available action")
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<ActionSpec, E> {
            self.refuse()
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<ActionSpec, A::Error> {
            self.refuse()
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<ActionSpec, A::Error> {
            self.refuse()
        }
    }
    d.deserialize_any(Refuse(format!(
        "{uses} is not available in this build of rebound (built without the `{feature}` feature)"
    )))
}

#[cfg(test)]
mod tests {
    use super::wait_tcp::WaitTcp;
    use super::*;
    use crate::spec::Spec;

    #[test]
    fn attempt_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let spec = ActionSpec::WaitTcp(WaitTcp {
            host: "h".into(),
            port: 1,
            timeout: None,
            state: None,
        });
        let ctx = quiet_ctx();
        assert_send(&spec.attempt(&ctx));
    }

    /// A valid `with:` block (flow YAML) for each action, setting every
    /// parameter it has.
    fn full_with(name: &str) -> &'static str {
        match name {
            "init.wait_tcp" => "{ host: '[::1]', port: 5432, timeout: 1m30s, state: closed }",
            "init.wait_http" => {
                "{ url: 'http://u:p@db:8080/health?x=1', expect_status: [200, '3xx', '500-502'], body_contains: ok, body_regex: '^o.$', header: { name: X-Ready, equals: yes, matches: '^y' }, json: { path: 'checks[0].state', equals: { up: true } }, socket: /run/api.sock, state: down, timeout: 0.25 }"
            }
            "init.wait_file" => "{ path: /run/ready, non_empty: true, timeout: 7, state: absent }",
            "init.wait_unix" => "{ path: /run/docker.sock, timeout: 2s, state: closed }",
            "init.wait_dns" => {
                if cfg!(feature = "dns") {
                    "{ name: db.internal, type: TXT, expect: 'v=1 ready', server: '127.0.0.1:5353', timeout: 10s }"
                } else {
                    "{ name: db.internal, type: A, expect: 10.0.0.5, timeout: 10s }"
                }
            }
            "init.wait_exec" => {
                "{ command: [pg_isready, -h, db], env: { PGCONNECT_TIMEOUT: 1 }, cwd: /srv, exit_codes: [0, 2], output_regex: 'accepting', timeout: 1m }"
            }
            "init.wait_postgres" => {
                "{ url: 'postgresql://app:pw@db:5432/app?connect_timeout=3', table: public.schema_migrations, timeout: 1m }"
            }
            "init.wait_mysql" => {
                "{ url: 'mysql://app:pw@db:3306/shop', table: orders, timeout: 30 }"
            }
            "init.wait_redis" => {
                "{ url: 'rediss://u:pw@cache:6380/1', key: 'flags:loaded', timeout: 5s }"
            }
            "init.wait_grpc" => {
                "{ url: 'grpcs://api:443', service: shop.Orders, ca_file: /etc/ca.pem, timeout: 1m, check_timeout: 500ms }"
            }
            "init.run" => {
                "{ command: [./migrate, up, 'two words'], env: { PORT: 8080, DEBUG: true, NAME: x }, cwd: /srv, timeout: 1h 2ms }"
            }
            "init.s3_push" => {
                "{ source: /x, bucket: b, key: k/x, endpoint: 'http://127.0.0.1:9000', region: eu-west-1 }"
            }
            "init.s3_pull" => "{ bucket: b, key: k, destination: /x }",
            other => panic!("no test parameters for {other}: add them here"),
        }
    }

    fn step_yaml(name: &str, with: &str) -> String {
        format!("init:\n  steps:\n    - id: s\n      uses: {name}\n      with: {with}\n")
    }

    #[test]
    fn every_name_reads_into_the_variant_of_that_name() {
        for name in ActionSpec::NAMES {
            let yaml = step_yaml(name, full_with(name));
            let loaded = Spec::from_yaml(&yaml, "t.yaml", None);
            match ActionSpec::missing_feature(name) {
                None => {
                    let spec = loaded.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(spec.init.steps[0].action.name(), *name);
                }
                Some(feature) => {
                    let err = loaded.expect_err(name).to_string();
                    assert!(err.contains(&format!("`{feature}` feature")), "{err}");
                }
            }
        }
    }

    // The invariant the spec fuzzer relies on: an accepted action,
    // serialized (JSON, which is YAML too), reads back to the same action,
    // both through `deserialize_params` and through the spec loader.
    #[test]
    fn a_serialized_action_reloads_equal() {
        let mut checked = 0;
        for name in ActionSpec::NAMES {
            if ActionSpec::missing_feature(name).is_some() {
                continue;
            }
            let yaml = step_yaml(name, full_with(name));
            let spec = Spec::from_yaml(&yaml, "t.yaml", None).unwrap_or_else(|e| panic!("{e}"));
            let action = &spec.init.steps[0].action;
            let json = serde_json::to_value(action).unwrap();
            let back = ActionSpec::deserialize_params(name, &json)
                .unwrap_or_else(|e| panic!("{name}: {json}: {e}"));
            assert_eq!(&back, action, "{json}");
            let text = serde_json::to_string(action).unwrap();
            let reloaded = Spec::from_yaml(&step_yaml(name, &text), "t.yaml", None)
                .unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            assert_eq!(&reloaded.init.steps[0].action, action, "{text}");
            checked += 1;
        }
        assert!(
            checked >= 3,
            "init.wait_tcp, init.wait_file and init.run are always built"
        );
    }

    #[test]
    fn durations_serialize_as_text_and_unset_parameters_are_left_out() {
        let spec = Spec::from_yaml(
            &step_yaml("init.run", "{ command: 'true', timeout: 90 }"),
            "t.yaml",
            None,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&spec.init.steps[0].action).unwrap(),
            r#"{"command":"true","timeout":"1m 30s"}"#
        );
    }

    // Issue 9.6: an action compiled out of this build is refused when the
    // spec is read (so `rebound init --check` catches it), at the position
    // of its `with:` block, rather than failing when the step runs.
    #[cfg(not(feature = "http"))]
    #[test]
    fn an_http_wait_is_refused_at_load_in_a_build_without_http() {
        let yaml = step_yaml("init.wait_http", "{ url: 'http://db/health' }");
        let err = Spec::from_yaml(&yaml, "spec.yaml", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.yaml:5:13: init.steps[0].with: init.wait_http is not available in this build of rebound (built without the `http` feature)"
        );
        assert_eq!(ActionSpec::missing_feature("init.wait_http"), Some("http"));
    }

    // The database and cache waits: each refused when the spec is read in
    // a build without its feature (`cargo test --no-default-features`).
    #[test]
    fn database_waits_are_refused_at_load_without_their_feature() {
        for (name, feature, built, with) in [
            (
                "init.wait_postgres",
                "postgres",
                cfg!(feature = "postgres"),
                "{ url: 'postgres://db/app' }",
            ),
            (
                "init.wait_mysql",
                "mysql",
                cfg!(feature = "mysql"),
                "{ url: 'mysql://db/shop' }",
            ),
            (
                "init.wait_redis",
                "redis",
                cfg!(feature = "redis"),
                "{ url: 'redis://cache' }",
            ),
        ] {
            let loaded = Spec::from_yaml(&step_yaml(name, with), "spec.yaml", None);
            if built {
                assert_eq!(ActionSpec::missing_feature(name), None);
                loaded.unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                assert_eq!(ActionSpec::missing_feature(name), Some(feature));
                assert_eq!(
                    loaded.expect_err(name).to_string(),
                    format!(
                        "spec.yaml:5:13: init.steps[0].with: {name} is not available in this build of rebound (built without the `{feature}` feature)"
                    )
                );
            }
        }
    }

    // `ActionSpec::attempt`'s one fallback: an action built by hand in a
    // build without its feature fails at once, naming the feature.
    #[cfg(not(all(
        feature = "http",
        feature = "s3",
        feature = "postgres",
        feature = "mysql",
        feature = "redis",
        feature = "grpc"
    )))]
    #[tokio::test]
    async fn an_action_built_by_hand_without_its_feature_fails_naming_it() {
        fn read<T: serde::de::DeserializeOwned>(json: &str) -> T {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
        }
        let mut checked = 0;
        for name in ActionSpec::NAMES {
            let Some(feature) = ActionSpec::missing_feature(name) else {
                continue;
            };
            let action = match *name {
                "init.wait_http" => ActionSpec::WaitHttp(read(r#"{"url": "http://db/health"}"#)),
                "init.wait_postgres" => {
                    ActionSpec::WaitPostgres(read(r#"{"url": "postgres://u:hunter22@db/app"}"#))
                }
                "init.wait_mysql" => {
                    ActionSpec::WaitMysql(read(r#"{"url": "mysql://u:hunter22@db/shop"}"#))
                }
                "init.wait_redis" => {
                    ActionSpec::WaitRedis(read(r#"{"url": "redis://:hunter22@cache"}"#))
                }
                "init.wait_grpc" => ActionSpec::WaitGrpc(read(r#"{"url": "grpc://api:50051"}"#)),
                "init.s3_push" => {
                    ActionSpec::S3Push(read(r#"{"source": "/x", "bucket": "b", "key": "k"}"#))
                }
                "init.s3_pull" => {
                    ActionSpec::S3Pull(read(r#"{"bucket": "b", "key": "k", "destination": "/x"}"#))
                }
                other => panic!("no hand-built {other}: add it here"),
            };
            let err = action.attempt(&quiet_ctx()).await.unwrap_err();
            assert_eq!(err.kind(), ActionErrorKind::Permanent);
            assert_eq!(
                err.message(),
                format!("{name} needs rebound-init's `{feature}` feature, which this build lacks")
            );
            checked += 1;
        }
        assert!(checked > 0, "this build lacks a feature");
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn a_grpc_wait_is_refused_at_load_in_a_build_without_grpc() {
        let yaml = step_yaml("init.wait_grpc", "{ url: 'grpc://api:50051' }");
        let err = Spec::from_yaml(&yaml, "spec.yaml", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.yaml:5:13: init.steps[0].with: init.wait_grpc is not available in this build of rebound (built without the `grpc` feature)"
        );
        assert_eq!(ActionSpec::missing_feature("init.wait_grpc"), Some("grpc"));
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn s3_actions_are_refused_at_load_in_a_build_without_s3() {
        for name in ["init.s3_push", "init.s3_pull"] {
            let yaml = format!(
                "init:\n  steps:\n    - id: s\n      uses: {name}\n      with:\n        bucket: b\n        key: k\n"
            );
            let err = Spec::from_yaml(&yaml, "spec.yaml", None).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "spec.yaml:6:9: init.steps[0].with: {name} is not available in this build of rebound (built without the `s3` feature)"
                )
            );
        }
    }
}

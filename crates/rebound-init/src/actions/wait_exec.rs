//! `init.wait_exec`: run a command again and again until it exits with an
//! expected code (0 by default), and optionally until its output matches a
//! regular expression. Each run is in its own process group, as `init.run`
//! runs (see `run::process`): cancelling the attempt (the step's timeout)
//! kills the whole group of the run in progress.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::matchers::Pattern;
use super::poll::{self, Check};
use super::run::process::{self, Output};
use super::run::{Command, EnvValue, Run};
use super::{ActionContext, ActionError, ActionErrorKind, duration, validate};

/// The `with:` block of `init.wait_exec`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation.
///
/// ```
/// use std::sync::Arc;
/// use rebound_init::actions::{ActionContext, ActionSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("state"), "migrations: done\n")?;
/// let with = serde_json::json!({
///     "command": "cat state; exit 3",
///     "cwd": dir.path(),
///     "exit_codes": [0, 3],
///     "output_regex": "migrations: (done|skipped)",
///     "timeout": "5s",
/// });
/// let action = ActionSpec::deserialize_params("init.wait_exec", with)?;
/// assert_eq!(
///     action.describe(),
///     "command `cat state; exit 3` (expect exit 0 or 3, output ~ /migrations: (done|skipped)/)"
/// );
/// action.attempt(&ActionContext::new("migrated", Arc::new(|_, _, _| {}))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitExec {
    /// A string runs under `sh -c`; an array runs the program directly.
    pub command: Command,
    /// Extra environment variables for the command (numbers and booleans
    /// are passed on as text).
    #[serde(
        default,
        deserialize_with = "validate::env_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    #[schemars(with = "BTreeMap<String, EnvValue>")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the command (default: rebound's own).
    #[serde(
        default,
        deserialize_with = "validate::opt_cwd",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub cwd: Option<PathBuf>,
    /// Exit codes that count as ready (default `[0]`).
    #[serde(
        default,
        deserialize_with = "exit_codes",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1))]
    pub exit_codes: Option<Vec<u8>>,
    /// A regular expression the command's output (stdout, then stderr,
    /// less the last newline) must match, if set: `^` and `$` are the ends
    /// of the whole output; `(?m)` makes them the ends of each line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_regex: Option<Pattern>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// `exit_codes`: a non-empty list of codes 0-255.
fn exit_codes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    struct Codes;
    impl<'de> serde::de::Visitor<'de> for Codes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty list of exit codes 0-255")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(code) = seq.next_element::<u8>()? {
                out.push(code);
            }
            if out.is_empty() {
                return Err(serde::de::Error::custom(
                    "`exit_codes` must list at least one code",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Codes).map(Some)
}

impl WaitExec {
    /// The codes that count as ready.
    fn codes(&self) -> &[u8] {
        self.exit_codes.as_deref().unwrap_or(&[0])
    }

    /// One run of the command, as `init.run` would run it.
    fn run(&self) -> Run {
        Run {
            command: self.command.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            timeout: None,
        }
    }

    /// ``command `pg_isready` (expect exit 0)``, for messages.
    pub(crate) fn describe(&self) -> String {
        let codes: Vec<String> = self.codes().iter().map(u8::to_string).collect();
        let regex = self
            .output_regex
            .as_ref()
            .map(|p| format!(", output ~ /{p}/"))
            .unwrap_or_default();
        format!(
            "{} (expect exit {}{regex})",
            self.run().describe(),
            codes.join(" or ")
        )
    }

    /// Runs the command until it exits as expected, or `timeout` runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let run = self.run();
        poll::until(ctx, &self.describe(), self.timeout, poll::COSTLY, || {
            self.check(&run, ctx)
        })
        .await
    }

    async fn check(&self, run: &Run, ctx: &ActionContext) -> Check {
        let finished = match process::run_once(run, ctx, Output::Capture).await {
            Ok(finished) => finished,
            Err(e) if e.kind() == ActionErrorKind::Permanent => return Check::Failed(e),
            Err(e) => return Check::NotYet(e.message().to_owned()),
        };
        let code = finished.code;
        if !self.codes().iter().any(|c| i32::from(*c) == code) {
            let hint = finished
                .last_line
                .map(|l| format!(": {}", process::shown_line(&l)))
                .unwrap_or_default();
            return Check::NotYet(format!("exited with code {code}{hint}"));
        }
        match &self.output_regex {
            Some(p) if !p.is_match(finished.captured.trim_end_matches(['\n', '\r'])) => {
                Check::NotYet(format!(
                    "exited with code {code} but its output does not match /{p}/"
                ))
            }
            _ => Check::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    fn exec(script: &str, timeout: Option<Duration>) -> WaitExec {
        WaitExec {
            command: Command::Shell(script.into()),
            env: BTreeMap::new(),
            cwd: None,
            exit_codes: None,
            output_regex: None,
            timeout,
        }
    }

    #[tokio::test]
    async fn ready_at_once_on_exit_0() {
        exec("true", Some(Duration::from_secs(5)))
            .attempt(&quiet_ctx())
            .await
            .unwrap();
    }

    // The command succeeds only from its third run on (a counter file).
    #[tokio::test]
    async fn ready_once_the_command_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = exec(
            "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; \
             echo \"run $n\"; [ $n -ge 3 ] && echo ready",
            Some(Duration::from_secs(20)),
        );
        w.cwd = Some(dir.path().to_owned());
        w.output_regex = Some(Pattern::new("^run \\d+\nready").unwrap());
        let ctx = quiet_ctx();
        w.attempt(&ctx).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("count")).unwrap(),
            "3\n"
        );
        assert_eq!(ctx.last_problem.get().unwrap(), "exited with code 1: run 2");
    }

    #[tokio::test]
    async fn never_ready_times_out_with_the_last_reason() {
        let err = exec(
            "echo 'db busy' >&2; exit 3",
            Some(Duration::from_millis(300)),
        )
        .attempt(&quiet_ctx())
        .await
        .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.message(),
            "command `echo 'db busy' >&2; exit 3` (expect exit 0) not ready after 300ms (exited with code 3: db busy)"
        );
        let mut w = exec("echo starting", Some(Duration::from_millis(300)));
        w.output_regex = Some(Pattern::new("^ready").unwrap());
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(
            err.message()
                .ends_with("(exited with code 0 but its output does not match /^ready/)"),
            "{err}"
        );
    }

    // Issue 12: a password in a URL of the command (or of its last output
    // line) used to be shown in the description, the last problem and the
    // timeout message.
    #[tokio::test]
    async fn a_password_in_the_command_is_never_shown() {
        let w = exec(
            "true http://user:secret@127.0.0.1:1/; echo 'GET http://user:secret@127.0.0.1:1/ failed' >&2; exit 7",
            Some(Duration::from_millis(300)),
        );
        let ctx = quiet_ctx();
        let err = w.attempt(&ctx).await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.message(),
            "command `true http://user:***@127.0.0.1:1/; echo 'GET http://user:**…` (expect exit 0) not ready after 300ms (exited with code 7: GET http://user:***@127.0.0.1:1/ failed)"
        );
        assert!(!w.describe().contains("secret"));
        let last = ctx.last_problem.get().unwrap();
        assert!(!last.contains("secret"), "{last}");
    }

    #[tokio::test]
    async fn listed_exit_codes_count_as_ready() {
        let mut w = exec("exit 3", Some(Duration::from_secs(5)));
        w.exit_codes = Some(vec![0, 3]);
        w.attempt(&quiet_ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_program_fails_at_once() {
        let w = WaitExec {
            command: Command::Exec(vec!["/nonexistent/rebound-probe".into()]),
            ..exec("", None)
        };
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Permanent, "{err}");
        assert!(!err.is_timeout());
    }

    // Cancelling the attempt (a step timeout) kills the run in progress,
    // and whatever it started, as init.run does.
    #[tokio::test]
    async fn cancelling_kills_the_running_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let w = exec(
            &format!(
                "sleep 30 & echo $! > {p}; echo $$ >> {p}; wait",
                p = pids.display()
            ),
            None,
        );
        let ctx = quiet_ctx();
        let attempt = w.attempt(&ctx);
        let cut = tokio::time::timeout(Duration::from_millis(500), attempt).await;
        assert!(cut.is_err());
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.lines() {
            let pid: i32 = pid.trim().parse().unwrap();
            let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
            assert!(gone, "process {pid} outlived the cancelled wait");
        }
    }

    #[test]
    fn rejects_bad_exit_codes_and_regexes() {
        let err =
            serde_json::from_str::<WaitExec>(r#"{"command": "x", "exit_codes": []}"#).unwrap_err();
        assert!(err.to_string().contains("at least one code"), "{err}");
        let err = serde_json::from_str::<WaitExec>(r#"{"command": "x", "exit_codes": [256]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("256"), "{err}");
        let err = serde_json::from_str::<WaitExec>(r#"{"command": "x", "output_regex": "("}"#)
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid regular expression"),
            "{err}"
        );
    }
}

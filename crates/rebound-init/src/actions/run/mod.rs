//! `init.run`: run a command; a non-zero exit fails the attempt.
//!
//! This module holds the parameters and their validation; running the
//! command in its own process group is its child `process`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{ActionContext, ActionError, duration, validate};

pub(crate) mod process;

/// The `with:` block of `init.run`.
///
/// `timeout` bounds one run of the command (a bare integer is seconds):
/// when it runs out the command's whole process group is killed and the
/// attempt fails.
///
/// ```
/// use rebound_init::actions::run::{Command, Run};
/// let r: Run = serde_json::from_str(r#"{"command": ["./migrate", "up"], "env": {"X": "1"}}"#).unwrap();
/// assert_eq!(r.command, Command::Exec(vec!["./migrate".into(), "up".into()]));
/// let r: Run = serde_json::from_str(r#"{"command": "echo hi && true"}"#).unwrap();
/// assert_eq!(r.command, Command::Shell("echo hi && true".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Run {
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
    /// How long one run may take before its process group is killed.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// How much of a command messages show.
const SHOWN_COMMAND_CHARS: usize = 60;

/// `text` cut to at most `max` characters, the last being `…` when cut.
pub(crate) fn ellipsize(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text[end..].chars().nth(1).is_some() => {
            format!("{}…", &text[..end])
        }
        _ => text.to_owned(),
    }
}

/// The schema of an environment value: text, a number or a boolean.
#[derive(schemars::JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
pub(super) enum EnvValue {
    Text(String),
    Number(f64),
    Flag(bool),
}

/// What `init.run` executes.
///
/// ```
/// use rebound_init::actions::run::Command;
/// assert_eq!(Command::Shell("make".into()).to_string(), "make");
/// assert_eq!(Command::Exec(vec!["ls".into(), "-l".into()]).to_string(), "ls -l");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run under `sh -c`.
    Shell(String),
    /// Program and arguments, run with no shell.
    Exec(Vec<String>),
}

impl schemars::JsonSchema for Command {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Command".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A string runs under `sh -c`; an array [program, args...] runs with no shell.",
            "anyOf": [
                { "type": "string", "minLength": 1 },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Exec(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

impl Serialize for Command {
    /// A shell command as a string, an exec command as an array: the
    /// forms the spec reads.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Shell(script) => s.serialize_str(script),
            Command::Exec(argv) => argv.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a shell command string or an array [program, args...]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("command must not be empty"));
                }
                validate::no_nul("command", v).map_err(E::custom)?;
                Ok(Command::Shell(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                // Each item is checked as it is read, so that an error
                // points at the item.
                while let Some(arg) = seq.next_element_seed(Arg { index: argv.len() })? {
                    argv.push(arg);
                }
                match argv.first() {
                    None => Err(de::Error::custom("command array must not be empty")),
                    Some(p) if p.trim().is_empty() => Err(de::Error::custom(
                        "command program (first item) must not be empty",
                    )),
                    Some(_) => Ok(Command::Exec(argv)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One item of a command array (item 0 is the program): text without a
/// NUL byte, which no program or argument can hold.
struct Arg {
    index: usize,
}

impl<'de> de::DeserializeSeed<'de> for Arg {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let what = if self.index == 0 {
            "command program".to_owned()
        } else {
            format!("command argument {}", self.index)
        };
        validate::checked_str(d, "a string", |v| {
            validate::no_nul(&what, v)?;
            Ok(v.to_owned())
        })
    }
}

impl Run {
    /// A shell command with no env, cwd or timeout, for unit tests.
    #[cfg(test)]
    pub(crate) fn shell(script: &str) -> Run {
        Run {
            command: Command::Shell(script.into()),
            env: BTreeMap::new(),
            cwd: None,
            timeout: None,
        }
    }

    /// ``command `...` ``, for messages and progress lines: on one line,
    /// and a long command cut to [`SHOWN_COMMAND_CHARS`] characters with an
    /// ellipsis (the step id says which step it is; the spec has the rest).
    /// The password of a URL in it is shown as `***`.
    pub(crate) fn describe(&self) -> String {
        let one_line = validate::redacted_command(&self.command.to_string())
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        format!("command `{}`", ellipsize(&one_line, SHOWN_COMMAND_CHARS))
    }

    /// Runs the command once.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        process::run(self, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsize_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(ellipsize("short", 10), "short");
        assert_eq!(ellipsize("exactly10!", 10), "exactly10!");
        assert_eq!(ellipsize("eleven char", 10), "eleven ch…");
        assert_eq!(ellipsize("ééééé", 3), "éé…");
        assert_eq!(ellipsize("", 3), "");
    }

    // Regression: a long or multi-line command used to be repeated whole in
    // every failure message and progress line.
    #[test]
    fn describe_is_one_bounded_line() {
        let long = format!("./migrate --url postgres://db/app {}", "--flag ".repeat(40));
        let shown = Run::shell(&long).describe();
        assert_eq!(
            shown.chars().count(),
            "command ``".len() + SHOWN_COMMAND_CHARS
        );
        assert!(
            shown.starts_with("command `./migrate --url postgres://db/app --flag"),
            "{shown}"
        );
        assert!(shown.ends_with("…`"), "{shown}");
        assert_eq!(
            Run::shell("set -e\n./migrate up\n  echo done\n").describe(),
            "command `set -e ./migrate up echo done`"
        );
        assert_eq!(Run::shell("true").describe(), "command `true`");
    }

    // Issue 12: the command text is shown in progress lines, events and
    // errors; a password in a URL it holds used to be shown with it.
    #[test]
    fn describe_redacts_url_passwords() {
        assert_eq!(
            Run::shell("curl -fsS http://user:secret@host/health").describe(),
            "command `curl -fsS http://user:***@host/health`"
        );
        let exec = Run {
            command: Command::Exec(vec!["psql".into(), "postgres://app:secret@db/app".into()]),
            ..Run::shell("")
        };
        assert_eq!(exec.describe(), "command `psql postgres://app:***@db/app`");
    }
}

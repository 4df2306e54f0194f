//! The init spec: ZLayer's `init`/`errors` format plus rebound's extensions.
//!
//! A spec file is either just the init spec (top-level `init` and `errors`)
//! or a whole ZLayer deployment (`version`, `deployment`, `services:
//! {NAME: {...}}`) in which one service's `init` and `errors` are picked.
//! Everything is checked when the spec is loaded ([`Spec::load`],
//! [`Spec::from_yaml`]): unknown fields, unknown actions, missing
//! parameters, out-of-range ports, duplicate step ids and bad durations are
//! rejected with the file, line and column, before any step runs.

mod duration;
mod error;
mod load;
mod schema;
pub mod yaml;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actions::ActionSpec;

pub use error::{SpecError, SpecErrorKind};
pub use schema::json_schema;

/// A loaded, validated spec: the steps to run and the failure policy.
///
/// ```
/// use rebound_init::spec::{OnFailure, Spec};
///
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - id: ready\n      uses: init.wait_file\n      with: { path: /etc/hostname }\n      retry: 2\n",
///     "inline.yaml",
///     None,
/// )?;
/// assert_eq!(spec.init.steps[0].id, "ready");
/// assert_eq!(spec.init.steps[0].retry, 2);
/// assert_eq!(spec.init.steps[0].on_failure, OnFailure::Fail);
/// # Ok::<(), rebound_init::spec::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spec {
    /// The steps.
    pub init: InitSpec,
    /// What to do when the init as a whole fails.
    pub errors: ErrorsSpec,
    /// The service the spec was taken from, for a deployment file.
    pub service: Option<String>,
}

/// The `init` section: steps run in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InitSpec {
    /// The steps, in the order they run.
    pub steps: Vec<Step>,
}

/// One init step: an action with its timeout, retries and failure policy.
///
/// ```
/// # use rebound_init::spec::Spec;
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - id: db\n      uses: init.wait_tcp\n      with: { host: 127.0.0.1, port: 5432 }\n      timeout: 1m30s\n",
///     "inline.yaml",
///     None,
/// )?;
/// let step = &spec.init.steps[0];
/// assert_eq!(step.action.name(), "init.wait_tcp");
/// assert_eq!(step.timeout, Some(std::time::Duration::from_secs(90)));
/// # Ok::<(), rebound_init::spec::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's id, unique in the spec.
    pub id: String,
    /// What the step does (`uses:` with its `with:` parameters).
    pub action: ActionSpec,
    /// Bound on the whole step, retries and their pauses included.
    pub timeout: Option<Duration>,
    /// Attempts after the first one (`retry: 3` = up to 4 attempts). With
    /// a policy mapping ([`retry_policy`](Self::retry_policy)), its
    /// `attempts` less one (`u32::MAX` for `attempts: forever`).
    pub retry: u32,
    /// The retry policy when `retry:` is a mapping (`attempts`, `backoff`,
    /// `initial`, `max`, `multiplier`, `jitter`, `deadline`,
    /// `attempt_timeout`); `None` for ZLayer's `retry: N`, which waits the
    /// runner's step backoff between attempts.
    ///
    /// ```
    /// # use rebound_init::spec::Spec;
    /// use rebound_retry::BackoffKind;
    /// use std::time::Duration;
    /// let spec = Spec::from_yaml(
    ///     "init:\n  steps:\n    - id: db\n      uses: init.wait_file\n      with: { path: /x }\n      retry: { attempts: 5, backoff: constant, initial: 2s, jitter: none }\n",
    ///     "inline.yaml",
    ///     None,
    /// )?;
    /// let step = &spec.init.steps[0];
    /// let policy = step.retry_policy.as_ref().unwrap();
    /// assert_eq!((step.retry, policy.attempts), (4, Some(5)));
    /// assert_eq!(policy.backoff, BackoffKind::Constant);
    /// assert_eq!(policy.build()?.collect::<Vec<_>>(), [Duration::from_secs(2); 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub retry_policy: Option<rebound_retry::PolicySpec>,
    /// What a failure of this step does to the init.
    pub on_failure: OnFailure,
}

/// Writes the spec in its init-only form, `{init, errors}`: the text reads
/// back through [`Spec::from_yaml`] (JSON is YAML) to the same steps and
/// policy. [`Spec::service`] is not written: a deployment's chosen service
/// becomes a plain init spec.
///
/// ```
/// # use rebound_init::spec::Spec;
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - { id: db, uses: init.wait_tcp, with: { host: db, port: 5432 }, timeout: 90 }\n",
///     "inline.yaml",
///     None,
/// )?;
/// let json = serde_json::to_string(&spec).unwrap();
/// assert!(json.contains(r#""uses":"init.wait_tcp""#), "{json}");
/// assert!(json.contains(r#""timeout":"1m 30s""#), "{json}");
/// assert_eq!(Spec::from_yaml(&json, "again.json", None)?, spec);
/// # Ok::<(), rebound_init::spec::SpecError>(())
/// ```
impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Spec", 2)?;
        out.serialize_field("init", &self.init)?;
        out.serialize_field("errors", &self.errors)?;
        out.end()
    }
}

/// Writes the section as `{steps: [...]}`, each step as [`Step`] writes it.
impl Serialize for InitSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("InitSpec", 1)?;
        out.serialize_field("steps", &self.steps)?;
        out.end()
    }
}

/// Writes the step as it is written in a spec: `id`, `uses` (the action's
/// name), `with` (its parameters), `timeout` (humantime text, left out
/// when unset), `retry` (the number, or the policy mapping) and
/// `on_failure`.
///
/// ```
/// # use rebound_init::spec::Spec;
/// let spec = Spec::from_yaml(
///     "init:\n  steps:\n    - { id: ready, uses: init.wait_file, with: { path: /x }, retry: 2 }\n",
///     "inline.yaml",
///     None,
/// )?;
/// let step = serde_json::to_value(&spec.init.steps[0]).unwrap();
/// assert_eq!(
///     step,
///     serde_json::json!({
///         "id": "ready",
///         "uses": "init.wait_file",
///         "with": serde_json::to_value(&spec.init.steps[0].action).unwrap(),
///         "retry": 2,
///         "on_failure": "fail"
///     })
/// );
/// # Ok::<(), rebound_init::spec::SpecError>(())
/// ```
impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// The timeout as humantime text.
        struct Timeout(Duration);
        impl Serialize for Timeout {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::actions::duration::serialize(&self.0, s)
            }
        }

        let mut out = s.serialize_struct("Step", 6)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("uses", self.action.name())?;
        out.serialize_field("with", &self.action)?;
        match self.timeout {
            Some(timeout) => out.serialize_field("timeout", &Timeout(timeout))?,
            None => out.skip_field("timeout")?,
        }
        match &self.retry_policy {
            Some(policy) => out.serialize_field("retry", &PolicyOut(policy))?,
            None => out.serialize_field("retry", &self.retry)?,
        }
        out.serialize_field("on_failure", &self.on_failure)?;
        out.end()
    }
}

/// A step's retry policy written as the mapping it was read from: every
/// setting it holds, durations as humantime text.
struct PolicyOut<'a>(&'a rebound_retry::PolicySpec);

impl Serialize for PolicyOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        /// A duration as humantime text.
        struct Text(Duration);
        impl Serialize for Text {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::actions::duration::serialize(&self.0, s)
            }
        }

        let p = self.0;
        let mut out = s.serialize_map(None)?;
        match p.attempts {
            Some(n) => out.serialize_entry("attempts", &n)?,
            None => out.serialize_entry("attempts", "forever")?,
        }
        out.serialize_entry("backoff", p.backoff.name())?;
        out.serialize_entry("initial", &Text(p.initial))?;
        if let Some(max) = p.max {
            out.serialize_entry("max", &Text(max))?;
        }
        if let Some(multiplier) = p.multiplier {
            out.serialize_entry("multiplier", &multiplier)?;
        }
        if let Some(jitter) = p.jitter {
            out.serialize_entry("jitter", jitter.name())?;
        }
        if let Some(deadline) = p.deadline {
            out.serialize_entry("deadline", &Text(deadline))?;
        }
        if let Some(timeout) = p.attempt_timeout {
            out.serialize_entry("attempt_timeout", &Text(timeout))?;
        }
        out.end()
    }
}

/// What a failed step does to the init (`on_failure:`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the init; the failure policy in `errors` decides what next.
    #[default]
    Fail,
    /// Report a warning and go on with the next step.
    Warn,
    /// Go on with the next step quietly (the summary still records it).
    Continue,
}

/// The `errors` section.
///
/// ```
/// # use rebound_init::spec::{ErrorsSpec, InitFailureAction};
/// let errors = ErrorsSpec::default();
/// assert_eq!(errors.on_init_failure.action, InitFailureAction::Fail);
/// assert_eq!(errors.on_init_failure.max_retries, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSpec {
    /// What to do when a step with `on_failure: fail` fails.
    #[serde(default)]
    pub on_init_failure: InitFailurePolicy,
    /// ZLayer's `on_panic`: what the container runtime does when the
    /// workload panics. It is the runtime's concern, not the init's: rebound
    /// checks its values (so a typo is caught by `--check`) and otherwise
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_panic: Option<PanicPolicy>,
}

/// `errors.on_panic` (ZLayer): the container runtime's reaction to a
/// workload that panics. Read and validated, not acted on by rebound.
///
/// ```
/// # use rebound_init::spec::{PanicAction, Spec};
/// let spec = Spec::from_yaml(
///     "init: { steps: [] }\nerrors:\n  on_panic: { action: isolate }\n",
///     "init.yaml",
///     None,
/// )?;
/// assert_eq!(spec.errors.on_panic.unwrap().action, PanicAction::Isolate);
/// let typo = Spec::from_yaml(
///     "init: { steps: [] }\nerrors:\n  on_panic: { action: reboot }\n",
///     "init.yaml",
///     None,
/// )
/// .unwrap_err();
/// assert_eq!(typo.line(), Some(3));
/// # Ok::<(), rebound_init::spec::SpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PanicPolicy {
    /// `restart`, `shutdown` or `isolate`.
    pub action: PanicAction,
}

/// What ZLayer's runtime does with a workload that panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PanicAction {
    /// Start the container again.
    Restart,
    /// Stop the container.
    Shutdown,
    /// Keep it, cut off, for inspection.
    Isolate,
}

/// `errors.on_init_failure`: how the init as a whole reacts to a failure.
///
/// # Default
/// `action: fail`, `max_retries: 3`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitFailurePolicy {
    /// `fail`, `restart` or `backoff`.
    #[serde(default)]
    pub action: InitFailureAction,
    /// How many times the init is resumed after a failure (rebound
    /// extension; default 3). Ignored with `action: fail`.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

impl Default for InitFailurePolicy {
    fn default() -> Self {
        Self {
            action: InitFailureAction::default(),
            max_retries: default_max_retries(),
        }
    }
}

fn default_max_retries() -> u32 {
    3
}

/// `errors.on_init_failure.action`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum InitFailureAction {
    /// The init fails at the first failed step.
    #[default]
    Fail,
    /// Resume at the failed step after a short fixed pause.
    Restart,
    /// Resume at the failed step after 1 s, 2 s, 4 s ... (cap 60 s, jitter).
    Backoff,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `errors` section written back (as JSON, which is YAML) reads
    /// as the same policy.
    #[test]
    fn the_errors_section_round_trips() {
        for text in [
            "init: { steps: [] }\n",
            "init: { steps: [] }\nerrors: { on_init_failure: { action: backoff, max_retries: 7 } }\n",
            "init: { steps: [] }\nerrors: { on_init_failure: { action: restart } }\n",
        ] {
            let spec = Spec::from_yaml(text, "x.yaml", None).unwrap();
            let json = serde_json::to_string(&spec.errors).unwrap();
            let again = Spec::from_yaml(
                &format!("{{\"init\": {{\"steps\": []}}, \"errors\": {json}}}"),
                "x.json",
                None,
            )
            .unwrap();
            assert_eq!(again.errors, spec.errors, "{json}");
        }
    }

    /// Each example, its errors section written back and read again, and
    /// the whole file rewritten as JSON through the YAML reader's own
    /// value resolution, reads as the same spec.
    #[test]
    fn the_examples_round_trip_through_json() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            if uses_an_action_this_build_lacks(&path) {
                seen += 1;
                continue;
            }
            let service = path
                .to_str()
                .unwrap()
                .contains("deployment")
                .then_some("api");
            let spec = Spec::load(&path, service).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: serde_json::Value = yaml::from_str(&text).unwrap();
            let json = serde_json::to_string(&value).unwrap();
            let again = Spec::from_yaml(&json, "x.json", service).unwrap();
            assert_eq!(again, spec, "{}", path.display());
            let errors = serde_json::to_value(&spec.errors).unwrap();
            let errors: ErrorsSpec = serde_json::from_value(errors).unwrap();
            assert_eq!(errors, spec.errors);
            seen += 1;
        }
        assert!(seen >= 3, "examples in {}", dir.display());
    }

    /// Whether the spec at `path` names an action whose cargo feature this
    /// build lacks (a build without default features refuses it at load,
    /// naming the feature, which other tests check).
    fn uses_an_action_this_build_lacks(path: &std::path::Path) -> bool {
        fn walk(value: &serde_json::Value) -> bool {
            match value {
                serde_json::Value::Object(map) => map.iter().any(|(key, v)| {
                    (key == "uses"
                        && v.as_str()
                            .is_some_and(|u| ActionSpec::missing_feature(u).is_some()))
                        || walk(v)
                }),
                serde_json::Value::Array(items) => items.iter().any(walk),
                _ => false,
            }
        }
        let text = std::fs::read_to_string(path).unwrap();
        walk(&yaml::from_str::<serde_json::Value>(&text).unwrap())
    }

    /// The specs among the examples: the top-level files and those of
    /// the migration example.
    fn example_specs() -> Vec<std::path::PathBuf> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut paths = Vec::new();
        for dir in [root.clone(), root.join("migration")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        paths
    }

    /// Every example spec, serialized with serde_json and read again
    /// through `Spec::from_yaml`, is the same spec (a deployment's service
    /// name aside: the written form is the init spec alone).
    #[test]
    fn every_example_serializes_and_reloads_equal() {
        let paths = example_specs();
        assert!(paths.len() >= 5, "{paths:?}");
        for path in paths {
            if uses_an_action_this_build_lacks(&path) {
                continue;
            }
            let spec = Spec::load(&path, None).unwrap();
            let json = serde_json::to_string(&spec).unwrap();
            let again = Spec::from_yaml(&json, "again.json", None)
                .unwrap_or_else(|e| panic!("{}: {e}\n{json}", path.display()));
            let expected = Spec {
                service: None,
                ..spec
            };
            assert_eq!(again, expected, "{}\n{json}", path.display());
            assert!(!again.init.steps.is_empty(), "{}", path.display());
        }
    }

    /// Every field a step can carry is written and read back, including
    /// a timeout below a second and text with the characters serde_json
    /// writes raw while the YAML 1.2 reader could take them as line
    /// breaks (NEL, LS, PS) or as not printable (DEL, C1 controls, BOM,
    /// U+FFFE/U+FFFF): inside a double-quoted scalar the reader keeps them
    /// all, so the JSON text needs no escaping.
    #[test]
    fn a_step_with_every_field_round_trips() {
        let text = "init:\n  steps:\n    - id: \"a\\u2028b\\rc\\x85\"\n      uses: init.run\n      with: { command: [\"/bin/echo\", \"x\\u2029y\\x7f\\x9f\\ufeff\\ufffe\\uffff\\U0001F600\"] }\n      timeout: 1.5\n      retry: 4\n      on_failure: continue\n    - { id: b, uses: init.wait_tcp, with: { host: db, port: 1 }, timeout: 250ms, on_failure: warn }\n    - { id: c, uses: init.wait_file, with: { path: /x }, retry: { attempts: 4, backoff: exponential, initial: 1.5, max: 1m, multiplier: 3, jitter: full, deadline: 5m, attempt_timeout: 250ms } }\n    - { id: d, uses: init.wait_file, with: { path: /x }, retry: { attempts: forever, backoff: decorrelated, deadline: 90 } }\nerrors: { on_init_failure: { action: backoff, max_retries: 9 } }\n";
        let spec = Spec::from_yaml(text, "x.yaml", None).unwrap();
        assert_eq!(spec.init.steps[0].id, "a\u{2028}b\rc\u{85}");
        assert_eq!(
            spec.init.steps[0].timeout,
            Some(Duration::from_millis(1500))
        );
        let json = serde_json::to_string(&spec).unwrap();
        let again = Spec::from_yaml(&json, "x.json", None).unwrap();
        assert_eq!(again, spec, "{json}");
    }
}

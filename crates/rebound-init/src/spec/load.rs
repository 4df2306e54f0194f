//! Loading a spec in two passes.
//!
//! Pass one reads the YAML into a plain value to decide which service is
//! run and to learn each step's `uses:` (so that a `with:` written before
//! its `uses:` can still be read into the right parameter type). Pass two
//! deserializes straight from the YAML events through the seeds below, so
//! every error, including one deep inside `with:`, carries the position of
//! the node that caused it. Validation therefore happens inside visitors
//! (never after a value came back), where the YAML deserializer can still
//! attach the position.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_norway::Value;

use super::duration::StepTimeout;
use super::{ErrorsSpec, InitSpec, OnFailure, Spec, SpecError, SpecErrorKind, Step};
use crate::actions::ActionSpec;

impl Spec {
    /// Reads and validates the spec in the file at `path`.
    ///
    /// `service` picks the service of a ZLayer deployment file; it may be
    /// `None` when exactly one service has an `init` section. Errors name
    /// the file as given, with line and column.
    ///
    /// ```
    /// # use rebound_init::spec::Spec;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("init.yaml");
    /// std::fs::write(&path, "init:\n  steps: []\n")?;
    /// let spec = Spec::load(&path, None)?;
    /// assert!(spec.init.steps.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, service: Option<&str>) -> Result<Spec, SpecError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::io(&origin, e))?;
        Self::from_yaml(&text, &origin, service)
    }

    /// Parses and validates a spec from YAML text; `origin` names it in
    /// errors (usually the file name).
    ///
    /// ```
    /// # use rebound_init::spec::Spec;
    /// let deployment = "\
    /// version: v1
    /// deployment: shop
    /// services:
    ///   api:
    ///     image: { name: shop/api }
    ///     init:
    ///       steps:
    ///         - id: wait-db
    ///           uses: init.wait_tcp
    ///           with: { host: 127.0.0.1, port: 5432 }
    ///   worker:
    ///     image: { name: shop/worker }
    /// ";
    /// let spec = Spec::from_yaml(deployment, "shop.yaml", None)?;
    /// assert_eq!(spec.service.as_deref(), Some("api"));
    /// assert_eq!(spec.init.steps[0].id, "wait-db");
    /// # Ok::<(), rebound_init::spec::SpecError>(())
    /// ```
    pub fn from_yaml(text: &str, origin: &str, service: Option<&str>) -> Result<Spec, SpecError> {
        let plan = plan(text, origin, service)?;
        let de = serde_norway::Deserializer::from_str(text);
        let (init, errors) = FileSeed { plan: &plan }
            .deserialize(de)
            .map_err(|e| SpecError::from_yaml(origin, &e))?;
        Ok(Spec {
            init,
            errors,
            service: match plan.form {
                Form::InitOnly => None,
                Form::Deployment { service } => Some(service),
            },
        })
    }
}

/// What pass one learned.
struct Plan {
    form: Form,
    /// The `uses:` of each step of the init section that is parsed, when it
    /// is a string.
    hints: Vec<Option<String>>,
}

enum Form {
    /// Top-level `init` and `errors`.
    InitOnly,
    /// A ZLayer deployment; the named service's sections are parsed.
    Deployment { service: String },
}

/// The line and column (1-based) of `key:` written as a block-style
/// top-level key, if it is.
fn top_level_key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let plain = format!("{key}:");
    let quoted = [format!("\"{key}\":"), format!("'{key}':")];
    text.lines()
        .position(|line| {
            line.starts_with(&plain) || quoted.iter().any(|q| line.starts_with(q.as_str()))
        })
        .map(|i| (i + 1, 1))
}

fn plan(text: &str, origin: &str, service: Option<&str>) -> Result<Plan, SpecError> {
    let value: Value =
        serde_norway::from_str(text).map_err(|e| SpecError::from_yaml(origin, &e))?;
    if value.is_null() {
        return Err(SpecError::new(
            SpecErrorKind::Invalid,
            origin,
            None,
            "the spec is empty: expected an `init` section with `steps`",
        ));
    }
    let Some(services) = value.get("services") else {
        if let Some(name) = service {
            return Err(SpecError::new(
                SpecErrorKind::Service,
                origin,
                None,
                format!(
                    "service `{name}` was asked for, but the file has no `services` section (it is not a deployment file)"
                ),
            ));
        }
        return Ok(Plan {
            form: Form::InitOnly,
            hints: step_hints(value.get("init")),
        });
    };
    // A deployment's init belongs to a service: top-level sections beside
    // `services` would be silently ignored, so they are refused.
    for section in ["init", "errors"] {
        if value.get(section).is_some() {
            return Err(SpecError::new(
                SpecErrorKind::Invalid,
                origin,
                top_level_key_position(text, section),
                format!(
                    "a top-level `{section}` beside `services` would be ignored: in a deployment file `{section}` goes inside a service; an init spec has no `services`"
                ),
            ));
        }
    }
    let names: Vec<String> = services
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let with_init: Vec<&String> = names
        .iter()
        .filter(|n| {
            services
                .get(n.as_str())
                .and_then(|s| s.get("init"))
                .is_some()
        })
        .collect();
    let chosen = match service {
        Some(name) => {
            let Some(svc) = services.get(name) else {
                return Err(SpecError::new(
                    SpecErrorKind::Service,
                    origin,
                    None,
                    format!(
                        "no service `{name}` in the deployment; services: {}",
                        list(&names)
                    ),
                ));
            };
            if svc.get("init").is_none() {
                return Err(SpecError::new(
                    SpecErrorKind::Service,
                    origin,
                    None,
                    format!("service `{name}` has no `init` section"),
                ));
            }
            name.to_owned()
        }
        None => match with_init.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(SpecError::new(
                    SpecErrorKind::Service,
                    origin,
                    None,
                    format!(
                        "no service has an `init` section; services: {}",
                        list(&names)
                    ),
                ));
            }
            many => {
                let many: Vec<String> = many.iter().map(|s| (*s).clone()).collect();
                return Err(SpecError::new(
                    SpecErrorKind::Service,
                    origin,
                    None,
                    format!(
                        "several services have an `init` section ({}): pick one with --service NAME",
                        list(&many)
                    ),
                ));
            }
        },
    };
    let hints = step_hints(services.get(chosen.as_str()).and_then(|s| s.get("init")));
    Ok(Plan {
        form: Form::Deployment { service: chosen },
        hints,
    })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

fn step_hints(init: Option<&Value>) -> Vec<Option<String>> {
    init.and_then(|i| i.get("steps"))
        .and_then(Value::as_sequence)
        .map(|steps| {
            steps
                .iter()
                .map(|s| s.get("uses").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---- pass two: seeds ----

/// A mapping key that must be one of `allowed` and not seen before in the
/// same mapping. Checked while the key is deserialized, so the error points
/// at the key.
struct FieldKey<'a> {
    allowed: &'static [&'static str],
    seen: &'a mut Vec<&'static str>,
}

impl<'de> DeserializeSeed<'de> for FieldKey<'_> {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of the fields {}", self.allowed.join(", "))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let Some(field) = self.allowed.iter().find(|a| **a == v) else {
            return Err(E::unknown_field(v, self.allowed));
        };
        if self.seen.contains(field) {
            return Err(E::duplicate_field(field));
        }
        self.seen.push(field);
        Ok(field)
    }
}

struct FileSeed<'a> {
    plan: &'a Plan,
}

type Sections = (InitSpec, ErrorsSpec);

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = Sections;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Sections, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = Sections;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with `init` (and optionally `errors`), or a ZLayer deployment with `services`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sections, A::Error> {
        match &self.plan.form {
            Form::InitOnly => {
                let (init, errors) = sections(&mut map, &self.plan.hints, true)?;
                let init = init.ok_or_else(|| de::Error::missing_field("init"))?;
                Ok((init, errors.unwrap_or_default()))
            }
            Form::Deployment { service } => {
                let mut found = None;
                while let Some(key) = map.next_key::<Value>()? {
                    if key.as_str() == Some("services") && found.is_none() {
                        found = Some(map.next_value_seed(ServicesSeed {
                            service,
                            hints: &self.plan.hints,
                        })?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                let (init, errors) = found.ok_or_else(|| de::Error::missing_field("services"))?;
                let init = init.ok_or_else(|| de::Error::missing_field("init"))?;
                Ok((init, errors.unwrap_or_default()))
            }
        }
    }
}

/// Reads `init` and `errors` from a mapping. With `strict`, any other key
/// is an error; otherwise other keys (a service's image, resources, ...)
/// are skipped.
fn sections<'de, A: MapAccess<'de>>(
    map: &mut A,
    hints: &[Option<String>],
    strict: bool,
) -> Result<(Option<InitSpec>, Option<ErrorsSpec>), A::Error> {
    const TOP: &[&str] = &["init", "errors"];
    let mut init = None;
    let mut errors = None;
    let mut seen = Vec::new();
    loop {
        let key = if strict {
            match map.next_key_seed(FieldKey {
                allowed: TOP,
                seen: &mut seen,
            })? {
                Some(key) => key,
                None => break,
            }
        } else {
            match map.next_key::<Value>()? {
                Some(Value::String(s)) if s == "init" && init.is_none() => "init",
                Some(Value::String(s)) if s == "errors" && errors.is_none() => "errors",
                Some(_) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                None => break,
            }
        };
        if key == "init" {
            init = Some(map.next_value_seed(InitSeed { hints })?);
        } else {
            errors = Some(map.next_value::<ErrorsSpec>()?);
        }
    }
    Ok((init, errors))
}

struct ServicesSeed<'a> {
    service: &'a str,
    hints: &'a [Option<String>],
}

type MaybeSections = (Option<InitSpec>, Option<ErrorsSpec>);

impl<'de> DeserializeSeed<'de> for ServicesSeed<'_> {
    type Value = MaybeSections;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MaybeSections, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ServicesSeed<'_> {
    type Value = MaybeSections;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of service names to services")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeSections, A::Error> {
        let mut found = (None, None);
        while let Some(name) = map.next_key::<Value>()? {
            if name.as_str() == Some(self.service) {
                found = map.next_value_seed(ServiceSeed { hints: self.hints })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct ServiceSeed<'a> {
    hints: &'a [Option<String>],
}

impl<'de> DeserializeSeed<'de> for ServiceSeed<'_> {
    type Value = MaybeSections;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MaybeSections, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ServiceSeed<'_> {
    type Value = MaybeSections;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a service mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeSections, A::Error> {
        sections(&mut map, self.hints, false)
    }
}

struct InitSeed<'a> {
    hints: &'a [Option<String>],
}

impl<'de> DeserializeSeed<'de> for InitSeed<'_> {
    type Value = InitSpec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<InitSpec, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InitSeed<'_> {
    type Value = InitSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an init section with `steps`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InitSpec, A::Error> {
        let mut seen = Vec::new();
        let mut steps = Vec::new();
        while map
            .next_key_seed(FieldKey {
                allowed: &["steps"],
                seen: &mut seen,
            })?
            .is_some()
        {
            steps = map.next_value_seed(StepsSeed { hints: self.hints })?;
        }
        Ok(InitSpec { steps })
    }
}

struct StepsSeed<'a> {
    hints: &'a [Option<String>],
}

impl<'de> DeserializeSeed<'de> for StepsSeed<'_> {
    type Value = Vec<Step>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Step>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StepsSeed<'_> {
    type Value = Vec<Step>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of steps")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Step>, A::Error> {
        let ids = RefCell::new(Vec::new());
        let mut steps = Vec::new();
        loop {
            let hint = self
                .hints
                .get(steps.len())
                .and_then(|h| h.as_deref())
                .and_then(known_action);
            match seq.next_element_seed(StepSeed { hint, ids: &ids })? {
                Some(step) => steps.push(step),
                None => break,
            }
        }
        Ok(steps)
    }
}

fn known_action(name: &str) -> Option<&'static str> {
    ActionSpec::NAMES.iter().copied().find(|n| *n == name)
}

pub(super) const STEP_FIELDS: &[&str] = &["id", "uses", "with", "timeout", "retry", "on_failure"];

struct StepSeed<'a> {
    /// This step's `uses:` as found by pass one, when it names an action.
    hint: Option<&'static str>,
    /// Ids of the steps before this one.
    ids: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for StepSeed<'_> {
    type Value = Step;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Step, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StepSeed<'_> {
    type Value = Step;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step mapping with `id`, `uses` and `with`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
        let mut seen = Vec::new();
        let mut id = None;
        let mut uses: Option<&'static str> = None;
        let mut action: Option<ActionSpec> = None;
        let mut timeout = None;
        let mut retry = None;
        let mut on_failure = None;
        while let Some(key) = map.next_key_seed(FieldKey {
            allowed: STEP_FIELDS,
            seen: &mut seen,
        })? {
            match key {
                "id" => id = Some(map.next_value_seed(IdSeed { ids: self.ids })?),
                "uses" => uses = Some(map.next_value::<UsesName>()?.0),
                "with" => match uses.or(self.hint) {
                    Some(name) => action = Some(map.next_value_seed(ParamsSeed { name })?),
                    // `uses` is missing or invalid: that error is reported.
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
                "timeout" => timeout = map.next_value::<Option<StepTimeout>>()?.map(|t| t.0),
                "retry" => retry = map.next_value::<Option<u32>>()?,
                _ => on_failure = map.next_value::<Option<OnFailure>>()?,
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let uses = uses.ok_or_else(|| de::Error::missing_field("uses"))?;
        let action = action.ok_or_else(|| de::Error::missing_field("with"))?;
        if action.name() != uses {
            // Only reachable when pass one and pass two disagree (YAML
            // merge keys); refuse rather than guess.
            return Err(de::Error::custom(format!(
                "`with` was read for `{}` but the step uses `{uses}`",
                action.name()
            )));
        }
        Ok(Step {
            id,
            action,
            timeout,
            retry: retry.unwrap_or(0),
            on_failure: on_failure.unwrap_or_default(),
        })
    }
}

/// A step id: non-empty and unique among the steps read so far.
struct IdSeed<'a> {
    ids: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IdSeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step id (text)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.trim().is_empty() {
            return Err(E::custom("step id must not be empty"));
        }
        let mut ids = self.ids.borrow_mut();
        if let Some(first) = ids.iter().position(|id| id == v) {
            return Err(E::custom(format!(
                "duplicate step id `{v}` (already used by step {})",
                first + 1
            )));
        }
        ids.push(v.to_owned());
        Ok(v.to_owned())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
}

/// A `uses:` value that names a known action.
struct UsesName(&'static str);

impl<'de> serde::Deserialize<'de> for UsesName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(UsesVisitor)
    }
}

struct UsesVisitor;

impl Visitor<'_> for UsesVisitor {
    type Value = UsesName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an action name, one of: {}",
            ActionSpec::NAMES.join(", ")
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<UsesName, E> {
        known_action(v).map(UsesName).ok_or_else(|| {
            E::custom(format!(
                "unknown action `{v}`, expected one of: {}",
                ActionSpec::NAMES.join(", ")
            ))
        })
    }
}

/// Reads a `with:` block straight into the parameter type of `name`.
struct ParamsSeed {
    name: &'static str,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = ActionSpec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ActionSpec, D::Error> {
        ActionSpec::deserialize_params(self.name, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_name_has_a_parameter_reader() {
        for name in ActionSpec::NAMES {
            // An empty mapping is never valid parameters; the error must be
            // about the parameters, not about a missing reader.
            let de = serde_norway::Deserializer::from_str("{}");
            let err = ParamsSeed { name }.deserialize(de).unwrap_err().to_string();
            assert!(!err.contains("no parameter reader"), "{name}: {err}");
        }
    }
}

//! The seeds that read a spec from its nodes: each checks what it reads
//! inside its visitor (unknown fields, duplicate step ids, unknown
//! actions), so the node deserializer stamps every error with the position
//! and path of the node at fault.

use std::cell::RefCell;
use std::fmt;

use rebound_retry::PolicySpec;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::duration::StepTimeout;
use super::super::{ErrorsSpec, InitSpec, OnFailure, Step};
use crate::actions::ActionSpec;

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

/// An init-only spec file: `init` and `errors`, nothing else.
pub(super) struct FileSeed<'a> {
    pub(super) hints: &'a [Option<String>],
}

pub(super) type Sections = (InitSpec, ErrorsSpec);

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
        let (init, errors) = sections(&mut map, self.hints, true)?;
        let init = init.ok_or_else(|| de::Error::missing_field("init"))?;
        Ok((init, errors.unwrap_or_default()))
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
            match map.next_key::<AnyKey>()? {
                Some(AnyKey(Some(s))) if s == "init" => "init",
                Some(AnyKey(Some(s))) if s == "errors" => "errors",
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

/// A mapping key read leniently: its text when it is text, else nothing.
struct AnyKey(Option<String>);

impl<'de> serde::Deserialize<'de> for AnyKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyKey, E> {
                Ok(AnyKey(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyKey, E> {
                Ok(AnyKey(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<AnyKey, A::Error> {
                Ok(AnyKey(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<AnyKey, A::Error> {
                Ok(AnyKey(None))
            }
        }
        // Keys are read as text: a key `123` is the text "123".
        d.deserialize_str(V).or(Ok(AnyKey(None)))
    }
}

/// A service of a deployment: its `init` and `errors`, other keys skipped.
pub(super) struct ServiceSeed<'a> {
    pub(super) hints: &'a [Option<String>],
}

pub(super) type MaybeSections = (Option<InitSpec>, Option<ErrorsSpec>);

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

pub(super) struct InitSeed<'a> {
    pub(super) hints: &'a [Option<String>],
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
            let seed = StepSeed {
                hint,
                ids: &ids,
                default_id: None,
            };
            match seq.next_element_seed(seed)? {
                Some(step) => steps.push(step),
                None => break,
            }
        }
        Ok(steps)
    }
}

pub(super) fn known_action(name: &str) -> Option<&'static str> {
    ActionSpec::NAMES.iter().copied().find(|n| *n == name)
}

pub(crate) const STEP_FIELDS: &[&str] = &["id", "uses", "with", "timeout", "retry", "on_failure"];

pub(super) struct StepSeed<'a> {
    /// This step's `uses:` as looked up on its node, when it names an
    /// action (so a `with:` written before `uses:` is read right).
    pub(super) hint: Option<&'static str>,
    /// Ids of the steps before this one.
    pub(super) ids: &'a RefCell<Vec<String>>,
    /// The id of a step written without one (the agent's probe); `None`
    /// makes `id` required.
    pub(super) default_id: Option<&'a str>,
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
                "retry" => retry = map.next_value::<Option<Retry>>()?,
                _ => on_failure = map.next_value::<Option<OnFailure>>()?,
            }
        }
        let id = match (id, self.default_id) {
            (Some(id), _) => id,
            (None, Some(default)) => default.to_owned(),
            (None, None) => return Err(de::Error::missing_field("id")),
        };
        let uses = uses.ok_or_else(|| de::Error::missing_field("uses"))?;
        let action = action.ok_or_else(|| de::Error::missing_field("with"))?;
        if action.name() != uses {
            // Unreachable while the hint comes from the same node (keys
            // are unique); refuse rather than guess if it ever does not.
            return Err(de::Error::custom(format!(
                "`with` was read for `{}` but the step uses `{uses}`",
                action.name()
            )));
        }
        let (retry, retry_policy) = match retry {
            None => (0, None),
            Some(Retry::Count(n)) => (n, None),
            Some(Retry::Policy(policy)) => {
                // `retry` stays the number of attempts after the first.
                let retries = policy.attempts.map_or(u32::MAX, |n| n.saturating_sub(1));
                (retries, Some(policy))
            }
        };
        Ok(Step {
            id,
            action,
            timeout,
            retry,
            retry_policy,
            on_failure: on_failure.unwrap_or_default(),
        })
    }
}

/// A step's `retry:`: ZLayer's number of retries after the first attempt,
/// or a retry policy mapping (rebound-retry's [`PolicySpec`], read with its
/// own reader: unknown keys, zero attempts, a multiplier below 1 and bad
/// durations are refused at the key or value at fault; settings that
/// conflict with each other are found at the end of the mapping, and the
/// loader moves that error to the setting's value, see `retry.rs`).
enum Retry {
    Count(u32),
    Policy(PolicySpec),
}

impl<'de> serde::Deserialize<'de> for Retry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RetryVisitor)
    }
}

struct RetryVisitor;

impl<'de> Visitor<'de> for RetryVisitor {
    type Value = Retry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of retries (0 or more) or a retry policy mapping (attempts, backoff, initial, max, multiplier, jitter, deadline, attempt_timeout)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Retry, E> {
        u32::try_from(v).map(Retry::Count).map_err(|_| {
            E::custom(format!(
                "retry {v} is too large (at most {} retries)",
                u32::MAX
            ))
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Retry, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "retry must be 0 or more (the retries after the first attempt), got {v}"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Retry, A::Error> {
        PolicySpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(Retry::Policy)
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

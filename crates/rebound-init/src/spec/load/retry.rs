//! Settings of a `retry:` policy mapping that conflict with each other
//! (`max` below `initial`, `multiplier` with `backoff: constant`) can only
//! be found once the whole mapping is read, so the reader reports them at
//! the mapping. Here such an error is moved to the value of the setting
//! it names, which the nodes still show.

use rebound_retry::{BackoffKind, Jitter, PolicySpec};
use serde::de::{self, Deserializer, Visitor};

use super::super::yaml::de::NodeDeserializer;
use super::super::yaml::{self, Node};
use super::super::{SpecError, SpecErrorKind};

/// `err` moved to the value of the setting it is about, when it is a
/// conflict reported at the `retry:` mapping of one of `steps` (each with
/// its path in the file, for the message); else `err` unchanged.
pub(super) fn relocate<'n>(
    err: SpecError,
    steps: impl IntoIterator<Item = (&'n Node, String)>,
    origin: &str,
) -> SpecError {
    if err.kind() != SpecErrorKind::Invalid {
        return err;
    }
    let at = (err.line(), err.column());
    for (step, path) in steps {
        let Some(retry) = step.get("retry") else {
            continue;
        };
        let mark = retry.mark();
        if at != (Some(mark.line()), Some(mark.column())) || retry.as_map().is_none() {
            continue;
        }
        return at_setting(retry, &format!("{path}.retry"), origin).unwrap_or(err);
    }
    err
}

/// The error of the conflict in `retry`, at the value of the setting it
/// names; `None` when the settings read one by one do not conflict or the
/// setting is not written (a default it conflicts with).
fn at_setting(retry: &Node, path: &str, origin: &str) -> Option<SpecError> {
    let mut spec = PolicySpec::default();
    for (key, value) in retry.as_map()? {
        let read = || NodeDeserializer::new(value);
        match key.as_str()? {
            "attempts" => {
                spec.attempts = match value.as_str() {
                    Some(text) if text.trim().eq_ignore_ascii_case("forever") => None,
                    _ => Some(yaml::from_node::<u32>(value).ok()?),
                };
            }
            "backoff" => spec.backoff = yaml::from_node::<BackoffKind>(value).ok()?,
            "initial" => spec.initial = duration(read())?,
            "max" => spec.max = Some(duration(read())?),
            "multiplier" => spec.multiplier = Some(yaml::from_node::<f64>(value).ok()?),
            "jitter" => spec.jitter = Some(yaml::from_node::<Jitter>(value).ok()?),
            "deadline" => spec.deadline = Some(duration(read())?),
            "attempt_timeout" => spec.attempt_timeout = Some(duration(read())?),
            _ => return None,
        }
    }
    let conflict = spec.validate().err()?;
    let setting = match conflict.setting() {
        "max_delay" => "max",
        setting => setting,
    };
    let value = retry.get(setting)?;
    let fail = Fail(conflict.to_string());
    let err = match de::DeserializeSeed::deserialize(
        fail,
        NodeDeserializer::at(value, &format!("{path}.{setting}")),
    ) {
        Ok(()) => return None,
        Err(err) => err,
    };
    Some(SpecError::from_yaml(origin, &err))
}

fn duration(d: NodeDeserializer<'_, '_>) -> Option<std::time::Duration> {
    rebound_retry::duration::serde::deserialize(d).ok()
}

/// A reader that refuses any value with its message: the node deserializer
/// stamps the error with the value's position and path.
struct Fail(String);

impl<'de> de::DeserializeSeed<'de> for Fail {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Fail {
    fn fail<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
}

impl<'de> Visitor<'de> for Fail {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.fail()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.fail()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.fail()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.fail()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.fail()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.fail()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.fail()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.fail()
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.fail()
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.fail()
    }
}

//! The JSON Schema of a spec file, for editors (`rebound schema`).
//!
//! A step's `with:` depends on its `uses:`, which derives cannot express;
//! the step schema is therefore written here with one `if`/`then` per
//! action ([`ActionSpec::params_schemas`], generated from the one list of
//! actions), while every parameter type contributes its derived schema.

use rebound_retry::{BackoffKind, Jitter};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};

use super::{ErrorsSpec, OnFailure};
use crate::actions::ActionSpec;
use crate::actions::duration::DurationSchema;

/// The JSON Schema (draft 2020-12) of a spec file: either just `init` and
/// `errors`, or a ZLayer deployment with `services`.
///
/// ```
/// let schema = rebound_init::spec::json_schema();
/// assert_eq!(schema["title"], "rebound init spec");
/// let text = schema.to_string();
/// assert!(text.contains("init.wait_tcp"));
/// ```
pub fn json_schema() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    // One entry per action, from the one declaration of the actions.
    let by_action: Vec<Value> = ActionSpec::params_schemas(&mut generator)
        .into_iter()
        .map(|(name, with)| {
            let with = with.to_value();
            json!({
                "if": { "properties": { "uses": { "const": name } }, "required": ["uses"] },
                "then": { "properties": { "with": with } }
            })
        })
        .collect();
    let duration = sub::<DurationSchema>(&mut generator);
    let on_failure = sub::<OnFailure>(&mut generator);
    let errors = sub::<ErrorsSpec>(&mut generator);
    let step = json!({
        "type": "object",
        "description": "One init step: an action with its timeout, retries and failure policy.",
        "additionalProperties": false,
        "required": ["id", "uses", "with"],
        "properties": {
            "id": { "type": "string", "minLength": 1, "description": "Unique step id." },
            "uses": { "enum": ActionSpec::NAMES, "description": "The action." },
            "with": { "type": "object", "description": "The action's parameters." },
            "timeout": {
                "description": "Bound on the whole step, retries included (humantime or seconds).",
                "allOf": [duration]
            },
            "retry": {
                "description": "ZLayer's number of attempts after the first one (waits the default step backoff), or a retry policy mapping.",
                "anyOf": [
                    { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                    { "$ref": "#/$defs/RetryPolicy" }
                ]
            },
            "on_failure": on_failure
        },
        "allOf": by_action
    });
    let init = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": { "steps": { "type": "array", "items": { "$ref": "#/$defs/Step" } } }
    });
    let mut defs = serde_json::Map::new();
    for (name, schema) in generator.take_definitions(true) {
        defs.insert(name, schema);
    }
    defs.insert("RetryPolicy".into(), retry_policy(&duration));
    defs.insert("Step".into(), step);
    defs.insert("Init".into(), init);
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rebound init spec",
        "description": "ZLayer's init format (init.steps, errors.on_init_failure) with rebound's extensions; either the init spec alone or a ZLayer deployment with services.",
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["init"],
                "properties": {
                    "init": { "$ref": "#/$defs/Init" },
                    "errors": errors
                }
            },
            {
                "type": "object",
                "required": ["services"],
                // `init` and `errors` go inside a service here.
                "not": { "anyOf": [{ "required": ["init"] }, { "required": ["errors"] }] },
                "properties": {
                    "services": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "init": { "$ref": "#/$defs/Init" },
                                "errors": errors
                            }
                        }
                    }
                }
            }
        ],
        "$defs": defs
    });
    strip_doc_examples(&mut schema);
    schema
}

/// A step's `retry:` mapping: rebound-retry's policy language
/// ([`rebound_retry::PolicySpec`]), durations in the one grammar.
fn retry_policy(duration: &Value) -> Value {
    let backoffs: Vec<&str> = BackoffKind::ALL.iter().map(|k| k.name()).collect();
    let jitters: Vec<&str> = Jitter::ALL.iter().map(|j| j.name()).collect();
    let duration_for = |what: &str| json!({ "description": what, "allOf": [duration] });
    json!({
        "type": "object",
        "description": "A retry policy. Every key is optional; the defaults are 3 attempts, exponential from 100ms x2 capped at 5s, equal jitter, no deadline.",
        "additionalProperties": false,
        "properties": {
            "attempts": {
                "description": "Total attempts, the first included, or \"forever\" (bound it with `deadline` or the step's `timeout`).",
                "anyOf": [
                    { "type": "integer", "minimum": 1, "maximum": u32::MAX },
                    { "const": "forever" }
                ]
            },
            "backoff": { "enum": backoffs, "description": "The shape of the delays." },
            "initial": duration_for("The first delay (constant: every delay; decorrelated: the base)."),
            "max": duration_for("The cap on delays (not for constant backoff); at least `initial`."),
            "multiplier": {
                "type": "number", "minimum": 1,
                "description": "The growth factor (exponential backoff only)."
            },
            "jitter": { "enum": jitters, "description": "How delays are randomised (not for decorrelated backoff)." },
            "deadline": duration_for("A bound on all attempts and pauses; no pause runs past it."),
            "attempt_timeout": duration_for("A bound on each attempt; a cut attempt is retried.")
        }
    })
}

/// Removes the fenced code blocks (the Rust doc tests of the types the
/// descriptions come from) from every `description`: an editor shows the
/// description on hover, where Rust code only gets in the way.
fn strip_doc_examples(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        *text = without_code_blocks(text);
                    }
                    _ => strip_doc_examples(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_doc_examples),
        _ => {}
    }
}

fn without_code_blocks(text: &str) -> String {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            out.push(line);
        }
    }
    out.join("\n").trim_end().to_owned()
}

fn sub<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schema_lists_exactly_the_fields_the_loader_accepts() {
        let schema = json_schema();
        let mut props: Vec<&str> = schema["$defs"]["Step"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = super::super::load::STEP_FIELDS.to_vec();
        props.sort_unstable();
        fields.sort_unstable();
        assert_eq!(props, fields);
    }

    #[test]
    fn retry_is_a_count_or_a_policy_whose_keys_the_loader_reads() {
        let schema = json_schema();
        let retry = &schema["$defs"]["Step"]["properties"]["retry"]["anyOf"];
        assert_eq!(retry[0]["type"], "integer");
        assert_eq!(retry[1]["$ref"], "#/$defs/RetryPolicy");
        let policy = &schema["$defs"]["RetryPolicy"];
        assert_eq!(policy["additionalProperties"], false);
        let keys: Vec<&String> = policy["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
        // Every key the schema lists is read by the loader (which refuses
        // unknown keys), and every name it lists for backoff and jitter.
        let value = |key: &str| match key {
            "attempts" => "4",
            "backoff" => "exponential",
            "multiplier" => "1.5",
            "jitter" => "full",
            _ => "2s",
        };
        for key in keys {
            let yaml = format!(
                "init:\n  steps:\n    - {{ id: a, uses: init.wait_file, with: {{ path: /x }}, retry: {{ {key}: {} }} }}\n",
                value(key)
            );
            let spec = super::super::Spec::from_yaml(&yaml, "x.yaml", None)
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(spec.init.steps[0].retry_policy.is_some(), "{key}");
        }
        for (key, names) in [
            ("backoff", &policy["properties"]["backoff"]["enum"]),
            ("jitter", &policy["properties"]["jitter"]["enum"]),
        ] {
            for name in names.as_array().unwrap() {
                let name = name.as_str().unwrap();
                let extra = if key == "jitter" {
                    ""
                } else {
                    ", jitter: none"
                };
                let extra = if name == "decorrelated" { "" } else { extra };
                let yaml = format!(
                    "init:\n  steps:\n    - {{ id: a, uses: init.wait_file, with: {{ path: /x }}, retry: {{ {key}: {name}{extra} }} }}\n"
                );
                super::super::Spec::from_yaml(&yaml, "x.yaml", None)
                    .unwrap_or_else(|e| panic!("{key}: {name}: {e}"));
            }
        }
    }

    #[test]
    fn descriptions_carry_no_rust_doc_tests() {
        let text = json_schema().to_string();
        assert!(!text.contains("```"), "a code fence in the schema");
        assert!(
            !text.contains("serde_json::from_str"),
            "Rust code in the schema"
        );
        // The prose before the examples is kept.
        let schema = json_schema();
        let run = schema["$defs"]["Run"]["description"].as_str().unwrap();
        assert!(run.starts_with("The `with:` block of `init.run`."), "{run}");
        assert!(!run.ends_with('\n'), "{run:?}");
        assert_eq!(
            without_code_blocks("Prose.\n\n```\nlet x = 1;\n```\nMore."),
            "Prose.\n\nMore."
        );
    }

    #[test]
    fn every_action_has_a_with_schema_and_refs_resolve() {
        let schema = json_schema();
        let by_action = schema["$defs"]["Step"]["allOf"].as_array().unwrap();
        assert_eq!(by_action.len(), ActionSpec::NAMES.len());
        let text = schema.to_string();
        for name in ActionSpec::NAMES {
            assert!(text.contains(&format!("\"const\":\"{name}\"")), "{name}");
        }
        // Every local reference points at a definition that exists.
        for part in text.split("\"$ref\":\"#/$defs/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(schema["$defs"].get(name).is_some(), "dangling $ref {name}");
        }
    }
}

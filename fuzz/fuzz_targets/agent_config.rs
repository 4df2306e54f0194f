//! The agent config loader (`AgentConfig::parse`), with the invariants:
//!
//! - An accepted config: each runtime's `start` and `probe` spec,
//!   serialized with serde_json and loaded with `Spec::from_yaml`, gives
//!   the same steps (what `rebound init` would run is what the agent
//!   runs). serde_json's text is read as it is (see `init_spec`).
//! - A refused config: the message starts with `agent.yaml:`, and the
//!   error has a line and column within the input's lines (+1 for the
//!   end), except for an empty config (no document, or a null one), the
//!   only refusal of text without a place (a file too large cannot be
//!   reached with the fuzzer's input sizes).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use rebound::agent::config::{AgentConfig, ConfigError};
use rebound_init::spec::Spec;

fn same_steps(spec: &Spec, what: &str) {
    let json = serde_json::to_string(spec).expect("a spec serializes");
    let again = Spec::from_yaml(&json, "fuzz.json", None)
        .unwrap_or_else(|e| panic!("{what}, written as a spec, is refused: {e}\n{json}"));
    assert_eq!(
        again.init, spec.init,
        "{what} reads back different:\n{json}"
    );
}

fuzz_target!(|text: &str| {
    let err = match AgentConfig::parse(text, "agent.yaml") {
        Ok(config) => {
            for runtime in &config.runtimes {
                same_steps(&runtime.start, &format!("runtime `{}` start", runtime.name));
                same_steps(&runtime.probe, &format!("runtime `{}` probe", runtime.name));
            }
            return;
        }
        Err(err) => err,
    };
    let shown = err.to_string();
    assert!(shown.starts_with("agent.yaml:"), "{shown}");
    let position = match &err {
        ConfigError::Yaml { source, .. } => source.mark().map(|m| (m.line(), m.column())),
        ConfigError::Spec(e) => e.line().zip(e.column()),
        ConfigError::Invalid { mark, .. } => mark.map(|m| (m.line(), m.column())),
        other => panic!("a text refused as {other:?}"),
    };
    match position {
        Some((line, column)) => {
            common::check_position(text, line, column, &err);
            assert!(
                shown.starts_with(&format!("agent.yaml:{line}:{column}: ")),
                "the message does not show its position {line}:{column}: {shown}"
            );
        }
        None => assert!(
            shown.starts_with("agent.yaml: the agent config is empty")
                || shown.starts_with("agent.yaml: the file is larger"),
            "an error without a position: {shown}"
        ),
    }
});

//! One-step specs for the waits' tests: the action a spec reads, or the
//! loader's error, and a context that drops command output.

use std::sync::Arc;

use rebound_init::actions::{ActionContext, ActionSpec};
use rebound_init::spec::Spec;

/// A context whose command output goes nowhere.
pub fn ctx() -> ActionContext {
    ActionContext::new("t", Arc::new(|_, _, _| {}))
}

/// The loader's error for a one-step spec using `uses` with `with`.
pub fn refused(uses: &str, with: &str) -> String {
    let yaml = format!("init:\n  steps:\n    - id: s\n      uses: {uses}\n      with: {with}\n");
    Spec::from_yaml(&yaml, "spec.yaml", None)
        .expect_err(&yaml)
        .to_string()
}

/// The action of a one-step spec.
pub fn action(uses: &str, with: &str) -> ActionSpec {
    let yaml = format!("init:\n  steps:\n    - id: s\n      uses: {uses}\n      with: {with}\n");
    let spec = Spec::from_yaml(&yaml, "spec.yaml", None).unwrap_or_else(|e| panic!("{e}"));
    spec.init.steps[0].action.clone()
}

//! The duration grammar of specs and flags (`actions::duration::parse`:
//! humantime text or a bare number of seconds): parsing never panics;
//! zero is accepted (`"0"`, `"0s"`: the step `timeout:` adds its own
//! check that refuses it); text starting with `-` is refused as negative;
//! an accepted duration's canonical text (what `duration::serialize`
//! writes) parses back to the same duration, to the nanosecond; and a
//! step `timeout:` takes exactly the accepted durations above zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rebound_init::actions::duration::{self, DurationError};
use rebound_init::spec::Spec;

fuzz_target!(|text: &str| {
    let parsed = duration::parse(text);
    if text.trim().starts_with('-') {
        assert!(
            matches!(parsed, Err(DurationError::Negative { .. })),
            "{text:?}: {parsed:?}"
        );
    }
    if let Ok(d) = parsed {
        let canonical = humantime::format_duration(d).to_string();
        assert_eq!(
            duration::parse(&canonical).ok(),
            Some(d),
            "{text:?} -> {canonical:?} does not read back"
        );
    }
    // The same text as a step timeout (a JSON string: any text fits).
    let spec = format!(
        r#"{{"init": {{"steps": [{{"id": "a", "uses": "init.wait_file", "with": {{"path": "/x"}}, "timeout": {}}}]}}}}"#,
        serde_json::to_string(text).unwrap()
    );
    let step = Spec::from_yaml(&spec, "fuzz.json", None);
    match (parsed, step) {
        (Ok(d), Ok(spec)) => {
            assert!(!d.is_zero(), "{text:?}: a zero step timeout was accepted");
            assert_eq!(spec.init.steps[0].timeout, Some(d), "{text:?}");
        }
        (Ok(d), Err(e)) => assert!(
            d.is_zero(),
            "{text:?} parses to {d:?} but the step refuses it: {e}"
        ),
        (Err(_), Ok(spec)) => panic!("{text:?} is refused but the step takes it: {spec:?}"),
        (Err(_), Err(e)) => assert!(e.line().is_some(), "{e}"),
    }
});

//! Every way a spec is rejected, as the user sees it (file:line:col).

use rebound_init::spec::{Spec, SpecError, SpecErrorKind};

fn reject(yaml: &str) -> SpecError {
    match Spec::from_yaml(yaml, "spec.yaml", None) {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(err) => err,
    }
}

fn reject_text(yaml: &str) -> String {
    reject(yaml).to_string()
}

#[test]
fn unknown_top_level_field() {
    insta::assert_snapshot!(reject_text("init:\n  steps: []\nerorrs: {}\n"));
}

#[test]
fn unknown_step_field() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      retries: 3\n"
    ));
}

#[test]
fn unknown_action_lists_valid_ones() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tpc\n      with: { host: db, port: 5432 }\n"
    ));
}

#[test]
fn unknown_field_inside_with() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n        port: 5432\n        hots: x\n"
    ));
}

#[test]
fn missing_parameter() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n"
    ));
}

#[test]
fn missing_with() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n"
    ));
}

#[test]
fn missing_id() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - uses: init.run\n      with: { command: 'true' }\n"
    ));
}

#[test]
fn port_zero() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with: { host: db, port: 0 }\n"
    ));
}

#[test]
fn port_above_65535_is_rejected_not_wrapped() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n        port: 70000\n"
    ));
}

#[test]
fn duplicate_step_id() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n    - id: b\n      uses: init.run\n      with: { command: 'true' }\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n"
    ));
}

// Its spec uses init.wait_http, refused at load without the feature.
#[cfg(feature = "http")]
#[test]
fn bad_url_is_reported_at_the_value() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_http\n      with:\n        expect_status: 200\n        url: ftp://db/health\n"
    ));
}

// Its spec uses init.wait_http, refused at load without the feature.
#[cfg(feature = "http")]
#[test]
fn bad_url_message_hides_the_password() {
    let text = reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_http\n      with: { url: 'ftp://admin:hunter22@db/health' }\n",
    );
    assert!(!text.contains("hunter22"), "{text}");
    assert!(text.contains("ftp://admin:***@db/health"), "{text}");
}

#[test]
fn empty_host_is_reported_at_the_value_naming_the_field() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        port: 5432\n        host: ''\n"
    ));
}

#[test]
fn bad_step_timeout() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      timeout: 5 parsecs\n"
    ));
}

#[test]
fn negative_step_timeout() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      timeout: -5\n"
    ));
}

#[test]
fn bad_duration_inside_with() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.wait_file\n      with: { path: /tmp/x, timeout: soon }\n"
    ));
}

#[test]
fn bad_on_failure() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      on_failure: explode\n"
    ));
}

#[test]
fn bad_init_failure_action() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps: []\nerrors:\n  on_init_failure:\n    action: panic\n"
    ));
}

#[test]
fn unknown_field_in_errors() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps: []\nerrors:\n  on_init_failure:\n    action: backoff\n    max_retires: 5\n"
    ));
}

#[test]
fn malformed_yaml() {
    insta::assert_snapshot!(reject_text(
        "init:\n  steps:\n    - id: a\n     uses: init.run\n"
    ));
}

#[test]
fn empty_file() {
    let err = reject("");
    assert_eq!(err.kind(), SpecErrorKind::Invalid);
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn with_before_uses_still_points_into_with() {
    // `with` comes first: the loader must still read it as wait_tcp
    // parameters and point at the bad port itself.
    let err = reject(
        "init:\n  steps:\n    - id: a\n      with:\n        host: db\n        port: 0\n      uses: init.wait_tcp\n",
    );
    assert_eq!((err.line(), err.column()), (Some(6), Some(15)), "{err}");
    insta::assert_snapshot!(err.to_string());
}

// Its spec uses init.wait_http, refused at load without the feature.
#[cfg(feature = "http")]
#[test]
fn positions_point_at_the_offending_node() {
    // (yaml, line, column) of the node at fault.
    let cases = [
        // unknown key inside `with` (the key itself)
        (
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n        port: 5432\n        hots: x\n",
            8,
            9,
        ),
        // port 0: the value
        (
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n        port: 0\n",
            7,
            15,
        ),
        // unknown action: the `uses` value
        (
            "init:\n  steps:\n    - id: a\n      uses: init.nope\n      with: {}\n",
            4,
            13,
        ),
        // duplicate id: the second id's value
        (
            "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n",
            6,
            11,
        ),
        // missing parameter: the `with` mapping
        (
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        host: db\n",
            6,
            9,
        ),
        // bad step timeout: the value
        (
            "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      timeout: 5 parsecs\n",
            6,
            16,
        ),
        // bad url: the value, not the `with:` line (it used to be checked
        // after the struct was read, which pointed at the mapping)
        (
            "init:\n  steps:\n    - id: a\n      uses: init.wait_http\n      with:\n        expect_status: 200\n        url: ftp://db/health\n",
            7,
            14,
        ),
        // empty host: the value (same regression)
        (
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with:\n        port: 5432\n        host: ''\n",
            7,
            15,
        ),
        // bad S3 endpoint and empty bucket: the value
        (
            "init:\n  steps:\n    - id: a\n      uses: init.s3_pull\n      with:\n        key: k\n        destination: /tmp/x\n        bucket: b\n        endpoint: s3.local\n",
            9,
            19,
        ),
        (
            "init:\n  steps:\n    - id: a\n      uses: init.s3_push\n      with:\n        source: /tmp/x\n        key: k\n        bucket: ' '\n",
            8,
            17,
        ),
    ];
    for (yaml, line, column) in cases {
        let err = reject(yaml);
        assert_eq!(
            (err.line(), err.column()),
            (Some(line), Some(column)),
            "{err}\n--- yaml\n{yaml}"
        );
    }
}

#[test]
fn file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let err = Spec::load(&missing, None).unwrap_err();
    assert_eq!(err.kind(), SpecErrorKind::Io);
    assert!(err.to_string().contains("missing.yaml"), "{err}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "init:\n  steps:\n    - id: a\n      uses: init.x\n").unwrap();
    let err = Spec::load(&bad, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:4:13: ", bad.display())),
        "{err}"
    );
}

/// A step whose `retry:` is the block mapping `policy` (lines from 6 on).
fn with_retry(policy: &str) -> String {
    format!(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: {{ command: 'true' }}\n      retry:\n{policy}"
    )
}

#[test]
fn bad_retry_policies_point_at_the_setting_at_fault() {
    let cases: [(&str, &str); 14] = [
        // unknown key: the key
        (
            "        attempts: 3\n        retries: 2\n",
            "spec.yaml:8:9: init.steps[0].retry: unknown field `retries`, expected one of `attempts`, `backoff`, `initial`, `max`, `multiplier`, `jitter`, `deadline`, `attempt_timeout`",
        ),
        // zero attempts: the value
        (
            "        backoff: constant\n        attempts: 0\n",
            "spec.yaml:8:19: init.steps[0].retry.attempts: max attempts must be at least 1 (the count includes the first attempt)",
        ),
        (
            "        attempts: -1\n",
            "spec.yaml:7:19: init.steps[0].retry.attempts: attempts must be at least 1 (the count includes the first attempt), got -1",
        ),
        // multiplier below 1: the value
        (
            "        initial: 1s\n        multiplier: 0.5\n",
            "spec.yaml:8:21: init.steps[0].retry.multiplier: multiplier must be a finite number of at least 1, got 0.5",
        ),
        // unknown jitter and backoff: the value, with the valid names
        (
            "        jitter: half\n",
            "spec.yaml:7:17: init.steps[0].retry.jitter: unknown jitter \"half\" (expected none, full, equal or decorrelated)",
        ),
        (
            "        backoff: linear\n",
            "spec.yaml:7:18: init.steps[0].retry.backoff: unknown backoff \"linear\" (expected constant, exponential, fibonacci or decorrelated)",
        ),
        // a bad duration: the value, in the one grammar's words
        (
            "        initial: -1s\n",
            "spec.yaml:7:18: init.steps[0].retry.initial: negative duration \"-1s\" (durations must be zero or more)",
        ),
        (
            "        max: 5 parsecs\n",
            "spec.yaml:7:14: init.steps[0].retry.max: invalid duration \"5 parsecs\"",
        ),
        // a zero deadline or attempt timeout: the value
        (
            "        deadline: 0\n",
            "spec.yaml:7:19: init.steps[0].retry.deadline: deadline must be above zero",
        ),
        (
            "        attempt_timeout: 0s\n",
            "spec.yaml:7:26: init.steps[0].retry.attempt_timeout: attempt_timeout must be above zero",
        ),
        // settings that conflict with each other: the value of the one
        // the message is about (found once the whole mapping is read)
        (
            "        max: 1s\n        initial: 10s\n",
            "spec.yaml:7:14: init.steps[0].retry.max: max delay (1s) is below the initial delay (10s)",
        ),
        (
            "        max: 50ms\n",
            "spec.yaml:7:14: init.steps[0].retry.max: max delay (50ms) is below the initial delay (100ms)",
        ),
        (
            "        multiplier: 2\n        backoff: constant\n",
            "spec.yaml:7:21: init.steps[0].retry.multiplier: multiplier does not apply to constant backoff",
        ),
        (
            "        backoff: decorrelated\n        jitter: full\n",
            "spec.yaml:8:17: init.steps[0].retry.jitter: jitter does not apply to decorrelated backoff",
        ),
    ];
    for (policy, want) in cases {
        let err = reject(&with_retry(policy));
        assert_eq!(err.kind(), SpecErrorKind::Invalid, "{err}");
        let text = err.to_string();
        assert!(text.starts_with(want), "got  {text}\nwant {want}");
    }
}

#[test]
fn a_retry_conflict_points_at_its_setting_in_every_form() {
    // A deployment's service.
    let err = reject_text(
        "services:\n  api:\n    init:\n      steps:\n        - id: a\n          uses: init.run\n          with: { command: 'true' }\n          retry: { backoff: constant, max: 2s }\n",
    );
    assert_eq!(
        err,
        "spec.yaml:8:44: services.api.init.steps[0].retry.max: max does not apply to constant backoff"
    );
    // A step read on its own (the agent's probe) and an init section of
    // a larger file (the agent's start).
    let doc = rebound_init::spec::yaml::Document::parse(
        "probe: { uses: init.wait_file, with: { path: /x }, retry: { initial: 9s, max: 1s } }\nstart:\n  steps:\n    - { id: s, uses: init.run, with: { command: 'true' }, retry: { multiplier: 3, backoff: fibonacci } }\n",
    )
    .unwrap();
    let root = doc.root().unwrap();
    let err = rebound_init::spec::Step::from_node(
        root.get("probe").unwrap(),
        "agent.yaml",
        "probe",
        Some("probe"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent.yaml:1:79: probe.retry.max: max delay (1s) is below the initial delay (9s)"
    );
    let err =
        rebound_init::spec::InitSpec::from_node(root.get("start").unwrap(), "agent.yaml", "start")
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent.yaml:4:80: start.steps[0].retry.multiplier: multiplier does not apply to fibonacci backoff"
    );
}

#[test]
fn retry_count_keeps_its_zlayer_errors() {
    let err = reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      retry: -2\n",
    );
    assert_eq!(
        err,
        "spec.yaml:6:14: init.steps[0].retry: retry must be 0 or more (the retries after the first attempt), got -2"
    );
    let err = reject_text(
        "init:\n  steps:\n    - id: a\n      uses: init.run\n      with: { command: 'true' }\n      retry: lots\n",
    );
    assert!(
        err.starts_with("spec.yaml:6:14: init.steps[0].retry: invalid type: string \"lots\", expected a number of retries"),
        "{err}"
    );
}

//! The two spec forms (init only, ZLayer deployment) and service choice.

use std::time::Duration;

use rebound_init::actions::ActionSpec;
#[cfg_attr(not(feature = "http"), allow(unused_imports))]
use rebound_init::spec::{InitFailureAction, OnFailure, Spec, SpecErrorKind};

const DEPLOYMENT: &str = r#"
version: v1
deployment: shop
services:
  api:
    rtype: service
    image:
      name: shop/api:latest
    resources: { cpu: 0.5, memory: 512Mi }
    scale: { mode: fixed, replicas: 2 }
    init:
      steps:
        - id: wait-db
          uses: init.wait_tcp
          with: { host: db, port: 5432, timeout: 30 }
          timeout: 60s
          retry: 3
    errors:
      on_init_failure:
        action: backoff
  db:
    image: { name: postgres:16 }
  worker:
    image: { name: shop/worker }
    init:
      steps:
        - id: wait-api
          uses: init.wait_http
          with: { url: "http://api:8080/health" }
"#;

// Its spec uses init.wait_http, refused at load without the feature.
#[cfg(feature = "http")]
#[test]
fn zlayer_init_format_reads_unchanged() {
    let yaml = r#"
init:
  steps:
    - id: wait-db
      uses: init.wait_tcp
      with:
        host: 127.0.0.1
        port: 5432
        timeout: 30
      timeout: 60s
      retry: 3
      on_failure: fail
    - id: migrate
      uses: init.run
      with:
        command: ["./migrate", "up"]
      on_failure: warn
    - id: cache
      uses: init.wait_http
      with: { url: "http://127.0.0.1:8080/health", expect_status: 200-299 }
      on_failure: continue
errors:
  on_init_failure:
    action: restart
    max_retries: 5
"#;
    let spec = Spec::from_yaml(yaml, "zlayer.yaml", None).unwrap();
    let steps = &spec.init.steps;
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0].timeout, Some(Duration::from_secs(60)));
    assert_eq!(steps[0].retry, 3);
    match &steps[0].action {
        ActionSpec::WaitTcp(tcp) => {
            assert_eq!(tcp.port, 5432);
            assert_eq!(tcp.timeout, Some(Duration::from_secs(30)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(steps[1].on_failure, OnFailure::Warn);
    assert_eq!(steps[1].retry, 0);
    assert_eq!(steps[2].on_failure, OnFailure::Continue);
    assert_eq!(
        spec.errors.on_init_failure.action,
        InitFailureAction::Restart
    );
    assert_eq!(spec.errors.on_init_failure.max_retries, 5);
    assert_eq!(spec.service, None);
}

#[test]
fn deployment_needs_service_when_several_have_init() {
    let err = Spec::from_yaml(DEPLOYMENT, "shop.yaml", None).unwrap_err();
    assert_eq!(err.kind(), SpecErrorKind::Service);
    insta::assert_snapshot!(err.to_string());
}

// Its spec uses init.wait_http, refused at load without the feature.
#[cfg(feature = "http")]
#[test]
fn deployment_picks_the_named_service_and_ignores_the_rest() {
    let spec = Spec::from_yaml(DEPLOYMENT, "shop.yaml", Some("api")).unwrap();
    assert_eq!(spec.service.as_deref(), Some("api"));
    assert_eq!(spec.init.steps.len(), 1);
    assert_eq!(spec.init.steps[0].id, "wait-db");
    assert_eq!(
        spec.errors.on_init_failure.action,
        InitFailureAction::Backoff
    );
    assert_eq!(spec.errors.on_init_failure.max_retries, 3);

    let worker = Spec::from_yaml(DEPLOYMENT, "shop.yaml", Some("worker")).unwrap();
    assert_eq!(worker.init.steps[0].id, "wait-api");
    assert_eq!(
        worker.errors.on_init_failure.action,
        InitFailureAction::Fail
    );
}

#[test]
fn deployment_service_errors() {
    let unknown = Spec::from_yaml(DEPLOYMENT, "shop.yaml", Some("cache")).unwrap_err();
    insta::assert_snapshot!("unknown_service", unknown.to_string());
    // A service without `init` has nothing to run before its workload (it
    // was refused as "has no `init` section").
    let no_init = Spec::from_yaml(DEPLOYMENT, "shop.yaml", Some("db")).unwrap();
    assert_eq!(no_init.service.as_deref(), Some("db"));
    assert!(no_init.init.steps.is_empty());
    let not_deployment =
        Spec::from_yaml("init:\n  steps: []\n", "init.yaml", Some("api")).unwrap_err();
    assert_eq!(not_deployment.kind(), SpecErrorKind::Service);
    insta::assert_snapshot!("service_on_init_only_file", not_deployment.to_string());
}

#[test]
fn deployment_init_stays_strict_with_positions() {
    let yaml = DEPLOYMENT.replace("retry: 3", "retry: 3\n          retries: 3");
    let err = Spec::from_yaml(&yaml, "shop.yaml", Some("api")).unwrap_err();
    assert_eq!(err.line(), Some(18), "{err}");
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn deployment_with_one_init_service_needs_no_name() {
    let yaml = "version: v1\ndeployment: d\nservices:\n  web:\n    image: { name: nginx }\n    init:\n      steps:\n        - id: a\n          uses: init.wait_file\n          with: { path: /etc/hostname }\n  db:\n    image: { name: postgres }\n";
    let spec = Spec::from_yaml(yaml, "d.yaml", None).unwrap();
    assert_eq!(spec.service.as_deref(), Some("web"));
}

#[test]
fn other_services_are_not_validated() {
    // `worker` uses an action rebound does not know; running `api` must
    // not be blocked by it.
    let yaml = DEPLOYMENT.replace("init.wait_http", "init.custom_thing");
    assert!(Spec::from_yaml(&yaml, "shop.yaml", Some("api")).is_ok());
}

#[test]
fn top_level_init_or_errors_beside_services_is_refused() {
    // Before, the top-level steps were silently ignored and only the
    // service's ran.
    let yaml = format!("init:\n  steps: []\n{DEPLOYMENT}");
    let err = Spec::from_yaml(&yaml, "shop.yaml", Some("api")).unwrap_err();
    assert_eq!(err.kind(), SpecErrorKind::Invalid);
    assert_eq!((err.line(), err.column()), (Some(1), Some(1)), "{err}");
    assert!(
        err.message()
            .contains("a top-level `init` beside `services` would be ignored"),
        "{err}"
    );
    let yaml = format!("{DEPLOYMENT}errors:\n  on_init_failure: {{ action: restart }}\n");
    let err = Spec::from_yaml(&yaml, "shop.yaml", Some("api")).unwrap_err();
    assert!(err.message().contains("top-level `errors`"), "{err}");
    assert!(err.line().is_some(), "{err}");
}

#[test]
fn every_duration_in_a_spec_reads_a_bare_number_as_seconds() {
    // The step timeout, an action's timeout and the retry policy's
    // durations: `30`, `'30'` and `30s` are the same duration.
    let read = |d: &str| {
        let yaml = format!(
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with: {{ host: db, port: 5432, timeout: {d} }}\n      timeout: {d}\n      retry: {{ initial: {d}, max: {d}, deadline: {d}, attempt_timeout: {d} }}\n"
        );
        let spec = Spec::from_yaml(&yaml, "x.yaml", None).unwrap_or_else(|e| panic!("{d}: {e}"));
        let step = spec.init.steps[0].clone();
        let policy = step.retry_policy.clone().unwrap();
        let with = match &step.action {
            ActionSpec::WaitTcp(tcp) => tcp.timeout,
            other => panic!("{other:?}"),
        };
        (
            step.timeout,
            with,
            policy.initial,
            policy.max,
            policy.deadline,
            policy.attempt_timeout,
        )
    };
    let s30 = Some(Duration::from_secs(30));
    let want = (s30, s30, Duration::from_secs(30), s30, s30, s30);
    for d in ["30", "'30'", "30s", "\"30s\"", "30.0", "0.5m"] {
        assert_eq!(read(d), want, "{d}");
    }
}

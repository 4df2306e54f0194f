//! The wait actions of issue 12 through the spec loader and against real
//! components: parameters refused at file:line:column, and waits that are
//! ready at once, ready late, or never ready.

use std::sync::Arc;
use std::time::Duration;

use rebound_init::actions::{ActionContext, ActionSpec};
use rebound_init::spec::Spec;

fn ctx() -> ActionContext {
    ActionContext::new("t", Arc::new(|_, _, _| {}))
}

/// The loader's error for a one-step spec using `uses` with `with`.
fn refused(uses: &str, with: &str) -> String {
    let yaml = format!("init:\n  steps:\n    - id: s\n      uses: {uses}\n      with: {with}\n");
    Spec::from_yaml(&yaml, "spec.yaml", None)
        .expect_err(&yaml)
        .to_string()
}

/// The action of a one-step spec.
fn action(uses: &str, with: &str) -> ActionSpec {
    let yaml = format!("init:\n  steps:\n    - id: s\n      uses: {uses}\n      with: {with}\n");
    let spec = Spec::from_yaml(&yaml, "spec.yaml", None).unwrap_or_else(|e| panic!("{e}"));
    spec.init.steps[0].action.clone()
}

#[test]
fn wait_unix_parameters_are_checked_at_their_position() {
    assert_eq!(
        refused("init.wait_unix", "{ path: '' }"),
        "spec.yaml:5:21: init.steps[0].with.path: `path` must not be empty"
    );
    let err = refused("init.wait_unix", "{ path: /x.sock, port: 1 }");
    assert!(err.starts_with("spec.yaml:5:"), "{err}");
    assert!(err.contains("unknown field `port`"), "{err}");
}

#[tokio::test]
async fn wait_unix_from_a_spec_waits_for_a_socket_bound_late() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.sock");
    let a = action(
        "init.wait_unix",
        &format!("{{ path: '{}', timeout: 10s }}", path.display()),
    );
    let binder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::net::UnixListener::bind(&path).unwrap()
    });
    a.attempt(&ctx()).await.unwrap();
    drop(binder.await.unwrap());
}

#[test]
fn wait_http_matches_are_checked_at_their_position() {
    let url = "url: 'http://localhost/health'";
    assert_eq!(
        refused("init.wait_http", &format!("{{ {url}, body_regex: 'ok(' }}")),
        "spec.yaml:5:59: init.steps[0].with.body_regex: invalid regular expression \"ok(\": unclosed group (at character 3)"
    );
    let err = refused(
        "init.wait_http",
        &format!("{{ {url}, json: {{ path: '$.[oops' }} }}"),
    );
    assert!(
        err.starts_with("spec.yaml:5:")
            && err.contains("with.json.path: invalid JSONPath \"$.[oops\""),
        "{err}"
    );
    let err = refused(
        "init.wait_http",
        &format!("{{ {url}, header: {{ name: 'Bad Name' }} }}"),
    );
    assert!(
        err.contains("with.header.name: \"Bad Name\" is not a header name"),
        "{err}"
    );
    let err = refused("init.wait_http", &format!("{{ {url}, socket: '' }}"));
    assert!(
        err.contains("with.socket: `socket` must not be empty"),
        "{err}"
    );
    let err = refused(
        "init.wait_http",
        &format!("{{ {url}, json: {{ path: status, equal: ok }} }}"),
    );
    assert!(err.contains("unknown field `equal`"), "{err}");
}

#[test]
fn wait_exec_parameters_are_checked_at_their_position() {
    assert_eq!(
        refused("init.wait_exec", "{ command: 'true', exit_codes: [] }"),
        "spec.yaml:5:44: init.steps[0].with.exit_codes: `exit_codes` must list at least one code"
    );
    let err = refused(
        "init.wait_exec",
        "{ command: 'true', exit_codes: [0, 300] }",
    );
    assert!(err.starts_with("spec.yaml:5:"), "{err}");
    assert!(err.contains("300"), "{err}");
    let err = refused(
        "init.wait_exec",
        "{ command: 'true', output_regex: '[z-a]' }",
    );
    assert!(
        err.starts_with(
            "spec.yaml:5:46: init.steps[0].with.output_regex: invalid regular expression \"[z-a]\""
        ),
        "{err}"
    );
}

#[tokio::test]
async fn wait_exec_from_a_spec_runs_until_the_output_matches() {
    let dir = tempfile::tempdir().unwrap();
    let a = action(
        "init.wait_exec",
        &format!(
            "{{ command: 'cat state 2>/dev/null || echo none', cwd: '{}', output_regex: '^ready$', timeout: 10s }}",
            dir.path().display()
        ),
    );
    let state = dir.path().join("state");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&state, "starting\n").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&state, "ready\n").unwrap();
    });
    let ctx = ctx();
    a.attempt(&ctx).await.unwrap();
    writer.await.unwrap();
}

#[test]
fn inverted_states_are_checked_at_their_position() {
    let err = refused("init.wait_tcp", "{ host: db, port: 80, state: shut }");
    assert!(err.starts_with("spec.yaml:5:"), "{err}");
    assert!(
        err.contains("unknown variant `shut`, expected `open` or `closed`"),
        "{err}"
    );
    let err = refused("init.wait_file", "{ path: /x, state: closed }");
    assert!(err.contains("expected `present` or `absent`"), "{err}");
    let err = refused("init.wait_http", "{ url: 'http://x/', state: absent }");
    assert!(err.contains("expected `up` or `down`"), "{err}");
}

#[tokio::test]
async fn a_drain_step_waits_for_the_port_to_close() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = action(
        "init.wait_tcp",
        &format!("{{ host: 127.0.0.1, port: {port}, state: closed, timeout: 10s }}"),
    );
    assert_eq!(a.describe(), format!("tcp 127.0.0.1:{port} (until closed)"));
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(listener);
    });
    a.attempt(&ctx()).await.unwrap();
    closer.await.unwrap();
}

#[test]
fn wait_dns_parameters_are_checked_at_their_position() {
    let err = refused("init.wait_dns", "{ name: db, type: MX }");
    assert!(err.starts_with("spec.yaml:5:"), "{err}");
    assert!(err.contains("unknown variant `MX`"), "{err}");
    assert_eq!(
        refused("init.wait_dns", "{ name: 'a b' }"),
        "spec.yaml:5:21: init.steps[0].with.name: `name` \"a b\" is not a DNS name"
    );
    // A check across fields (`expect` against `type`) is reported at the
    // step, once both are read.
    assert_eq!(
        refused(
            "init.wait_dns",
            "{ name: db, type: AAAA, expect: 10.0.0.1 }"
        ),
        "spec.yaml:3:7: init.steps[0]: `expect` \"10.0.0.1\": an AAAA record is an IPv6 address"
    );
}

#[tokio::test]
async fn wait_dns_from_a_spec_resolves_localhost() {
    let a = action("init.wait_dns", "{ name: localhost, timeout: 5s }");
    assert_eq!(a.describe(), "dns localhost");
    a.attempt(&ctx()).await.unwrap();
}

//! The wait actions of issue 12 through the spec loader and against real
//! components: parameters refused at file:line:column, and waits that are
//! ready at once, ready late, or never ready.

mod common;

use std::time::Duration;

use common::steps::{action, ctx, refused};

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

#[cfg(feature = "http")]
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
    if cfg!(feature = "http") {
        let err = refused("init.wait_http", "{ url: 'http://x/', state: absent }");
        assert!(err.contains("expected `up` or `down`"), "{err}");
    }
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

#[cfg(feature = "grpc")]
#[path = "common/grpc.rs"]
mod grpc;

// Without the feature the action is refused for that (tested in
// actions::tests), before its parameters are read.
#[cfg(feature = "grpc")]
#[test]
fn wait_grpc_parameters_are_checked_at_their_position() {
    assert_eq!(
        refused("init.wait_grpc", "{ url: 'http://api:50051' }"),
        "spec.yaml:5:20: init.steps[0].with.url: URL \"http://api:50051\" must start with grpc:// or grpcs://, not http://"
    );
    let err = refused("init.wait_grpc", "{ url: 'grpc://api' }");
    assert!(
        err.starts_with("spec.yaml:5:20: init.steps[0].with.url: ") && err.contains("has no port"),
        "{err}"
    );
    assert_eq!(
        refused(
            "init.wait_grpc",
            "{ url: 'grpc://api:50051', service: 'a b' }"
        ),
        "spec.yaml:5:49: init.steps[0].with.service: `service` \"a b\" is not a gRPC service name"
    );
    let err = refused(
        "init.wait_grpc",
        "{ url: 'grpc://api:50051', check_timeout: soon }",
    );
    assert!(
        err.starts_with("spec.yaml:5:55: init.steps[0].with.check_timeout: invalid duration"),
        "{err}"
    );
    let err = refused("init.wait_grpc", "{ url: 'grpc://api:50051', port: 1 }");
    assert!(err.starts_with("spec.yaml:5:"), "{err}");
    assert!(err.contains("unknown field `port`"), "{err}");
    // Across fields: reported at the step.
    assert_eq!(
        refused(
            "init.wait_grpc",
            "{ url: 'grpc://api:50051', ca_file: /ca.pem }"
        ),
        "spec.yaml:3:7: init.steps[0]: `ca_file` applies to TLS: the URL must start with grpcs://"
    );
    let err = refused("init.wait_grpc", "{ url: 'grpc://u:hunter22@api:50051' }");
    assert!(err.contains("sends no user or password"), "{err}");
    assert!(!err.contains("hunter22"), "{err}");
}

/// A loopback listener on a free port.
#[cfg(feature = "grpc")]
fn listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpc_is_ready_at_once_when_the_server_serves() {
    let server = grpc::GrpcServer::start(listener(), None).await;
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpc://{}', timeout: 10s }}", server.addr),
    );
    assert_eq!(
        a.describe(),
        format!("grpc://{} (expect SERVING)", server.addr)
    );
    a.attempt(&ctx()).await.unwrap();
    server
        .set("shop.Orders", grpc::ServingStatus::Serving)
        .await;
    let a = action(
        "init.wait_grpc",
        &format!(
            "{{ url: 'grpc://{}/shop.Orders', timeout: 10s }}",
            server.addr
        ),
    );
    a.attempt(&ctx()).await.unwrap();
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpc_waits_for_a_service_turned_serving_late() {
    let server = grpc::GrpcServer::start(listener(), None).await;
    server
        .set("shop.Orders", grpc::ServingStatus::NotServing)
        .await;
    let a = action(
        "init.wait_grpc",
        &format!(
            "{{ url: 'grpc://{}', service: shop.Orders, timeout: 10s }}",
            server.addr
        ),
    );
    let c = ctx();
    let problems = c.last_problem.clone();
    let waiter = tokio::spawn(async move { a.attempt(&c).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished());
    assert_eq!(problems.get().as_deref(), Some("NOT_SERVING"));
    server
        .set("shop.Orders", grpc::ServingStatus::Serving)
        .await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait did not notice SERVING")
        .unwrap()
        .unwrap();
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpc_waits_for_a_server_started_late() {
    // The port is taken when the server starts: free until then.
    let reserved = listener();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpc://{addr}', timeout: 10s, check_timeout: 1s }}"),
    );
    let c = ctx();
    let problems = c.last_problem.clone();
    let waiter = tokio::spawn(async move { a.attempt(&c).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished());
    assert_eq!(problems.get().as_deref(), Some("connection refused"));
    let server = grpc::GrpcServer::start(std::net::TcpListener::bind(addr).unwrap(), None).await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait did not notice the server")
        .unwrap()
        .unwrap();
    drop(server);
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpc_never_ready_times_out_naming_the_last_status() {
    let server = grpc::GrpcServer::start(listener(), None).await;
    server.set("", grpc::ServingStatus::NotServing).await;
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpc://{}', timeout: 300ms }}", server.addr),
    );
    let err = a.attempt(&ctx()).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        err.message(),
        format!(
            "grpc://{} (expect SERVING) not ready after 300ms (NOT_SERVING)",
            server.addr
        )
    );
    let a = action(
        "init.wait_grpc",
        &format!(
            "{{ url: 'grpc://{}/no.Such', timeout: 300ms }}",
            server.addr
        ),
    );
    let err = a.attempt(&ctx()).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.message().ends_with(
            "not ready after 300ms (SERVICE_UNKNOWN: the server knows no service \"no.Such\" (NOT_FOUND))"
        ),
        "{err}"
    );
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpc_a_server_without_the_health_service_fails_at_once() {
    let addr = grpc::start_without_health(listener()).await;
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpc://{addr}', timeout: 10s }}"),
    );
    let err = a.attempt(&ctx()).await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert!(
        err.message()
            .ends_with("the server does not implement grpc.health.v1.Health (UNIMPLEMENTED)"),
        "{err}"
    );
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn wait_grpcs_checks_the_server_certificate() {
    let ca = grpc::TestCa::new();
    let server = grpc::GrpcServer::start(listener(), Some(&ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let port = server.addr.port();
    let a = action(
        "init.wait_grpc",
        &format!(
            "{{ url: 'grpcs://localhost:{port}', ca_file: '{}', timeout: 10s }}",
            ca_file.display()
        ),
    );
    assert_eq!(
        a.describe(),
        format!("grpcs://localhost:{port} (expect SERVING)")
    );
    a.attempt(&ctx()).await.unwrap();
    // Without the test CA the certificate is not trusted: never ready,
    // and the timeout says why.
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpcs://localhost:{port}', timeout: 500ms }}"),
    );
    let err = a.attempt(&ctx()).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.message().contains("UnknownIssuer"), "{err}");
    // Plaintext to a TLS server: not ready either.
    let a = action(
        "init.wait_grpc",
        &format!("{{ url: 'grpc://localhost:{port}', timeout: 300ms }}"),
    );
    assert!(a.attempt(&ctx()).await.unwrap_err().is_timeout());
}

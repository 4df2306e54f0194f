//! `rebound wait` as a process: real ports, a real HTTP server, real files.

mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use support::{Cli, Outcome, free_port, last_json, send_signal};

/// `rebound wait ARGS...`.
fn wait<I, S>(args: I) -> Cli
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Cli::new().args(["wait"]).args(args)
}

/// Starts `rebound wait ARGS...` in the background.
fn spawn<I, S>(args: I) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    wait(args).spawn()
}

/// Asserts that `out` exited 0 saying that `target` is ready.
#[track_caller]
fn ready(out: Outcome, target: &str) -> Outcome {
    out.code(0).stdout_has(&format!("ready {target} after"))
}

/// Serves the connections `accept` returns, one at a time: reads each
/// request's head and writes `answer(n)` for the n-th (from 0). Returns the
/// request count.
fn serve<S: Read + Write>(
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    answer: impl Fn(usize) -> String + Send + 'static,
) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        while let Ok(mut stream) = accept() {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            // The head ends with an empty line.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|k| k > 0) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(answer(n).as_bytes());
        }
    });
    count
}

/// A loopback HTTP server answering request n with `statuses[n]` (the last
/// one repeats); returns its port and the request count.
fn http_server(statuses: &'static [u16]) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = serve(
        move || listener.accept().map(|(s, _)| s),
        |n| {
            let status = statuses[n.min(statuses.len() - 1)];
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                503 => "Service Unavailable",
                _ => "Other",
            };
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            )
        },
    );
    (port, count)
}

#[test]
fn a_port_that_opens_after_a_delay() {
    let port = free_port();
    let target = format!("tcp://127.0.0.1:{port}");
    let child = spawn(["--timeout", "30s", &target]);
    thread::sleep(Duration::from_millis(300));
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let acceptor = thread::spawn(move || {
        let _ = listener.accept();
    });
    ready(Outcome::of(child), &target);
    acceptor.join().unwrap();
}

#[test]
fn an_http_server_that_answers_503_twice_then_200() {
    let (port, count) = http_server(&[503, 503, 200]);
    let target = format!("http://127.0.0.1:{port}/health");
    ready(wait(["--timeout", "30s", &target]).run(), &target);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn a_file_that_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.flag");
    let target = format!("file://{}", path.display());
    let child = spawn(["--timeout", "30s", &target]);
    thread::sleep(Duration::from_millis(200));
    std::fs::write(&path, b"").unwrap();
    ready(Outcome::of(child), &target);
}

#[test]
fn a_file_url_with_percent_escapes_names_the_decoded_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my app ready");
    std::fs::write(&path, b"x").unwrap();
    let url = format!("file://{}", path.display()).replace(' ', "%20");
    ready(wait(["--timeout", "5s", &url]).run(), &url);
}

#[test]
fn all_targets_in_parallel_with_json_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (http, _) = http_server(&[200]);
    let targets = [
        format!("tcp://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{http}/"),
        format!("file://{}", file.display()),
    ];
    let out = wait(["--json", "--timeout", "30s"])
        .args(&targets)
        .run()
        .code(0);
    let events = out.stdout_json();
    for t in &targets {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "ready" && e["target"] == t.as_str()),
            "no ready event for {t}: {events:?}"
        );
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["ready"], 3);
    drop(listener);
}

#[test]
fn timeout_exits_124_naming_the_targets_not_ready() {
    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("present");
    std::fs::write(&present, b"x").unwrap();
    let tcp = format!("tcp://127.0.0.1:{closed}");
    let file = format!("file://{}", present.display());
    wait(["--timeout", "300ms", &tcp, &file])
        .run()
        .code(124)
        .stdout_has(&format!("ready {file}"))
        .stderr_has(&format!("timed out after 300ms; not ready: {tcp}"));
}

#[test]
fn timeout_says_why_each_target_is_not_ready() {
    let closed = free_port();
    let tcp = format!("tcp://127.0.0.1:{closed}");
    let file = "file:///nonexistent/rebound-ready";
    wait(["--timeout", "300ms", &tcp, file])
        .run()
        .code(124)
        .stderr_has(&format!(
            "not ready: {tcp} (Connection refused (os error 111)), {file} (not found)"
        ));
    let out = wait(["--json", "--timeout", "300ms", &tcp]).run().code(124);
    let last = last_json(&out.stdout());
    assert_eq!(last["not_ready"][0], tcp.as_str());
    assert_eq!(last["last_errors"][0], "Connection refused (os error 111)");
}

// Plain output says every 15 s which targets are still not ready. Takes
// 16 s of real time: it checks the binary's interval wiring, not a backoff.
#[test]
fn plain_output_says_what_is_still_not_ready() {
    let closed = free_port();
    let tcp = format!("tcp://127.0.0.1:{closed}");
    wait(["--timeout", "16s", &tcp])
        .run()
        .code(124)
        .stderr_has(&format!("rebound: still waiting for {tcp} (15s)"));
}

#[test]
fn timeout_in_json_lists_not_ready() {
    let closed = free_port();
    let tcp = format!("tcp://127.0.0.1:{closed}");
    let out = wait(["--json", "--timeout", "200ms", &tcp]).run().code(124);
    let last = last_json(&out.stdout());
    assert_eq!(last["event"], "timeout");
    assert_eq!(last["not_ready"][0], tcp.as_str());
}

#[test]
fn bad_target_exits_2_naming_it() {
    wait(["tcp://127.0.0.1:5432", "tcp://db:0"])
        .usage_error("invalid target \"tcp://db:0\": port must be 1-65535, got 0");
    wait(["db:5432"]).usage_error("invalid target \"db:5432\": no scheme");
    wait(["--timeout", "soon", "tcp://db:1"]).usage_error("soon");
    wait(["--timeout", "-1s", "tcp://db:1"]).usage_error("negative duration \"-1s\"");
}

#[test]
fn a_token_in_a_url_query_is_never_shown() {
    let closed = free_port();
    let target = format!("http://127.0.0.1:{closed}/health?access_token=tok3n-s3cret&deep=1");
    for json in [false, true] {
        let mut args = vec!["wait", "--timeout", "200ms"];
        if json {
            args.push("--json");
        }
        args.push(&target);
        Cli::new()
            .args(args)
            .run()
            .code(124)
            .stderr_lacks("tok3n-s3cret")
            .stderr_has("access_token=***&deep=1")
            .stdout_lacks("tok3n-s3cret");
    }
}

#[test]
fn http_404_fails_permanently_with_exit_3() {
    let (port, count) = http_server(&[404]);
    let target = format!("http://127.0.0.1:{port}/missing");
    wait(["--timeout", "30s", &target])
        .run()
        .code(3)
        .stderr_has(&format!("{target} failed"))
        .stderr_has("404 Not Found (expected 2xx)");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn sigterm_exits_143() {
    let closed = free_port();
    let mut child = spawn([format!("tcp://127.0.0.1:{closed}")]);
    // Wait until it announced the target (its signal handlers are set up
    // right after), then terminate it.
    let mut stderr = child.stderr.take().unwrap();
    let mut buf = [0u8; 64];
    let _ = stderr.read(&mut buf).unwrap();
    thread::sleep(Duration::from_millis(100));
    send_signal(child.id(), "TERM");
    Outcome::of(child).code(143);
}

// Issue 12: unix:///PATH, ready at once, ready only once the socket is
// bound, and never ready (exit 124 with the last reason).
#[test]
fn a_unix_socket_that_listens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let target = format!("unix://{}", path.display());
    ready(wait(["--timeout", "5s", &target]).run(), &target);
}

#[test]
fn a_unix_socket_bound_after_a_delay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let target = format!("unix://{}", path.display());
    let child = spawn(["--timeout", "30s", &target]);
    thread::sleep(Duration::from_millis(300));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    ready(Outcome::of(child), &target);
    drop(listener);
}

#[test]
fn a_unix_socket_never_bound_times_out_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sock");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let missing = format!("unix://{}", missing.display());
    let stale = format!("unix://{}", stale.display());
    wait(["--timeout", "300ms", &missing, &stale])
        .run()
        .code(124)
        .stderr_has(&format!(
            "not ready: {missing} (not found), {stale} (connection refused (nothing listens on the socket))"
        ));
}

#[test]
fn an_unknown_scheme_lists_the_known_ones() {
    wait(["udp://x:1"])
        .usage_error("unknown scheme udp://")
        .stderr_has("unix:///PATH");
}

/// An HTTP server on a Unix socket at `path` answering request n with
/// `answers[n]` (status, body; the last one repeats), as Docker's API
/// answers `/_ping`. Returns the request count.
fn unix_http_server(
    path: &std::path::Path,
    answers: &'static [(u16, &'static str)],
) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).unwrap();
    serve(
        move || listener.accept().map(|(s, _)| s),
        |n| {
            let (status, body) = answers[n.min(answers.len() - 1)];
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        },
    )
}

/// `http+unix://` with the socket's path percent-encoded.
fn http_unix(socket: &std::path::Path, path: &str) -> String {
    let encoded: String = socket
        .to_str()
        .unwrap()
        .chars()
        .map(|c| match c {
            '/' => "%2F".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!("http+unix://{encoded}{path}")
}

#[test]
fn http_over_a_unix_socket_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let count = unix_http_server(&socket, &[(200, "OK")]);
    let target = http_unix(&socket, "/_ping");
    ready(wait(["--timeout", "5s", &target]).run(), &target);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn http_over_a_unix_socket_bound_late_with_a_json_match() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let target = http_unix(&socket, "/health");
    let child = spawn([
        "--timeout",
        "30s",
        "--json-path",
        "status",
        "--json-equals",
        "ok",
        &target,
    ]);
    thread::sleep(Duration::from_millis(300));
    let count = unix_http_server(
        &socket,
        &[
            (200, r#"{"status":"starting"}"#),
            (200, r#"{"status":"ok"}"#),
        ],
    );
    ready(Outcome::of(child), &target);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn http_over_a_unix_socket_never_ready_times_out_with_the_last_reason() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    unix_http_server(&socket, &[(200, r#"{"status":"starting"}"#)]);
    let target = http_unix(&socket, "/health");
    wait(["--timeout",
            "300ms",
            "--json-path",
            "$.status",
            "--json-equals",
            "ok",
            &target,
        ])
        .run()
        .code(124)
        .stderr_has(&format!(
            r#"not ready: {target} (answered 200 OK but the JSON at $.status is "starting" (expected "ok"))"#
        ));
}

#[test]
fn a_bad_regex_or_json_path_exits_2_saying_where() {
    wait(["--body-regex", "ok(", "http://127.0.0.1:1/"])
        .usage_error("unclosed group (at character 3)");
    wait(["--json-path", "$.[oops", "http://127.0.0.1:1/"])
        .usage_error("invalid JSONPath \"$.[oops\"");
    wait(["--header", "X-Ready", "tcp://127.0.0.1:1"]).usage_error("there is none");
}

// Issue 12: `--exec CMD`, ready at once, ready once a file it checks
// appears, never ready (124 with the command's last line).
#[test]
fn exec_ready_at_once() {
    wait(["--timeout", "5s", "--exec", "true"])
        .run()
        .code(0)
        .stdout_has("ready exec `true` after");
}

#[test]
fn exec_ready_once_its_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("migrated");
    let cmd = format!("test -e '{}'", flag.display());
    let child = spawn(["--timeout", "30s", "--exec", &cmd]);
    thread::sleep(Duration::from_millis(300));
    std::fs::write(&flag, b"").unwrap();
    Outcome::of(child)
        .code(0)
        .stdout_has(&format!("ready exec `{cmd}` after"));
}

#[test]
fn exec_never_ready_times_out_with_its_last_line() {
    wait([
        "--timeout",
        "300ms",
        "--exec",
        "echo 'no server' >&2; exit 2",
    ])
    .run()
    .code(124)
    .stderr_has("not ready: exec `echo 'no server' >&2; exit 2` (exited with code 2: no server)");
}

// Issue 12: `--until-gone`: ready at once (nothing there), once the port
// closes and the file goes, never (exit 124 with the last reason).
#[test]
fn until_gone_ready_at_once() {
    let closed = free_port();
    wait([
        "--until-gone",
        "--timeout",
        "5s",
        &format!("tcp://127.0.0.1:{closed}"),
        &format!("http://127.0.0.1:{closed}/"),
        "file:///nonexistent/rebound-pid",
    ])
    .run()
    .code(0)
    .stdout_has("ready file:///nonexistent/rebound-pid after");
}

#[test]
fn until_gone_waits_for_the_port_to_close_and_the_file_to_go() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("app.pid");
    std::fs::write(&pid, b"42").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let file = format!("file://{}", pid.display());
    let child = spawn(["--until-gone", "--timeout", "30s", &tcp, &file]);
    thread::sleep(Duration::from_millis(300));
    drop(listener);
    std::fs::remove_file(&pid).unwrap();
    Outcome::of(child)
        .code(0)
        .stdout_has(&format!("ready {tcp} after"))
        .stdout_has(&format!("ready {file} after"));
}

#[test]
fn until_gone_times_out_while_the_server_answers() {
    let (port, _) = http_server(&[503]);
    let http = format!("http://127.0.0.1:{port}/");
    wait(["--until-gone", "--timeout", "300ms", &http])
        .run()
        .code(124)
        .stderr_has(&format!(
            "not ready: {http} (still answering (503 Service Unavailable))"
        ));
    wait(["--until-gone", "--exec", "true"])
        .usage_error("--until-gone does not apply to exec `true`");
}

// Issue 12: dns://, with no network: localhost (ready at once), a name
// that never resolves (124 with the resolver's reason).
#[test]
fn dns_localhost_resolves_at_once() {
    wait(["--timeout", "5s", "dns://localhost?type=A&expect=127.0.0.1"])
        .run()
        .code(0)
        .stdout_has("ready dns://localhost?type=A&expect=127.0.0.1 after");
}

#[test]
fn dns_a_name_that_never_resolves_times_out() {
    wait(["--timeout", "500ms", "dns://rebound-never.invalid"])
        .run()
        .code(124)
        .stderr_has("not ready: dns://rebound-never.invalid (does not resolve (");
}

// Issue 12: grpc:// and grpcs:// against a real gRPC server with the
// standard health service (tonic-health): ready at once, ready once a
// service turns SERVING or the server starts, never ready (124 naming the
// last status), TLS with the CA from SSL_CERT_FILE.
#[cfg(feature = "grpc")]
#[path = "../../rebound-init/tests/common/grpc.rs"]
mod grpc;

/// A runtime for the test's gRPC server, and the server on a free port.
#[cfg(feature = "grpc")]
fn grpc_server(tls: Option<&grpc::TestCa>) -> (tokio::runtime::Runtime, grpc::GrpcServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(grpc::GrpcServer::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        tls,
    ));
    (rt, server)
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_ready_at_once() {
    let (_rt, server) = grpc_server(None);
    let target = format!("grpc://{}", server.addr);
    ready(wait(["--timeout", "10s", &target]).run(), &target);
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_ready_once_the_service_turns_serving() {
    let (rt, server) = grpc_server(None);
    rt.block_on(server.set("shop.Orders", grpc::ServingStatus::NotServing));
    let target = format!("grpc://{}/shop.Orders", server.addr);
    let child = spawn(["--timeout", "30s", &target]);
    thread::sleep(Duration::from_millis(300));
    rt.block_on(server.set("shop.Orders", grpc::ServingStatus::Serving));
    ready(Outcome::of(child), &target);
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_ready_once_the_server_starts() {
    let port = free_port();
    let target = format!("grpc://127.0.0.1:{port}");
    let child = spawn(["--timeout", "30s", &target]);
    thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _server = rt.block_on(grpc::GrpcServer::start(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        None,
    ));
    ready(Outcome::of(child), &target);
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_never_ready_exits_124_naming_the_status() {
    let (rt, server) = grpc_server(None);
    rt.block_on(server.set("", grpc::ServingStatus::NotServing));
    let whole = format!("grpc://{}", server.addr);
    let unknown = format!("grpc://{}/no.Such", server.addr);
    wait(["--timeout", "500ms", &whole, &unknown])
        .run()
        .code(124)
        .stderr_has(&format!("not ready: {whole} (NOT_SERVING), {unknown} (SERVICE_UNKNOWN: the server knows no service \"no.Such\" (NOT_FOUND))"));
    let out = wait(["--json", "--timeout", "300ms", &whole])
        .run()
        .code(124);
    let last = last_json(&out.stdout());
    assert_eq!(last["last_errors"][0], "NOT_SERVING");
}

#[cfg(feature = "grpc")]
#[test]
fn grpcs_trusts_the_ca_of_ssl_cert_file() {
    let ca = grpc::TestCa::new();
    let (_rt, server) = grpc_server(Some(&ca));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let target = format!("grpcs://localhost:{}", server.addr.port());
    wait(["--timeout", "10s", &target])
        .env("SSL_CERT_FILE", &ca_file)
        .run()
        .code(0)
        .stdout_has(&format!("ready {target} after"));
    // Without it the server's certificate is not trusted.
    wait(["--timeout", "500ms", &target])
        .env("SSL_CERT_FILE", dir.path().join("none.pem"))
        .run()
        .code(124)
        .stderr_has("UnknownIssuer");
}

#[test]
fn grpc_bad_targets_exit_2() {
    for (bad, why) in [
        ("grpc://api", "has no port"),
        ("grpc://api:50051/a/b", "the path is one service name"),
        ("grpcs://u:hunter22@api:443", "sends no user or password"),
    ] {
        let out = wait([bad]).usage_error(why);
        assert!(!out.stderr().contains("hunter22"), "{}", out.stderr());
    }
}

// Issue 12: a target whose cargo feature this build lacks is refused when
// the arguments are read (exit 2, naming the feature), not when it runs.
#[cfg(not(feature = "grpc"))]
#[test]
fn grpc_targets_are_refused_without_the_feature() {
    wait(["--timeout", "1s", "grpc://127.0.0.1:1"]).usage_error("built without the `grpc` feature");
}

#[cfg(not(feature = "http"))]
#[test]
fn http_targets_are_refused_without_the_feature() {
    for target in [
        "http://127.0.0.1:1/",
        "https://127.0.0.1:1/",
        "http+unix://%2Frun%2Fa.sock/",
    ] {
        wait(["--timeout", "1s", target]).usage_error("built without the `http` feature");
    }
}

// Issue 12: a password in a URL of an --exec command is never printed: not
// in the progress lines, not in the events, not in the timeout message.
#[test]
fn exec_never_shows_a_password_of_its_command() {
    let cmd = "true http://user:secret@127.0.0.1:1/; exit 3";
    let shown = "exec `true http://user:***@127.0.0.1:1/; exit 3`";
    for json in [false, true] {
        let mut args = vec!["wait", "--timeout", "300ms", "--exec", cmd];
        if json {
            args.push("--json");
        }
        let all = Cli::new().args(&args).run().code(124).all();
        assert!(!all.contains("secret"), "{all}");
        assert!(all.contains(shown), "{all}");
    }
    let out = wait(["--timeout", "5s", "--exec", "true http://u:secret@h/"])
        .run()
        .code(0)
        .stdout_has("ready exec `true http://u:***@h/` after");
    assert!(!out.stderr().contains("secret"));
}

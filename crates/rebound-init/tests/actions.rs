//! The init actions against real components: an `s3s-fs` S3 server started
//! by the test (see `common/s3.rs`), loopback sockets; and the parameters
//! that can never run, refused when the spec is read, at their position.

mod common;

use std::sync::Arc;

#[cfg(feature = "s3")]
use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
#[cfg(feature = "s3")]
use rebound_init::actions::ActionErrorKind;
#[cfg(feature = "s3")]
use rebound_init::actions::s3::{S3Credentials, S3Pull, S3Push};
use rebound_init::actions::{ActionContext, ActionSpec};
use rebound_init::spec::Spec;

#[cfg(feature = "s3")]
fn creds() -> S3Credentials {
    S3Credentials::new(ACCESS_KEY, SECRET_KEY)
}

#[cfg(feature = "s3")]
fn push(server: &S3Server, source: &std::path::Path, bucket: &str, key: &str) -> S3Push {
    serde_json::from_value(serde_json::json!({
        "source": source, "bucket": bucket, "key": key,
        "endpoint": server.endpoint(), "region": "us-east-1",
    }))
    .unwrap()
}

#[cfg(feature = "s3")]
fn pull(server: &S3Server, bucket: &str, key: &str, dest: &std::path::Path) -> S3Pull {
    serde_json::from_value(serde_json::json!({
        "bucket": bucket, "key": key, "destination": dest,
        "endpoint": server.endpoint(), "region": "us-east-1",
    }))
    .unwrap()
}

/// Bytes that are not text, so that any mangling shows.
#[cfg(feature = "s3")]
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_push_then_pull_round_trips_identical_bytes() {
    let server = S3Server::start(&["seed"]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data.bin");
    let bytes = payload(300_000);
    std::fs::write(&source, &bytes).unwrap();

    push(&server, &source, "seed", "nested/dir/data.bin")
        .push_with(Some(&creds()))
        .await
        .unwrap();
    let dest = dir.path().join("out/data.bin");
    pull(&server, "seed", "nested/dir/data.bin", &dest)
        .pull_with(Some(&creds()))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    // Nothing partial is left beside the destination.
    let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data.bin")]);
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn large_files_go_up_in_parts_and_come_back_identical() {
    let server = S3Server::start(&["big"]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let bytes = payload(17 << 20); // above the single-PUT limit
    std::fs::write(&source, &bytes).unwrap();
    push(&server, &source, "big", "big.bin")
        .push_with(Some(&creds()))
        .await
        .unwrap();
    let dest = dir.path().join("big.out");
    pull(&server, "big", "big.bin", &dest)
        .pull_with(Some(&creds()))
        .await
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == bytes, "bytes differ");
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn missing_key_and_bucket_are_permanent_errors_naming_them() {
    let server = S3Server::start(&["present"]);
    let dir = tempfile::tempdir().unwrap();

    let err = pull(&server, "present", "no/such.key", &dir.path().join("x"))
        .pull_with(Some(&creds()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ActionErrorKind::Permanent, "{err}");
    assert!(
        err.to_string().contains("s3://present/no/such.key"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists());

    let err = pull(&server, "absent", "k", &dir.path().join("y"))
        .pull_with(Some(&creds()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ActionErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("s3://absent/k"), "{err}");
    // (A push to a missing bucket is not checked here: s3s-fs creates the
    // directory and accepts it, where AWS answers NoSuchBucket.)
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn missing_source_file_is_permanent_and_named() {
    let server = S3Server::start(&["bkt"]);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.bin");
    let err = push(&server, &missing, "b", "k")
        .push_with(Some(&creds()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ActionErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("nope.bin"), "{err}");
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn the_secret_key_never_appears_in_errors() {
    let server = S3Server::start(&["bkt"]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("f");
    std::fs::write(&source, b"x").unwrap();
    // A wrong secret: the server refuses the signature.
    let wrong = S3Credentials::new(ACCESS_KEY, "wrong-SECRET-123456789");
    let err = push(&server, &source, "bkt", "k")
        .push_with(Some(&wrong))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("403"),
        "{text}"
    );
    assert!(!text.contains("wrong-SECRET-123456789"), "{text}");
    assert!(!text.contains(SECRET_KEY), "{text}");
    assert_eq!(err.kind(), ActionErrorKind::Permanent, "{text}");
    // The right secret, a failing request: still not shown.
    let err = pull(&server, "bkt", "missing", &dir.path().join("o"))
        .pull_with(Some(&creds()))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SECRET_KEY), "{text}");
    assert!(!format!("{:?}", creds()).contains(SECRET_KEY));
}

/// The env-credentials path runs in a child copy of this test binary, since
/// setting environment variables in a running multi-threaded test is unsound.
#[cfg(feature = "s3")]
#[test]
fn credentials_come_from_the_aws_environment() {
    if let Ok(endpoint) = std::env::var("REBOUND_TEST_S3_ENDPOINT") {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("in");
        std::fs::write(&source, b"from env").unwrap();
        let ctx = ActionContext::new("env", Arc::new(|_, _, _| {}));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let push: S3Push = serde_json::from_value(serde_json::json!({
            "source": source, "bucket": "bkt", "key": "env.txt", "endpoint": endpoint,
        }))
        .unwrap();
        rt.block_on(ActionSpec::S3Push(push).attempt(&ctx)).unwrap();
        let dest = dir.path().join("out");
        let pull: S3Pull = serde_json::from_value(serde_json::json!({
            "bucket": "bkt", "key": "env.txt", "destination": dest, "endpoint": endpoint,
        }))
        .unwrap();
        rt.block_on(ActionSpec::S3Pull(pull).attempt(&ctx)).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"from env");
        return;
    }
    let server = S3Server::start(&["bkt"]);
    let run = |secret: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "credentials_come_from_the_aws_environment",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("REBOUND_TEST_S3_ENDPOINT", server.endpoint())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap()
    };
    let ok = run(SECRET_KEY);
    assert!(
        ok.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(server.root().join("bkt/env.txt").is_file());
    // With a wrong secret from the environment the child fails, and its
    // output (the error, a panic message) does not show that secret.
    let bad = run("env-wrong-SECRET-42424242");
    assert!(!bad.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        all.contains("SignatureDoesNotMatch") || all.contains("403"),
        "{all}"
    );
    assert!(!all.contains("env-wrong-SECRET-42424242"), "{all}");
}

// Issue 8.7: `rebound init --check` passed parameters that can never run.
// Each is refused by the public loader, at the offending value.

/// The error text of a one-step spec using `uses` with the `with:` lines
/// given (each indented by eight spaces), or a panic if it was accepted.
fn refused(uses: &str, with: &[&str]) -> String {
    let mut yaml = format!("init:\n  steps:\n    - id: a\n      uses: {uses}\n      with:\n");
    for line in with {
        yaml.push_str("        ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    match Spec::from_yaml(&yaml, "spec.yaml", None) {
        Ok(spec) => panic!("accepted {:?}", spec.init.steps[0].action),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_nul_byte_in_a_file_path_is_refused_at_the_value() {
    assert_eq!(
        refused("init.wait_file", &[r#"path: "/run/re\0ady""#]),
        "spec.yaml:6:15: init.steps[0].with.path: `path` contains a NUL byte"
    );
}

#[test]
fn a_nul_byte_in_a_tcp_host_is_refused_at_the_value() {
    assert_eq!(
        refused("init.wait_tcp", &["port: 5432", r#"host: "db\0.internal""#]),
        "spec.yaml:7:15: init.steps[0].with.host: `host` contains a NUL byte"
    );
}

#[test]
fn a_nul_byte_in_a_command_or_argument_is_refused_at_the_value() {
    assert_eq!(
        refused("init.run", &[r#"command: "echo a\0b""#]),
        "spec.yaml:6:18: init.steps[0].with.command: command contains a NUL byte"
    );
    assert_eq!(
        refused("init.run", &[r#"command: [./migrate, "u\0p"]"#]),
        "spec.yaml:6:30: init.steps[0].with.command[1]: command argument 1 contains a NUL byte"
    );
    assert_eq!(
        refused("init.run", &["command:", r#"  - "./mig\0rate""#, "  - up"]),
        "spec.yaml:7:13: init.steps[0].with.command[0]: command program contains a NUL byte"
    );
}

#[test]
fn a_nul_byte_in_the_working_directory_is_refused_at_the_value() {
    assert_eq!(
        refused("init.run", &["command: 'true'", r#"cwd: "/srv\0""#]),
        "spec.yaml:7:14: init.steps[0].with.cwd: `cwd` contains a NUL byte"
    );
}

// These were refused before, but at the start of the `with:` block; now at
// the name or value itself.
#[test]
fn a_nul_byte_in_the_environment_is_refused_at_the_name_or_value() {
    assert_eq!(
        refused(
            "init.run",
            &["command: 'true'", "env:", r#"  MODE: "a\0b""#]
        ),
        "spec.yaml:8:17: init.steps[0].with.env.MODE: environment variable MODE contains a NUL byte"
    );
    assert_eq!(
        refused("init.run", &["command: 'true'", "env:", r#"  "MO\0DE": x"#]),
        "spec.yaml:8:11: init.steps[0].with.env: invalid environment variable name \"MO\\0DE\""
    );
}

#[test]
fn http_urls_with_a_nul_byte_or_port_zero_are_refused_at_the_value() {
    let uses = "init.wait_http";
    if ActionSpec::missing_feature(uses).is_some() {
        return; // refused for that reason, tested in the crate
    }
    assert_eq!(
        refused(uses, &[r#"url: "http://db:8080/he\0alth""#]),
        "spec.yaml:6:14: init.steps[0].with.url: URL \"http://db:8080/he\\0alth\" contains a NUL byte"
    );
    assert_eq!(
        refused(uses, &["url: http://db:0/health"]),
        "spec.yaml:6:14: init.steps[0].with.url: URL \"http://db:0/health\" has port 0 (a port is 1-65535)"
    );
}

#[test]
fn s3_paths_with_a_nul_byte_and_endpoints_on_port_zero_are_refused_at_the_value() {
    if ActionSpec::missing_feature("init.s3_push").is_some() {
        return; // refused for that reason, tested in the crate
    }
    assert_eq!(
        refused(
            "init.s3_push",
            &[r#"source: "/data/seed\0.tar""#, "bucket: b", "key: k"]
        ),
        "spec.yaml:6:17: init.steps[0].with.source: `source` contains a NUL byte"
    );
    assert_eq!(
        refused(
            "init.s3_pull",
            &["bucket: b", "key: k", r#"destination: "/data/\0""#]
        ),
        "spec.yaml:8:22: init.steps[0].with.destination: `destination` contains a NUL byte"
    );
    assert_eq!(
        refused(
            "init.s3_pull",
            &[
                "bucket: b",
                "key: k",
                "destination: /x",
                "endpoint: 'http://127.0.0.1:0'"
            ]
        ),
        "spec.yaml:9:19: init.steps[0].with.endpoint: URL \"http://127.0.0.1:0\" has port 0 (a port is 1-65535)"
    );
}

#[test]
fn a_tcp_host_in_brackets_or_with_a_colon_must_be_an_ipv6_address() {
    assert_eq!(
        refused("init.wait_tcp", &["host: '[db]'", "port: 5432"]),
        "spec.yaml:6:15: init.steps[0].with.host: `host` \"[db]\": brackets hold an IPv6 address (such as [::1]) and nothing else"
    );
    assert_eq!(
        refused("init.wait_tcp", &["host: '[::1'", "port: 5432"]),
        "spec.yaml:6:15: init.steps[0].with.host: `host` \"[::1\": brackets hold an IPv6 address (such as [::1]) and nothing else"
    );
    // No host name has a `:`: this one would never resolve.
    assert_eq!(
        refused("init.wait_tcp", &["host: db:5432", "port: 5432"]),
        "spec.yaml:6:15: init.steps[0].with.host: `host` \"db:5432\" is not a host name or IP address (the port goes in `port`; an IPv6 address is written ::1 or [::1])"
    );
    for v6 in ["'::1'", "'[fe80::1%lo]'", "'2001:db8::5'"] {
        let yaml = format!(
            "init:\n  steps:\n    - id: a\n      uses: init.wait_tcp\n      with: {{ host: {v6}, port: 1 }}\n"
        );
        if let Err(e) = Spec::from_yaml(&yaml, "spec.yaml", None) {
            panic!("{v6}: {e}");
        }
    }
}

// `host: "[::1]"` was accepted by `--check`, then could never resolve
// (`rebound wait tcp://[::1]:P` drops the brackets). Now the action drops
// them too and connects.
#[tokio::test]
async fn a_bracketed_ipv6_host_connects_like_rebound_wait() {
    let yaml = |port: u16| {
        format!(
            "init:\n  steps:\n    - id: v6\n      uses: init.wait_tcp\n      with: {{ host: '[::1]', port: {port}, timeout: 10s }}\n"
        )
    };
    let spec = Spec::from_yaml(&yaml(5432), "spec.yaml", None).unwrap();
    let action = &spec.init.steps[0].action;
    assert_eq!(action.describe(), "tcp [::1]:5432");
    let listener = match tokio::net::TcpListener::bind("[::1]:0").await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("SKIPPED the connect: this machine has no IPv6 loopback ([::1]:0: {e})");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    let spec = Spec::from_yaml(&yaml(port), "spec.yaml", None).unwrap();
    let ctx = ActionContext::new("v6", Arc::new(|_, _, _| {}));
    let accept = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer) });
    spec.init.steps[0].action.attempt(&ctx).await.unwrap();
    let peer = accept.await.unwrap().unwrap();
    assert!(peer.ip().is_loopback() && peer.is_ipv6(), "{peer}");
}

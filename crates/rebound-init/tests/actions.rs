//! The init actions against real components: an `s3s-fs` S3 server started
//! by the test (see `common/s3.rs`).

mod common;

use std::sync::Arc;

use common::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use rebound_init::actions::s3::{S3Credentials, S3Pull, S3Push};
use rebound_init::actions::{ActionContext, ActionErrorKind, ActionSpec};

fn creds() -> S3Credentials {
    S3Credentials::new(ACCESS_KEY, SECRET_KEY)
}

fn push(server: &S3Server, source: &std::path::Path, bucket: &str, key: &str) -> S3Push {
    serde_json::from_value(serde_json::json!({
        "source": source, "bucket": bucket, "key": key,
        "endpoint": server.endpoint(), "region": "us-east-1",
    }))
    .unwrap()
}

fn pull(server: &S3Server, bucket: &str, key: &str, dest: &std::path::Path) -> S3Pull {
    serde_json::from_value(serde_json::json!({
        "bucket": bucket, "key": key, "destination": dest,
        "endpoint": server.endpoint(), "region": "us-east-1",
    }))
    .unwrap()
}

/// Bytes that are not text, so that any mangling shows.
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

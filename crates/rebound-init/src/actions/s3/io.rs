//! The S3 client behind `init.s3_push` / `init.s3_pull` (object_store).
//!
//! The credentials the parent module hands over (read from the standard
//! AWS variables, or given to `push_with` / `pull_with`) go to
//! object_store; every message is scrubbed of them, and of the secrets in
//! the AWS variables, before it leaves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use rebound_retry::{Decision, classify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{S3Credentials, S3Pull, S3Push};
use crate::actions::ActionError;
use crate::actions::tls::ensure_crypto_provider;
use crate::actions::validate;
use crate::error_chain;

/// Files up to this size are uploaded in one PUT; larger ones in parts.
const SINGLE_PUT_LIMIT: u64 = 16 << 20;
/// Part size of multipart uploads.
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once.
const PART_CONCURRENCY: usize = 4;

/// Where the requests go: the bucket, and the endpoint and region when
/// the spec sets them (otherwise from the AWS environment).
struct Target<'a> {
    bucket: &'a str,
    endpoint: Option<&'a str>,
    region: Option<&'a str>,
}

/// The values that must never appear in a message.
struct Secrets(Vec<String>);

impl Secrets {
    fn of(credentials: Option<&S3Credentials>) -> Self {
        let mut v = Vec::new();
        if let Some(c) = credentials {
            v.push(c.secret_access_key.clone());
            v.extend(c.session_token.clone());
        }
        // Also whatever sits in the environment, in case it differs.
        for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            v.extend(std::env::var(name).ok());
        }
        v.retain(|s| s.len() >= 4);
        Self(v)
    }

    /// `text` without the secret values, and with every URL in it redacted
    /// (a password in the endpoint's `user:password@`, secret query
    /// parameters): the client's errors quote the request URL.
    fn scrub(&self, text: &str) -> String {
        let mut out = validate::redacted_urls_in(text);
        for s in &self.0 {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn build(t: &Target<'_>, credentials: Option<&S3Credentials>) -> Result<AmazonS3, ActionError> {
    ensure_crypto_provider();
    let region = t
        .region
        .map(str::to_owned)
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = t
        .endpoint
        .map(str::to_owned)
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    // The orchestrator owns retries: object_store's own would multiply them.
    let retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(t.bucket)
        .with_region(region)
        .with_retry(retry)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(300)),
        );
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_endpoint(endpoint);
    }
    match credentials {
        Some(c) => {
            builder = builder
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
            if let Some(token) = &c.session_token {
                builder = builder.with_token(token);
            }
        }
        None => {
            // No credentials: unsigned requests (public buckets). Never fall
            // back to the instance metadata service behind the user's back.
            builder = builder.with_skip_signature(true);
        }
    }
    builder.build().map_err(|e| {
        ActionError::permanent(format!(
            "invalid S3 settings for bucket {:?}: {}",
            t.bucket,
            Secrets::of(credentials).scrub(&error_chain(&e))
        ))
    })
}

/// What one push or pull works with.
struct Request {
    store: AmazonS3,
    location: ObjectPath,
    secrets: Secrets,
    /// `VERB s3://BUCKET/KEY`, the head of every store error's message.
    what: String,
}

impl Request {
    /// `e`, as an attempt error of this request.
    fn error(&self, e: &object_store::Error) -> ActionError {
        store_error(&self.what, e, &self.secrets)
    }
}

/// The client and object path for `bucket`/`key`, the secrets to keep out
/// of its messages, and `verb` (`s3 push to`) to begin them with.
fn request(
    verb: &str,
    bucket: &str,
    key: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
    credentials: Option<&S3Credentials>,
) -> Result<Request, ActionError> {
    let target = Target {
        bucket,
        endpoint: endpoint.as_deref(),
        region: region.as_deref(),
    };
    Ok(Request {
        location: object_path(key)?,
        store: build(&target, credentials)?,
        secrets: Secrets::of(credentials),
        what: format!("{verb} s3://{bucket}/{key}"),
    })
}

/// [`request`] for the object of an [`S3Push`] or [`S3Pull`], which name it
/// with the same fields.
macro_rules! request_for {
    ($verb:literal, $action:expr, $credentials:expr) => {
        request(
            $verb,
            &$action.bucket,
            &$action.key,
            &$action.endpoint,
            &$action.region,
            $credentials,
        )
    };
}

fn object_path(key: &str) -> Result<ObjectPath, ActionError> {
    ObjectPath::parse(key)
        .map_err(|e| ActionError::permanent(format!("invalid S3 key {key:?}: {e}")))
}

/// S3 error codes that another attempt will not fix.
const PERMANENT_CODES: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "AllAccessDisabled",
    "InvalidObjectName",
    "KeyTooLong",
];

/// Turns an object_store error into an attempt error: scrubbed of secrets,
/// classified as permanent or transient.
fn store_error(what: &str, e: &object_store::Error, secrets: &Secrets) -> ActionError {
    let text = secrets.scrub(&error_chain(e));
    let message = format!("{what}: {text}");
    let permanent = match e {
        object_store::Error::NotFound { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. } => true,
        _ => {
            PERMANENT_CODES.iter().any(|c| text.contains(c))
                || classify::message(&text) == Some(Decision::Stop)
        }
    };
    if permanent {
        ActionError::permanent(message)
    } else {
        ActionError::transient(message)
    }
}

fn local_error(what: String, e: &std::io::Error) -> ActionError {
    let message = format!("{what}: {e}");
    match classify::io_error(e) {
        Decision::Stop => ActionError::permanent(message),
        _ => ActionError::transient(message),
    }
}

/// Uploads `source` to `bucket/key` once.
pub(crate) async fn push(
    p: &S3Push,
    credentials: Option<&S3Credentials>,
) -> Result<(), ActionError> {
    let req = request_for!("s3 push to", p, credentials)?;
    let source = &p.source;
    let mut file = tokio::fs::File::open(source)
        .await
        .map_err(|e| local_error(format!("cannot read {}", source.display()), &e))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| local_error(format!("cannot read {}", source.display()), &e))?
        .len();
    if size <= SINGLE_PUT_LIMIT {
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut data)
            .await
            .map_err(|e| local_error(format!("cannot read {}", source.display()), &e))?;
        req.store
            .put(&req.location, PutPayload::from(data))
            .await
            .map_err(|e| req.error(&e))?;
        return Ok(());
    }
    let upload = req
        .store
        .put_multipart(&req.location)
        .await
        .map_err(|e| req.error(&e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(local_error(format!("cannot read {}", source.display()), &e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
            return Err(req.error(&e));
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| req.error(&e))?;
    Ok(())
}

/// A temporary file beside `dest`, renamed over it when complete.
fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    dest.with_file_name(format!(".{name}.rebound-partial-{}", std::process::id()))
}

/// Downloads `bucket/key` to `destination` once.
pub(crate) async fn pull(
    p: &S3Pull,
    credentials: Option<&S3Credentials>,
) -> Result<(), ActionError> {
    let req = request_for!("s3 pull of", p, credentials)?;
    let result = req
        .store
        .get(&req.location)
        .await
        .map_err(|e| req.error(&e))?;
    let dest = &p.destination;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| local_error(format!("cannot create {}", parent.display()), &e))?;
    }
    let partial = partial_path(dest);
    let written = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| local_error(format!("cannot write {}", partial.display()), &e))?;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| req.error(&e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| local_error(format!("cannot write {}", partial.display()), &e))?;
        }
        file.flush()
            .await
            .map_err(|e| local_error(format!("cannot write {}", partial.display()), &e))?;
        file.sync_all()
            .await
            .map_err(|e| local_error(format!("cannot write {}", partial.display()), &e))?;
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(|e| local_error(format!("cannot write {}", dest.display()), &e))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let s = Secrets(vec!["wJalrXUtnFEMI".into()]);
        assert_eq!(s.scrub("bad key wJalrXUtnFEMI here"), "bad key *** here");
        // object_store quotes the request URL, with the endpoint's userinfo.
        assert_eq!(
            s.scrub("Error performing GET http://AKIA:s3kr1t@127.0.0.1:1/b/k in 1ms"),
            "Error performing GET http://AKIA:***@127.0.0.1:1/b/k in 1ms"
        );
    }

    #[test]
    fn partial_file_sits_beside_the_destination() {
        let p = partial_path(Path::new("/data/seed.tar"));
        assert_eq!(p.parent(), Some(Path::new("/data")));
        assert!(
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".seed.tar.rebound-partial-")
        );
    }
}

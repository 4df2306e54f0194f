//! `init.s3_push` / `init.s3_pull`: copy one file to or from S3.
//!
//! Credentials come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` / `AWS_DEFAULT_REGION`) and never appear in messages.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ActionContext, ActionError, validate};

/// The `with:` block of `init.s3_push`: upload `source` to `bucket/key`.
///
/// ```
/// use rebound_init::actions::s3::S3Push;
/// let p: S3Push = serde_json::from_str(
///     r#"{"source": "out.tar", "bucket": "b", "key": "k/out.tar", "endpoint": "http://127.0.0.1:9000"}"#,
/// ).unwrap();
/// assert_eq!(p.bucket, "b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Push {
    /// Local file to upload.
    #[serde(deserialize_with = "validate::non_empty_path")]
    #[schemars(with = "String", length(min = 1))]
    pub source: PathBuf,
    /// Bucket name.
    #[serde(deserialize_with = "validate::non_empty")]
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// Object key.
    #[serde(deserialize_with = "validate::non_empty")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// S3-compatible endpoint (`http://` allowed); path-style addressing is
    /// used when set. Default: AWS.
    #[serde(default, deserialize_with = "validate::opt_http_url")]
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then us-east-1).
    #[serde(default)]
    pub region: Option<String>,
}

/// The `with:` block of `init.s3_pull`: download `bucket/key` to
/// `destination` (written to a temporary file, then renamed).
///
/// ```
/// use rebound_init::actions::s3::S3Pull;
/// let p: S3Pull = serde_json::from_str(
///     r#"{"bucket": "b", "key": "k", "destination": "/tmp/k"}"#,
/// ).unwrap();
/// assert_eq!(p.endpoint, None);
/// assert!(serde_json::from_str::<S3Pull>(r#"{"bucket": "b", "key": "k"}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Pull {
    /// Bucket name.
    #[serde(deserialize_with = "validate::non_empty")]
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// Object key.
    #[serde(deserialize_with = "validate::non_empty")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// Local file to write.
    #[serde(deserialize_with = "validate::non_empty_path")]
    #[schemars(with = "String", length(min = 1))]
    pub destination: PathBuf,
    /// S3-compatible endpoint (`http://` allowed); path-style addressing is
    /// used when set. Default: AWS.
    #[serde(default, deserialize_with = "validate::opt_http_url")]
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then us-east-1).
    #[serde(default)]
    pub region: Option<String>,
}

impl S3Push {
    /// `s3 push SOURCE -> s3://BUCKET/KEY`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "s3 push {} -> s3://{}/{}",
            self.source.display(),
            self.bucket,
            self.key
        )
    }

    /// Uploads the file once.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let _ = ctx;
        Err(ActionError::permanent("init.s3_push is not built yet"))
    }
}

impl S3Pull {
    /// `s3 pull s3://BUCKET/KEY -> DESTINATION`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "s3 pull s3://{}/{} -> {}",
            self.bucket,
            self.key,
            self.destination.display()
        )
    }

    /// Downloads the object once.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let _ = ctx;
        Err(ActionError::permanent("init.s3_pull is not built yet"))
    }
}

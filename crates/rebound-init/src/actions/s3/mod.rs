//! `init.s3_push` / `init.s3_pull`: copy one file to or from S3.
//!
//! Credentials come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` / `AWS_DEFAULT_REGION`) and never appear in messages.
//!
//! This module holds the parameters, their validation and the credentials;
//! the transfers (object_store) are its child `io`, compiled with the `s3`
//! feature. Without that feature a spec naming `init.s3_push` or
//! `init.s3_pull` is refused at load (see
//! [`ActionSpec::missing_feature`](super::ActionSpec::missing_feature)).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[cfg(feature = "s3")]
use super::ActionContext;
use super::{ActionError, validate};

#[cfg(feature = "s3")]
mod io;

/// AWS credentials for S3 actions. `Debug` never shows the secret key or
/// the session token.
///
/// ```
/// use rebound_init::actions::s3::S3Credentials;
/// let c = S3Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG").with_session_token("tok");
/// let shown = format!("{c:?}");
/// assert!(shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr") && !shown.contains("tok\""));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

impl S3Credentials {
    /// Credentials from an access key id and secret access key (see
    /// [`S3Push::push_with`] for their use).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds a session token (temporary credentials), which `Debug` hides
    /// like the secret key.
    ///
    /// ```
    /// # use rebound_init::actions::s3::S3Credentials;
    /// let c = S3Credentials::new("id", "secret").with_session_token("FwoGZXIvYXdzEJr");
    /// assert!(!format!("{c:?}").contains("FwoGZXIvYXdzEJr"));
    /// ```
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// The access key id (not a secret: messages and `Debug` may show it).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`. `Ok(None)` when neither key is set (requests
    /// are then unsigned); an error names the variable missing from a pair.
    ///
    /// ```
    /// # use rebound_init::actions::s3::S3Credentials;
    /// // In a clean environment there are no credentials.
    /// if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
    ///     && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none()
    /// {
    ///     assert!(S3Credentials::from_env().unwrap().is_none());
    /// }
    /// ```
    pub fn from_env() -> Result<Option<Self>, ActionError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                let mut c = Self::new(id, secret);
                if let Some(token) = var("AWS_SESSION_TOKEN") {
                    c = c.with_session_token(token);
                }
                Ok(Some(c))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(ActionError::permanent(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )),
            (None, Some(_)) => Err(ActionError::permanent(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            )),
        }
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The `with:` block of `init.s3_push`: upload `source` to `bucket/key`.
///
/// ```
/// use rebound_init::actions::s3::S3Push;
/// let p: S3Push = serde_json::from_str(
///     r#"{"source": "out.tar", "bucket": "b", "key": "k/out.tar", "endpoint": "http://127.0.0.1:9000"}"#,
/// ).unwrap();
/// assert_eq!(p.bucket, "b");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Push {
    /// Local file to upload.
    #[serde(deserialize_with = "validate::source")]
    #[schemars(with = "String", length(min = 1))]
    pub source: PathBuf,
    /// Bucket name.
    #[serde(deserialize_with = "validate::bucket")]
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// Object key.
    #[serde(deserialize_with = "validate::key")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// S3-compatible endpoint (`http://` allowed); path-style addressing is
    /// used when set. Default: AWS.
    #[serde(
        default,
        deserialize_with = "validate::opt_http_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Pull {
    /// Bucket name.
    #[serde(deserialize_with = "validate::bucket")]
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// Object key.
    #[serde(deserialize_with = "validate::key")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// Local file to write.
    #[serde(deserialize_with = "validate::destination")]
    #[schemars(with = "String", length(min = 1))]
    pub destination: PathBuf,
    /// S3-compatible endpoint (`http://` allowed); path-style addressing is
    /// used when set. Default: AWS.
    #[serde(
        default,
        deserialize_with = "validate::opt_http_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

    /// Uploads the file once (without the `s3` feature,
    /// [`ActionSpec::attempt`](super::ActionSpec::attempt) fails instead).
    #[cfg(feature = "s3")]
    pub(crate) async fn attempt(&self, _ctx: &ActionContext) -> Result<(), ActionError> {
        self.push_with(S3Credentials::from_env()?.as_ref()).await
    }

    /// Uploads once with explicit credentials (`None`: unsigned requests)
    /// instead of the AWS environment variables (cargo feature `s3`).
    ///
    /// ```no_run
    /// # use rebound_init::actions::s3::{S3Credentials, S3Push};
    /// # async fn f() {
    /// let push: S3Push = serde_json::from_str(
    ///     r#"{"source": "a.bin", "bucket": "b", "key": "a.bin", "endpoint": "http://127.0.0.1:8014"}"#,
    /// ).unwrap();
    /// push.push_with(Some(&S3Credentials::new("id", "secret"))).await.unwrap();
    /// # }
    /// ```
    #[cfg(feature = "s3")]
    pub async fn push_with(&self, credentials: Option<&S3Credentials>) -> Result<(), ActionError> {
        io::push(self, credentials).await
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

    /// Downloads the object once (without the `s3` feature,
    /// [`ActionSpec::attempt`](super::ActionSpec::attempt) fails instead).
    #[cfg(feature = "s3")]
    pub(crate) async fn attempt(&self, _ctx: &ActionContext) -> Result<(), ActionError> {
        self.pull_with(S3Credentials::from_env()?.as_ref()).await
    }

    /// Downloads once with explicit credentials (`None`: unsigned
    /// requests) instead of the AWS environment variables (cargo feature
    /// `s3`).
    ///
    /// ```no_run
    /// # use rebound_init::actions::s3::{S3Credentials, S3Pull};
    /// # async fn f() {
    /// let pull: S3Pull = serde_json::from_str(
    ///     r#"{"bucket": "b", "key": "a.bin", "destination": "a.bin", "endpoint": "http://127.0.0.1:8014"}"#,
    /// ).unwrap();
    /// pull.pull_with(Some(&S3Credentials::new("id", "secret"))).await.unwrap();
    /// # }
    /// ```
    #[cfg(feature = "s3")]
    pub async fn pull_with(&self, credentials: Option<&S3Credentials>) -> Result<(), ActionError> {
        io::pull(self, credentials).await
    }
}

//! `init.wait_redis`: wait until a Redis (or Valkey) server answers `PING`
//! with `PONG`, after `AUTH` with the URL's user and password, and
//! (optionally) until a key exists.
//!
//! The client is the redis crate on tokio (cargo feature `redis`);
//! `rediss://` speaks TLS (rustls with ring; the roots are loaded by
//! rustls-native-certs: the system's, or instead those of the files named
//! by `SSL_CERT_FILE` / `SSL_CERT_DIR`). The password never appears in a
//! message.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{ActionContext, ActionError, db, duration, validate};

/// The `with:` block of `init.wait_redis`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation. The connection is kept between checks while
/// it lasts.
///
/// ```
/// use rebound_init::actions::ActionSpec;
///
/// let with = serde_json::json!({
///     "url": "redis://:s3cret@cache:6379/0",
///     "key": "feature-flags:loaded",
///     "timeout": "30s",
/// });
/// let action = ActionSpec::deserialize_params("init.wait_redis", with)?;
/// assert_eq!(
///     action.describe(),
///     "redis://:***@cache:6379/0 key \"feature-flags:loaded\""
/// );
/// let bad = serde_json::json!({ "url": "redis://cache", "key": "" });
/// let err = ActionSpec::deserialize_params("init.wait_redis", bad).unwrap_err();
/// assert!(err.to_string().contains("`key` must not be empty"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRedis {
    /// `redis://[USER][:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://` for
    /// TLS.
    #[serde(deserialize_with = "redis_url")]
    #[schemars(url)]
    pub url: String,
    /// A key that must exist (`EXISTS`), if set.
    #[serde(
        default,
        deserialize_with = "key",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1))]
    pub key: Option<String>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        deserialize_with = "duration::option::deserialize",
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// `key`: when given (`null` is none), not empty.
fn key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Key(String);
    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            validate::checked_str(d, "a Redis key", |s| {
                if s.is_empty() {
                    return Err("`key` must not be empty".to_owned());
                }
                Ok(Key(s.to_owned()))
            })
        }
    }
    Ok(Option::<Key>::deserialize(d)?.map(|k| k.0))
}

fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    db::url_field(d, "a redis:// or rediss:// URL", check_url)
}

/// The URL's own checks, and (with the `redis` feature) the client's.
fn check_url(text: &str) -> Result<(), String> {
    let url = db::check_url(text, &["redis", "rediss"])?;
    #[cfg(feature = "redis")]
    {
        let shown = validate::redacted_text(text);
        let password = db::url_password(&url);
        redis::Client::open(text)
            .map_err(|e| db::scrub(&format!("URL {shown:?}: {e}"), password.as_deref()))?;
    }
    let _ = url;
    Ok(())
}

impl fmt::Debug for WaitRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitRedis")
            .field("url", &validate::redacted_text(&self.url))
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WaitRedis {
    /// The parameters of a `rebound wait` target:
    /// `redis://:PASSWORD@HOST:PORT/DB?key=NAME`, where `key` is this
    /// action's.
    ///
    /// ```
    /// use rebound_init::actions::wait_redis::WaitRedis;
    /// let w = WaitRedis::from_url("rediss://cache:6380/2?key=warm")?;
    /// assert_eq!(w.url, "rediss://cache:6380/2");
    /// assert_eq!(w.key.as_deref(), Some("warm"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(text: &str) -> Result<Self, String> {
        let (url, key) = db::split_param(text, "key")?;
        db::from_parts(url, "key", key)
    }

    /// `redis://:***@cache:6379/0 key "warm"`, for messages.
    pub(crate) fn describe(&self) -> String {
        let url = validate::redacted_text(&self.url);
        match &self.key {
            Some(k) => format!("{url} key {k:?}"),
            None => url,
        }
    }

    /// Polls until `PING` is answered (and the key exists) or `timeout`
    /// runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        #[cfg(feature = "redis")]
        {
            io::attempt(self, ctx).await
        }
        // The spec loader refuses this action in such a build; a library
        // user may still build one by hand.
        #[cfg(not(feature = "redis"))]
        {
            let _ = ctx;
            Err(ActionError::permanent(
                "init.wait_redis needs rebound-init's `redis` feature, which this build lacks",
            ))
        }
    }
}

#[cfg(feature = "redis")]
mod io {
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;
    use tokio::sync::Mutex;

    use super::WaitRedis;
    use crate::actions::poll::{self, Check};
    use crate::actions::{ActionContext, ActionError, db};

    /// Bound on one connect and login, and on each command.
    const STEP_TIMEOUT: Duration = Duration::from_secs(5);

    pub(super) async fn attempt(w: &WaitRedis, ctx: &ActionContext) -> Result<(), ActionError> {
        let client = redis::Client::open(w.url.as_str())
            .map_err(|_| ActionError::permanent(format!("invalid URL {}", w.describe())))?;
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned);
        let session: Mutex<Option<MultiplexedConnection>> = Mutex::new(None);
        let what = w.describe();
        poll::until(ctx, &what, w.timeout, poll::COSTLY, || {
            check(w, &client, &session, password.as_deref())
        })
        .await
    }

    async fn check(
        w: &WaitRedis,
        client: &redis::Client,
        session: &Mutex<Option<MultiplexedConnection>>,
        password: Option<&str>,
    ) -> Check {
        let mut slot = session.lock().await;
        if slot.is_none() {
            let connect = client.get_multiplexed_async_connection();
            match tokio::time::timeout(STEP_TIMEOUT, connect).await {
                Err(_) => return Check::NotYet("connect timed out".into()),
                Ok(Err(e)) => return Check::NotYet(db::scrub(&reason(&e), password)),
                Ok(Ok(conn)) => *slot = Some(conn),
            }
        }
        let Some(conn) = slot.as_mut() else {
            return Check::NotYet("not connected".into());
        };
        let outcome = tokio::time::timeout(STEP_TIMEOUT, async {
            let pong: String = redis::cmd("PING").query_async(conn).await?;
            if pong != "PONG" {
                return Ok(Some(format!("PING answered {pong:?}, not PONG")));
            }
            match &w.key {
                None => Ok(None),
                Some(key) => {
                    let n: i64 = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
                    Ok((n == 0).then(|| format!("key {key:?} does not exist")))
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(None)) => Check::Ready,
            Ok(Ok(Some(why))) => Check::NotYet(why),
            Ok(Err(e)) => {
                *slot = None;
                Check::NotYet(db::scrub(&reason(&e), password))
            }
            Err(_) => {
                *slot = None;
                Check::NotYet("command timed out".into())
            }
        }
    }

    /// Why a connect, `AUTH` or command failed, in words.
    fn reason(e: &redis::RedisError) -> String {
        if e.is_connection_refusal() {
            return "connection refused".into();
        }
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        let text = db::io_reason(e).unwrap_or_else(|| e.to_string());
        if auth && !text.starts_with("authentication failed") {
            format!("authentication failed: {text}")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_debug_output() {
        let w = WaitRedis::from_url("redis://:hunter22@cache/0").unwrap();
        let debug = format!("{w:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
    }

    #[test]
    fn a_null_key_is_no_key() {
        let w: WaitRedis =
            serde_json::from_str(r#"{"url": "redis://cache", "key": null}"#).unwrap();
        assert_eq!(w.key, None);
    }

    #[test]
    fn rejects_bad_urls_and_keys() {
        for (with, why) in [
            (
                r#"{"url": "http://cache"}"#,
                "must start with redis:// or rediss://",
            ),
            (
                r#"{"url": "redis://cache", "key": ""}"#,
                "`key` must not be empty",
            ),
            (
                r#"{"url": "redis://cache", "table": "x"}"#,
                "unknown field `table`",
            ),
        ] {
            let err = serde_json::from_str::<WaitRedis>(with).unwrap_err();
            assert!(err.to_string().contains(why), "{with}: {err}");
        }
    }
}

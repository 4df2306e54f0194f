//! `init.wait_redis`: wait until a Redis (or Valkey) server answers `PING`
//! with `PONG`, after `AUTH` with the URL's user and password, and
//! (optionally) until a key exists.
//!
//! The client is the redis crate on tokio (cargo feature `redis`);
//! `rediss://` speaks TLS (rustls with ring; the roots are loaded by
//! rustls-native-certs: the system's, or instead those of the files named
//! by `SSL_CERT_FILE` / `SSL_CERT_DIR`). The password never appears in a
//! message.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{db, duration, validate};

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
        with = "duration::option",
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
    let url = validate::check_url(text, &["redis", "rediss"])?;
    #[cfg(feature = "redis")]
    redis::Client::open(text).map_err(|e| db::client_url_error(text, &url, e))?;
    let _ = url;
    Ok(())
}

db::wait_impls!(WaitRedis, key, "key {:?}");

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
        db::from_url(text, "key")
    }
}

#[cfg(feature = "redis")]
mod io {
    use redis::aio::MultiplexedConnection;

    use super::WaitRedis;
    use crate::actions::{ActionContext, ActionError, db};

    impl WaitRedis {
        /// Polls until `PING` is answered (and the key exists) or `timeout`
        /// runs out (without the `redis` feature,
        /// [`ActionSpec::attempt`](crate::actions::ActionSpec::attempt)
        /// fails instead).
        pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
            let client = redis::Client::open(self.url.as_str())
                .map_err(|_| ActionError::permanent(format!("invalid URL {}", self.describe())))?;
            let password = client
                .get_connection_info()
                .redis_settings()
                .password()
                .map(str::to_owned);
            let client = Redis { w: self, client };
            db::poll(
                &client,
                ctx,
                &self.describe(),
                self.timeout,
                password.as_deref(),
            )
            .await
        }
    }

    /// The redis crate, as [`db::poll`] uses it.
    struct Redis<'a> {
        w: &'a WaitRedis,
        client: redis::Client,
    }

    impl db::Client for Redis<'_> {
        type Session = MultiplexedConnection;
        type Error = redis::RedisError;
        const REQUEST: &'static str = "command";

        async fn connect(&self) -> Result<MultiplexedConnection, redis::RedisError> {
            self.client.get_multiplexed_async_connection().await
        }

        async fn check(
            &self,
            conn: &mut MultiplexedConnection,
        ) -> Result<Option<String>, redis::RedisError> {
            let pong: String = redis::cmd("PING").query_async(conn).await?;
            if pong != "PONG" {
                return Ok(Some(format!("PING answered {pong:?}, not PONG")));
            }
            let Some(key) = &self.w.key else {
                return Ok(None);
            };
            let n: i64 = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
            Ok((n == 0).then(|| format!("key {key:?} does not exist")))
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

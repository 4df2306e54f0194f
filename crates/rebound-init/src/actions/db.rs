//! What the database and cache waits share (`init.wait_postgres`,
//! `init.wait_mysql`, `init.wait_redis`): reading their URL, the `table`
//! names they check, the `rebound wait` form of their parameters (`?table=`
//! / `?key=` in the URL), keeping the password out of every message, and
//! (with any of their features) the polling over one kept session,
//! `Client` and `poll`.

use std::fmt;

use serde::Deserializer;

use super::validate;

/// A client's complaint `e` about the URL `text` (parsed as `url`), for
/// messages: `URL "...": complaint`, the URL shown without its password and
/// the password scrubbed from the complaint too.
// Used by the URL checks of the features postgres, mysql and redis only.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(dead_code)
)]
pub(crate) fn client_url_error(text: &str, url: &url::Url, e: impl fmt::Display) -> String {
    let shown = validate::redacted_text(text);
    scrub(&format!("URL {shown:?}: {e}"), url_password(url).as_deref())
}

/// Reads a URL string with `check`, inside the visitor (so the YAML reader
/// points at the value).
pub(crate) fn url_field<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
    check: fn(&str) -> Result<(), String>,
) -> Result<String, D::Error> {
    validate::checked_str(d, expecting, |s| check(s).map(|()| s.to_owned()))
}

/// A table name as SQL writes it without quotes: `NAME` or `SCHEMA.NAME`,
/// each part a letter or `_` then letters, digits, `_` or `$`, at most
/// `max` bytes.
///
/// ```text
/// users, public.users, app_v2.schema_migrations    ok
/// "users", users;drop, 2fa, a.b.c, ""              refused
/// ```
pub(crate) fn check_table(text: &str, max: usize) -> Result<(), String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 2 {
        return Err(format!(
            "`table` {text:?} is not a table name: NAME or SCHEMA.NAME, with one dot at most"
        ));
    }
    for part in parts {
        let mut chars = part.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !first_ok || !rest_ok {
            return Err(format!(
                "`table` {text:?} is not a table name: NAME or SCHEMA.NAME, each a letter or _ then letters, digits, _ or $"
            ));
        }
        if part.len() > max {
            return Err(format!(
                "`table` {text:?}: {part:?} is longer than {max} characters"
            ));
        }
    }
    Ok(())
}

/// Reads an optional `table` checked by [`check_table`] (`null` is none).
pub(crate) fn table_field<'de, D: Deserializer<'de>>(
    d: D,
    max: usize,
) -> Result<Option<String>, D::Error> {
    struct Table(String);
    struct Seed(usize);
    impl<'de> serde::de::DeserializeSeed<'de> for Seed {
        type Value = Table;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Table, D::Error> {
            validate::checked_str(d, "a table name, NAME or SCHEMA.NAME", |s| {
                check_table(s, self.0).map(|()| Table(s.to_owned()))
            })
        }
    }
    struct Opt(usize);
    impl<'de> serde::de::Visitor<'de> for Opt {
        type Value = Option<Table>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table name, NAME or SCHEMA.NAME")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            serde::de::DeserializeSeed::deserialize(Seed(self.0), d).map(Some)
        }
    }
    Ok(d.deserialize_option(Opt(max))?.map(|t| t.0))
}

/// `text` with each occurrence of `secret` (a password, and its
/// percent-encoded form as the URL holds it) replaced by `***`: server
/// messages and client errors may quote what they were given.
// Used by the clients of the features postgres, mysql and redis only.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(dead_code)
)]
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return text.to_owned();
    };
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let mut out = text.replace(secret, "***");
    if encoded != secret {
        out = out.replace(&encoded, "***");
    }
    out
}

/// The password of a URL, percent-decoded.
// Used by the clients of the features postgres, mysql and redis only.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(dead_code)
)]
pub(crate) fn url_password(url: &url::Url) -> Option<String> {
    url.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// Implements for the database wait `$ty`, whose `table` or `key` is its
/// field `$param`, what they share: `Debug`, and `describe` for messages
/// (`postgres://app:***@db/app table users`, `$shown` formatting the
/// `$param`), both showing the URL without its password.
macro_rules! wait_impls {
    ($ty:ident, $param:ident, $shown:literal) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("url", &$crate::actions::validate::redacted_text(&self.url))
                    .field(stringify!($param), &self.$param)
                    .field("timeout", &self.timeout)
                    .finish()
            }
        }

        impl $ty {
            /// What the action waits for, for messages.
            pub(crate) fn describe(&self) -> String {
                let url = $crate::actions::validate::redacted_text(&self.url);
                match &self.$param {
                    Some(value) => format!(concat!("{} ", $shown), url, value),
                    None => url,
                }
            }
        }
    };
}
pub(crate) use wait_impls;

/// The parameters of a database wait read from a `rebound wait` target:
/// the URL with its query parameter `param` (`table`, `key`) taken out
/// (see [`split_param`]), and that parameter's value, read as `T`
/// (`{ url: URL, PARAM: VALUE }`) with `T`'s own checks.
pub(crate) fn from_url<T: serde::de::DeserializeOwned>(
    text: &str,
    param: &str,
) -> Result<T, String> {
    let (url, value) = split_param(text, param)?;
    let mut with = serde_json::Map::new();
    with.insert("url".into(), url.into());
    if let Some(value) = value {
        with.insert(param.into(), value.into());
    }
    serde_json::from_value(serde_json::Value::Object(with)).map_err(|e| e.to_string())
}

/// A `rebound wait` URL split into the URL the client reads and the value
/// of the query parameter `param` (`table`, `key`), which is not the
/// client's: `postgres://db/app?table=users` gives `postgres://db/app` and
/// `users`. Other parameters stay in the URL, in order.
pub(crate) fn split_param(text: &str, param: &str) -> Result<(String, Option<String>), String> {
    let shown = validate::redacted_text(text);
    let mut url = url::Url::parse(text).map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let mut value = None;
    let mut kept = Vec::new();
    for (k, v) in pairs {
        if k == param {
            if value.is_some() {
                return Err(format!("`{param}` is given twice in {shown:?}"));
            }
            value = Some(v);
        } else {
            kept.push((k, v));
        }
    }
    if value.is_none() {
        return Ok((text.to_owned(), None));
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((url.into(), value))
}

/// The reason of the last check, when a client error has an I/O error
/// under it: `connection refused`, or the error's own text.
// Used by the clients of the features postgres, mysql and redis only.
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "redis")),
    allow(dead_code)
)]
pub(crate) fn io_reason(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::NotFound => "not found".into(),
                _ => io.to_string(),
            });
        }
        source = err.source();
    }
    None
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "redis"))]
pub(crate) use session::{Client, poll};

/// The polling of the database and cache waits over one session, kept
/// across checks while it lasts.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "redis"))]
mod session {
    use std::time::Duration;

    use tokio::sync::Mutex;

    use super::scrub;
    use crate::actions::poll::{self, Check};
    use crate::actions::{ActionContext, ActionError};

    /// Bound on one connect and login, and on each check.
    const STEP_TIMEOUT: Duration = Duration::from_secs(5);

    /// A database or cache client, as a wait uses it: connect and log in,
    /// then check the target on the session.
    pub(crate) trait Client {
        /// A live session (a connection, logged in).
        type Session: Send;
        /// The client's error.
        type Error;
        /// What a check sends, for the message of one cut off:
        /// `query timed out`, `command timed out`.
        const REQUEST: &'static str;

        /// Connects and logs in.
        async fn connect(&self) -> Result<Self::Session, Self::Error>;

        /// Whether a kept session is known to be closed, so that the next
        /// check connects afresh (a session whose check failed is dropped
        /// anyway).
        fn is_closed(_session: &Self::Session) -> bool {
            false
        }

        /// One check on the session: `None` when the target is ready, else
        /// why it is not yet (`table users does not exist`).
        async fn check(&self, session: &mut Self::Session) -> Result<Option<String>, Self::Error>;

        /// Why a connect, login or check failed, in words (`password` is
        /// scrubbed from them after).
        fn reason(e: &Self::Error) -> String;
    }

    /// Polls `client` until a check finds the target ready, or `timeout`
    /// runs out (the message then names `what`), keeping one session while
    /// it lasts; `password` never appears in a reason.
    pub(crate) async fn poll<C: Client>(
        client: &C,
        ctx: &ActionContext,
        what: &str,
        timeout: Option<Duration>,
        password: Option<&str>,
    ) -> Result<(), ActionError> {
        let session: Mutex<Option<C::Session>> = Mutex::new(None);
        poll::until(ctx, what, timeout, poll::COSTLY, || {
            check(client, &session, password)
        })
        .await
    }

    /// One check: connect (under [`STEP_TIMEOUT`]) unless a session is
    /// kept, then check (under it too); a failed check drops the session.
    async fn check<C: Client>(
        client: &C,
        session: &Mutex<Option<C::Session>>,
        password: Option<&str>,
    ) -> Check {
        let mut slot = session.lock().await;
        if slot.as_ref().is_some_and(C::is_closed) {
            *slot = None;
        }
        if slot.is_none() {
            match tokio::time::timeout(STEP_TIMEOUT, client.connect()).await {
                Err(_) => return Check::NotYet("connect timed out".into()),
                Ok(Err(e)) => return Check::NotYet(scrub(&C::reason(&e), password)),
                Ok(Ok(s)) => *slot = Some(s),
            }
        }
        let Some(live) = slot.as_mut() else {
            return Check::NotYet("not connected".into());
        };
        match tokio::time::timeout(STEP_TIMEOUT, client.check(live)).await {
            Ok(Ok(None)) => Check::Ready,
            Ok(Ok(Some(why))) => Check::NotYet(why),
            Ok(Err(e)) => {
                *slot = None;
                Check::NotYet(scrub(&C::reason(&e), password))
            }
            Err(_) => {
                *slot = None;
                Check::NotYet(format!("{} timed out", C::REQUEST))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for ok in ["users", "public.users", "_x$1", "app_v2.schema_migrations"] {
            check_table(ok, 63).unwrap();
        }
        for bad in [
            "",
            "\"users\"",
            "users;drop",
            "2fa",
            "a.b.c",
            "a.",
            ".a",
            "a b",
            "é",
        ] {
            let err = check_table(bad, 63).unwrap_err();
            assert!(err.contains("is not a table name"), "{bad}: {err}");
        }
        let long = "a".repeat(64);
        assert!(
            check_table(&long, 63)
                .unwrap_err()
                .contains("longer than 63")
        );
        check_table(&long, 64).unwrap();
    }

    #[test]
    fn a_password_is_scrubbed_plain_and_encoded() {
        assert_eq!(
            scrub("bad p@ss and p%40ss", Some("p@ss")),
            "bad *** and ***"
        );
        assert_eq!(scrub("nothing", None), "nothing");
        assert_eq!(scrub("nothing", Some("")), "nothing");
    }

    #[test]
    fn the_param_is_taken_out_of_the_url() {
        let (url, table) = split_param("postgres://u:pw@db:5432/app?table=users", "table").unwrap();
        assert_eq!(url, "postgres://u:pw@db:5432/app");
        assert_eq!(table.as_deref(), Some("users"));
        let (url, table) =
            split_param("postgres://db/app?sslmode=disable&table=a.b&x=1", "table").unwrap();
        assert_eq!(url, "postgres://db/app?sslmode=disable&x=1");
        assert_eq!(table.as_deref(), Some("a.b"));
        let (url, key) = split_param("redis://db:6379/0", "key").unwrap();
        assert_eq!((url.as_str(), key), ("redis://db:6379/0", None));
        let err = split_param("redis://:hunter22@db?key=a&key=b", "key").unwrap_err();
        assert!(err.contains("twice"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn urls_are_checked_without_showing_the_password() {
        let err = validate::check_url("mysql://u:hunter22@/app", &["mysql"]).unwrap_err();
        assert!(!err.contains("hunter22"), "{err}");
        let err = validate::check_url("http://u:hunter22@db/", &["redis", "rediss"]).unwrap_err();
        assert!(
            err.contains("must start with redis:// or rediss://"),
            "{err}"
        );
        assert!(!err.contains("hunter22"), "{err}");
        let err = validate::check_url("redis://db:0", &["redis"]).unwrap_err();
        assert!(err.contains("port 0"), "{err}");
    }
}

//! `init.wait_mysql`: wait until a MySQL or MariaDB server accepts a login
//! and answers `SELECT 1`, and (optionally) until a table exists.
//!
//! The client is mysql_async (cargo feature `mysql`), in plaintext, over
//! TCP to the URL's host and port (never switched to a local socket). The
//! password comes from the URL or, when the URL has none, from `MYSQL_PWD`;
//! it never appears in a message.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{db, duration, validate};

/// The `with:` block of `init.wait_mysql`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation. Each check logs in (once, then the session is
/// kept while it lasts), runs `SELECT 1` and, with `table`, looks the table
/// up in `information_schema.tables`.
///
/// ```
/// use rebound_init::actions::ActionSpec;
///
/// let with = serde_json::json!({
///     "url": "mysql://app:s3cret@db:3306/shop",
///     "table": "orders",
///     "timeout": 60,
/// });
/// let action = ActionSpec::deserialize_params("init.wait_mysql", with)?;
/// assert_eq!(action.describe(), "mysql://app:***@db:3306/shop table orders");
/// // A table without a schema needs a database in the URL.
/// let bad = serde_json::json!({ "url": "mysql://db", "table": "orders" });
/// let err = ActionSpec::deserialize_params("init.wait_mysql", bad).unwrap_err();
/// assert!(err.to_string().contains("needs a database"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitMysql {
    /// `mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?PARAM=VALUE...]`
    /// (mysql_async's URL parameters). Without a password in it,
    /// `MYSQL_PWD` is used.
    #[schemars(url)]
    pub url: String,
    /// A table that must exist: `NAME` (in the URL's database) or
    /// `DATABASE.NAME`, an SQL identifier without quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"))]
    pub table: Option<String>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// `WaitMysql` as written, before the check that spans fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(deserialize_with = "mysql_url")]
    url: String,
    #[serde(default, deserialize_with = "table")]
    table: Option<String>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    timeout: Option<Duration>,
}

impl<'de> Deserialize<'de> for WaitMysql {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        if let Some(table) = &raw.table
            && !table.contains('.')
            && database(&raw.url).is_none()
        {
            return Err(serde::de::Error::custom(format!(
                "`table` {table:?} needs a database: in the URL (mysql://HOST/DATABASE) or before the name (DATABASE.{table})"
            )));
        }
        Ok(WaitMysql {
            url: raw.url,
            table: raw.table,
            timeout: raw.timeout,
        })
    }
}

/// The database of the URL's path, if any.
fn database(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let path = url.path().trim_start_matches('/');
    (!path.is_empty()).then(|| {
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// MySQL's longest identifier.
const MAX_IDENTIFIER: usize = 64;

fn table<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    db::table_field(d, MAX_IDENTIFIER)
}

fn mysql_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    db::url_field(d, "a mysql:// URL", check_url)
}

/// The URL's own checks, and (with the `mysql` feature) the client's.
fn check_url(text: &str) -> Result<(), String> {
    let url = validate::check_url(text, &["mysql"])?;
    #[cfg(feature = "mysql")]
    mysql_async::Opts::from_url(text).map_err(|e| db::client_url_error(text, &url, e))?;
    let _ = url;
    Ok(())
}

db::wait_impls!(WaitMysql, table, "table {}");

impl WaitMysql {
    /// The parameters of a `rebound wait` target:
    /// `mysql://USER:PASSWORD@HOST:PORT/DB?table=NAME`, where `table` is
    /// this action's and the other parameters the client's.
    ///
    /// ```
    /// use rebound_init::actions::wait_mysql::WaitMysql;
    /// let w = WaitMysql::from_url("mysql://app@db:3306/shop?table=orders")?;
    /// assert_eq!(w.url, "mysql://app@db:3306/shop");
    /// assert_eq!(w.table.as_deref(), Some("orders"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(text: &str) -> Result<Self, String> {
        db::from_url(text, "table")
    }
}

#[cfg(feature = "mysql")]
mod io {
    use mysql_async::prelude::Queryable;
    use mysql_async::{Conn, Opts, OptsBuilder};

    use super::WaitMysql;
    use crate::actions::{ActionContext, ActionError, db};

    /// MySQL's "access denied" errors (1045: wrong password; 1044 and 1698:
    /// no access for this user).
    const ACCESS_DENIED: [u16; 3] = [1044, 1045, 1698];

    impl WaitMysql {
        /// Polls until the server answers (and the table exists) or
        /// `timeout` runs out (without the `mysql` feature,
        /// [`ActionSpec::attempt`](crate::actions::ActionSpec::attempt)
        /// fails instead).
        pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
            let opts = Opts::from_url(&self.url)
                .map_err(|_| ActionError::permanent(format!("invalid URL {}", self.describe())))?;
            let mut builder = OptsBuilder::from_opts(opts.clone()).prefer_socket(false);
            if opts.pass().is_none()
                && let Ok(pw) = std::env::var("MYSQL_PWD")
            {
                builder = builder.pass(Some(pw));
            }
            let opts = Opts::from(builder);
            let password = opts.pass().map(str::to_owned);
            let (schema, name) = match self.table.as_deref().map(|t| t.split_once('.')) {
                None => (None, None),
                Some(Some((schema, name))) => (Some(schema.to_owned()), Some(name.to_owned())),
                Some(None) => (opts.db_name().map(str::to_owned), self.table.clone()),
            };
            let client = Mysql {
                w: self,
                opts,
                table: schema.zip(name),
            };
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

    /// mysql_async, as [`db::poll`] uses it.
    struct Mysql<'a> {
        w: &'a WaitMysql,
        opts: Opts,
        /// The table's schema and name.
        table: Option<(String, String)>,
    }

    impl db::Client for Mysql<'_> {
        type Session = Conn;
        type Error = mysql_async::Error;
        const REQUEST: &'static str = "query";

        async fn connect(&self) -> Result<Conn, mysql_async::Error> {
            Conn::new(self.opts.clone()).await
        }

        async fn check(&self, conn: &mut Conn) -> Result<Option<String>, mysql_async::Error> {
            conn.query_drop("SELECT 1").await?;
            let Some((schema, name)) = &self.table else {
                return Ok(None);
            };
            let found: Option<u64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                    (schema.as_str(), name.as_str()),
                )
                .await?;
            Ok((found.unwrap_or(0) == 0).then(|| {
                format!(
                    "table {} does not exist",
                    self.w.table.as_deref().unwrap_or_default()
                )
            }))
        }

        /// Why a connect, login or query failed, in words.
        fn reason(e: &mysql_async::Error) -> String {
            match e {
                mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
                    format!("authentication failed: {}", s.message)
                }
                mysql_async::Error::Server(s) => s.message.clone(),
                other => db::io_reason(other).unwrap_or_else(|| other.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_debug_output() {
        let w = WaitMysql::from_url("mysql://app:hunter22@db/shop").unwrap();
        let debug = format!("{w:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
    }

    #[test]
    fn rejects_bad_urls_and_names() {
        for (with, why) in [
            (
                r#"{"url": "postgres://db/app"}"#,
                "must start with mysql://",
            ),
            (
                r#"{"url": "mysql://db/app", "table": "1x"}"#,
                "is not a table name",
            ),
            (r#"{"url": "mysql://db", "table": "x"}"#, "needs a database"),
            (
                r#"{"url": "mysql://db/app", "key": "x"}"#,
                "unknown field `key`",
            ),
        ] {
            let err = serde_json::from_str::<WaitMysql>(with).unwrap_err();
            assert!(err.to_string().contains(why), "{with}: {err}");
        }
        let w: WaitMysql =
            serde_json::from_str(r#"{"url": "mysql://db", "table": "shop.x"}"#).unwrap();
        assert_eq!(w.describe(), "mysql://db table shop.x");
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn the_client_s_parameters_are_checked_when_read() {
        let err = WaitMysql::from_url("mysql://u:hunter22@db/app?nonsense=1").unwrap_err();
        assert!(err.contains("nonsense"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }
}

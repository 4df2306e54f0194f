//! `init.wait_postgres`: wait until a PostgreSQL server accepts a login and
//! answers `SELECT 1`, and (optionally) until a table exists.
//!
//! The client is tokio-postgres (cargo feature `postgres`), in plaintext:
//! `sslmode=require` (and `verify-*`) is refused when the spec is read. The
//! password comes from the URL or, when the URL has none, from
//! `PGPASSWORD`; it never appears in a message.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{db, duration, validate};

/// The `with:` block of `init.wait_postgres`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation. Each check logs in (once, then the session is
/// kept while it lasts), runs `SELECT 1` and, with `table`, looks the table
/// up (`to_regclass`, so the `search_path` applies to a name without a
/// schema).
///
/// ```
/// use rebound_init::actions::ActionSpec;
///
/// let with = serde_json::json!({
///     "url": "postgres://app:s3cret@db:5432/app",
///     "table": "public.schema_migrations",
///     "timeout": "1m",
/// });
/// let action = ActionSpec::deserialize_params("init.wait_postgres", with)?;
/// assert_eq!(
///     action.describe(),
///     "postgres://app:***@db:5432/app table public.schema_migrations"
/// );
/// let bad = serde_json::json!({ "url": "postgres://db/app", "table": "users; drop" });
/// let err = ActionSpec::deserialize_params("init.wait_postgres", bad).unwrap_err();
/// assert!(err.to_string().contains("is not a table name"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitPostgres {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAM=VALUE...]`
    /// (`postgresql://` too; libpq's URL parameters such as
    /// `connect_timeout`, `application_name`, `sslmode=disable|prefer`).
    /// Without a password in it, `PGPASSWORD` is used; without a user,
    /// `PGUSER`, else `postgres`.
    #[serde(deserialize_with = "postgres_url")]
    #[schemars(url)]
    pub url: String,
    /// A table (or view) that must exist: `NAME` or `SCHEMA.NAME`, an SQL
    /// identifier without quotes.
    #[serde(
        default,
        deserialize_with = "table",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"))]
    pub table: Option<String>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// PostgreSQL's longest identifier (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

fn table<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    db::table_field(d, MAX_IDENTIFIER)
}

fn postgres_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    db::url_field(d, "a postgres:// or postgresql:// URL", check_url)
}

/// The URL's own checks, and (with the `postgres` feature) the client's:
/// its parameters, plaintext only.
fn check_url(text: &str) -> Result<(), String> {
    let url = validate::check_url(text, &["postgres", "postgresql"])?;
    #[cfg(feature = "postgres")]
    {
        let config: tokio_postgres::Config = text
            .parse()
            .map_err(|e| db::client_url_error(text, &url, e))?;
        if !matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
        ) {
            return Err(format!(
                "URL {:?}: init.wait_postgres speaks plaintext only: sslmode must be disable or prefer",
                validate::redacted_text(text)
            ));
        }
    }
    let _ = url;
    Ok(())
}

db::wait_impls!(WaitPostgres, table, "table {}");

impl WaitPostgres {
    /// The parameters of a `rebound wait` target:
    /// `postgres://USER:PASSWORD@HOST:PORT/DB?table=NAME`, where `table`
    /// is this action's and the other parameters the client's.
    ///
    /// ```
    /// use rebound_init::actions::wait_postgres::WaitPostgres;
    /// let w = WaitPostgres::from_url("postgresql://app@db/app?table=users&connect_timeout=3")?;
    /// assert_eq!(w.url, "postgresql://app@db/app?connect_timeout=3");
    /// assert_eq!(w.table.as_deref(), Some("users"));
    /// assert!(WaitPostgres::from_url("postgres://db/app?table=a.b.c").is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(text: &str) -> Result<Self, String> {
        db::from_url(text, "table")
    }
}

#[cfg(feature = "postgres")]
mod io {
    use std::time::Duration;

    use tokio_postgres::error::SqlState;
    use tokio_postgres::{Client, Config, NoTls};

    use super::WaitPostgres;
    use crate::actions::{ActionContext, ActionError, db};

    /// Bound on a connect when the URL sets no `connect_timeout`.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    impl WaitPostgres {
        /// Polls until the server answers (and the table exists) or
        /// `timeout` runs out (without the `postgres` feature,
        /// [`ActionSpec::attempt`](crate::actions::ActionSpec::attempt)
        /// fails instead).
        pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
            let mut config: Config = self
                .url
                .parse()
                .map_err(|_| ActionError::permanent(format!("invalid URL {}", self.describe())))?;
            if config.get_password().is_none()
                && let Ok(pw) = std::env::var("PGPASSWORD")
            {
                config.password(pw);
            }
            if config.get_user().is_none() {
                let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
                config.user(user);
            }
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(CONNECT_TIMEOUT);
            }
            let password = config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let client = Postgres { w: self, config };
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

    /// tokio-postgres, as [`db::poll`] uses it.
    struct Postgres<'a> {
        w: &'a WaitPostgres,
        config: Config,
    }

    impl db::Client for Postgres<'_> {
        type Session = Client;
        type Error = tokio_postgres::Error;
        const REQUEST: &'static str = "query";

        async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
            let (client, connection) = self.config.connect(NoTls).await?;
            // Ends when the client is dropped (ready, or cancelled).
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }

        fn is_closed(client: &Client) -> bool {
            client.is_closed()
        }

        async fn check(
            &self,
            client: &mut Client,
        ) -> Result<Option<String>, tokio_postgres::Error> {
            client.simple_query("SELECT 1").await?;
            let Some(table) = &self.w.table else {
                return Ok(None);
            };
            let row = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
                .await?;
            let found: bool = row.try_get(0)?;
            Ok((!found).then(|| format!("table {table} does not exist")))
        }

        /// Why a connect, login or query failed, in words.
        fn reason(e: &tokio_postgres::Error) -> String {
            if let Some(db) = e.as_db_error() {
                let code = db.code();
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                {
                    return format!("authentication failed: {}", db.message());
                }
                return db.message().to_owned();
            }
            db::io_reason(e).unwrap_or_else(|| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_in_debug_output() {
        let w = WaitPostgres::from_url("postgres://app:hunter22@db/app").unwrap();
        let debug = format!("{w:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
        assert!(debug.contains("app:***@db"), "{debug}");
    }

    #[test]
    fn a_null_table_is_no_table() {
        let w: WaitPostgres =
            serde_json::from_str(r#"{"url": "postgres://db/app", "table": null}"#).unwrap();
        assert_eq!(w.table, None);
    }

    #[test]
    fn rejects_bad_urls_and_names() {
        for (with, why) in [
            (
                r#"{"url": "mysql://db/app"}"#,
                "must start with postgres://",
            ),
            (r#"{"url": "postgres:///app"}"#, "has no host"),
            (
                r#"{"url": "postgres://db/app", "table": "a-b"}"#,
                "is not a table name",
            ),
            (
                r#"{"url": "postgres://db/app", "port": 5432}"#,
                "unknown field `port`",
            ),
        ] {
            let err = serde_json::from_str::<WaitPostgres>(with).unwrap_err();
            assert!(err.to_string().contains(why), "{with}: {err}");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_client_s_parameters_are_checked_when_read() {
        for (url, why) in [
            (
                "postgres://u:hunter22@db/app?sslmode=require",
                "plaintext only",
            ),
            ("postgres://u:hunter22@db/app?nonsense=1", "nonsense"),
        ] {
            let err = WaitPostgres::from_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains("hunter22"), "{err}");
        }
    }
}

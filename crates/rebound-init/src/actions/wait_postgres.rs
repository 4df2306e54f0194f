//! `init.wait_postgres`: wait until a PostgreSQL server accepts a login and
//! answers `SELECT 1`, and (optionally) until a table exists.
//!
//! The client is tokio-postgres (cargo feature `postgres`), in plaintext:
//! `sslmode=require` (and `verify-*`) is refused when the spec is read. The
//! password comes from the URL or, when the URL has none, from
//! `PGPASSWORD`; it never appears in a message.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{ActionContext, ActionError, db, duration, validate};

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
        deserialize_with = "duration::option::deserialize",
        serialize_with = "duration::option::serialize",
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
    let url = db::check_url(text, &["postgres", "postgresql"])?;
    #[cfg(feature = "postgres")]
    {
        let shown = validate::redacted_text(text);
        let password = db::url_password(&url);
        let config: tokio_postgres::Config = text
            .parse()
            .map_err(|e| db::scrub(&format!("URL {shown:?}: {e}"), password.as_deref()))?;
        if !matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
        ) {
            return Err(format!(
                "URL {shown:?}: init.wait_postgres speaks plaintext only: sslmode must be disable or prefer"
            ));
        }
    }
    let _ = url;
    Ok(())
}

impl fmt::Debug for WaitPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitPostgres")
            .field("url", &validate::redacted_text(&self.url))
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish()
    }
}

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
        let (url, table) = db::split_param(text, "table")?;
        db::from_parts(url, "table", table)
    }

    /// `postgres://app:***@db:5432/app table users`, for messages.
    pub(crate) fn describe(&self) -> String {
        let url = validate::redacted_text(&self.url);
        match &self.table {
            Some(t) => format!("{url} table {t}"),
            None => url,
        }
    }

    /// Polls until the server answers (and the table exists) or `timeout`
    /// runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        #[cfg(feature = "postgres")]
        {
            io::attempt(self, ctx).await
        }
        // The spec loader refuses this action in such a build; a library
        // user may still build one by hand.
        #[cfg(not(feature = "postgres"))]
        {
            let _ = ctx;
            Err(ActionError::permanent(
                "init.wait_postgres needs rebound-init's `postgres` feature, which this build lacks",
            ))
        }
    }
}

#[cfg(feature = "postgres")]
mod io {
    use std::time::Duration;

    use tokio::sync::Mutex;
    use tokio_postgres::error::SqlState;
    use tokio_postgres::{Client, Config, NoTls};

    use super::WaitPostgres;
    use crate::actions::poll::{self, Check};
    use crate::actions::{ActionContext, ActionError, db};

    /// Bound on one connect and login, and on each query.
    const STEP_TIMEOUT: Duration = Duration::from_secs(5);

    pub(super) async fn attempt(w: &WaitPostgres, ctx: &ActionContext) -> Result<(), ActionError> {
        let mut config: Config = w
            .url
            .parse()
            .map_err(|_| ActionError::permanent(format!("invalid URL {}", w.describe())))?;
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
            config.connect_timeout(STEP_TIMEOUT);
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let session: Mutex<Option<Client>> = Mutex::new(None);
        let what = w.describe();
        poll::until(ctx, &what, w.timeout, poll::COSTLY, || {
            check(w, &config, &session, password.as_deref())
        })
        .await
    }

    async fn check(
        w: &WaitPostgres,
        config: &Config,
        session: &Mutex<Option<Client>>,
        password: Option<&str>,
    ) -> Check {
        let mut slot = session.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            match tokio::time::timeout(STEP_TIMEOUT, config.connect(NoTls)).await {
                Err(_) => return Check::NotYet("connect timed out".into()),
                Ok(Err(e)) => return Check::NotYet(db::scrub(&reason(&e), password)),
                Ok(Ok((client, connection))) => {
                    // Ends when the client is dropped (ready, or cancelled).
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    *slot = Some(client);
                }
            }
        }
        let Some(client) = slot.as_ref() else {
            return Check::NotYet("not connected".into());
        };
        let outcome = tokio::time::timeout(STEP_TIMEOUT, async {
            client.simple_query("SELECT 1").await?;
            match &w.table {
                None => Ok(true),
                Some(table) => {
                    let row = client
                        .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
                        .await?;
                    row.try_get::<_, bool>(0)
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(true)) => Check::Ready,
            Ok(Ok(false)) => Check::NotYet(format!(
                "table {} does not exist",
                w.table.as_deref().unwrap_or_default()
            )),
            Ok(Err(e)) => {
                *slot = None;
                Check::NotYet(db::scrub(&reason(&e), password))
            }
            Err(_) => {
                *slot = None;
                Check::NotYet("query timed out".into())
            }
        }
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

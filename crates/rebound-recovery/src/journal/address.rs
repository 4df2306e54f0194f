//! Where a journal lives: `sqlite:PATH`, `postgres://...` or `memory:`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::JournalError;

/// The address of a journal.
///
/// ```
/// use rebound_recovery::JournalAddress;
/// let a: JournalAddress = "sqlite:/var/lib/rebound/j.db".parse().unwrap();
/// assert_eq!(a, JournalAddress::Sqlite("/var/lib/rebound/j.db".into()));
/// let pg: JournalAddress = "postgres://rebound:secret@127.0.0.1/rebound".parse().unwrap();
/// assert!(!pg.to_string().contains("secret"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalAddress {
    /// `memory:`: in this process only.
    Memory,
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`: a libpq-style URL, with
    /// libpq's TLS parameters `sslmode` (`disable`, `prefer` (the
    /// default), `require`, `verify-ca`, `verify-full`) and `sslrootcert`
    /// (their meanings: the `postgres` feature's `PostgresJournal`).
    /// Their values are checked when the address is parsed: an unknown
    /// `sslmode`, or client certificates (`sslcert`, `sslkey`), are
    /// [`JournalError::Invalid`]; the root file is read when the journal
    /// is opened.
    ///
    /// ```
    /// use rebound_recovery::{JournalAddress, JournalErrorKind};
    /// let ok = "postgres://rebound@db:5432/rebound?sslmode=verify-full&sslrootcert=/etc/ca.pem";
    /// assert!(ok.parse::<JournalAddress>().is_ok());
    /// let err = "postgres://rebound@db/rebound?sslmode=verify".parse::<JournalAddress>().unwrap_err();
    /// assert_eq!(err.kind(), JournalErrorKind::Invalid);
    /// ```
    Postgres(String),
}

impl FromStr for JournalAddress {
    type Err = JournalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory:" || s == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(JournalError::Invalid(
                    "journal address `sqlite:` needs a file path, e.g. sqlite:/var/lib/rebound/journal.db".into(),
                ));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            postgres_params(s)?;
            // The form messages show (and `Display` writes) must read
            // back as an address too: redacting can make an unreadable
            // URL (an unencoded password) readable, so check it as well.
            // Redacting twice changes nothing, so the display of an
            // accepted address is accepted.
            postgres_params(&redact(s))?;
            Ok(Self::Postgres(s.to_owned()))
        } else {
            Err(JournalError::Invalid(format!(
                "journal address {:?} is not sqlite:PATH, postgres://... or memory:",
                redact(s)
            )))
        }
    }
}

impl fmt::Display for JournalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            // The parser strips one `//` after `sqlite:` (`sqlite://PATH`
            // is read as `sqlite:PATH`), so a path that itself starts with
            // `//` is shown with that `//` in front to read back the same.
            Self::Sqlite(path) if path.as_os_str().as_encoded_bytes().starts_with(b"//") => {
                write!(f, "sqlite://{}", path.display())
            }
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// The URL (or libpq `key=value` text) with any password replaced by `***`.
///
/// Errs on the side of hiding: a password typed without percent-encoding
/// may hold `@`, `/`, `?`, `:` or `#`, so the user information runs to the
/// *last* `@`, and every `password=` parameter is hidden wherever it
/// stands. A URL with an `@` further on (in a parameter) may so show less
/// than it could, never more.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_values(url);
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    format!("{scheme}://{}", redact_parameters(&rest))
}

/// URL text with the value of every `password=` parameter (any case) up
/// to the next `&` replaced by `***`.
fn redact_parameters(text: &str) -> String {
    const KEY: &str = "password=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find(KEY) {
        let (before, after) = rest.split_at(i + KEY.len());
        out.push_str(before);
        out.push_str("***");
        rest = &after[after.find('&').unwrap_or(after.len())..];
    }
    out.push_str(rest);
    out
}

/// `key=value` text with the value of every `password=` replaced by `***`
/// (a quoted value up to its closing quote).
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password=") {
        let (before, after) = rest.split_at(i + "password=".len());
        out.push_str(before);
        out.push_str("***");
        let end = match after.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(after.len(), |j| j + 2),
            None => after.find(char::is_whitespace).unwrap_or(after.len()),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// How a PostgreSQL journal's connection uses TLS: libpq's `sslmode`.
///
/// `require` is stricter than libpq's: it checks the server's certificate
/// chain against the roots (as `verify-ca` does), where libpq checks
/// nothing unless a root file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate
    /// (libpq's default: it protects from listening, not from an
    /// impostor); plaintext when it does not.
    Prefer,
    /// TLS, the certificate chain checked against the roots.
    Require,
    /// As `Require` (libpq's name for it).
    VerifyCa,
    /// TLS, the chain checked and the certificate naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The value as written in a URL.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where the CA certificates for `require` and `verify-*` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// The system's (rustls-native-certs: the platform store, or
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`); `sslrootcert=system` or none.
    System,
    /// A PEM file of CA certificates (`sslrootcert=PATH`).
    File(PathBuf),
}

/// A PostgreSQL journal URL taken apart: rebound's TLS settings, and the
/// URL to hand to the driver (tokio-postgres), which does not know
/// `sslrootcert` nor the `verify-*` modes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct PostgresParams {
    /// The TLS mode; `None` when the URL is not one the `url` crate reads
    /// (several `host:port` pairs, an unencoded password): it goes to the
    /// driver as it is, and the driver's own `sslmode` (`disable`,
    /// `prefer`, `require`) is used.
    pub(crate) sslmode: Option<SslMode>,
    /// The roots for a verifying mode.
    pub(crate) roots: RootCerts,
    /// The URL for the driver: the parameters rebound handles taken out,
    /// `sslmode` set to what the driver knows.
    pub(crate) driver_url: String,
    /// Whether the URL asks for what only rebound does (`sslrootcert`,
    /// `verify-ca`, `verify-full`), not the driver.
    pub(crate) needs_rebound: bool,
}

/// The parameters rebound reads itself (and hides from the driver).
const SSLMODE: &str = "sslmode";
const SSLROOTCERT: &str = "sslrootcert";
/// Client certificates: not supported; refused rather than ignored.
const CLIENT_CERT_KEYS: [&str; 3] = ["sslcert", "sslkey", "sslpassword"];

/// Reads the TLS parameters of a `postgres://` URL (see
/// [`PostgresParams`]). Bad values are [`JournalError::Invalid`], naming
/// the journal (without its password) and the parameter.
///
/// The URL is read with the `url` crate. Its query is then read pair by
/// pair as libpq and tokio-postgres read it (`key=value` pairs between
/// `&`, percent-decoded, a `+` being a `+`: form encoding's `+` for a
/// space would change a password or `options` value), and the pairs
/// rebound does not handle are handed on byte for byte.
pub(crate) fn postgres_params(url: &str) -> Result<PostgresParams, JournalError> {
    let name = redact(url);
    let invalid = |what: String| JournalError::Invalid(format!("journal {name}: {what}"));
    let mut parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            // An unencoded password can make the URL unreadable while its
            // redacted form (the one messages show) reads: check the
            // parameters there, so that both forms are judged alike.
            if url::Url::parse(&name).is_ok() && postgres_params(&name)?.needs_rebound {
                return Err(invalid(format!(
                    "sslrootcert and sslmode=verify-ca/verify-full need a URL that reads \
                     as one ({e}): percent-encode the password (@ as %40, / as %2F, \
                     # as %23, ? as %3F, : as %3A)"
                )));
            }
            return Ok(PostgresParams {
                sslmode: None,
                roots: RootCerts::System,
                driver_url: url.to_owned(),
                needs_rebound: false,
            });
        }
    };
    let mut sslmode = None;
    let mut rootcert = None;
    let mut kept = Vec::new();
    for pair in parsed.query().unwrap_or_default().split('&') {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key);
        let value = || decode(raw_value);
        match key.as_str() {
            SSLMODE => {
                let value = value();
                let mode = SslMode::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "sslmode={value:?} is not disable, prefer, require, verify-ca or verify-full{}",
                        if value == "allow" {
                            " (allow, plaintext first, is not supported: use prefer)"
                        } else {
                            ""
                        }
                    ))
                })?;
                if sslmode.replace(mode).is_some() {
                    return Err(invalid("sslmode is given twice".into()));
                }
            }
            SSLROOTCERT => {
                let value = value();
                if value.is_empty() {
                    return Err(invalid(
                        "sslrootcert is empty: give a PEM file of CA certificates, or `system`"
                            .into(),
                    ));
                }
                let roots = if value == "system" {
                    RootCerts::System
                } else {
                    RootCerts::File(PathBuf::from(value))
                };
                if rootcert.replace(roots).is_some() {
                    return Err(invalid("sslrootcert is given twice".into()));
                }
            }
            k if CLIENT_CERT_KEYS.contains(&k) => {
                return Err(invalid(format!(
                    "{k}: client certificates are not supported; \
                     authenticate with a password (or trust) over TLS instead"
                )));
            }
            "" => {}
            _ => kept.push(pair),
        }
    }
    // A root file (or `system`) without a mode means verifying it: the
    // libpq default, prefer, would not look at the certificate at all.
    let sslmode = match (sslmode, &rootcert) {
        (None, Some(_)) => SslMode::VerifyFull,
        (None, None) => SslMode::Prefer,
        (Some(mode @ (SslMode::Disable | SslMode::Prefer)), Some(_)) => {
            return Err(invalid(format!(
                "sslrootcert is given with sslmode={}, which checks no certificate: \
                 use sslmode=verify-full (or require, verify-ca)",
                mode.as_str()
            )));
        }
        (Some(mode), _) => mode,
    };
    let needs_rebound =
        rootcert.is_some() || matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let driver_mode = match sslmode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    };
    let driver_mode = format!("{SSLMODE}={driver_mode}");
    kept.push(&driver_mode);
    parsed.set_query(Some(&kept.join("&")));
    Ok(PostgresParams {
        sslmode: Some(sslmode),
        roots: rootcert.unwrap_or(RootCerts::System),
        driver_url: parsed.into(),
        needs_rebound,
    })
}

/// A URL query's key or value, percent-decoded (`+` stays `+`, as libpq
/// reads it).
fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// The default SQLite journal: `$XDG_STATE_HOME/rebound/journal.db`, else
/// `$HOME/.local/state/rebound/journal.db`; `None` when neither variable is
/// set.
///
/// ```
/// // Depends on the environment; it always ends the same way.
/// if let Some(path) = rebound_recovery::journal::default_sqlite_path() {
///     assert!(path.ends_with("rebound/journal.db"));
/// }
/// ```
pub fn default_sqlite_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(base.join("rebound").join("journal.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the journal_address fuzz target: `sqlite:////x` (the path
    /// `//x`) was shown as `sqlite://x`, which reads back as `x`.
    #[test]
    fn a_path_starting_with_two_slashes_displays_as_it_reads() {
        for text in [
            "sqlite:////x",
            "sqlite:////zse::",
            "sqlite:///abs",
            "sqlite:rel",
            "sqlite://rel",
        ] {
            let address: JournalAddress = text.parse().unwrap();
            let shown = address.to_string();
            assert_eq!(
                shown.parse::<JournalAddress>().unwrap(),
                address,
                "{text} -> {shown}"
            );
        }
    }

    #[test]
    fn parses_every_form_and_rejects_others() {
        assert_eq!(
            "memory:".parse::<JournalAddress>().unwrap(),
            JournalAddress::Memory
        );
        assert_eq!(
            "sqlite:rel/j.db".parse::<JournalAddress>().unwrap(),
            JournalAddress::Sqlite("rel/j.db".into())
        );
        assert!(matches!(
            "postgresql://u@localhost/db"
                .parse::<JournalAddress>()
                .unwrap(),
            JournalAddress::Postgres(_)
        ));
        assert!("sqlite:".parse::<JournalAddress>().is_err());
        let err = "mysql://u:pw@h/db"
            .parse::<JournalAddress>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn passwords_never_shown() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://h/db?user=u&password=pw"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h:5432/db"), "postgres://h:5432/db");
    }

    // A password typed without percent-encoding: the driver rejects or
    // misreads the URL, and the error names the journal.
    #[test]
    fn unencoded_passwords_never_shown() {
        for (url, secret) in [
            ("postgres://u:S3cr3t/p@ss@127.0.0.1:5432/db", "S3cr3t"),
            ("postgres://u:pa?ss@h/db", "pa"),
            ("postgres://u:pa#ss@h/db", "pa"),
            ("postgres://u:a:b@h/db", "a:b"),
            ("postgres://u:p@ss@h/db?sslmode=disable", "p@ss"),
            ("postgres://h/db?user=u&PASSWORD=Hunter2&x=1", "Hunter2"),
            ("postgres://h/db?password=p@x", "p@x"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
            assert!(shown.contains("***"), "{url} -> {shown}");
            let address = url.parse::<JournalAddress>().unwrap().to_string();
            assert!(!address.contains(secret), "{url} -> {address}");
        }
        assert_eq!(
            redact("postgres://u:S3cr3t/p@ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
    }

    #[test]
    fn key_value_text_is_redacted_in_errors() {
        let err = "host=db port=5432 password=s3cret user=r"
            .parse::<JournalAddress>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("password=*** user=r"), "{err}");
        let quoted = redact("password='a b' host=db");
        assert_eq!(quoted, "password=*** host=db");
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_is_handed_on_as_written() {
        let p = postgres_params(
            "postgres://u:pw@h:5432/db?application_name=a+b&options=-c%20x%3Dy\
             &sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(p.roots, RootCerts::File("/etc/ca.pem".into()));
        // `+` and `%20` reach the driver as they were written.
        assert_eq!(
            p.driver_url,
            "postgres://u:pw@h:5432/db?application_name=a+b&options=-c%20x%3Dy\
             &connect_timeout=3&sslmode=require"
        );
        for (query, mode, driver) in [
            ("", SslMode::Prefer, "prefer"),
            ("?sslmode=disable", SslMode::Disable, "disable"),
            ("?sslmode=require", SslMode::Require, "require"),
            ("?sslmode=verify-ca", SslMode::VerifyCa, "require"),
            ("?sslrootcert=system", SslMode::VerifyFull, "require"),
        ] {
            let p = postgres_params(&format!("postgresql://h/db{query}")).unwrap();
            assert_eq!(p.sslmode, Some(mode), "{query}");
            assert_eq!(p.roots, RootCerts::System, "{query}");
            assert_eq!(
                p.driver_url,
                format!("postgresql://h/db?sslmode={driver}"),
                "{query}"
            );
        }
        // Not a URL the url crate reads (several host:port pairs): handed
        // on whole, for the driver's own sslmode.
        let multi = "postgres://u@h1:5432,h2:5433/db?sslmode=require";
        let p = postgres_params(multi).unwrap();
        assert_eq!((p.sslmode, p.driver_url.as_str()), (None, multi));
        // An unencoded password: judged by the form messages show, which
        // reads, so that the address and its display agree.
        let unencoded = "postgres://u:pa#ss@h/db?sslmode=bogus";
        let err = postgres_params(unencoded).unwrap_err().to_string();
        assert!(err.contains("sslmode=\"bogus\""), "{err}");
        let err = postgres_params("postgres://u:p#w@h/db?sslmode=verify-full")
            .unwrap_err()
            .to_string();
        assert!(err.contains("percent-encode the password"), "{err}");
        assert!(!err.contains("p#w"), "{err}");
        assert!(postgres_params("postgres://u:p#w@h/db?sslmode=require").is_ok());
        // Redacting reads this as `h:***@b?sslmode=bogus`: refused, so that
        // no accepted address displays as one that is not.
        let tricky = "postgres://h:5432/db?x=a@b?sslmode=bogus";
        assert!(postgres_params(tricky).is_ok());
        assert!(tricky.parse::<JournalAddress>().is_err());
        for ok in [
            "postgres://u:pa#ss@h/db?sslmode=require",
            "postgres://h:5432/db?sslrootcert=/c/u@corp.pem&sslmode=verify-full",
        ] {
            let shown = ok.parse::<JournalAddress>().unwrap().to_string();
            assert!(shown.parse::<JournalAddress>().is_ok(), "{ok} -> {shown}");
        }
    }

    #[test]
    fn bad_tls_parameters_are_invalid_and_hide_the_password() {
        for (url, says) in [
            (
                "postgres://u:pw@h/db?sslmode=Verify-Full",
                "sslmode=\"Verify-Full\"",
            ),
            ("postgres://u:pw@h/db?sslmode=", "sslmode=\"\""),
            ("postgres://u:pw@h/db?sslmode=allow", "use prefer"),
            (
                "postgres://u:pw@h/db?sslkey=/k",
                "sslkey: client certificates",
            ),
            (
                "postgres://u:pw@h/db?sslpassword=x",
                "sslpassword: client certificates",
            ),
            (
                "postgres://u:pw@h/db?sslrootcert=a&sslrootcert=b",
                "given twice",
            ),
            (
                "postgres://u:pw@h/db?sslmode=prefer&sslrootcert=a",
                "sslmode=prefer",
            ),
        ] {
            let err = url.parse::<JournalAddress>().unwrap_err();
            assert_eq!(err.kind(), crate::JournalErrorKind::Invalid, "{url}");
            let text = err.to_string();
            assert!(text.contains(says), "{url}: {text}");
            assert!(text.contains("u:***@h/db"), "{url}: {text}");
            assert!(!text.contains("pw@"), "{url}: {text}");
        }
    }
}

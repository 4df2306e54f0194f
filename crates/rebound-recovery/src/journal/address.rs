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
    /// `postgres://...` or `postgresql://...` (a libpq-style URL; TLS is not
    /// supported yet, so use loopback or a Unix socket).
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
}

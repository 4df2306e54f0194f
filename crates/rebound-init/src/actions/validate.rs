//! Small deserializers shared by the parameter types. Every check runs
//! inside a serde visitor, while the deserializer still stands on the
//! value: the YAML reader then reports the line and column of the value
//! itself. (A check made after `String::deserialize` returned would be
//! reported at the enclosing `with:` mapping instead.)

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// Reads a string and hands it to `check` inside the visitor (see the
/// module docs for why).
pub(crate) fn checked_str<'de, D, T, F>(
    d: D,
    expecting: &'static str,
    check: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct Checked<F> {
        expecting: &'static str,
        check: F,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for Checked<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.check)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(Checked { expecting, check })
}

/// `Err` naming `what` when `text` holds a NUL byte: no path, host name,
/// program, argument or environment entry can hold one (the C strings the
/// system calls take end there), so such a value could never run.
pub(crate) fn no_nul(what: &str, text: &str) -> Result<(), String> {
    if text.contains('\0') {
        Err(format!("{what} contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// A string field that must not be empty (after trimming) nor hold a NUL
/// byte; the message names the field.
fn non_empty<'de, D: Deserializer<'de>>(d: D, field: &'static str) -> Result<String, D::Error> {
    checked_str(d, "a non-empty string", |s| {
        if s.trim().is_empty() {
            return Err(format!("`{field}` must not be empty"));
        }
        no_nul(&format!("`{field}`"), s)?;
        Ok(s.to_owned())
    })
}

/// A path field that must not be empty nor hold a NUL byte; the message
/// names the field.
fn non_empty_path<'de, D: Deserializer<'de>>(
    d: D,
    field: &'static str,
) -> Result<PathBuf, D::Error> {
    non_empty(d, field).map(PathBuf::from)
}

/// `host` of `init.wait_tcp`: not empty, no NUL byte. An IPv6 address may
/// be written in brackets, as in a URL (`[::1]`); the brackets are
/// dropped, so that it connects like `rebound wait tcp://[::1]:PORT`.
pub(crate) fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a host name or IP address", |s| {
        if s.trim().is_empty() {
            return Err("`host` must not be empty".to_owned());
        }
        no_nul("`host`", s)?;
        unbracketed_host(s).map(str::to_owned)
    })
}

/// The host without the brackets of a bracketed IPv6 address. A host with
/// a `:` must be an IPv6 address (no name has one: `db:5432` is a host
/// with a port, which would never resolve); brackets hold nothing else.
fn unbracketed_host(host: &str) -> Result<&str, String> {
    let (inner, bracketed) = match host.strip_prefix('[') {
        Some(rest) => (rest.strip_suffix(']').unwrap_or(""), true),
        None => (host, false),
    };
    if !bracketed && !host.contains(':') {
        return Ok(host);
    }
    // An address with a zone (`fe80::1%eth0`) is resolved by the system.
    let address = inner.split_once('%').map_or(inner, |(address, _)| address);
    if address.parse::<std::net::Ipv6Addr>().is_ok() {
        Ok(inner)
    } else if bracketed {
        Err(format!(
            "`host` {host:?}: brackets hold an IPv6 address (such as [::1]) and nothing else"
        ))
    } else {
        Err(format!(
            "`host` {host:?} is not a host name or IP address (the port goes in `port`; an IPv6 address is written ::1 or [::1])"
        ))
    }
}

/// `bucket` of the S3 actions: not empty, no NUL byte.
pub(crate) fn bucket<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    non_empty(d, "bucket")
}

/// `key` of the S3 actions: not empty.
pub(crate) fn key<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a non-empty string", |s| {
        if s.trim().is_empty() {
            Err("`key` must not be empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    })
}

/// `path` of `init.wait_file`: not empty, no NUL byte.
pub(crate) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    non_empty_path(d, "path")
}

/// `socket` of `init.wait_http`: when given, not empty, no NUL byte.
pub(crate) fn opt_socket<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    struct Socket(PathBuf);
    impl<'de> Deserialize<'de> for Socket {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            non_empty_path(d, "socket").map(Socket)
        }
    }
    Ok(Option::<Socket>::deserialize(d)?.map(|s| s.0))
}

/// `source` of `init.s3_push`: not empty, no NUL byte.
pub(crate) fn source<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    non_empty_path(d, "source")
}

/// `destination` of `init.s3_pull`: not empty, no NUL byte.
pub(crate) fn destination<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    non_empty_path(d, "destination")
}

/// `cwd` of `init.run`, optional: no NUL byte.
pub(crate) fn opt_cwd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    struct Cwd(PathBuf);
    impl<'de> Deserialize<'de> for Cwd {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked_str(d, "a directory path", |s| {
                no_nul("`cwd`", s)?;
                Ok(Cwd(PathBuf::from(s)))
            })
        }
    }
    Ok(Option::<Cwd>::deserialize(d)?.map(|c| c.0))
}

/// A TCP port: 1-65535. Read as a wide integer first so that 70000 is
/// rejected with a clear message instead of wrapping.
pub(crate) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct PortVisitor;
    impl Visitor<'_> for PortVisitor {
        type Value = u16;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number 1-65535")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
            match u16::try_from(v) {
                Ok(p) if p != 0 => Ok(p),
                _ => Err(E::custom(format_args!("port must be 1-65535, got {v}"))),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format_args!("port must be 1-65535, got {v}"))),
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
            match v.trim().parse::<u64>() {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::custom(format_args!(
                    "port must be a number 1-65535, got {v:?}"
                ))),
            }
        }
    }
    d.deserialize_any(PortVisitor)
}

/// Checks an `http://` or `https://` URL with a host, a port other than 0
/// and no NUL byte. Messages show the URL without its password.
pub(crate) fn check_http_url(text: &str) -> Result<url::Url, String> {
    check_url(text, &["http", "https"])
}

/// Checks a URL: no NUL byte, one of `schemes` (`must start with http://
/// or https://`), a host, a port other than 0. Messages show the URL
/// without its password.
pub(crate) fn check_url(text: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let shown = redacted_text(text);
    // The URL parser would quietly percent-encode a NUL byte in the path;
    // the text as written is what messages show, and it cannot hold one.
    no_nul(&format!("URL {shown:?}"), text)?;
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        let expected: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!(
            "URL {shown:?} must start with {}, not {}://",
            expected.join(" or "),
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {shown:?} has no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("URL {shown:?} has port 0 (a port is 1-65535)"));
    }
    Ok(url)
}

/// Environment variables: values may be written as strings, numbers or
/// booleans (`PORT: 8080`) and are passed on as text. Names and values are
/// checked as they are read, so that an error points at the bad name or
/// value rather than at the mapping.
pub(crate) fn env_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Env;
    impl<'de> Visitor<'de> for Env {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of environment variable names to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key_seed(EnvName)? {
                let value = map.next_value_seed(EnvValue { name: &name })?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Env)
}

/// The name of an environment variable: not empty, no `=`, no NUL byte.
struct EnvName;

impl<'de> DeserializeSeed<'de> for EnvName {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        checked_str(d, "an environment variable name", |k| {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                Err(format!("invalid environment variable name {k:?}"))
            } else {
                Ok(k.to_owned())
            }
        })
    }
}

/// The value of the environment variable `name`: a scalar, as text, with
/// no NUL byte.
struct EnvValue<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for EnvValue<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for EnvValue<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.contains('\0') {
            return Err(E::custom(format_args!(
                "environment variable {} contains a NUL byte",
                self.name
            )));
        }
        Ok(v.to_owned())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    redacted_params(url.as_str())
}

/// The URL text without its password. Text that does not parse as a URL
/// (a typo in the host, say) is still scrubbed of a `user:password@` part.
/// Secret-looking query (and fragment) parameters such as `token=` or
/// `X-Amz-Signature=` have their values replaced by `***` too.
pub(crate) fn redacted_text(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) if url.password().is_some() => redacted(&url),
        Ok(_) => redacted_params(text),
        Err(_) => redacted_params(&redacted_unparsed(text)),
    }
}

/// `text` (an error message, say) with every URL in it (`http://`,
/// `postgres://`, any `scheme://`) redacted as [`redacted_text`] does; a
/// URL ends at whitespace.
// Used by the HTTP and S3 actions only.
#[cfg_attr(not(any(feature = "http", feature = "s3")), allow(dead_code))]
pub(crate) fn redacted_urls_in(text: &str) -> String {
    each_url(text, redacted_text)
}

/// A command line (or any text shown as written) with the password of
/// every URL in it (`curl http://user:secret@host/`, `psql
/// postgres://app:secret@db/app`) and the values of its secret-looking
/// query parameters replaced by `***`; nothing else in it changes (no
/// normalization). A URL ends at whitespace or a quote.
pub(crate) fn redacted_command(text: &str) -> String {
    each_url(text, |url| {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let rest = &url[scheme_end..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let userless = match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end],
                    &authority[..colon],
                    &url[scheme_end + at..]
                ),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        };
        redacted_params(&userless)
    })
}

/// `text` with each `scheme://...` in it replaced by `redact(url)`. The
/// scheme is the run of letters, digits, `+`, `-` and `.` before `://`
/// that starts with a letter; the URL ends at whitespace, a quote or a
/// backquote.
fn each_url(text: &str, redact: impl Fn(&str) -> String) -> String {
    let is_scheme = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    let is_end = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let sep = search + found;
        let mut start = sep;
        while start > copied && is_scheme(bytes[start - 1]) {
            start -= 1;
        }
        while start < sep && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        let end = text[sep..].find(is_end).map_or(text.len(), |i| sep + i);
        if start == sep {
            // `://` with no scheme before it: not a URL.
            search = sep + 3;
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(&redact(&text[start..end]));
        copied = end;
        search = end.max(sep + 3);
    }
    out.push_str(&text[copied..]);
    out
}

/// Parts of a query parameter's name that mark its value as a secret
/// (compared in lower case): API tokens, presigned-URL signatures and
/// credentials, passwords, session ids.
const SECRET_PARAM_PARTS: [&str; 10] = [
    "token",
    "secret",
    "passw",
    "pwd",
    "key",
    "signature",
    "credential",
    "auth",
    "session",
    "sig",
];

fn secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAM_PARTS.iter().any(|part| name.contains(part))
}

/// The text with the values of secret-looking `name=value` parameters after
/// its first `?` (the query and the fragment) replaced by `***`.
fn redacted_params(text: &str) -> String {
    let Some(start) = text.find('?') else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..=start]);
    let rest = &text[start + 1..];
    // Split on the separators, keeping them: `&`, `;` and the `#` that
    // starts the fragment.
    let mut from = 0;
    for (i, sep) in rest
        .match_indices(['&', ';', '#'])
        .map(|(i, s)| (i, Some(s)))
        .chain(std::iter::once((rest.len(), None)))
    {
        let param = &rest[from..i];
        match param.split_once('=') {
            Some((name, value)) if secret_param(name) && !value.is_empty() => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(param),
        }
        if let Some(sep) = sep {
            out.push_str(sep);
        }
        from = i + 1;
    }
    out
}

fn redacted_unparsed(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let rest = &text[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return text.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &text[..scheme_end],
            &authority[..colon],
            &text[scheme_end + at..]
        ),
        None => text.to_owned(),
    }
}

/// An `http(s)://` URL, kept as the text given.
pub(crate) fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "an http:// or https:// URL", |s| {
        check_http_url(s).map(|_| s.to_owned())
    })
}

/// An optional `http(s)://` URL (an S3 endpoint).
pub(crate) fn opt_http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct HttpUrl(String);
    impl<'de> Deserialize<'de> for HttpUrl {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            http_url(d).map(HttpUrl)
        }
    }
    Ok(Option::<HttpUrl>::deserialize(d)?.map(|u| u.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct P {
        #[serde(deserialize_with = "port")]
        port: u16,
    }

    #[test]
    fn port_range_is_enforced_without_wrapping() {
        assert_eq!(
            serde_json::from_str::<P>(r#"{"port": 5432}"#).unwrap().port,
            5432
        );
        for bad in ["0", "65536", "70000", "-1"] {
            let err = serde_json::from_str::<P>(&format!(r#"{{"port": {bad}}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("port must be 1-65535, got {bad}")),
                "{err}"
            );
        }
    }

    #[test]
    fn env_values_may_be_scalars() {
        #[derive(Debug, Deserialize)]
        struct E {
            #[serde(deserialize_with = "env_map")]
            env: BTreeMap<String, String>,
        }
        let e: E =
            serde_json::from_str(r#"{"env": {"PORT": 8080, "DEBUG": true, "NAME": "x"}}"#).unwrap();
        assert_eq!(e.env["PORT"], "8080");
        assert_eq!(e.env["DEBUG"], "true");
        assert_eq!(e.env["NAME"], "x");
        let err = serde_json::from_str::<E>(r#"{"env": {"A=B": "x"}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid environment variable name"),
            "{err}"
        );
        assert!(serde_json::from_str::<E>(r#"{"env": {"A": [1]}}"#).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted_text("http://user:s3cret@host/x"),
            "http://user:***@host/x"
        );
        assert_eq!(redacted_text("http://host/x"), "http://host/x");
        // Not a valid URL (empty host), still no password.
        assert_eq!(redacted_text("http://user:s3cret@/x"), "http://user:***@/x");
        assert_eq!(redacted_text("http://user@/x"), "http://user@/x");
        assert_eq!(redacted_text("not a url"), "not a url");
    }

    #[test]
    fn urls_inside_a_message_are_redacted() {
        assert_eq!(
            redacted_urls_in("GET HTTP://a:pw@h/x?token=t failed; retry https://h/y?sig=s"),
            "GET http://a:***@h/x?token=*** failed; retry https://h/y?sig=***"
        );
        assert_eq!(redacted_urls_in("no url here"), "no url here");
        assert_eq!(
            redacted_urls_in("dial postgres://app:pw@db/app: refused"),
            "dial postgres://app:***@db/app: refused"
        );
        assert_eq!(
            redacted_urls_in("héllo http://u:p@h/ wörld"),
            "héllo http://u:***@h/ wörld"
        );
    }

    #[test]
    fn urls_inside_a_command_are_redacted_and_nothing_else_changes() {
        for (command, shown) in [
            (
                "curl -fsS http://user:secret@host/x",
                "curl -fsS http://user:***@host/x",
            ),
            (
                "psql 'postgres://app:secret@db:5432/app?sslmode=require' -c 'SELECT 1'",
                "psql 'postgres://app:***@db:5432/app?sslmode=require' -c 'SELECT 1'",
            ),
            (
                "redis-cli -u \"REDIS://:secret@cache:6379/0\" ping",
                "redis-cli -u \"REDIS://:***@cache:6379/0\" ping",
            ),
            (
                "x=1https://h/p?token=secret&y=2;echo",
                "x=1https://h/p?token=***&y=2;echo",
            ),
            (
                "a http://u:secret@h/ b mysql://root:secret@db/ c",
                "a http://u:***@h/ b mysql://root:***@db/ c",
            ),
            // Kept as written: no password, or not a URL.
            (
                "curl http://user@host/ HTTP://Host",
                "curl http://user@host/ HTTP://Host",
            ),
            ("echo :// ://x a://", "echo :// ://x a://"),
            ("sh -c 'true'", "sh -c 'true'"),
            ("héllo ftp://u:secret@h wörld", "héllo ftp://u:***@h wörld"),
        ] {
            assert_eq!(redacted_command(command), shown, "{command}");
        }
    }

    #[test]
    fn secret_query_parameters_are_redacted() {
        assert_eq!(
            redacted_text("http://host/h?token=abc&check=deep"),
            "http://host/h?token=***&check=deep"
        );
        assert_eq!(
            redacted_text(
                "https://b.s3/o?X-Amz-Credential=AKIA/x&X-Amz-Signature=f00&X-Amz-Expires=60"
            ),
            "https://b.s3/o?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"
        );
        assert_eq!(
            redacted_text("http://u:pw@host/?api_key=k1;x=1#access_token=t2"),
            "http://u:***@host/?api_key=***;x=1#access_token=***"
        );
        // Not a valid URL: still scrubbed.
        assert_eq!(
            redacted_text("http:///x?password=p"),
            "http:///x?password=***"
        );
        let url = url::Url::parse("http://host/?Auth=a&page=2").unwrap();
        assert_eq!(redacted(&url), "http://host/?Auth=***&page=2");
        assert_eq!(
            redacted_text("http://host/?page=2&"),
            "http://host/?page=2&"
        );
    }

    #[test]
    fn urls_need_http_scheme_and_host() {
        assert!(check_http_url("http://127.0.0.1:8080/health").is_ok());
        assert!(check_http_url("ftp://x/y").unwrap_err().contains("http://"));
        assert!(
            check_http_url("not a url")
                .unwrap_err()
                .contains("invalid URL")
        );
    }
}

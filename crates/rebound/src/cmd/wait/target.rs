//! Parsing `rebound wait` targets into the init actions that wait for them.

use rebound_init::actions::ActionSpec;
use rebound_init::actions::wait_dns::WaitDns;
use rebound_init::actions::wait_exec::WaitExec;
use rebound_init::actions::wait_file::{FileState, WaitFile};
use rebound_init::actions::wait_grpc::WaitGrpc;
use rebound_init::actions::wait_http::{HttpState, WaitHttp, redact_url, split_unix_url};
use rebound_init::actions::wait_mysql::WaitMysql;
use rebound_init::actions::wait_postgres::WaitPostgres;
use rebound_init::actions::wait_redis::WaitRedis;
use rebound_init::actions::wait_tcp::{SocketState, WaitTcp};
use rebound_init::actions::wait_unix::WaitUnix;
use serde_json::json;

/// A target as typed, with the action that waits for it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The text given on the command line, with a URL's password replaced
    /// by `***`: it is shown in progress lines, events and errors.
    pub text: String,
    /// The action that waits for it.
    pub action: ActionSpec,
}

/// The kinds of target, for messages.
const KNOWN: &str = "tcp://HOST:PORT, http://..., https://..., http+unix://%2FSOCKET/PATH, file:///PATH, unix:///PATH, dns://NAME, postgres://..., postgresql://..., mysql://..., redis://..., rediss://... or grpc(s)://HOST:PORT[/SERVICE]";

/// What the HTTP targets' answers must hold besides a 2xx status (the
/// `--body-regex`, `--header`, `--json-path` and `--json-equals` flags),
/// as `with:` parameters of `init.wait_http`.
#[derive(Debug, Clone, Default)]
pub struct HttpChecks(serde_json::Map<String, serde_json::Value>);

impl HttpChecks {
    /// The checks of the flags; the error says which flag is wrong.
    pub fn new(
        body_regex: Option<&str>,
        header: Option<&str>,
        json_path: Option<&str>,
        json_equals: Option<&str>,
    ) -> Result<Self, String> {
        let mut with = serde_json::Map::new();
        if let Some(re) = body_regex {
            with.insert("body_regex".into(), re.into());
        }
        if let Some(line) = header {
            // `Name: value` as in HTTP (a name has no `:`), or `Name`.
            let header = match line.split_once(':') {
                Some((name, value)) => json!({ "name": name.trim(), "equals": value.trim() }),
                None => json!({ "name": line.trim() }),
            };
            with.insert("header".into(), header);
        }
        match (json_path, json_equals) {
            (Some(path), equals) => {
                let mut m = json!({ "path": path });
                if let Some(text) = equals {
                    // JSON if it reads as JSON (`true`, `3`, `{"a":1}`), else text.
                    let value = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
                    m["equals"] = value;
                }
                with.insert("json".into(), m);
            }
            (None, Some(_)) => return Err("--json-equals needs --json-path".into()),
            (None, None) => {}
        }
        // The action's own validation, so messages match specs.
        let checks = HttpChecks(with);
        checks.apply(json!({ "url": "http://localhost/" }))?;
        Ok(checks)
    }

    /// Whether any flag was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn apply(&self, mut with: serde_json::Value) -> Result<WaitHttp, String> {
        if let Some(map) = with.as_object_mut() {
            map.extend(self.0.clone());
        }
        serde_json::from_value(with).map_err(|e| e.to_string())
    }
}

/// Parses one target; the error says what is wrong with it. HTTP targets
/// also check what `checks` asks for.
pub fn parse(text: &str, checks: &HttpChecks) -> Result<Target, String> {
    let shown = redact_url(text);
    let action = parse_action(text, checks)
        .map_err(|why| format!("invalid target {shown:?}: {why} (expected {KNOWN})"))?;
    // Refused here, before anything runs, rather than when the wait starts.
    if let Some(feature) = ActionSpec::missing_feature(action.name()) {
        return Err(format!(
            "invalid target {shown:?}: {} targets are not available in this build of rebound (built without the `{feature}` feature)",
            action.name().trim_start_matches("init.wait_")
        ));
    }
    Ok(Target {
        text: shown,
        action,
    })
}

/// `target` inverted, for `--until-gone`: a tcp or unix socket closed, a
/// file absent, an HTTP endpoint giving no answer at all.
pub fn until_gone(target: Target) -> Result<Target, String> {
    let action = match target.action {
        ActionSpec::WaitTcp(mut w) => {
            w.state = Some(SocketState::Closed);
            ActionSpec::WaitTcp(w)
        }
        ActionSpec::WaitUnix(mut w) => {
            w.state = Some(SocketState::Closed);
            ActionSpec::WaitUnix(w)
        }
        ActionSpec::WaitFile(mut w) => {
            w.state = Some(FileState::Absent);
            ActionSpec::WaitFile(w)
        }
        ActionSpec::WaitHttp(mut w) => {
            w.state = Some(HttpState::Down);
            ActionSpec::WaitHttp(w)
        }
        _ => return Err(format!("--until-gone does not apply to {}", target.text)),
    };
    Ok(Target { action, ..target })
}

/// A `--exec CMD` target: the shell command `cmd`, run until it exits 0.
pub fn exec(cmd: &str) -> Result<Target, String> {
    let w: WaitExec = serde_json::from_value(json!({ "command": cmd })).map_err(|e| {
        format!(
            "invalid --exec {:?}: {e}",
            rebound_init::actions::redact_command(cmd)
        )
    })?;
    Ok(Target {
        // The text shown in progress lines, events and errors: a password
        // in a URL of the command is not.
        text: format!("exec `{}`", rebound_init::actions::redact_command(cmd)),
        action: ActionSpec::WaitExec(w),
    })
}

fn parse_action(text: &str, checks: &HttpChecks) -> Result<ActionSpec, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| "no scheme".to_owned())?;
    match scheme.to_ascii_lowercase().as_str() {
        "tcp" => tcp(rest),
        // The action's own parameter validation, so messages match specs.
        "http" | "https" => Ok(ActionSpec::WaitHttp(checks.apply(json!({ "url": text }))?)),
        "http+unix" | "https+unix" => {
            let (url, socket) = split_unix_url(text)?;
            let w = checks.apply(json!({ "url": url, "socket": socket }))?;
            Ok(ActionSpec::WaitHttp(w))
        }
        "file" => file(rest),
        "unix" => unix(rest),
        "dns" => Ok(ActionSpec::WaitDns(WaitDns::from_url(text)?)),
        "postgres" | "postgresql" => Ok(ActionSpec::WaitPostgres(WaitPostgres::from_url(text)?)),
        "mysql" => Ok(ActionSpec::WaitMysql(WaitMysql::from_url(text)?)),
        "redis" | "rediss" => Ok(ActionSpec::WaitRedis(WaitRedis::from_url(text)?)),
        "grpc" | "grpcs" => Ok(ActionSpec::WaitGrpc(WaitGrpc::from_url(text)?)),
        other => Err(format!("unknown scheme {other}://")),
    }
}

fn tcp(rest: &str) -> Result<ActionSpec, String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed [ in IPv6 address".to_owned())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "missing :PORT".to_owned())?;
        (host, port)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| "missing :PORT".to_owned())?
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(['/', '?', '#', '@']) || port.contains(['/', '?', '#']) {
        return Err("a tcp target is only HOST:PORT".into());
    }
    let port: u64 = port
        .parse()
        .map_err(|_| format!("port must be a number 1-65535, got {port:?}"))?;
    // The action's own validation: "port must be 1-65535, got 0".
    let w: WaitTcp = serde_json::from_value(serde_json::json!({ "host": host, "port": port }))
        .map_err(|e| e.to_string())?;
    Ok(ActionSpec::WaitTcp(w))
}

fn file(rest: &str) -> Result<ActionSpec, String> {
    let path = match rest.strip_prefix("localhost") {
        Some(p) if p.starts_with('/') => p,
        _ => rest,
    };
    if !path.starts_with('/') {
        return Err("a file target needs an absolute path: file:///PATH".into());
    }
    let path = percent_decoded(path)?;
    let w: WaitFile =
        serde_json::from_value(serde_json::json!({ "path": path })).map_err(|e| e.to_string())?;
    Ok(ActionSpec::WaitFile(w))
}

fn unix(rest: &str) -> Result<ActionSpec, String> {
    if !rest.starts_with('/') {
        return Err("a unix target needs an absolute path: unix:///PATH".into());
    }
    let path = percent_decoded(rest)?;
    let w: WaitUnix =
        serde_json::from_value(serde_json::json!({ "path": path })).map_err(|e| e.to_string())?;
    Ok(ActionSpec::WaitUnix(w))
}

/// A file URL's path with its `%XX` escapes decoded (`%20` is a space), as
/// URLs written by tools have them. A `%` not followed by two hex digits is
/// kept as it is.
fn percent_decoded(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) if hex(hi).is_some() && hex(lo).is_some() => {
                let value = hex(hi).unwrap_or(0) * 16 + hex(lo).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| "the path is not UTF-8 once its %XX escapes are decoded".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, String> {
        super::parse(text, &HttpChecks::default())
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_over_a_unix_socket() {
        let t = parse("http+unix://%2Fvar%2Frun%2Fdocker.sock/_ping").unwrap();
        assert_eq!(
            t.action.describe(),
            "http://localhost/_ping via /var/run/docker.sock (expect 2xx)"
        );
        let err = parse("http+unix://docker.sock/_ping").unwrap_err();
        assert!(err.contains("absolute path"), "{err}");
        let t = parse("http+unix://u:hunter22@%2Frun%2Fa.sock/").unwrap();
        assert!(!t.text.contains("hunter22"), "{}", t.text);
        assert!(!t.action.describe().contains("hunter22"));
    }

    #[test]
    fn until_gone_inverts_each_kind() {
        for (text, described) in [
            ("tcp://db:5432", "tcp db:5432 (until closed)"),
            ("unix:///run/a.sock", "unix /run/a.sock (until closed)"),
            ("file:///run/app.pid", "file /run/app.pid (until absent)"),
            ("http://old:8080/", "http://old:8080/ (until down)"),
        ] {
            if text.starts_with("http") && !cfg!(feature = "http") {
                continue;
            }
            let t = until_gone(parse(text).unwrap()).unwrap();
            assert_eq!(t.action.describe(), described);
            assert_eq!(t.text, text);
        }
        let err = until_gone(exec("true").unwrap()).unwrap_err();
        assert_eq!(err, "--until-gone does not apply to exec `true`");
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_checks_from_the_flags() {
        let checks = HttpChecks::new(
            Some("^ok"),
            Some("Content-Type: application/json"),
            Some("checks[0].db"),
            Some("true"),
        )
        .unwrap();
        let t = super::parse("http://api/health", &checks).unwrap();
        assert_eq!(
            t.action.describe(),
            "http://api/health (expect 2xx, body ~ /^ok/, header Content-Type = \"application/json\", JSON checks[0].db = true)"
        );
        let checks = HttpChecks::new(None, None, Some("status"), Some("ok")).unwrap();
        let t = super::parse("http://api/health", &checks).unwrap();
        assert!(
            t.action.describe().ends_with("JSON status = \"ok\")"),
            "{}",
            t.action.describe()
        );
        for (checks, why) in [
            (
                HttpChecks::new(Some("ok("), None, None, None),
                "unclosed group (at character 3)",
            ),
            (
                HttpChecks::new(None, Some("Bad Name: x"), None, None),
                "is not a header name",
            ),
            (
                HttpChecks::new(None, None, Some("$.[oops"), None),
                "invalid JSONPath",
            ),
            (
                HttpChecks::new(None, None, None, Some("1")),
                "--json-equals needs --json-path",
            ),
        ] {
            let err = checks.unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn parses_each_kind() {
        let t = parse("tcp://127.0.0.1:5432").unwrap();
        assert_eq!(t.action.describe(), "tcp 127.0.0.1:5432");
        let t = parse("tcp://[::1]:80").unwrap();
        assert_eq!(t.action.describe(), "tcp [::1]:80");
        if cfg!(feature = "http") {
            let t = parse("http://localhost:8080/health").unwrap();
            assert_eq!(
                t.action.describe(),
                "http://localhost:8080/health (expect 2xx)"
            );
        }
        let t = parse("file:///run/ready").unwrap();
        assert_eq!(t.action.describe(), "file /run/ready");
        let t = parse("dns://localhost?type=A&expect=127.0.0.1").unwrap();
        assert_eq!(t.action.describe(), "dns localhost A = 127.0.0.1");
        let t = parse("unix:///run/my%20app.sock").unwrap();
        assert_eq!(t.action.describe(), "unix /run/my app.sock");
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_targets() {
        let t = parse("grpc://127.0.0.1:50051/shop.Orders").unwrap();
        assert_eq!(t.action.name(), "init.wait_grpc");
        assert_eq!(
            t.action.describe(),
            "grpc://127.0.0.1:50051/shop.Orders (expect SERVING)"
        );
        let t = parse("grpcs://api:443").unwrap();
        assert_eq!(t.action.describe(), "grpcs://api:443 (expect SERVING)");
        let err = until_gone(t).unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
    }

    // Issue 12: a target whose cargo feature this build lacks is refused
    // while the arguments are read (exit 2), naming the feature, rather
    // than when the wait runs.
    #[cfg(not(feature = "grpc"))]
    #[test]
    fn grpc_targets_are_refused_without_the_feature() {
        for target in ["grpc://127.0.0.1:50051", "grpcs://api:443/shop.Orders"] {
            let err = parse(target).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "invalid target {target:?}: grpc targets are not available in this build of rebound (built without the `grpc` feature)"
                )
            );
        }
    }

    #[cfg(not(feature = "http"))]
    #[test]
    fn http_targets_are_refused_without_the_feature() {
        for target in [
            "http://127.0.0.1:8080/health",
            "https://api/health",
            "http+unix://%2Frun%2Fa.sock/_ping",
            "http://u:hunter22@api/",
        ] {
            let err = parse(target).unwrap_err();
            assert!(
                err.ends_with(
                    "http targets are not available in this build of rebound (built without the `http` feature)"
                ),
                "{err}"
            );
            assert!(!err.contains("hunter22"), "{err}");
        }
    }

    #[test]
    fn exec_targets_never_show_a_password() {
        let t = exec("curl -fsS http://user:secret@api/health").unwrap();
        assert_eq!(t.text, "exec `curl -fsS http://user:***@api/health`");
        assert!(!t.action.describe().contains("secret"));
    }

    #[test]
    fn database_and_cache_targets() {
        let t = parse("postgres://app:hunter22@db:5432/app?table=public.users").unwrap();
        assert_eq!(t.text, "postgres://app:***@db:5432/app?table=public.users");
        assert_eq!(t.action.name(), "init.wait_postgres");
        assert_eq!(
            t.action.describe(),
            "postgres://app:***@db:5432/app table public.users"
        );
        let t = parse("postgresql://db/app").unwrap();
        assert_eq!(t.action.describe(), "postgresql://db/app");
        let t = parse("mysql://app:hunter22@db/shop?table=orders").unwrap();
        assert_eq!(t.action.describe(), "mysql://app:***@db/shop table orders");
        let t = parse("redis://:hunter22@cache:6379/0?key=warm").unwrap();
        assert_eq!(
            t.action.describe(),
            "redis://:***@cache:6379/0 key \"warm\""
        );
        let t = parse("rediss://cache").unwrap();
        assert_eq!(t.action.name(), "init.wait_redis");
        for (bad, why) in [
            ("postgres://db/app?table=users;drop", "is not a table name"),
            (
                "postgres://u:hunter22@db/app?sslmode=require",
                "plaintext only",
            ),
            ("mysql://db?table=orders", "needs a database"),
            ("mysql://u:hunter22@/shop", "empty host"),
            ("redis://cache?key=", "`key` must not be empty"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("hunter22"), "{err}");
        }
        let err = until_gone(parse("redis://cache").unwrap()).unwrap_err();
        assert!(err.contains("does not apply"), "{err}");
    }

    // A build without a wait's feature refuses its targets when they are
    // read (exit 2), naming the feature.
    #[test]
    fn a_database_target_needs_its_feature() {
        for (target, feature, built) in [
            ("postgres://db/app", "postgres", cfg!(feature = "postgres")),
            ("mysql://db/shop", "mysql", cfg!(feature = "mysql")),
            ("redis://cache", "redis", cfg!(feature = "redis")),
        ] {
            match parse(target) {
                Ok(_) => assert!(built, "{target}"),
                Err(e) => {
                    assert!(!built, "{target}: {e}");
                    assert!(
                        e.contains(&format!("built without the `{feature}` feature")),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_schemes_list_the_known_ones() {
        let err = parse("mongodb://db").unwrap_err();
        for scheme in [
            "tcp://",
            "dns://",
            "postgres://",
            "mysql://",
            "redis://",
            "rediss://",
        ] {
            assert!(err.contains(scheme), "{err}");
        }
    }

    #[test]
    fn file_urls_are_percent_decoded() {
        let t = parse("file:///run/my%20app/ready").unwrap();
        assert_eq!(t.action.describe(), "file /run/my app/ready");
        // Already plain, or a % that is no escape: kept.
        let t = parse("file:///run/my app/100%").unwrap();
        assert_eq!(t.action.describe(), "file /run/my app/100%");
        let t = parse("file:///run/%C3%A9t%C3%A9").unwrap();
        assert_eq!(t.action.describe(), "file /run/été");
        let err = parse("file:///run/%FF").unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
    }

    #[cfg(feature = "http")]
    #[test]
    fn a_password_in_a_url_is_never_shown() {
        let t = parse("http://admin:hunter22@127.0.0.1:8080/health").unwrap();
        assert_eq!(t.text, "http://admin:***@127.0.0.1:8080/health");
        assert!(!t.action.describe().contains("hunter22"));
        let err = parse("http://admin:hunter22@/health").unwrap_err();
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn rejects_bad_targets_saying_why() {
        for (bad, why) in [
            ("localhost:80", "no scheme"),
            ("tcp://db", "missing :PORT"),
            ("tcp://db:0", "port must be 1-65535, got 0"),
            ("tcp://db:70000", "port must be 1-65535, got 70000"),
            ("tcp://db:http", "port must be a number"),
            ("tcp://:80", "missing host"),
            ("udp://x:1", "unknown scheme udp://"),
            ("file://relative/path", "absolute path"),
            ("http://", "invalid URL"),
            ("unix://run/x.sock", "absolute path"),
            ("dns://db?type=MX", "unknown variant `MX`"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}

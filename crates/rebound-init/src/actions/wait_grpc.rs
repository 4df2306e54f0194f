//! `init.wait_grpc`: wait until a gRPC server's standard health service
//! (`grpc.health.v1.Health/Check`) answers `SERVING`, for the whole server
//! or for one service; plaintext (`grpc://`) or TLS (`grpcs://`).
//!
//! This module holds the parameters and their validation; the polling
//! (tonic's HTTP/2 client and tonic-health's generated client, rustls with
//! ring) is its child `io`, compiled with the `grpc` feature. Without that
//! feature a spec naming `init.wait_grpc` is refused at load (see
//! [`ActionSpec::missing_feature`](super::ActionSpec::missing_feature)).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

#[cfg(feature = "grpc")]
use super::{ActionContext, ActionError};
use super::{duration, validate};

/// The `with:` block of `init.wait_grpc`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation. `check_timeout` bounds each connect and each
/// health check (default 3 s). The connection is kept between checks, so
/// a check is one round trip on an open HTTP/2 connection.
///
/// ```
/// use rebound_init::actions::ActionSpec;
///
/// let with = serde_json::json!({
///     "url": "grpc://127.0.0.1:50051",
///     "service": "shop.Orders",
///     "timeout": "1m",
///     "check_timeout": "500ms",
/// });
/// let action = ActionSpec::deserialize_params("init.wait_grpc", with)?;
/// assert_eq!(action.describe(), "grpc://127.0.0.1:50051/shop.Orders (expect SERVING)");
///
/// // The service may be the URL's path instead; not both.
/// let twice = serde_json::json!({ "url": "grpc://db:50051/a.A", "service": "b.B" });
/// let err = ActionSpec::deserialize_params("init.wait_grpc", twice).unwrap_err();
/// assert!(err.to_string().contains("the service is named twice"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitGrpc {
    /// `grpc://HOST:PORT` (plaintext HTTP/2) or `grpcs://HOST:PORT` (TLS,
    /// checked against the system's roots and `ca_file`); a path
    /// `/SERVICE` names the service to check.
    #[schemars(regex(pattern = r"^[gG][rR][pP][cC][sS]?://"))]
    pub url: String,
    /// The service whose health is asked (default: the URL's path, or
    /// empty: the whole server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service: Option<String>,
    /// A PEM file of CA certificates trusted for `grpcs://`, besides the
    /// system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", length(min = 1))]
    pub ca_file: Option<PathBuf>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
    /// Bound on each connect and each health check (humantime or seconds;
    /// default 3 s).
    #[serde(
        default,
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub check_timeout: Option<Duration>,
}

/// Bound on one connect or one check when `check_timeout` is not set.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `WaitGrpc` as written, before the checks that span fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(deserialize_with = "grpc_url")]
    url: GrpcUrl,
    #[serde(default, deserialize_with = "service")]
    service: Option<String>,
    #[serde(default, deserialize_with = "ca_file")]
    ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    check_timeout: Option<Duration>,
}

impl<'de> Deserialize<'de> for WaitGrpc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        if raw.url.service.is_some() && raw.service.is_some() {
            return Err(serde::de::Error::custom(format!(
                "the service is named twice: in the URL {:?} and as `service`; keep one",
                raw.url.text
            )));
        }
        if raw.ca_file.is_some() && !raw.url.tls {
            return Err(serde::de::Error::custom(
                "`ca_file` applies to TLS: the URL must start with grpcs://",
            ));
        }
        if raw.check_timeout == Some(Duration::ZERO) {
            return Err(serde::de::Error::custom(
                "`check_timeout` must be more than zero",
            ));
        }
        Ok(WaitGrpc {
            url: raw.url.text,
            service: raw.service,
            ca_file: raw.ca_file,
            timeout: raw.timeout,
            check_timeout: raw.check_timeout,
        })
    }
}

/// A checked `grpc://` or `grpcs://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GrpcUrl {
    /// The URL as written.
    text: String,
    tls: bool,
    /// `host:port` (`[::1]:port` for IPv6).
    authority: String,
    /// The path, decoded, if it names a service.
    service: Option<String>,
}

impl GrpcUrl {
    /// Reads `grpc[s]://HOST:PORT[/SERVICE]`. Messages show the URL
    /// without its password (a URL here has none; one given is refused).
    fn parse(text: &str) -> Result<Self, String> {
        let shown = validate::redacted_text(text);
        validate::no_nul(&format!("URL {shown:?}"), text)?;
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
        let tls = match url.scheme() {
            "grpc" => false,
            "grpcs" => true,
            other => {
                return Err(format!(
                    "URL {shown:?} must start with grpc:// or grpcs://, not {other}://"
                ));
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h,
            _ => return Err(format!("URL {shown:?} has no host")),
        };
        let port = match url.port() {
            Some(0) => return Err(format!("URL {shown:?} has port 0 (a port is 1-65535)")),
            Some(p) => p,
            None => return Err(format!("URL {shown:?} has no port (grpc://HOST:PORT)")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "URL {shown:?}: a gRPC health check sends no user or password"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "URL {shown:?}: a gRPC target is grpc://HOST:PORT[/SERVICE], with no ? or #"
            ));
        }
        let path = url.path().trim_start_matches('/');
        let service = if path.is_empty() {
            None
        } else {
            let decoded = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| format!("URL {shown:?}: the service is not UTF-8 once decoded"))?;
            if decoded.contains('/') {
                return Err(format!(
                    "URL {shown:?}: the path is one service name (grpc://HOST:PORT/package.Service)"
                ));
            }
            Some(check_service(&decoded)?)
        };
        Ok(GrpcUrl {
            text: text.to_owned(),
            tls,
            authority: format!("{host}:{port}"),
            service,
        })
    }
}

/// A service name: no whitespace or control character (an empty one means
/// the whole server; write nothing rather than `""`).
fn check_service(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err(
            "`service` must not be empty (leave it out to check the whole server)".to_owned(),
        );
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`service` {name:?} is not a gRPC service name"));
    }
    Ok(name.to_owned())
}

fn grpc_url<'de, D: Deserializer<'de>>(d: D) -> Result<GrpcUrl, D::Error> {
    validate::checked_str(d, "a grpc:// or grpcs:// URL", GrpcUrl::parse)
}

fn service<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Service(String);
    impl<'de> Deserialize<'de> for Service {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            validate::checked_str(d, "a gRPC service name", check_service).map(Service)
        }
    }
    Ok(Option::<Service>::deserialize(d)?.map(|s| s.0))
}

fn ca_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    struct CaFile(PathBuf);
    impl<'de> Deserialize<'de> for CaFile {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            validate::checked_str(d, "a file path", |s| {
                if s.trim().is_empty() {
                    return Err("`ca_file` must not be empty".to_owned());
                }
                validate::no_nul("`ca_file`", s)?;
                Ok(CaFile(PathBuf::from(s)))
            })
        }
    }
    Ok(Option::<CaFile>::deserialize(d)?.map(|c| c.0))
}

impl WaitGrpc {
    /// Reads a `rebound wait` target, `grpc://HOST:PORT[/SERVICE]` or
    /// `grpcs://...`, with the same checks as a spec.
    ///
    /// ```
    /// use rebound_init::actions::wait_grpc::WaitGrpc;
    /// let w = WaitGrpc::from_url("grpcs://api.internal:443/shop.Orders")?;
    /// assert_eq!(w.service_name(), "shop.Orders");
    /// let err = WaitGrpc::from_url("grpc://api.internal").unwrap_err();
    /// assert!(err.contains("has no port"), "{err}");
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(text: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::json!({ "url": text })).map_err(|e| e.to_string())
    }

    /// The URL, read again (it was checked when the action was read; an
    /// action built by hand is checked here).
    #[cfg(feature = "grpc")]
    fn parsed(&self) -> Result<GrpcUrl, ActionError> {
        GrpcUrl::parse(&self.url).map_err(ActionError::permanent)
    }

    /// The service whose health is asked: `service`, else the URL's path,
    /// else `""` (the whole server).
    pub fn service_name(&self) -> String {
        self.service
            .clone()
            .or_else(|| GrpcUrl::parse(&self.url).ok().and_then(|u| u.service))
            .unwrap_or_default()
    }

    /// `grpc://HOST:PORT/SERVICE (expect SERVING)`, for messages.
    pub(crate) fn describe(&self) -> String {
        let base = match GrpcUrl::parse(&self.url) {
            Ok(u) => format!("{}://{}", if u.tls { "grpcs" } else { "grpc" }, u.authority),
            Err(_) => validate::redacted_text(&self.url),
        };
        let service = self.service_name();
        if service.is_empty() {
            format!("{base} (expect SERVING)")
        } else {
            format!("{base}/{service} (expect SERVING)")
        }
    }

    /// Polls the health service until it answers `SERVING`, or `timeout`
    /// runs out (without the `grpc` feature,
    /// [`ActionSpec::attempt`](super::ActionSpec::attempt) fails instead).
    #[cfg(feature = "grpc")]
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let url = self.parsed()?;
        io::attempt(self, &url, ctx).await
    }
}

#[cfg(feature = "grpc")]
mod io {
    //! The health checks: one tonic channel (an HTTP/2 connection) kept
    //! across checks, made again after a failure.

    use std::error::Error as _;
    use std::sync::{Mutex, PoisonError};

    use tonic::Code;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    use super::{DEFAULT_CHECK_TIMEOUT, GrpcUrl, WaitGrpc};
    use crate::actions::poll::{self, Check};
    use crate::actions::{ActionContext, ActionError};

    pub(super) async fn attempt(
        w: &WaitGrpc,
        url: &GrpcUrl,
        ctx: &ActionContext,
    ) -> Result<(), ActionError> {
        let endpoint = endpoint(w, url).await?;
        let service = w.service_name();
        let channel: Mutex<Option<Channel>> = Mutex::new(None);
        poll::until(ctx, &w.describe(), w.timeout, poll::FAST, || {
            check(w, &endpoint, &service, &channel)
        })
        .await
    }

    /// Where to connect: `http(s)://HOST:PORT`, with the check timeout on
    /// connects and calls, and TLS for `grpcs://`.
    async fn endpoint(w: &WaitGrpc, url: &GrpcUrl) -> Result<Endpoint, ActionError> {
        let per_check = w.check_timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT);
        let scheme = if url.tls { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{}", url.authority))
            .map_err(|e| ActionError::permanent(format!("{}: {e}", w.describe())))?
            .connect_timeout(per_check)
            .timeout(per_check);
        if !url.tls {
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = &w.ca_file {
            let pem = tokio::fs::read(path).await.map_err(|e| {
                ActionError::permanent(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint
            .tls_config(tls)
            .map_err(|e| ActionError::permanent(format!("{}: TLS: {}", w.describe(), chain(&e))))
    }

    async fn check(
        w: &WaitGrpc,
        endpoint: &Endpoint,
        service: &str,
        slot: &Mutex<Option<Channel>>,
    ) -> Check {
        let kept = slot.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let channel = match kept {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
                    c
                }
                Err(e) => return Check::NotYet(unreachable_reason(&e)),
            },
        };
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let per_check = w.check_timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT);
        let answer =
            tokio::time::timeout(per_check, HealthClient::new(channel).check(request)).await;
        let status = match answer {
            Ok(Ok(response)) => return serving(response.get_ref().status()),
            Ok(Err(status)) => status,
            Err(_) => {
                forget(slot);
                return Check::NotYet(format!(
                    "no answer within {}",
                    humantime::format_duration(per_check)
                ));
            }
        };
        match status.code() {
            Code::NotFound => Check::NotYet(format!(
                "SERVICE_UNKNOWN: the server knows no service {service:?} (NOT_FOUND)"
            )),
            Code::Unimplemented => Check::Failed(ActionError::permanent(format!(
                "{} failed: the server does not implement grpc.health.v1.Health (UNIMPLEMENTED)",
                w.describe()
            ))),
            Code::Unauthenticated | Code::PermissionDenied => {
                Check::Failed(ActionError::permanent(format!(
                    "{} failed: {:?}: {}",
                    w.describe(),
                    status.code(),
                    status.message()
                )))
            }
            code => {
                // The connection may be gone: connect afresh next time.
                forget(slot);
                let mut reason = format!("{code:?}");
                if !status.message().is_empty() {
                    reason.push_str(&format!(": {}", status.message()));
                }
                if let Some(source) = status.source() {
                    let why = chain(source);
                    if !reason.contains(&why) {
                        reason.push_str(&format!(" ({why})"));
                    }
                }
                Check::NotYet(reason)
            }
        }
    }

    fn forget(slot: &Mutex<Option<Channel>>) {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// What a health answer means.
    fn serving(status: ServingStatus) -> Check {
        match status {
            ServingStatus::Serving => Check::Ready,
            other => Check::NotYet(other.as_str_name().to_owned()),
        }
    }

    /// Why a connect failed: `connection refused`, or the error's chain.
    fn unreachable_reason(e: &tonic::transport::Error) -> String {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return "connection refused".to_owned();
                    }
                    std::io::ErrorKind::TimedOut => return "connect timed out".to_owned(),
                    _ => {}
                }
            }
            source = err.source();
        }
        format!("cannot connect: {}", chain(e))
    }

    /// An error and its sources, `a: b: c`, without repeats.
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(e);
        while let Some(err) = next {
            let text = err.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            next = err.source();
        }
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(with: serde_json::Value) -> Result<WaitGrpc, String> {
        serde_json::from_value(with).map_err(|e| e.to_string())
    }

    #[test]
    fn urls_and_parameters_are_checked() {
        let w = WaitGrpc::from_url("grpc://[::1]:50051/").unwrap();
        assert_eq!(w.describe(), "grpc://[::1]:50051 (expect SERVING)");
        assert_eq!(w.service_name(), "");
        let w = WaitGrpc::from_url("GRPCS://Api:443/shop.v1.Orders").unwrap();
        assert_eq!(
            w.describe(),
            "grpcs://Api:443/shop.v1.Orders (expect SERVING)"
        );
        for (bad, why) in [
            ("grpc://", "has no host"),
            ("grpc://db:x", "invalid URL"),
            ("grpc://db", "has no port"),
            ("grpc://db:0", "has port 0"),
            (
                "http://db:80",
                "must start with grpc:// or grpcs://, not http://",
            ),
            ("grpc://db:1/a/b", "the path is one service name"),
            ("grpc://db:1/a%20b", "is not a gRPC service name"),
            ("grpc://db:1/?x=1", "with no ? or #"),
        ] {
            let err = WaitGrpc::from_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = WaitGrpc::from_url("grpc://admin:hunter22@db:1").unwrap_err();
        assert!(err.contains("sends no user or password"), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
        for (with, why) in [
            (
                serde_json::json!({ "url": "grpc://db:1", "ca_file": "/ca.pem" }),
                "`ca_file` applies to TLS",
            ),
            (
                serde_json::json!({ "url": "grpc://db:1", "service": "" }),
                "`service` must not be empty",
            ),
            (
                serde_json::json!({ "url": "grpc://db:1", "check_timeout": 0 }),
                "`check_timeout` must be more than zero",
            ),
            (
                serde_json::json!({ "url": "grpc://db:1", "tls": true }),
                "unknown field `tls`",
            ),
            (
                serde_json::json!({ "url": "grpcs://db:1", "ca_file": "" }),
                "`ca_file` must not be empty",
            ),
        ] {
            let err = grpc(with.clone()).unwrap_err();
            assert!(err.contains(why), "{with}: {err}");
        }
    }

    #[test]
    fn serializes_as_written_and_reads_back() {
        let w = grpc(serde_json::json!({
            "url": "grpcs://db:1", "service": "a.B", "ca_file": "/etc/ca.pem",
            "timeout": 90, "check_timeout": "250ms",
        }))
        .unwrap();
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "url": "grpcs://db:1", "service": "a.B", "ca_file": "/etc/ca.pem",
                "timeout": "1m 30s", "check_timeout": "250ms",
            })
        );
        assert_eq!(grpc(json).unwrap(), w);
    }
}

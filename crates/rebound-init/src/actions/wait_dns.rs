//! `init.wait_dns`: wait until a name resolves, optionally to an expected
//! value. A and AAAA (and "any address", the default) go through the
//! system resolver (`getaddrinfo`, so `/etc/hosts` counts, as it does for
//! the workload); CNAME and TXT records, and asking one `server`, need the
//! `dns` feature (hickory-resolver, which reads `/etc/resolv.conf`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::poll::{self, Check, Pace};
use super::{ActionContext, ActionError, duration, validate};

/// The record `init.wait_dns` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum RecordKind {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// The canonical name (feature `dns`).
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    /// Text records (feature `dns`).
    #[allow(clippy::upper_case_acronyms)]
    TXT,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `with:` block of `init.wait_dns`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation.
///
/// ```
/// use std::sync::Arc;
/// use rebound_init::actions::{ActionContext, ActionSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let with = serde_json::json!({ "name": "localhost", "type": "A", "expect": "127.0.0.1" });
/// let action = ActionSpec::deserialize_params("init.wait_dns", with)?;
/// assert_eq!(action.describe(), "dns localhost A = 127.0.0.1");
/// action.attempt(&ActionContext::new("dns", Arc::new(|_, _, _| {}))).await?;
///
/// let bad = serde_json::json!({ "name": "localhost", "type": "A", "expect": "::1" });
/// let err = ActionSpec::deserialize_params("init.wait_dns", bad).unwrap_err();
/// assert!(err.to_string().contains("an A record is an IPv4 address"), "{err}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitDns {
    /// The name to resolve.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The record: `A`, `AAAA`, `CNAME` or `TXT` (default: any address,
    /// A or AAAA).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordKind>,
    /// A value the answer must include: an address (A, AAAA, or any), a
    /// name (CNAME; a final `.` and case do not matter) or a text (TXT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// The DNS server to ask, `IP` or `IP:PORT` (feature `dns`; default:
    /// the system's resolver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub server: Option<SocketAddr>,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

/// `WaitDns` as written, before the checks that span fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(deserialize_with = "dns_name")]
    name: String,
    #[serde(rename = "type", default)]
    record: Option<RecordKind>,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default, deserialize_with = "server")]
    server: Option<SocketAddr>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    timeout: Option<Duration>,
}

impl<'de> Deserialize<'de> for WaitDns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        let needs_dns =
            matches!(raw.record, Some(RecordKind::CNAME | RecordKind::TXT)) || raw.server.is_some();
        if needs_dns && !cfg!(feature = "dns") {
            return Err(serde::de::Error::custom(
                "CNAME and TXT records and `server` need rebound-init's `dns` feature, which this build lacks",
            ));
        }
        let expect = match (raw.record, raw.expect) {
            (_, None) => None,
            (Some(RecordKind::A), Some(e)) => match e.parse::<IpAddr>() {
                Ok(ip @ IpAddr::V4(_)) => Some(ip.to_string()),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "`expect` {e:?}: an A record is an IPv4 address"
                    )));
                }
            },
            (Some(RecordKind::AAAA), Some(e)) => match e.parse::<IpAddr>() {
                Ok(ip @ IpAddr::V6(_)) => Some(ip.to_string()),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "`expect` {e:?}: an AAAA record is an IPv6 address"
                    )));
                }
            },
            (None, Some(e)) => match e.parse::<IpAddr>() {
                Ok(ip) => Some(ip.to_string()),
                Err(_) => {
                    return Err(serde::de::Error::custom(format!(
                        "`expect` {e:?} is not an IP address (set `type: CNAME` or `TXT` to expect a name or a text)"
                    )));
                }
            },
            (Some(_), Some(e)) => Some(e),
        };
        Ok(WaitDns {
            name: raw.name,
            record: raw.record,
            expect,
            server: raw.server,
            timeout: raw.timeout,
        })
    }
}

/// A DNS name: not empty, no NUL byte, no whitespace.
fn dns_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    validate::checked_str(d, "a DNS name", |s| {
        if s.trim().is_empty() {
            return Err("`name` must not be empty".to_owned());
        }
        if s.contains(char::is_whitespace) || s.contains('\0') {
            return Err(format!("`name` {s:?} is not a DNS name"));
        }
        Ok(s.to_owned())
    })
}

/// `server`: `IP` (port 53) or `IP:PORT` (`[::1]:53` for IPv6).
fn server<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    struct Server(SocketAddr);
    impl<'de> Deserialize<'de> for Server {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            validate::checked_str(d, "IP or IP:PORT", |s| {
                if let Ok(ip) = s.parse::<IpAddr>() {
                    return Ok(Server(SocketAddr::new(ip, 53)));
                }
                match s.parse::<SocketAddr>() {
                    Ok(addr) if addr.port() != 0 => Ok(Server(addr)),
                    _ => Err(format!(
                        "`server` {s:?} is not IP or IP:PORT (such as 10.0.0.2 or [::1]:5353)"
                    )),
                }
            })
        }
    }
    Ok(Option::<Server>::deserialize(d)?.map(|s| s.0))
}

/// Lookups cost a round trip to a DNS server: 1 ms doubling to 20 ms for
/// the first minute, 250 ms after.
const DNS_PACE: Pace = Pace {
    first: Duration::from_millis(1),
    max: Duration::from_millis(20),
    slow_max: Duration::from_millis(250),
};

impl WaitDns {
    /// Reads `dns://NAME[?type=A|AAAA|CNAME|TXT&expect=VALUE&server=IP:PORT]`
    /// (the `rebound wait` target) with the same checks as a spec.
    ///
    /// ```
    /// use rebound_init::actions::wait_dns::WaitDns;
    /// let w = WaitDns::from_url("dns://db.internal?type=A&expect=10.0.0.5")?;
    /// assert_eq!(w.name, "db.internal");
    /// let err = WaitDns::from_url("dns://db?kind=A").unwrap_err();
    /// assert!(err.contains("unknown parameter `kind`"), "{err}");
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_url(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL: {e}"))?;
        if url.scheme() != "dns" {
            return Err(format!("not a dns:// URL: {}://", url.scheme()));
        }
        if !matches!(url.path(), "" | "/") || url.port().is_some() {
            return Err("a dns target is dns://NAME[?type=...&expect=...&server=...]".into());
        }
        let mut with = serde_json::Map::new();
        with.insert("name".into(), url.host_str().unwrap_or_default().into());
        for (key, value) in url.query_pairs() {
            let key = match key.as_ref() {
                "type" => "type",
                "expect" => "expect",
                "server" => "server",
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (expected type, expect or server)"
                    ));
                }
            };
            let value = if key == "type" {
                value.to_ascii_uppercase()
            } else {
                value.into_owned()
            };
            with.insert(key.into(), value.into());
        }
        serde_json::from_value(serde_json::Value::Object(with)).map_err(|e| e.to_string())
    }

    /// `dns NAME`, `dns NAME TXT = "v=1"`, for messages.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("dns {}", self.name);
        if let Some(kind) = self.record {
            text.push_str(&format!(" {kind}"));
        }
        match (&self.expect, self.record) {
            (Some(e), Some(RecordKind::TXT)) => text.push_str(&format!(" = {e:?}")),
            (Some(e), _) => text.push_str(&format!(" = {e}")),
            (None, _) => {}
        }
        if let Some(server) = self.server {
            text.push_str(&format!(" @{server}"));
        }
        text
    }

    /// Polls until the name resolves (to the expected value) or `timeout`
    /// runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let resolver = Resolver::new(self)?;
        poll::until(ctx, &self.describe(), self.timeout, DNS_PACE, || {
            self.check(&resolver)
        })
        .await
    }

    async fn check(&self, resolver: &Resolver) -> Check {
        let answers = match resolver.answers(self).await {
            Ok(answers) if answers.is_empty() => {
                let what = self
                    .record
                    .map_or("address".to_owned(), |k| format!("{k} record"));
                return Check::NotYet(format!("no {what}"));
            }
            Ok(answers) => answers,
            Err(reason) => return Check::NotYet(reason),
        };
        let Some(expected) = &self.expect else {
            return Check::Ready;
        };
        let wanted = normalized(self.record, expected);
        if answers.iter().any(|a| normalized(self.record, a) == wanted) {
            return Check::Ready;
        }
        let shown: Vec<String> = match self.record {
            Some(RecordKind::TXT) => answers.iter().map(|a| format!("{a:?}")).collect(),
            _ => answers,
        };
        Check::NotYet(format!("resolves to {}", shown.join(", ")))
    }
}

/// An answer as compared: a CNAME without its final dot, in lower case.
fn normalized(kind: Option<RecordKind>, text: &str) -> String {
    match kind {
        Some(RecordKind::CNAME) => text.trim_end_matches('.').to_ascii_lowercase(),
        _ => text.to_owned(),
    }
}

/// Where the answers come from: the system resolver, or hickory.
enum Resolver {
    System,
    #[cfg(feature = "dns")]
    Hickory(Box<hickory_resolver::TokioResolver>),
}

impl Resolver {
    fn new(w: &WaitDns) -> Result<Self, ActionError> {
        let needs_dns =
            matches!(w.record, Some(RecordKind::CNAME | RecordKind::TXT)) || w.server.is_some();
        if !needs_dns {
            return Ok(Resolver::System);
        }
        #[cfg(feature = "dns")]
        {
            hickory(w).map(|r| Resolver::Hickory(Box::new(r)))
        }
        #[cfg(not(feature = "dns"))]
        {
            Err(ActionError::permanent(
                "CNAME and TXT records and `server` need rebound-init's `dns` feature, which this build lacks",
            ))
        }
    }

    /// The answers as text (addresses, names, texts); `Err` is why the
    /// name does not resolve.
    async fn answers(&self, w: &WaitDns) -> Result<Vec<String>, String> {
        match self {
            Resolver::System => {
                let addrs = tokio::net::lookup_host((w.name.as_str(), 0))
                    .await
                    .map_err(|e| format!("does not resolve ({e})"))?;
                let mut out: Vec<String> = addrs
                    .map(|a| a.ip())
                    .filter(|ip| match w.record {
                        Some(RecordKind::A) => ip.is_ipv4(),
                        Some(RecordKind::AAAA) => ip.is_ipv6(),
                        _ => true,
                    })
                    .map(|ip| ip.to_string())
                    .collect();
                out.dedup();
                Ok(out)
            }
            #[cfg(feature = "dns")]
            Resolver::Hickory(resolver) => hickory_answers(resolver, w).await,
        }
    }
}

/// A resolver without a cache (each poll asks again), from
/// `/etc/resolv.conf` or for `w.server`.
#[cfg(feature = "dns")]
fn hickory(w: &WaitDns) -> Result<hickory_resolver::TokioResolver, ActionError> {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;

    let mut builder = match w.server {
        Some(addr) => {
            let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            hickory_resolver::Resolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
        None => hickory_resolver::TokioResolver::builder_tokio().map_err(|e| {
            ActionError::permanent(format!("cannot read the system's DNS configuration: {e}"))
        })?,
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.attempts = 1;
    options.timeout = Duration::from_secs(2);
    Ok(builder.build())
}

#[cfg(feature = "dns")]
async fn hickory_answers(
    resolver: &hickory_resolver::TokioResolver,
    w: &WaitDns,
) -> Result<Vec<String>, String> {
    use hickory_resolver::proto::rr::{RData, RecordType};

    let kinds: &[RecordType] = match w.record {
        Some(RecordKind::A) => &[RecordType::A],
        Some(RecordKind::AAAA) => &[RecordType::AAAA],
        Some(RecordKind::CNAME) => &[RecordType::CNAME],
        Some(RecordKind::TXT) => &[RecordType::TXT],
        None => &[RecordType::A, RecordType::AAAA],
    };
    let mut out = Vec::new();
    let mut last_error = None;
    for kind in kinds {
        match resolver.lookup(w.name.as_str(), *kind).await {
            Ok(lookup) => {
                for rdata in lookup.iter() {
                    match rdata {
                        RData::A(a) => out.push(a.0.to_string()),
                        RData::AAAA(a) => out.push(a.0.to_string()),
                        RData::CNAME(c) => out.push(c.0.to_string()),
                        RData::TXT(t) => out.push(
                            t.txt_data()
                                .iter()
                                .map(|part| String::from_utf8_lossy(part))
                                .collect(),
                        ),
                        _ => {}
                    }
                }
            }
            Err(e) if e.is_no_records_found() && !e.is_nx_domain() => {}
            Err(e) => last_error = Some(format!("does not resolve ({e})")),
        }
    }
    match last_error {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    fn dns(with: serde_json::Value) -> WaitDns {
        serde_json::from_value(with).unwrap()
    }

    #[tokio::test]
    async fn localhost_resolves_at_once() {
        for with in [
            serde_json::json!({ "name": "localhost", "timeout": "5s" }),
            serde_json::json!({ "name": "localhost", "type": "A", "expect": "127.0.0.1" }),
        ] {
            dns(with).attempt(&quiet_ctx()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_name_that_never_resolves_times_out_saying_so() {
        let w = dns(serde_json::json!({ "name": "rebound-never.invalid", "timeout": "500ms" }));
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(err.is_timeout());
        assert!(
            err.message()
                .starts_with("dns rebound-never.invalid not ready after 500ms (does not resolve ("),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unexpected_address_is_not_ready() {
        let w = dns(serde_json::json!({
            "name": "localhost", "type": "A", "expect": "127.0.0.2", "timeout": "200ms",
        }));
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(err.message().ends_with("(resolves to 127.0.0.1)"), "{err}");
    }

    /// A DNS server on a loopback UDP port: NXDOMAIN for every query until
    /// `ready` is set, then a TXT `v=ready` and a CNAME `target.test.`.
    #[cfg(feature = "dns")]
    async fn dns_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
        use hickory_resolver::proto::rr::rdata::{CNAME, TXT};
        use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = Message::new();
                answer
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(query.op_code())
                    .set_recursion_desired(query.recursion_desired())
                    .set_recursion_available(true)
                    .add_queries(query.queries().to_vec());
                if flag.load(Ordering::SeqCst) {
                    for q in query.queries() {
                        let name = q.name().clone();
                        let rdata = match q.query_type() {
                            RecordType::TXT => RData::TXT(TXT::new(vec!["v=ready".into()])),
                            RecordType::CNAME => {
                                RData::CNAME(CNAME(Name::from_ascii("target.test.").unwrap()))
                            }
                            _ => continue,
                        };
                        answer.add_answer(Record::from_rdata(name, 60, rdata));
                    }
                } else {
                    answer.set_response_code(ResponseCode::NXDomain);
                }
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
            }
        });
        (addr, ready)
    }

    // TXT and CNAME through a DNS server of the test's own: ready at once,
    // ready once the records appear, never ready (timeout with the reason).
    #[cfg(feature = "dns")]
    #[tokio::test]
    async fn txt_and_cname_records_from_a_server() {
        use std::sync::atomic::Ordering;

        let (addr, ready) = dns_server().await;
        let txt = dns(serde_json::json!({
            "name": "app.test", "type": "TXT", "expect": "v=ready",
            "server": addr.to_string(), "timeout": "10s",
        }));
        let cname = dns(serde_json::json!({
            "name": "app.test", "type": "CNAME", "expect": "TARGET.test",
            "server": addr.to_string(), "timeout": "300ms",
        }));
        let err = cname.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(err.is_timeout());
        assert!(err.message().contains("(does not resolve ("), "{err}");
        let ctx = quiet_ctx();
        let waiter = tokio::spawn(async move { txt.attempt(&ctx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        ready.store(true, Ordering::SeqCst);
        waiter.await.unwrap().unwrap();
        cname.attempt(&quiet_ctx()).await.unwrap();
        let other = dns(serde_json::json!({
            "name": "app.test", "type": "TXT", "expect": "v=other",
            "server": addr.to_string(), "timeout": "200ms",
        }));
        let err = other.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(
            err.message().ends_with(r#"(resolves to "v=ready")"#),
            "{err}"
        );
    }

    #[test]
    fn urls_and_parameters_are_checked() {
        let w = WaitDns::from_url("dns://localhost?type=aaaa&expect=0:0::1").unwrap();
        assert_eq!(w.record, Some(RecordKind::AAAA));
        assert_eq!(w.expect.as_deref(), Some("::1"));
        for (bad, why) in [
            ("dns://", "`name` must not be empty"),
            ("dns://db?type=MX", "unknown variant `MX`"),
            ("dns://db?expect=db2", "is not an IP address"),
            (
                "dns://db?type=A&expect=::1",
                "an A record is an IPv4 address",
            ),
            ("dns://db?server=10.0.0.1:0", "is not IP or IP:PORT"),
            ("dns://db:53", "a dns target is dns://NAME"),
        ] {
            let err = WaitDns::from_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

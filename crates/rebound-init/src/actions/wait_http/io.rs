//! The polling behind `init.wait_http` (reqwest with rustls/ring).

use std::time::Duration;

use rebound_retry::{Decision, classify};
use reqwest::redirect;

use serde_json_path::JsonPath;

use super::{DEFAULT_REQUEST_TIMEOUT, HttpState, StatusMatch, WaitHttp};
use crate::actions::matchers::{JsonMatch, full_json_path};
use crate::actions::poll::{self, Check};
use crate::actions::tls::ensure_crypto_provider;
use crate::actions::validate::{self, redacted};
use crate::actions::{ActionContext, ActionError};
use crate::error_chain;

/// First pause between requests; doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(10);
/// Longest pause between requests when the server gave no `Retry-After`.
const MAX_DELAY: Duration = Duration::from_millis(500);
/// The longest `Retry-After` honoured while polling.
pub(crate) const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);
/// At most this much of a body is read to look for `body_contains`,
/// `body_regex` or `json`.
const BODY_LIMIT: usize = 1 << 20;
/// At most this many redirects (on the same host) are followed.
const MAX_REDIRECTS: usize = 10;

/// What one request found.
enum Probe {
    Ready,
    /// Not ready yet: poll again, after the server's delay if it gave one.
    NotYet {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not become ready by polling.
    Failed(String),
}

/// The redirect policy: follow redirects on the same host (up to
/// [`MAX_REDIRECTS`]); a redirect to another host is not followed. When the
/// redirect's own status is expected it is returned as the answer.
fn redirect_policy(expect: StatusMatch) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        let origin = attempt
            .previous()
            .first()
            .and_then(|u| u.host_str())
            .map(str::to_owned);
        let same_host = origin.as_deref() == attempt.url().host_str();
        if expect.matches(attempt.status().as_u16()) {
            attempt.stop()
        } else if !same_host {
            let to = redacted(attempt.url());
            attempt.error(format!("redirect to another host ({to}) not followed"))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// The pause before the next request.
pub(crate) fn next_delay(current: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d.min(RETRY_AFTER_CAP),
        None => current,
    }
}

async fn probe(client: &reqwest::Client, w: &WaitHttp, url: &url::Url) -> Probe {
    let resp = match client.get(url.clone()).send().await {
        Ok(resp) => resp,
        Err(e) if e.is_redirect() => {
            return Probe::Failed(error_chain(&e.without_url()));
        }
        Err(e) if e.is_builder() => return Probe::Failed(error_chain(&e.without_url())),
        Err(e) => {
            return Probe::NotYet {
                reason: error_chain(&e.without_url()),
                retry_after: None,
            };
        }
    };
    let status = resp.status();
    let code = status.as_u16();
    if !w.expect_status.matches(code) {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reason = format!("answered {status} (expected {})", w.expect_status);
        return match classify::http_status(code, retry_after.as_deref()) {
            Decision::Stop if (400..=499).contains(&code) => Probe::Failed(reason),
            Decision::RetryAfter(d) => Probe::NotYet {
                reason,
                retry_after: Some(d),
            },
            _ => Probe::NotYet {
                reason,
                retry_after: None,
            },
        };
    }
    if let Some(h) = &w.header {
        let values: Vec<&str> = resp
            .headers()
            .get_all(h.name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.iter().any(|v| h.value_matches(v)) {
            let reason = match values.first() {
                None => format!("answered {status} without the header {}", h.name),
                Some(v) => format!("answered {status} with {}: {v:?} (expected {h})", h.name),
            };
            return not_yet(reason);
        }
    }
    if w.body_contains.is_none() && w.body_regex.is_none() && w.json.is_none() {
        return Probe::Ready;
    }
    let mut resp = resp;
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() >= BODY_LIMIT {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return not_yet(format!(
                    "reading the body failed: {}",
                    error_chain(&e.without_url())
                ));
            }
        }
    }
    let text = String::from_utf8_lossy(&body);
    if let Some(needle) = &w.body_contains
        && !text.contains(needle.as_str())
    {
        return not_yet(format!("answered {status} but the body lacks {needle:?}"));
    }
    if let Some(pattern) = &w.body_regex
        && !pattern.is_match(&text)
    {
        return not_yet(format!(
            "answered {status} but the body does not match /{pattern}/"
        ));
    }
    if let Some(m) = &w.json
        && let Err(reason) = json_holds(m, &body)
    {
        return not_yet(format!("answered {status} but {reason}"));
    }
    Probe::Ready
}

fn not_yet(reason: String) -> Probe {
    Probe::NotYet {
        reason,
        retry_after: None,
    }
}

/// Whether the JSON `body` holds `m`; `Err` says what it holds instead.
fn json_holds(m: &JsonMatch, body: &[u8]) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let path = JsonPath::parse(&full_json_path(&m.path))
        .map_err(|e| format!("invalid JSONPath {:?}: {e}", m.path))?;
    let nodes = path.query(&value).all();
    match (&m.equals, nodes.first()) {
        (_, None) => Err(format!("the JSON has nothing at {}", m.path)),
        (None, Some(_)) => Ok(()),
        (Some(expected), Some(_)) if nodes.contains(&expected) => Ok(()),
        (Some(expected), Some(first)) => Err(format!(
            "the JSON at {} is {} (expected {expected})",
            m.path,
            shortened(&first.to_string())
        )),
    }
}

/// At most 200 characters of `text`, for messages.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The client for one wait: rustls (ring) with the platform's roots, the
/// per-request timeout, same-host redirects only, no proxy; through
/// `w.socket` when set.
fn client(w: &WaitHttp) -> Result<reqwest::Client, ActionError> {
    ensure_crypto_provider();
    let timeout = w.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let mut builder = reqwest::Client::builder()
        .redirect(redirect_policy(w.expect_status.clone()))
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy();
    if let Some(socket) = &w.socket {
        builder = builder.unix_socket(socket.clone());
    }
    builder.build().map_err(|e| {
        ActionError::permanent(format!("cannot build an HTTP client: {}", error_chain(&e)))
    })
}

/// Polls the URL until it answers as expected, or fails for good.
pub(crate) async fn attempt(w: &WaitHttp, ctx: &ActionContext) -> Result<(), ActionError> {
    let url = url::Url::parse(&w.url).map_err(|e| {
        let shown = validate::redacted_text(&w.url);
        ActionError::permanent(format!("invalid URL {shown:?}: {e}"))
    })?;
    let shown = redacted(&url);
    let client = client(w)?;
    if w.state == Some(HttpState::Down) {
        let what = w.describe();
        return poll::until(ctx, &what, None, poll::COSTLY, || async {
            match client.get(url.clone()).send().await {
                Ok(resp) => Check::NotYet(format!("still answering ({})", resp.status())),
                Err(e) if e.is_builder() => Check::Failed(ActionError::permanent(format!(
                    "GET {shown}: {}",
                    error_chain(&e.without_url())
                ))),
                Err(_) => Check::Ready,
            }
        })
        .await;
    }
    let mut delay = FIRST_DELAY;
    loop {
        match probe(&client, w, &url).await {
            Probe::Ready => return Ok(()),
            Probe::Failed(reason) => {
                return Err(ActionError::permanent(format!("GET {shown}: {reason}")));
            }
            Probe::NotYet {
                reason,
                retry_after,
            } => {
                tracing::debug!(url = %shown, %reason, "not ready yet");
                ctx.last_problem.set(validate::redacted_urls_in(&reason));
                tokio::time::sleep(next_delay(delay, retry_after)).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::actions::ActionErrorKind;
    use crate::actions::matchers::Pattern;
    use crate::actions::quiet_ctx;

    /// A loopback HTTP/1.1 server answering the n-th request with the n-th
    /// canned response (the last one repeats). Returns its port and a
    /// request counter.
    async fn serve(responses: Vec<String>) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let resp = responses[n.min(responses.len() - 1)].clone();
                tokio::spawn(answer(sock, resp));
            }
        });
        (port, count)
    }

    fn response(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        )
    }

    fn wait(url: String) -> WaitHttp {
        WaitHttp {
            url,
            expect_status: StatusMatch::default(),
            body_contains: None,
            body_regex: None,
            header: None,
            json: None,
            socket: None,
            state: None,
            timeout: None,
        }
    }

    #[tokio::test]
    async fn polls_through_503_until_200() {
        let busy = response("503 Service Unavailable", "", "");
        let (port, count) = serve(vec![busy.clone(), busy, response("200 OK", "", "ok")]).await;
        let w = wait(format!("http://127.0.0.1:{port}/health"));
        attempt(&w, &quiet_ctx()).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_404_is_permanent_and_named() {
        let (port, count) = serve(vec![response("404 Not Found", "", "")]).await;
        let w = wait(format!("http://127.0.0.1:{port}/missing"));
        let err = attempt(&w, &quiet_ctx()).await.unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Permanent);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("GET http://127.0.0.1:{port}/missing")),
            "{msg}"
        );
        assert!(msg.contains("404 Not Found (expected 2xx)"), "{msg}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waits_for_the_body_text_and_custom_status() {
        let (port, count) = serve(vec![
            response("204 No Content", "", ""),
            response("201 Created", "", "starting"),
            response("201 Created", "", "status: ready"),
        ])
        .await;
        let mut w = wait(format!("http://127.0.0.1:{port}/"));
        w.expect_status = StatusMatch::parse("201").unwrap();
        w.body_contains = Some("ready".into());
        attempt(&w, &quiet_ctx()).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn redirect_to_another_host_is_not_followed() {
        let (other, other_count) = serve(vec![response("200 OK", "", "")]).await;
        let location = format!("Location: http://localhost:{other}/\r\n");
        let (port, _) = serve(vec![response("302 Found", &location, "")]).await;
        let w = wait(format!("http://127.0.0.1:{port}/"));
        let err = attempt(&w, &quiet_ctx()).await.unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Permanent);
        assert!(
            err.to_string().contains("redirect to another host"),
            "{err}"
        );
        assert_eq!(other_count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn redirect_on_the_same_host_is_followed() {
        let (port, count) = serve(vec![
            response("302 Found", "Location: /ready\r\n", ""),
            response("200 OK", "", ""),
        ])
        .await;
        attempt(&wait(format!("http://127.0.0.1:{port}/")), &quiet_ctx())
            .await
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    // https goes through rustls with ring (no panic for a missing crypto
    // provider); a server that does not speak TLS is "not ready yet", with
    // the TLS failure in the reason.
    #[tokio::test]
    async fn https_uses_rustls_and_a_tls_failure_keeps_polling() {
        // A server that answers any bytes with plain HTTP, as a
        // misconfigured port would.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hello = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            assert!(sock.read(&mut buf).await.unwrap() > 0);
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            buf[0] // 0x16: a TLS handshake record
        });
        let mut w = wait(format!("https://127.0.0.1:{port}/"));
        w.timeout = Some(Duration::from_secs(10));
        let url = url::Url::parse(&w.url).unwrap();
        let client = client(&w).unwrap();
        match probe(&client, &w, &url).await {
            Probe::NotYet { reason, .. } => {
                assert!(!reason.contains("timed out"), "{reason}");
                assert!(!reason.contains("400"), "{reason}");
            }
            Probe::Ready => panic!("a plain-HTTP server passed as https"),
            Probe::Failed(reason) => panic!("TLS failure must be transient: {reason}"),
        }
        assert_eq!(hello.await.unwrap(), 0x16, "the client spoke TLS");
    }

    // `with.timeout` bounds each request: a server that accepts and never
    // answers is "not ready yet" once it runs out, not a hang.
    #[tokio::test]
    async fn a_silent_server_hits_the_per_request_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(sock);
        });
        let mut w = wait(format!("http://127.0.0.1:{port}/"));
        w.timeout = Some(Duration::from_millis(200));
        let url = url::Url::parse(&w.url).unwrap();
        let probed = tokio::time::timeout(
            Duration::from_secs(30),
            probe(&client(&w).unwrap(), &w, &url),
        )
        .await
        .expect("the per-request timeout did not end the request");
        match probed {
            Probe::NotYet { reason, .. } => assert!(reason.contains("timed out"), "{reason}"),
            Probe::Ready => panic!("a silent server passed"),
            Probe::Failed(reason) => panic!("a request timeout must be transient: {reason}"),
        }
        silent.abort();
    }

    #[tokio::test]
    async fn a_429_passes_on_its_retry_after() {
        let (port, _) = serve(vec![response(
            "429 Too Many Requests",
            "Retry-After: 7\r\n",
            "",
        )])
        .await;
        let w = wait(format!("http://127.0.0.1:{port}/"));
        let url = url::Url::parse(&w.url).unwrap();
        match probe(&client(&w).unwrap(), &w, &url).await {
            Probe::NotYet {
                retry_after,
                reason,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(reason.contains("429"), "{reason}");
            }
            _ => panic!("a 429 is not ready yet, not ready or failed"),
        }
    }

    /// Reads one request's headers from `sock`, then writes `resp` and
    /// closes: the canned answer of [`serve`] and [`serve_unix`].
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, resp: String) {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
    }

    /// [`serve`] on a Unix socket at `path`.
    async fn serve_unix(path: &std::path::Path, responses: Vec<String>) -> Arc<AtomicUsize> {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let resp = responses[n.min(responses.len() - 1)].clone();
                tokio::spawn(answer(sock, resp));
            }
        });
        count
    }

    fn over(socket: &std::path::Path, path: &str) -> WaitHttp {
        let mut w = wait(format!("http://localhost{path}"));
        w.socket = Some(socket.to_owned());
        w
    }

    // Issue 12: HTTP over a Unix socket, as Docker's `/_ping`.
    #[tokio::test]
    async fn over_a_unix_socket_ready_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let count = serve_unix(&sock, vec![response("200 OK", "", "OK")]).await;
        let mut w = over(&sock, "/_ping");
        w.body_contains = Some("OK".into());
        attempt(&w, &quiet_ctx()).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn over_a_unix_socket_bound_late_and_busy_first() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let mut w = over(&sock, "/_ping");
        w.expect_status = StatusMatch::parse("200-204").unwrap();
        let ctx = quiet_ctx();
        let problems = ctx.last_problem.clone();
        let waiter = tokio::spawn(async move { attempt(&w, &ctx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        let before = problems.get().unwrap();
        assert!(before.contains("error sending request"), "{before}");
        let count = serve_unix(
            &sock,
            vec![
                response("503 Service Unavailable", "", ""),
                response("204 No Content", "", ""),
            ],
        )
        .await;
        waiter.await.unwrap().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn over_a_unix_socket_never_ready_keeps_the_last_reason() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        serve_unix(&sock, vec![response("500 Internal Server Error", "", "")]).await;
        let ctx = quiet_ctx();
        let w = over(&sock, "/_ping");
        let cut = tokio::time::timeout(Duration::from_secs(2), attempt(&w, &ctx)).await;
        assert!(cut.is_err(), "a 500 is never ready");
        assert_eq!(
            ctx.last_problem.get().unwrap(),
            "answered 500 Internal Server Error (expected 2xx)"
        );
    }

    fn json_answer(body: &str) -> String {
        response(
            "200 OK",
            "Content-Type: application/json\r\nX-State: warming\r\n",
            body,
        )
    }

    // Body regex, header and JSON matches: each holds only on the last
    // answer, and the reason before says which did not.
    #[tokio::test]
    async fn body_regex_header_and_json_must_all_hold() {
        let (port, count) = serve(vec![
            json_answer(r#"{"status": "starting", "version": 3}"#),
            response(
                "200 OK",
                "X-State: ready\r\n",
                r#"{"status": "starting", "version": 3}"#,
            ),
            response(
                "200 OK",
                "X-State: ready\r\n",
                r#"{"status": "ok", "checks": [{"db": "up"}], "version": 3}"#,
            ),
        ])
        .await;
        let mut w = wait(format!("http://127.0.0.1:{port}/health"));
        w.body_regex = Some(Pattern::new(r#""version": *\d+"#).unwrap());
        w.header = Some(serde_json::from_str(r#"{"name": "x-state", "equals": "ready"}"#).unwrap());
        w.json = Some(serde_json::from_str(r#"{"path": "checks[0].db", "equals": "up"}"#).unwrap());
        let ctx = quiet_ctx();
        attempt(&w, &ctx).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(
            ctx.last_problem.get().unwrap(),
            "answered 200 OK but the JSON has nothing at checks[0].db"
        );
    }

    #[tokio::test]
    async fn each_match_names_what_it_saw() {
        let (port, _) = serve(vec![json_answer(r#"{"status": "starting"}"#)]).await;
        let url = format!("http://127.0.0.1:{port}/");
        let client = client(&wait(url.clone())).unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        let reason = |w: WaitHttp| {
            let client = client.clone();
            let parsed = parsed.clone();
            async move {
                match probe(&client, &w, &parsed).await {
                    Probe::NotYet { reason, .. } => reason,
                    Probe::Ready => "ready".into(),
                    Probe::Failed(reason) => format!("failed: {reason}"),
                }
            }
        };
        let mut w = wait(url.clone());
        w.json = Some(serde_json::from_str(r#"{"path": "$.status", "equals": "ok"}"#).unwrap());
        assert_eq!(
            reason(w).await,
            r#"answered 200 OK but the JSON at $.status is "starting" (expected "ok")"#
        );
        let mut w = wait(url.clone());
        w.header =
            Some(serde_json::from_str(r#"{"name": "X-State", "matches": "^ready$"}"#).unwrap());
        assert_eq!(
            reason(w).await,
            r#"answered 200 OK with X-State: "warming" (expected header X-State ~ /^ready$/)"#
        );
        let mut w = wait(url.clone());
        w.header = Some(serde_json::from_str(r#"{"name": "X-Missing"}"#).unwrap());
        assert_eq!(
            reason(w).await,
            "answered 200 OK without the header X-Missing"
        );
        let mut w = wait(url.clone());
        w.body_regex = Some(Pattern::new("^ok$").unwrap());
        assert_eq!(
            reason(w).await,
            "answered 200 OK but the body does not match /^ok$/"
        );
        let mut w = wait(url);
        w.json = Some(serde_json::from_str(r#"{"path": "status", "equals": "starting"}"#).unwrap());
        assert_eq!(reason(w).await, "ready");
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_not_ready() {
        let (port, _) = serve(vec![response("200 OK", "", "<html>")]).await;
        let mut w = wait(format!("http://127.0.0.1:{port}/"));
        w.json = Some(serde_json::from_str(r#"{"path": "status"}"#).unwrap());
        let url = url::Url::parse(&w.url).unwrap();
        match probe(&client(&w).unwrap(), &w, &url).await {
            Probe::NotYet { reason, .. } => {
                assert!(
                    reason.starts_with("answered 200 OK but the body is not JSON"),
                    "{reason}"
                );
            }
            _ => panic!("HTML passed a JSON match"),
        }
    }

    // Issue 12: `state: down`, ready at once (nothing listens), once the
    // server goes, never (it keeps answering, even with a 500).
    #[tokio::test]
    async fn down_waits_until_nothing_answers() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut w = wait(format!("http://127.0.0.1:{port}/"));
        w.state = Some(HttpState::Down);
        attempt(&w, &quiet_ctx()).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let server = tokio::net::UnixListener::bind(&sock).unwrap();
        let serving = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = server.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(response("500 Internal Server Error", "", "").as_bytes())
                    .await;
            }
        });
        let mut w = over(&sock, "/");
        w.state = Some(HttpState::Down);
        let ctx = quiet_ctx();
        let cut = tokio::time::timeout(Duration::from_millis(300), attempt(&w, &ctx)).await;
        assert!(cut.is_err(), "a server answering 500 is not down");
        assert_eq!(
            ctx.last_problem.get().unwrap(),
            "still answering (500 Internal Server Error)"
        );
        let waiter = tokio::spawn(async move { attempt(&w, &quiet_ctx()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        serving.abort();
        let _ = serving.await;
        std::fs::remove_file(&sock).unwrap();
        waiter.await.unwrap().unwrap();
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let d = Duration::from_millis(20);
        assert_eq!(next_delay(d, None), d);
        assert_eq!(
            next_delay(d, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            next_delay(d, Some(Duration::from_secs(3600))),
            RETRY_AFTER_CAP
        );
    }
}

//! The agent's HTTP/1.1 JSON server (hyper, http1 only).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rebound_ensure::{EnsureMap, Status};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

pub use super::listener::Listener;
use super::metrics::Metrics;
use super::protocol::{
    EnsureReply, EnsureRequest, ErrorReply, RuntimeEntry, RuntimesReply, millis,
};

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// How long a client gets to send a request's headers, counted from the
/// connection (or the previous answer on a kept-alive one): a client that
/// connects and then sends nothing or trickles bytes is dropped, so idle
/// connections cannot pile up until the agent runs out of descriptors.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client gets to send a request's body once its headers came.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(10);

/// What every connection shares.
pub struct Server {
    runtimes: EnsureMap<String>,
    metrics: Metrics,
    /// Required bearer token (always with TCP); never logged.
    token: Option<Vec<u8>>,
}

impl Server {
    /// A server for these runtimes; `token` is required of every request
    /// when set.
    pub fn new(runtimes: EnsureMap<String>, token: Option<String>) -> Arc<Self> {
        let metrics = Metrics::new(runtimes.keys());
        Arc::new(Self {
            runtimes,
            metrics,
            token: token.map(String::into_bytes),
        })
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.authorized(req.headers()) {
            self.metrics.count_unauthorized();
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
                None,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let resp = match (&method, segments.as_slice()) {
            (&Method::POST, ["v1", "runtimes", name, "ensure"]) => {
                let name = (*name).to_owned();
                self.ensure(&name, req).await
            }
            (&Method::GET, ["v1", "runtimes"]) => self.list(),
            (&Method::GET, ["metrics"]) => {
                let mut resp =
                    Response::new(Full::new(Bytes::from(self.metrics.render(&self.runtimes))));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            (_, ["v1", "runtimes", _, "ensure"]) => not_allowed(&method, &path, "POST"),
            (_, ["v1", "runtimes"]) | (_, ["metrics"]) => not_allowed(&method, &path, "GET"),
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {method} {path}"),
                None,
            ),
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        resp
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(|v| {
                let (scheme, rest) = v.split_at(v.len().min(7));
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
            });
        given.is_some_and(|given| constant_time_eq(given, expected))
    }

    async fn ensure(&self, name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(runtime) = self.runtimes.get(name) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("unknown runtime `{name}`"),
                Some(self.runtimes.keys().cloned().collect()),
            );
        };
        let read = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(req.into_body(), MAX_BODY).collect(),
        );
        let body = match read.await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                    None,
                );
            }
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {}s",
                        BODY_TIMEOUT.as_secs()
                    ),
                    None,
                );
            }
        };
        let request = if body.iter().all(u8::is_ascii_whitespace) {
            EnsureRequest {
                start_if_needed: true,
            }
        } else {
            match serde_json::from_slice::<EnsureRequest>(&body) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("bad request body: {e}"),
                        None,
                    );
                }
            }
        };
        // The Ready fast path, by reference: no lock, no reference count.
        if let Some(info) = runtime.ready() {
            self.metrics.count_call(name, Status::Reused);
            return json(
                StatusCode::OK,
                &EnsureReply {
                    ready: true,
                    endpoint: info.endpoint().to_owned(),
                    message: info.message().to_owned(),
                    status: Status::Reused.as_str().to_owned(),
                    retry_after_ms: None,
                },
            );
        }
        // Log lines of a start begun here (and of its TTL probes) name the
        // runtime: the library runs them in this span.
        let answer = runtime
            .ensure(request.start_if_needed)
            .instrument(tracing::warn_span!("runtime", runtime = %name))
            .await;
        self.metrics.count_call(name, answer.status());
        json(StatusCode::OK, &EnsureReply::from_response(&answer))
    }

    fn list(&self) -> Response<Full<Bytes>> {
        let runtimes = self
            .runtimes
            .iter()
            .map(|(name, e)| {
                let v = e.state();
                RuntimeEntry {
                    name: name.clone(),
                    state: v.kind().as_str().to_owned(),
                    endpoint: v.endpoint().map(str::to_owned),
                    message: v.message().map(str::to_owned),
                    for_ms: millis(v.for_time()),
                    failures: v.failures(),
                    retry_after_ms: v.retry_after().map(millis),
                    verifying: v.verifying(),
                }
            })
            .collect();
        json(StatusCode::OK, &RuntimesReply { runtimes })
    }
}

/// Compares in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 405, with the `Allow` header HTTP requires.
fn not_allowed(method: &Method, path: &str, allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} is not allowed on {path} (only {allow})"),
        None,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn error(
    status: StatusCode,
    message: &str,
    runtimes: Option<Vec<String>>,
) -> Response<Full<Bytes>> {
    json(
        status,
        &ErrorReply {
            error: message.to_owned(),
            runtimes,
        },
    )
}

/// Serves until `stop` resolves, then stops accepting, lets in-flight
/// requests finish (up to 10 s) and removes the socket file (only if the
/// path still names the socket bound here) and its lock.
pub async fn serve(
    listener: Listener,
    server: Arc<Server>,
    stop: impl std::future::Future<Output = ()>,
) {
    let (stopping, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    conns.spawn(serve_conn(stream, Arc::clone(&server), stop_rx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // The socket file and its lock stay until the requests have drained.
    let closed = listener.close();
    let _ = stopping.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "requests still running after {}s; dropping them",
            DRAIN.as_secs()
        );
        conns.abort_all();
    }
    // Only if it is still the socket bound here; then the lock goes.
    closed.remove();
}

async fn serve_conn<S>(stream: S, server: Arc<Server>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let server = Arc::clone(&server);
        async move { Ok::<_, Infallible>(server.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    if *stop.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }
}

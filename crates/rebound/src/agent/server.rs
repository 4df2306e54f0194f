//! The agent's HTTP/1.1 JSON server (hyper, http1 only).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rebound_ensure::{EnsureMap, Status};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::events::{EventBody, Streams};
pub use super::listener::Listener;
use super::metrics::{Endpoint, Metrics};
use super::protocol::{
    AgentReady, EnsureReply, EnsureRequest, ErrorReply, Handshake, PROTOCOL_VERSION, RuntimeBudget,
    RuntimeEntry, RuntimesReply, capability, event, millis,
};
use super::sse;

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

/// A response body: a whole JSON or text answer, or a watch stream.
pub type Body = Either<Full<Bytes>, EventBody>;

/// What every connection shares.
pub struct Server {
    runtimes: EnsureMap<String>,
    metrics: Metrics,
    /// Required bearer token (always with TCP); never logged.
    token: Option<Vec<u8>>,
    /// The watch streams.
    streams: Streams,
    /// When the server was made (the agent listens from then on).
    since: Instant,
}

impl Server {
    /// A server for these runtimes; `token` is required of every request
    /// when set. Make it once the listener is bound: `agent_ready` counts
    /// from here.
    pub fn new(runtimes: EnsureMap<String>, token: Option<String>) -> Arc<Self> {
        let metrics = Metrics::new(runtimes.keys());
        Arc::new(Self {
            runtimes,
            metrics,
            token: token.map(String::into_bytes),
            streams: Streams::default(),
            since: Instant::now(),
        })
    }

    /// Ends every watch stream (now and from now on), so that a stopping
    /// server can drain its connections. [`serve`] calls it when it stops.
    pub fn close_streams(&self) {
        self.streams.close();
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if !self.authorized(req.headers()) {
            self.metrics.count_unauthorized();
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
                None,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp.map(Either::Left);
        }
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let endpoint = match segments.as_slice() {
            ["v1"] => Endpoint::Handshake,
            ["v1", "runtimes", _, "ensure"] => Endpoint::Ensure,
            ["v1", "runtimes", _, "watch"] => Endpoint::Watch,
            ["v1", "runtimes"] => Endpoint::Runtimes,
            ["v1", "events"] => Endpoint::Events,
            ["metrics"] => Endpoint::Metrics,
            _ => Endpoint::Other,
        };
        self.metrics.count_request(endpoint);
        let resp = match (&method, segments.as_slice()) {
            (&Method::GET, ["v1", "runtimes", name, "watch"]) => self.watch(name),
            (&Method::GET, ["v1", "events"]) => self.events(),
            _ => self
                .answer(&method, &path, &segments, req)
                .await
                .map(Either::Left),
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        resp
    }

    /// The requests answered with a whole body.
    async fn answer(
        &self,
        method: &Method,
        path: &str,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        match (method, segments) {
            (&Method::POST, ["v1", "runtimes", name, "ensure"]) => {
                let name = (*name).to_owned();
                self.ensure(&name, req).await
            }
            (&Method::GET, ["v1"]) => json(StatusCode::OK, &self.handshake()),
            (&Method::GET, ["v1", "runtimes"]) => self.list(),
            (&Method::GET, ["metrics"]) => {
                let mut text = self.metrics.render(&self.runtimes);
                self.metrics.render_streams(&mut text, self.streams.open());
                let mut resp = Response::new(Full::new(Bytes::from(text)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            (_, ["v1", "runtimes", _, "ensure"]) => not_allowed(method, path, "POST"),
            (_, ["v1"])
            | (_, ["v1", "runtimes"])
            | (_, ["v1", "runtimes", _, "watch"])
            | (_, ["v1", "events"])
            | (_, ["metrics"]) => not_allowed(method, path, "GET"),
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {method} {path}"),
                None,
            ),
        }
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

    fn unknown(&self, name: &str) -> Response<Full<Bytes>> {
        error(
            StatusCode::NOT_FOUND,
            &format!("unknown runtime `{name}`"),
            Some(self.runtimes.keys().cloned().collect()),
        )
    }

    fn handshake(&self) -> Handshake {
        Handshake {
            protocol: PROTOCOL_VERSION.to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: [
                capability::ENSURE,
                capability::WATCH,
                capability::EVENTS,
                capability::METRICS,
            ]
            .map(str::to_owned)
            .to_vec(),
            runtimes: self
                .runtimes
                .iter()
                .map(|(name, e)| {
                    let (start, probe) = (e.config().start_timeout(), e.config().probe_timeout());
                    RuntimeBudget {
                        name: name.clone(),
                        start_budget_ms: millis(start.saturating_add(probe)),
                        start_timeout_ms: millis(start),
                        probe_timeout_ms: millis(probe),
                    }
                })
                .collect(),
        }
    }

    fn watch(&self, name: &str) -> Response<Body> {
        match self.runtimes.get(name) {
            Some(runtime) => event_stream(self.streams.watch(name, runtime)),
            None => self.unknown(name).map(Either::Left),
        }
    }

    fn events(&self) -> Response<Body> {
        let ready = AgentReady {
            protocol: PROTOCOL_VERSION.to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            runtimes: self.runtimes.keys().cloned().collect(),
            for_ms: millis(self.since.elapsed()),
        };
        let data = serde_json::to_string(&ready).unwrap_or_else(|_| "{}".to_owned());
        let first = sse::encode(event::AGENT_READY, &data);
        event_stream(self.streams.all(first, self.runtimes.iter()))
    }

    async fn ensure(&self, name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(runtime) = self.runtimes.get(name) else {
            return self.unknown(name);
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
            .map(|(name, e)| RuntimeEntry::from_view(name, &e.state()))
            .collect();
        json(StatusCode::OK, &RuntimesReply { runtimes })
    }
}

/// A `text/event-stream` answer.
fn event_stream(body: EventBody) -> Response<Body> {
    let mut resp = Response::new(Either::Right(body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
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
    server.close_streams();
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

/// Serves one connection over any byte stream (a socket, or an in-memory
/// [`tokio::io::duplex`] pipe in tests and fuzzing) until the client
/// closes it or it fails; the same HTTP/1.1 handling, timeouts included,
/// as each connection [`serve`] accepts. As there, a client that shuts
/// its write side after its request (half-close) still gets the answer.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use rebound::agent::server::{Server, serve_stream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let server = Server::new(rebound_ensure::EnsureMap::new(), Some("s3cret".into()));
/// let (mut client, stream) = tokio::io::duplex(64 * 1024);
/// let serving = tokio::spawn(serve_stream(stream, server));
/// client
///     .write_all(b"GET /v1 HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
///     .await
///     .unwrap();
/// let mut answer = String::new();
/// client.read_to_string(&mut answer).await.unwrap();
/// assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
/// serving.await.unwrap();
/// # }
/// ```
pub async fn serve_stream<S>(stream: S, server: Arc<Server>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Never signalled: the connection ends when the client is done.
    let (_never, stop) = watch::channel(false);
    serve_conn(stream, server, stop).await;
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
        // A client that sends its request and then shuts its write side
        // (`shutdown(SHUT_WR)`, `nc -N`, `curl --unix-socket` piped ...) is
        // still answered: the end of its input does not end the exchange.
        .half_close(true)
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

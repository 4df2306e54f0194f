//! The agent's HTTP/1.1 JSON server (hyper, http1 only).

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rebound_ensure::{EnsureMap, Status};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::addr::Addr;
use super::events::{EventBody, Streams};
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

/// A bound listener.
pub enum Listener {
    /// A Unix socket; the path is removed when the server stops.
    Unix(UnixListener, PathBuf),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `addr`. A Unix socket is created with mode 0600 in place (bound
    /// under a umask that leaves only the owner's read and write, so nobody
    /// can connect before it is private, and a path the system accepts is
    /// never made longer by a temporary name); a stale socket file is
    /// removed, a live one (another agent answers) is an error, and so is a
    /// socket that another agent binds at the same moment (bind never
    /// replaces a file).
    pub async fn bind(addr: &Addr) -> io::Result<Self> {
        match addr {
            Addr::Unix(path) => bind_unix(path).await,
            Addr::Tcp { host, port } => Ok(Listener::Tcp(
                TcpListener::bind((host.as_str(), *port)).await?,
            )),
        }
    }

    /// The bound address (with the real port for `tcp:...:0`).
    pub fn local_addr(&self) -> Addr {
        match self {
            Listener::Unix(_, path) => Addr::Unix(path.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Addr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                Err(_) => Addr::Tcp {
                    host: "?".into(),
                    port: 0,
                },
            },
        }
    }
}

async fn bind_unix(path: &Path) -> io::Result<Listener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another agent is listening on {}", path.display()),
                ));
            }
            tokio::fs::remove_file(path).await?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = bind_private(path)?;
    Ok(Listener::Unix(listener, path.to_owned()))
}

/// Binds a Unix socket that is born with mode 0600: the umask is set to
/// 0177 around `bind` and put back at once. The umask is the process's: the
/// agent binds before it runs any start, so no other file is being created
/// meanwhile. The mode is set again afterwards, for directories whose
/// default ACL overrides the umask.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use rustix::fs::Mode;
    let previous = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(previous);
    let listener = bound.map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another agent is listening on {}", path.display()),
        ),
        _ => e,
    })?;
    let placed = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
        .and_then(|()| UnixListener::from_std(listener));
    if placed.is_err() {
        let _ = std::fs::remove_file(path);
    }
    placed
}

/// Serves until `stop` resolves, then stops accepting, lets in-flight
/// requests finish (up to 10 s) and removes the socket file.
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
            accepted = accept(&listener) => match accepted {
                Ok(conn) => {
                    let (server, rx) = (Arc::clone(&server), stop_rx.clone());
                    match conn {
                        Conn::Unix(s) => conns.spawn(serve_conn(s, server, rx)),
                        Conn::Tcp(s) => conns.spawn(serve_conn(s, server, rx)),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let socket = match listener {
        Listener::Unix(l, path) => {
            drop(l);
            Some(path)
        }
        Listener::Tcp(l) => {
            drop(l);
            None
        }
    };
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
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> io::Result<Conn> {
    match listener {
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
    }
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

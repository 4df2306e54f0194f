//! The host side's client of `rebound agent`: one HTTP/1.1 request per
//! connection, over a Unix socket, TCP, vsock, or the hybrid vsock of
//! Firecracker and Cloud Hypervisor (`hvsock:PATH:PORT`: the VMM's Unix
//! socket, a `CONNECT PORT\n` / `OK <n>\n` handshake, then the protocol).
//!
//! The same calls as `rebound ensure`, for host programs written in Rust:
//!
//! ```no_run
//! use std::time::Duration;
//! use rebound::agent::client::{CallError, Client};
//!
//! # async fn demo() -> Result<(), CallError> {
//! // A Firecracker guest whose agent listens on vsock port 7070.
//! let agent = Client::new("hvsock:/run/firecracker/v.sock:7070".parse().unwrap(), Some("TOKEN".into()));
//! loop {
//!     match agent.ensure("docker", true, Duration::from_secs(5)).await {
//!         Ok(reply) if reply.ready => break println!("docker at {}", reply.endpoint),
//!         Ok(_) | Err(CallError::Unreachable(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::io;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::addr::Addr;
use super::protocol::{EnsureReply, EnsureRequest, ErrorReply, Handshake, RuntimesReply};
use super::sse;

/// How long the VMM gets to answer a hybrid vsock `CONNECT` (ArcBox's
/// per-call deadline): a VMM or guest that never answers is "agent
/// unreachable", never a hang.
pub const HVSOCK_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest handshake answer read (`OK 4294967295\n` is 14 bytes).
const MAX_HANDSHAKE_REPLY: usize = 64;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The agent could not be reached, or the connection broke: worth
    /// trying again (it may be starting, or its VM booting).
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// The agent refused the request (4xx): trying again will not help.
    #[error("the agent refused ({status}): {}", reply.error)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The agent's explanation.
        reply: ErrorReply,
    },
    /// Something else went wrong for good (permission denied on the
    /// socket, an address that names no peer, an answer that is not the
    /// protocol).
    #[error("{0}")]
    Fatal(String),
}

/// A client for one agent.
///
/// A whole round trip against an agent served in this process, on a Unix
/// socket:
///
/// ```
/// use std::time::Duration;
/// use rebound::agent::{client::Client, config::AgentConfig, listener::Listener, runtime, server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let up = dir.path().join("up");
/// let yaml = r#"
/// runtimes:
///   quick:
///     start:
///       steps:
///         - id: touch
///           uses: init.run
///           with: { command: ["touch", "UP"] }
///     probe: { uses: init.wait_file, with: { path: "UP" }, timeout: 1s }
///     endpoint: ready
/// "#;
/// let config = AgentConfig::parse(&yaml.replace("UP", &up.display().to_string()), "agent.yaml").unwrap();
/// let addr = format!("unix:{}", dir.path().join("agent.sock").display()).parse().unwrap();
/// let listener = Listener::bind(&addr).await.unwrap();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let agent = tokio::spawn(server::serve(
///     listener,
///     server::Server::new(runtime::build(&config), None),
///     async { let _ = stopped.await; },
/// ));
///
/// let client = Client::new(addr, None);
/// let endpoint = loop {
///     let reply = client.ensure("quick", true, Duration::from_secs(5)).await.unwrap();
///     if reply.ready {
///         break reply.endpoint;
///     }
///     tokio::time::sleep(Duration::from_millis(50)).await;
/// };
/// assert_eq!(endpoint, "ready");
/// let listed = client.runtimes(Duration::from_secs(5)).await.unwrap();
/// assert_eq!(listed.runtimes[0].state, "ready");
/// stop.send(()).unwrap();
/// agent.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    addr: Addr,
    token: Option<String>,
}

impl Client {
    /// A client for `addr`, sending `token` as a bearer token when set.
    pub fn new(addr: Addr, token: Option<String>) -> Self {
        Self { addr, token }
    }

    /// The agent's address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// `POST /v1/runtimes/{name}/ensure`, bounded by `timeout` (connection,
    /// handshake and answer together).
    pub async fn ensure(
        &self,
        name: &str,
        start_if_needed: bool,
        timeout: Duration,
    ) -> Result<EnsureReply, CallError> {
        let body = serde_json::to_vec(&EnsureRequest { start_if_needed })
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        let path = format!("/v1/runtimes/{name}/ensure");
        self.call(Method::POST, &path, body, timeout).await
    }

    /// `GET /v1/runtimes`: every runtime's state, bounded by `timeout`.
    pub async fn runtimes(&self, timeout: Duration) -> Result<RuntimesReply, CallError> {
        self.call(Method::GET, "/v1/runtimes", Vec::new(), timeout)
            .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(timeout, self.request(method, path, body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Unreachable(format!(
                "the agent did not answer within {}",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
                ))
            ))),
        }
    }

    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, CallError> {
        let stream = self.connect().await?;
        let (status, bytes) = self.exchange(stream, method, path, body).await?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&bytes).map_err(|e| {
                CallError::Fatal(format!("the agent's answer is not the protocol: {e}"))
            });
        }
        let reply = serde_json::from_slice::<ErrorReply>(&bytes).unwrap_or_else(|_| ErrorReply {
            error: String::from_utf8_lossy(&bytes).into_owned(),
            runtimes: None,
        });
        if status.is_server_error() {
            return Err(CallError::Unreachable(format!(
                "agent error {status}: {}",
                reply.error
            )));
        }
        Err(CallError::Refused {
            status: status.as_u16(),
            reply,
        })
    }

    async fn exchange<S>(
        &self,
        stream: S,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CallError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let content_type = (!body.is_empty()).then_some("application/json");
        let req = self.build(method, path, content_type, Full::new(Bytes::from(body)))?;
        let (resp, driver) = send(stream, req).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| CallError::Unreachable(format!("reading the answer failed: {e}")))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

/// A byte stream to the agent.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

impl Client {
    /// `GET /v1`, the handshake, bounded by `timeout`: `Ok(None)` when the
    /// agent answers 404 (an agent from before the handshake, which only
    /// serves `ensure`); [`CallError::Fatal`] when the answer is not a
    /// handshake.
    pub async fn handshake(&self, timeout: Duration) -> Result<Option<Handshake>, CallError> {
        let call = async {
            let (status, mut body, driver) = self.get("/v1").await?;
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    CallError::Unreachable(format!("reading the answer failed: {e}"))
                })?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > 1 << 20 {
                        return Err(CallError::Fatal(
                            "the agent's handshake is larger than 1 MiB".into(),
                        ));
                    }
                    bytes.extend_from_slice(data);
                }
            }
            driver.abort();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status != StatusCode::OK {
                return Err(refusal(status, &bytes));
            }
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CallError::Fatal(format!(
                    "the agent's handshake (GET /v1) is not the protocol: {e}"
                ))
            })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Unreachable(format!(
                "the agent did not answer within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    /// `GET /v1/runtimes/{name}/watch`: the runtime's events, its current
    /// state first. Connecting is bounded by `timeout`; the stream is not.
    pub async fn watch(&self, name: &str, timeout: Duration) -> Result<EventStream, CallError> {
        self.stream(&format!("/v1/runtimes/{name}/watch"), timeout)
            .await
    }

    /// `GET /v1/events`: `agent_ready`, then every runtime's events.
    pub async fn events(&self, timeout: Duration) -> Result<EventStream, CallError> {
        self.stream("/v1/events", timeout).await
    }

    async fn stream(&self, path: &str, timeout: Duration) -> Result<EventStream, CallError> {
        let opened = tokio::time::timeout(timeout, self.get(path)).await;
        let (status, body, driver) = opened.map_err(|_| {
            CallError::Unreachable(format!(
                "the agent did not answer within {}",
                humantime::format_duration(timeout)
            ))
        })??;
        if status != StatusCode::OK {
            let bytes = Limited::new(body, 1 << 20)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            driver.abort();
            return Err(refusal(status, &bytes));
        }
        Ok(EventStream {
            body,
            decoder: sse::Decoder::default(),
            pending: std::collections::VecDeque::new(),
            driver,
        })
    }

    /// A byte stream to the agent over its transport (for hybrid vsock,
    /// after the VMM's `CONNECT` handshake).
    async fn connect(&self) -> Result<Box<dyn Io>, CallError> {
        Ok(match &self.addr {
            Addr::Unix(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_error)?,
            ),
            Addr::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_error)?;
                // Events are small and each should leave at once.
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
            Addr::Vsock { cid, port } => {
                let Some(cid) = cid else {
                    return Err(CallError::Fatal(format!(
                        "{}: {}",
                        self.addr,
                        self.addr.unconnectable().unwrap_or("names no peer")
                    )));
                };
                Box::new(
                    tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port))
                        .await
                        .map_err(vsock_connect_error)?,
                )
            }
            Addr::Hvsock { path: vmm, port } => {
                let mut stream = tokio::net::UnixStream::connect(vmm)
                    .await
                    .map_err(connect_error)?;
                hvsock_handshake(&mut stream, *port, HVSOCK_HANDSHAKE_TIMEOUT).await?;
                Box::new(stream)
            }
        })
    }

    /// One GET; the status, the body as it arrives, and the task driving
    /// the connection (abort it when done).
    async fn get(
        &self,
        path: &str,
    ) -> Result<
        (
            StatusCode,
            hyper::body::Incoming,
            tokio::task::JoinHandle<()>,
        ),
        CallError,
    > {
        let stream = self.connect().await?;
        let req = self.build(
            Method::GET,
            path,
            None,
            http_body_util::Empty::<Bytes>::new(),
        )?;
        let (resp, driver) = send(stream, req).await?;
        Ok((resp.status(), resp.into_body(), driver))
    }

    /// A request to the agent: `Host`, `Content-Type` when given, and
    /// `Authorization: Bearer TOKEN` when the client has a token.
    fn build<B>(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: B,
    ) -> Result<Request<B>, CallError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "rebound-agent");
        if let Some(content_type) = content_type {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let mut req = req
            .body(body)
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                CallError::Fatal("the token holds characters a header cannot carry".into())
            })?;
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        Ok(req)
    }
}

/// Sends `req` as the one request of an HTTP/1.1 connection over `stream`:
/// the answer (its body still to read) and the task driving the connection
/// (abort it when done).
async fn send<S, B>(
    stream: S,
    req: Request<B>,
) -> Result<
    (
        hyper::Response<hyper::body::Incoming>,
        tokio::task::JoinHandle<()>,
    ),
    CallError,
>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| CallError::Unreachable(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| CallError::Unreachable(format!("request failed: {e}")))?;
    Ok((resp, driver))
}

/// The error of a non-200 answer.
fn refusal(status: StatusCode, bytes: &[u8]) -> CallError {
    let reply = serde_json::from_slice::<ErrorReply>(bytes).unwrap_or_else(|_| ErrorReply {
        error: String::from_utf8_lossy(bytes).into_owned(),
        runtimes: None,
    });
    if status.is_server_error() {
        return CallError::Unreachable(format!("agent error {status}: {}", reply.error));
    }
    CallError::Refused {
        status: status.as_u16(),
        reply,
    }
}

/// An open event stream (`text/event-stream`) from the agent.
pub struct EventStream {
    body: hyper::body::Incoming,
    decoder: sse::Decoder,
    pending: std::collections::VecDeque<sse::Event>,
    driver: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// The next event; `Ok(None)` when the agent ended the stream (it is
    /// stopping), an error when the connection broke.
    pub async fn next(&mut self) -> Result<Option<sse::Event>, CallError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(CallError::Unreachable(format!(
                        "the event stream broke: {e}"
                    )));
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.pending.extend(self.decoder.push(data));
                    }
                }
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The hybrid vsock handshake on a fresh connection to the VMM's socket:
/// writes `CONNECT port\n` and reads the answer byte by byte up to its
/// `\n` (so not one byte of the protocol that follows is consumed), within
/// `limit`. Anything but `OK <number>\n` (the VMM closing the connection
/// because the guest does not listen on `port`, another answer, silence) is
/// [`CallError::Unreachable`], naming what came.
///
/// ```
/// use std::time::Duration;
/// use rebound::agent::client::hvsock_handshake;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (mut host, mut vmm) = tokio::net::UnixStream::pair().unwrap();
/// let stand_in = tokio::spawn(async move {
///     let mut line = [0u8; 13];
///     vmm.read_exact(&mut line).await.unwrap();
///     assert_eq!(&line, b"CONNECT 7070\n");
///     vmm.write_all(b"OK 1073741824\nHTTP").await.unwrap();
///     vmm
/// });
/// hvsock_handshake(&mut host, 7070, Duration::from_secs(5)).await.unwrap();
/// let mut next = [0u8; 4];
/// host.read_exact(&mut next).await.unwrap();
/// assert_eq!(&next, b"HTTP"); // the handshake read nothing beyond its line
/// drop(stand_in.await.unwrap());
/// # }
/// ```
pub async fn hvsock_handshake<S>(
    stream: &mut S,
    port: u32,
    limit: Duration,
) -> Result<(), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        stream
            .write_all(format!("CONNECT {port}\n").as_bytes())
            .await
            .map_err(|e| {
                CallError::Unreachable(format!("hybrid vsock: cannot send CONNECT {port}: {e}"))
            })?;
        let mut line = Vec::with_capacity(16);
        loop {
            let byte = match stream.read_u8().await {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(CallError::Unreachable(format!(
                        "hybrid vsock: the VMM closed the connection after CONNECT {port}{} \
                         (is the guest's agent listening on vsock port {port}?)",
                        if line.is_empty() {
                            String::new()
                        } else {
                            format!(" having sent {:?}", String::from_utf8_lossy(&line))
                        }
                    )));
                }
                Err(e) => {
                    return Err(CallError::Unreachable(format!(
                        "hybrid vsock: reading the answer to CONNECT {port}: {e}"
                    )));
                }
            };
            if byte == b'\n' {
                break;
            }
            line.push(byte);
            if line.len() > MAX_HANDSHAKE_REPLY {
                return Err(CallError::Unreachable(format!(
                    "hybrid vsock: the answer to CONNECT {port} is not `OK <port>`: \
                     more than {MAX_HANDSHAKE_REPLY} bytes without a newline ({:?}...)",
                    String::from_utf8_lossy(&line)
                )));
            }
        }
        let ok = line
            .strip_prefix(b"OK ")
            .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
        if !ok {
            return Err(CallError::Unreachable(format!(
                "hybrid vsock: the VMM answered {:?} to CONNECT {port}, expected `OK <port>`",
                String::from_utf8_lossy(&line)
            )));
        }
        Ok(())
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Unreachable(format!(
            "hybrid vsock: no answer to CONNECT {port} within {}",
            humantime::format_duration(limit)
        ))),
    }
}

fn connect_error(e: io::Error) -> CallError {
    use io::ErrorKind::*;
    match e.kind() {
        // The agent is not there yet, or restarting.
        NotFound | ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe
        | TimedOut | Interrupted | UnexpectedEof | WouldBlock | HostUnreachable
        | NetworkUnreachable => CallError::Unreachable(format!("cannot connect to the agent: {e}")),
        _ => CallError::Fatal(format!("cannot connect to the agent: {e}")),
    }
}

fn vsock_connect_error(e: io::Error) -> CallError {
    use rustix::io::Errno;
    match Errno::from_io_error(&e) {
        // No vsock on this machine: waiting will not bring it.
        Some(Errno::AFNOSUPPORT) => CallError::Fatal(format!(
            "cannot connect over vsock: this system has no vsock (address family not \
             supported; on a host load vhost_vsock): {e}"
        )),
        // A guest that is not up yet (its CID unknown, nothing on the
        // port, or no transport until it boots): unreachable for now.
        Some(Errno::NODEV | Errno::ADDRNOTAVAIL) => {
            CallError::Unreachable(format!("cannot connect to the agent over vsock: {e}"))
        }
        _ => connect_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn handshake_against(answer: &'static [u8]) -> Result<(), CallError> {
        let (mut host, mut vmm) = tokio::net::UnixStream::pair().unwrap();
        let stand_in = tokio::spawn(async move {
            let mut line = [0u8; 10];
            vmm.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"CONNECT 5\n");
            vmm.write_all(answer).await.unwrap();
            // Then the stand-in closes its end.
        });
        let result = hvsock_handshake(&mut host, 5, Duration::from_secs(5)).await;
        stand_in.await.unwrap();
        result
    }

    fn unreachable(result: Result<(), CallError>) -> String {
        match result {
            Err(CallError::Unreachable(why)) => why,
            other => panic!("expected unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn handshake_accepts_ok_and_refuses_anything_else() {
        handshake_against(b"OK 1073741824\n").await.unwrap();
        let why = unreachable(handshake_against(b"NOPE\n").await);
        assert!(why.contains("answered \"NOPE\" to CONNECT 5"), "{why}");
        let why = unreachable(handshake_against(b"OK \n").await);
        assert!(why.contains("expected `OK <port>`"), "{why}");
        let why = unreachable(handshake_against(b"OK 12").await);
        assert!(why.contains("closed the connection"), "{why}");
        assert!(why.contains("having sent \"OK 12\""), "{why}");
        let why = unreachable(handshake_against(b"").await);
        assert!(why.contains("listening on vsock port 5"), "{why}");
        let why = unreachable(handshake_against(&[b'x'; 100]).await);
        assert!(why.contains("more than 64 bytes"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_vmm_is_unreachable_after_the_limit() {
        let (mut host, _vmm) = tokio::net::UnixStream::pair().unwrap();
        let why = unreachable(hvsock_handshake(&mut host, 5, HVSOCK_HANDSHAKE_TIMEOUT).await);
        assert!(why.contains("no answer to CONNECT 5 within 5s"), "{why}");
    }
}

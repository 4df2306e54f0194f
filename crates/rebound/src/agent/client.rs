//! The host side's HTTP client: one request per connection, over a Unix
//! socket or TCP.

use std::io;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::addr::Addr;
use super::protocol::{EnsureReply, EnsureRequest, ErrorReply, Handshake};
use super::sse;

/// Why a call got no answer.
#[derive(Debug)]
pub enum CallError {
    /// The agent could not be reached, or the connection broke: worth
    /// trying again (it may be starting).
    Unreachable(String),
    /// The agent refused the request (4xx): trying again will not help.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The agent's explanation.
        reply: ErrorReply,
    },
    /// Something else went wrong for good (permission denied on the
    /// socket, an answer that is not the protocol).
    Fatal(String),
}

/// A client for one agent.
pub struct Client {
    addr: Addr,
    token: Option<String>,
}

impl Client {
    /// A client for `addr`, sending `token` as a bearer token when set.
    pub fn new(addr: Addr, token: Option<String>) -> Self {
        Self { addr, token }
    }

    /// `POST /v1/runtimes/{name}/ensure`, bounded by `timeout`.
    pub async fn ensure(
        &self,
        name: &str,
        start_if_needed: bool,
        timeout: Duration,
    ) -> Result<EnsureReply, CallError> {
        let body = serde_json::to_vec(&EnsureRequest { start_if_needed })
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        let path = format!("/v1/runtimes/{name}/ensure");
        match tokio::time::timeout(timeout, self.post(&path, body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Unreachable(format!(
                "the agent did not answer within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<EnsureReply, CallError> {
        let (status, bytes) = match &self.addr {
            Addr::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_error)?;
                self.exchange(stream, path, body).await?
            }
            Addr::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_error)?;
                self.exchange(stream, path, body).await?
            }
        };
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
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CallError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Unreachable(format!("HTTP handshake failed: {e}")))?;
        let driver = tokio::spawn(conn);
        let mut req = Request::post(path)
            .header(header::HOST, "rebound-agent")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                CallError::Fatal("the token holds characters a header cannot carry".into())
            })?;
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Unreachable(format!("request failed: {e}")))?;
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
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Unreachable(format!("HTTP handshake failed: {e}")))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::get(path)
            .header(header::HOST, "rebound-agent")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                CallError::Fatal("the token holds characters a header cannot carry".into())
            })?;
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Unreachable(format!("request failed: {e}")))?;
        Ok((resp.status(), resp.into_body(), driver))
    }
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

fn connect_error(e: io::Error) -> CallError {
    use io::ErrorKind::*;
    match e.kind() {
        // The agent is not there yet, or restarting.
        NotFound | ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe
        | TimedOut | Interrupted | UnexpectedEof | WouldBlock => {
            CallError::Unreachable(format!("cannot connect to the agent: {e}"))
        }
        _ => CallError::Fatal(format!("cannot connect to the agent: {e}")),
    }
}

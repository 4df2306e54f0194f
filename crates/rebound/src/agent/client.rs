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
use super::protocol::{EnsureReply, EnsureRequest, ErrorReply};

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

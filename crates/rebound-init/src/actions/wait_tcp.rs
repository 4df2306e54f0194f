//! `init.wait_tcp`: wait until a TCP port accepts a connection.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::poll::{self, Check};
use super::{ActionContext, ActionError, duration, validate};

/// What `init.wait_tcp` (and `init.wait_unix`) waits for.
///
/// ```
/// use rebound_init::actions::wait_tcp::{SocketState, WaitTcp};
/// let w: WaitTcp =
///     serde_json::from_str(r#"{"host": "127.0.0.1", "port": 8080, "state": "closed"}"#).unwrap();
/// assert_eq!(w.state, Some(SocketState::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SocketState {
    /// A connection is accepted (the default).
    Open,
    /// Connections are no longer accepted (a drain or a shutdown is over).
    Closed,
}

/// The `with:` block of `init.wait_tcp`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation.
///
/// ```
/// use rebound_init::actions::wait_tcp::WaitTcp;
/// let w: WaitTcp = serde_json::from_str(r#"{"host": "127.0.0.1", "port": 5432}"#).unwrap();
/// assert_eq!(w.port, 5432);
/// let err = serde_json::from_str::<WaitTcp>(r#"{"host": "db", "port": 70000}"#).unwrap_err();
/// assert!(err.to_string().contains("port must be 1-65535, got 70000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitTcp {
    /// Host name or IP address to connect to; an IPv6 address may be
    /// written in brackets (`[::1]`), which are dropped.
    #[serde(deserialize_with = "validate::host")]
    #[schemars(length(min = 1))]
    pub host: String,
    /// TCP port, 1-65535.
    #[serde(deserialize_with = "validate::port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
    /// `open` (default): wait until a connection is accepted; `closed`:
    /// until none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SocketState>,
}

/// The first pause between connection attempts.
const FIRST_DELAY: Duration = Duration::from_millis(1);
/// The longest pause while the host resolves but refuses connections, for
/// the first [`FAST_PHASE`] of a wait. Connecting to a closed port is cheap
/// (one SYN answered by RST: tens of microseconds, a few hundred a second
/// is well under 1% of a core), so polling every few milliseconds notices
/// an opening port almost at once (benches/wait_tcp.rs: p50 goal 5 ms).
const MAX_DELAY: Duration = Duration::from_millis(5);
/// How long the fast polling lasts; a wait that goes on longer than this is
/// for something slow to start, and polls at [`SLOW_MAX_DELAY`].
const FAST_PHASE: Duration = Duration::from_secs(60);
/// The longest pause after [`FAST_PHASE`].
const SLOW_MAX_DELAY: Duration = Duration::from_millis(20);
/// The longest pause while the host name does not resolve (DNS is not free).
const MAX_DELAY_DNS: Duration = Duration::from_millis(250);
/// Bound on one connect (a black-holed SYN would otherwise hang for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl WaitTcp {
    /// `tcp HOST:PORT`, `tcp HOST:PORT (until closed)`, for messages.
    pub(crate) fn describe(&self) -> String {
        let until = if self.state == Some(SocketState::Closed) {
            " (until closed)"
        } else {
            ""
        };
        if self.host.contains(':') {
            format!("tcp [{}]:{}{until}", self.host, self.port)
        } else {
            format!("tcp {}:{}{until}", self.host, self.port)
        }
    }

    /// Polls until a connection is accepted (or, `state: closed`, is not)
    /// or `timeout` runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        if self.state == Some(SocketState::Closed) {
            return poll::until(ctx, &self.describe(), self.timeout, poll::FAST, || {
                self.check_closed()
            })
            .await;
        }
        let mut last: Option<io::Error> = None;
        let poll = self.poll(&mut last, ctx);
        poll::within(self.timeout, poll)
            .await
            .unwrap_or_else(|limit| {
                Err(ActionError::timed_out(format!(
                    "{} not accepting connections after {}{}",
                    self.describe(),
                    humantime::format_duration(limit),
                    last.map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                )))
            })
    }

    /// Closed: any failure to connect (refused, unreachable, a name that
    /// no longer resolves, a connect that times out) means closed.
    async fn check_closed(&self) -> Check {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) if !is_self_connect(&stream) => {
                Check::NotYet("still accepting connections".into())
            }
            _ => Check::Ready,
        }
    }

    async fn poll(
        &self,
        last: &mut Option<io::Error>,
        ctx: &ActionContext,
    ) -> Result<(), ActionError> {
        let started = tokio::time::Instant::now();
        let mut delay = FIRST_DELAY;
        loop {
            let refused_cap = if started.elapsed() < FAST_PHASE {
                MAX_DELAY
            } else {
                SLOW_MAX_DELAY
            };
            let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
            let cap = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(stream)) if !is_self_connect(&stream) => return Ok(()),
                Ok(Ok(_)) => {
                    *last = Some(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "connected to itself (nothing listens on the port)",
                    ));
                    refused_cap
                }
                Ok(Err(e)) => {
                    let cap = if is_resolution_error(&e) {
                        MAX_DELAY_DNS
                    } else {
                        refused_cap
                    };
                    *last = Some(e);
                    cap
                }
                Err(_) => {
                    *last = Some(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                    refused_cap
                }
            };
            if let Some(e) = last {
                ctx.last_problem.set(e.to_string());
            }
            tokio::time::sleep(delay.min(cap)).await;
            delay = (delay * 2).min(cap);
        }
    }
}

/// Whether a loopback connection is to itself: the kernel handed the
/// connecting socket the very port it connects to (a port in the ephemeral
/// range), and TCP's simultaneous open joined it with itself. Nothing
/// listens there, so it is not "ready".
fn is_self_connect(stream: &tokio::net::TcpStream) -> bool {
    matches!(
        (stream.local_addr(), stream.peer_addr()),
        (Ok(local), Ok(peer)) if local == peer
    )
}

/// Whether a connect error came from name resolution rather than the socket.
fn is_resolution_error(e: &io::Error) -> bool {
    // tokio reports getaddrinfo failures as io::ErrorKind::Uncategorized /
    // Other with the resolver's text; socket errors carry an OS error code.
    e.raw_os_error().is_none()
        && !matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn succeeds_once_the_port_opens() {
        let port = free_port();
        let w = WaitTcp {
            host: "127.0.0.1".into(),
            port,
            timeout: Some(Duration::from_secs(10)),
            state: None,
        };
        let opener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let _ = l.accept().await;
        });
        w.attempt(&quiet_ctx()).await.unwrap();
        opener.await.unwrap();
    }

    // Regression: a wait on a closed loopback port in the ephemeral range
    // could "succeed" when the kernel gave the connecting socket that very
    // port. Here a socket bound to a port connects to the same port, which
    // is such a self-connect.
    #[tokio::test]
    async fn a_self_connect_is_recognised() {
        let port = free_port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        assert!(is_self_connect(&stream));
    }

    #[tokio::test]
    async fn a_connection_to_a_listener_is_not_a_self_connect() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        assert!(!is_self_connect(&stream));
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_the_target() {
        let port = free_port();
        let w = WaitTcp {
            host: "127.0.0.1".into(),
            port,
            timeout: Some(Duration::from_secs(2)),
            state: None,
        };
        let ctx = quiet_ctx();
        let err = w.attempt(&ctx).await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(err.kind(), super::super::ActionErrorKind::Transient);
        let msg = err.to_string();
        assert!(msg.contains(&format!("tcp 127.0.0.1:{port}")), "{msg}");
        assert!(msg.contains("after 2s"), "{msg}");
        // Whoever waits on the attempt sees the same last problem.
        let problem = ctx.last_problem.get().unwrap();
        assert!(problem.contains("refused"), "{problem}");
    }

    fn closed(port: u16, timeout: Option<Duration>) -> WaitTcp {
        WaitTcp {
            host: "127.0.0.1".into(),
            port,
            timeout,
            state: Some(SocketState::Closed),
        }
    }

    // Issue 12: `state: closed`, ready at once, once the listener goes,
    // never (the port stays open).
    #[tokio::test]
    async fn closed_is_ready_at_once_on_a_closed_port() {
        closed(free_port(), Some(Duration::from_secs(5)))
            .attempt(&quiet_ctx())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn closed_waits_for_the_listener_to_go() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let w = closed(port, Some(Duration::from_secs(10)));
        let ctx = quiet_ctx();
        let problems = ctx.last_problem.clone();
        let waiter = tokio::spawn(async move { w.attempt(&ctx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        assert_eq!(problems.get().unwrap(), "still accepting connections");
        drop(l);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn closed_times_out_while_the_port_stays_open() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let err = closed(port, Some(Duration::from_millis(200)))
            .attempt(&quiet_ctx())
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.message(),
            format!(
                "tcp 127.0.0.1:{port} (until closed) not ready after 200ms (still accepting connections)"
            )
        );
        drop(l);
    }

    #[test]
    fn rejects_unknown_fields_and_empty_host() {
        let err = serde_json::from_str::<WaitTcp>(r#"{"host": "a", "port": 1, "prot": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `prot`"), "{err}");
        let err = serde_json::from_str::<WaitTcp>(r#"{"host": " ", "port": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`host` must not be empty"), "{err}");
        let err = serde_json::from_str::<WaitTcp>(r#"{"host": "a", "port": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("port must be 1-65535, got 0"), "{err}");
    }
}

//! `init.wait_unix`: wait until a Unix stream socket accepts a connection.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::poll::{self, Check};
use super::wait_tcp::SocketState;
use super::{ActionContext, ActionError, duration, validate};

/// The `with:` block of `init.wait_unix`.
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
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("api.sock");
/// let _listener = tokio::net::UnixListener::bind(&path)?;
/// let with = serde_json::json!({ "path": path, "timeout": "5s" });
/// let action = ActionSpec::deserialize_params("init.wait_unix", with)?;
/// assert_eq!(action.describe(), format!("unix {}", path.display()));
/// action.attempt(&ActionContext::new("api", Arc::new(|_, _, _| {}))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUnix {
    /// The socket's path.
    #[serde(deserialize_with = "validate::path")]
    #[schemars(with = "String", length(min = 1))]
    pub path: PathBuf,
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

/// Bound on one connect (a listener whose backlog is full blocks it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl WaitUnix {
    /// `unix PATH`, for messages.
    pub(crate) fn describe(&self) -> String {
        if self.state == Some(SocketState::Closed) {
            format!("unix {} (until closed)", self.path.display())
        } else {
            format!("unix {}", self.path.display())
        }
    }

    /// Polls until a connection is accepted or `timeout` runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        poll::until(ctx, &self.describe(), self.timeout, poll::FAST, || {
            self.check()
        })
        .await
    }

    async fn check(&self) -> Check {
        let connect = tokio::net::UnixStream::connect(&self.path);
        let accepted = tokio::time::timeout(CONNECT_TIMEOUT, connect).await;
        match (self.state, accepted) {
            (Some(SocketState::Closed), Ok(Ok(_))) => {
                Check::NotYet("still accepting connections".into())
            }
            (Some(SocketState::Closed), _) => Check::Ready,
            (_, Ok(Ok(_))) => Check::Ready,
            (_, Ok(Err(e))) => Check::NotYet(not_ready_reason(&e)),
            (_, Err(_)) => Check::NotYet("connect timed out".into()),
        }
    }
}

/// Why a connect failed, in words: `not found`, `connection refused
/// (nothing listens on the socket)` (a socket left behind, or a file that
/// is no socket), or the system's text.
fn not_ready_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found".into(),
        io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on the socket)".into()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    fn wait(path: PathBuf, timeout: Option<Duration>) -> WaitUnix {
        WaitUnix {
            path,
            timeout,
            state: None,
        }
    }

    #[tokio::test]
    async fn ready_at_once_when_a_listener_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = tokio::net::UnixListener::bind(&path).unwrap();
        wait(path, Some(Duration::from_secs(5)))
            .attempt(&quiet_ctx())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn ready_once_the_socket_is_bound_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let w = wait(path.clone(), None);
        let waiter = tokio::spawn(async move { w.attempt(&quiet_ctx()).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiter.is_finished());
        let _l = tokio::net::UnixListener::bind(&path).unwrap();
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn never_ready_times_out_with_the_last_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let err = wait(path.clone(), Some(Duration::from_secs(1)))
            .attempt(&quiet_ctx())
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.message(),
            format!("unix {} not ready after 1s (not found)", path.display())
        );

        // A socket file left behind by a server that is gone: refused.
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(l);
        let err = wait(path, Some(Duration::from_secs(1)))
            .attempt(&quiet_ctx())
            .await
            .unwrap_err();
        assert!(
            err.message()
                .ends_with("(connection refused (nothing listens on the socket))"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_regular_file_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, b"x").unwrap();
        let err = wait(path, Some(Duration::from_millis(50)))
            .attempt(&quiet_ctx())
            .await
            .unwrap_err();
        assert!(err.message().contains("(connection refused"), "{err}");
    }

    #[tokio::test]
    async fn closed_waits_for_the_listener_to_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let mut w = wait(path.clone(), Some(Duration::from_secs(5)));
        w.state = Some(SocketState::Closed);
        w.attempt(&quiet_ctx()).await.unwrap();
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        w.timeout = Some(Duration::from_millis(100));
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(
            err.message()
                .ends_with("(until closed) not ready after 100ms (still accepting connections)"),
            "{err}"
        );
        w.timeout = Some(Duration::from_secs(10));
        let waiter = tokio::spawn(async move { w.attempt(&quiet_ctx()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(l);
        waiter.await.unwrap().unwrap();
    }

    #[test]
    fn rejects_an_empty_path_and_unknown_fields() {
        let err = serde_json::from_str::<WaitUnix>(r#"{"path": ""}"#).unwrap_err();
        assert!(
            err.to_string().contains("`path` must not be empty"),
            "{err}"
        );
        let err = serde_json::from_str::<WaitUnix>(r#"{"path": "/x", "port": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}

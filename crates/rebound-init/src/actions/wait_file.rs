//! `init.wait_file`: wait until a file exists (and optionally is not empty).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::poll::{self, Check};
use super::{ActionContext, ActionError, duration, validate};

/// What `init.wait_file` waits for.
///
/// ```
/// use rebound_init::actions::wait_file::{FileState, WaitFile};
/// let w: WaitFile = serde_json::from_str(r#"{"path": "/run/app.pid", "state": "absent"}"#).unwrap();
/// assert_eq!(w.state, Some(FileState::Absent));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// The file exists (the default; and has a byte with `non_empty`).
    Present,
    /// The file is gone (a pid or lock file removed at shutdown).
    Absent,
}

/// The `with:` block of `init.wait_file`.
///
/// `timeout` bounds this action's polling within one attempt (a bare
/// integer is seconds); without it the action polls until the step's own
/// timeout or cancellation.
///
/// ```
/// use std::time::Duration;
/// use rebound_init::actions::wait_file::WaitFile;
/// let w: WaitFile =
///     serde_json::from_str(r#"{"path": "/run/ready", "non_empty": true, "timeout": 30}"#).unwrap();
/// assert!(w.non_empty);
/// assert_eq!(w.timeout, Some(Duration::from_secs(30)));
/// let err = serde_json::from_str::<WaitFile>(r#"{"path": " "}"#).unwrap_err();
/// assert!(err.to_string().contains("`path` must not be empty"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitFile {
    /// The file to wait for.
    #[serde(deserialize_with = "validate::path")]
    #[schemars(with = "String", length(min = 1))]
    pub path: PathBuf,
    /// Also wait until the file has at least one byte (default false).
    #[serde(default)]
    pub non_empty: bool,
    /// How long one attempt polls before it fails (humantime or seconds).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
    /// `present` (default): wait until the file exists; `absent`: until it
    /// is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FileState>,
}

/// The pauses while waiting for a file to appear: 1 ms doubling to 20 ms.
const PRESENT: poll::Pace = poll::Pace {
    first: Duration::from_millis(1),
    max: Duration::from_millis(20),
    slow_max: Duration::from_millis(20),
};

impl WaitFile {
    /// `file PATH`, for messages.
    pub(crate) fn describe(&self) -> String {
        if self.state == Some(FileState::Absent) {
            format!("file {} (until absent)", self.path.display())
        } else if self.non_empty {
            format!("file {} (non-empty)", self.path.display())
        } else {
            format!("file {}", self.path.display())
        }
    }

    /// Present (and not empty, if asked).
    fn check_present(&self) -> Check {
        match std::fs::metadata(&self.path) {
            Ok(meta) if !self.non_empty || meta.len() > 0 => Check::Ready,
            Ok(_) => Check::NotYet("empty".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::NotYet("not found".into()),
            Err(e) => Check::NotYet(e.to_string()),
        }
    }

    /// Polls until the file is there (and non-empty if asked) or `timeout`
    /// runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        if self.state == Some(FileState::Absent) {
            return poll::until(ctx, &self.describe(), self.timeout, poll::FAST, || async {
                match std::fs::symlink_metadata(&self.path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::Ready,
                    Err(e) => Check::NotYet(e.to_string()),
                    Ok(_) => Check::NotYet("still there".into()),
                }
            })
            .await;
        }
        poll::until(ctx, &self.describe(), self.timeout, PRESENT, || async {
            self.check_present()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::quiet_ctx;

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_file_to_appear_and_fill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        let w = WaitFile {
            path: path.clone(),
            non_empty: true,
            timeout: None,
            state: None,
        };
        let waiter = tokio::spawn(async move { w.attempt(&quiet_ctx()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&path, b"").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "an empty file must not count");
        std::fs::write(&path, b"x").unwrap();
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let w = WaitFile {
            path: dir.path().join("empty"),
            non_empty: true,
            timeout: Some(Duration::from_secs(1)),
            state: None,
        };
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(err.is_timeout());
        let msg = err.to_string();
        assert!(
            msg.contains("(non-empty) not ready after 1s (empty)"),
            "{msg}"
        );
    }

    fn absent(path: std::path::PathBuf, timeout: Option<Duration>) -> WaitFile {
        WaitFile {
            path,
            non_empty: false,
            timeout,
            state: Some(FileState::Absent),
        }
    }

    // Issue 12: `state: absent`, ready at once, once the file goes, never.
    #[tokio::test(start_paused = true)]
    async fn absent_waits_for_the_file_to_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        absent(path.clone(), Some(Duration::from_secs(1)))
            .attempt(&quiet_ctx())
            .await
            .unwrap();
        std::fs::write(&path, b"42").unwrap();
        let w = absent(path.clone(), None);
        let waiter = tokio::spawn(async move { w.attempt(&quiet_ctx()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "the file is still there");
        std::fs::remove_file(&path).unwrap();
        waiter.await.unwrap().unwrap();
        std::fs::write(&path, b"42").unwrap();
        let err = absent(path.clone(), Some(Duration::from_secs(1)))
            .attempt(&quiet_ctx())
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.message(),
            format!(
                "file {} (until absent) not ready after 1s (still there)",
                path.display()
            )
        );
    }
}

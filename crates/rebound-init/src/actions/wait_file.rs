//! `init.wait_file`: wait until a file exists (and optionally is not empty).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, duration, validate};

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
        deserialize_with = "duration::option::deserialize",
        serialize_with = "duration::option::serialize",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<duration::DurationSchema>")]
    pub timeout: Option<Duration>,
}

const FIRST_DELAY: Duration = Duration::from_millis(1);
const MAX_DELAY: Duration = Duration::from_millis(20);

impl WaitFile {
    /// `file PATH`, for messages.
    pub(crate) fn describe(&self) -> String {
        if self.non_empty {
            format!("file {} (non-empty)", self.path.display())
        } else {
            format!("file {}", self.path.display())
        }
    }

    fn ready(&self) -> Result<bool, String> {
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(!self.non_empty || meta.len() > 0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Polls until the file is there (and non-empty if asked) or `timeout`
    /// runs out.
    pub(crate) async fn attempt(&self, ctx: &ActionContext) -> Result<(), ActionError> {
        let mut last = String::from("not found");
        let poll = async {
            let mut delay = FIRST_DELAY;
            loop {
                match self.ready() {
                    Ok(true) => return,
                    Ok(false) if self.path.exists() => last = "empty".into(),
                    Ok(false) => last = "not found".into(),
                    Err(e) => last = e,
                }
                ctx.last_problem.set(last.as_str());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        };
        match self.timeout {
            None => {
                poll.await;
                Ok(())
            }
            Some(limit) => match tokio::time::timeout(limit, poll).await {
                Ok(()) => Ok(()),
                Err(_) => Err(ActionError::timed_out(format!(
                    "{} not ready after {} ({last})",
                    self.describe(),
                    humantime::format_duration(limit)
                ))),
            },
        }
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
        };
        let err = w.attempt(&quiet_ctx()).await.unwrap_err();
        assert!(err.is_timeout());
        let msg = err.to_string();
        assert!(
            msg.contains("(non-empty) not ready after 1s (empty)"),
            "{msg}"
        );
    }
}

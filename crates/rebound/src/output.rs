//! What the commands share about their output.

use std::time::Duration;

/// How often plain output says that a step is still running.
pub const STILL_WAITING_EVERY: Duration = Duration::from_secs(15);

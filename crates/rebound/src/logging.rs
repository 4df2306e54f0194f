//! Diagnostics on stderr (`--log`, `REBOUND_LOG`), set up once per process.

use std::io::IsTerminal;

use crate::exit::CliError;

/// Sets up diagnostics on stderr; colours only when stderr is a terminal.
///
/// An invalid `--log`/`REBOUND_LOG` filter is a usage error (exit 2), not a
/// silent fallback: someone asked for diagnostics and would not get them.
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        CliError::usage(format!(
            "--log (or REBOUND_LOG): invalid filter {filter:?}: {e}"
        ))
    })?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    Ok(())
}

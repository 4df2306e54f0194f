//! One module per command. Each has an `Args` struct and a `run` function
//! that returns the exit code (or an error carrying one).

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "agent")]
pub mod ensure;
pub mod init;
#[cfg(feature = "recovery")]
pub mod recovery;
pub mod retry;
pub mod schema;
pub mod wait;

use std::io::IsTerminal;

use crate::cli::{Cli, Command};
use crate::exit::CliError;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    init_tracing(&cli.log)?;
    match cli.command {
        Command::Retry(args) => retry::run(args),
        Command::Wait(args) => wait::run(args),
        Command::Init(args) => init::run(args),
        Command::Schema(args) => schema::run(args),
        #[cfg(feature = "agent")]
        Command::Agent(args) => agent::run(args),
        #[cfg(feature = "agent")]
        Command::Ensure(args) => ensure::run(args),
        #[cfg(feature = "recovery")]
        Command::Recovery(args) => recovery::run(args),
    }
}

/// Sets up diagnostics on stderr; colours only when stderr is a terminal.
///
/// An invalid `--log`/`REBOUND_LOG` filter is a usage error (exit 2), not a
/// silent fallback: someone asked for diagnostics and would not get them.
fn init_tracing(filter: &str) -> anyhow::Result<()> {
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

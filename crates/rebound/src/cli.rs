//! Command-line arguments (clap derive). Each command's arguments live in
//! its own module under `cmd/`.

use clap::{Parser, Subcommand};

use crate::cmd;
use crate::exit::EXIT_CODES_HELP;

/// rebound: make workload lifecycle operations survive passing failures.
#[derive(Debug, Parser)]
#[command(name = "rebound", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Log filter for diagnostics on stderr (tracing syntax, e.g. `debug`).
    #[arg(long, global = true, env = "REBOUND_LOG", default_value = "warn")]
    pub log: String,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `rebound`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command until it succeeds or the retry policy says stop.
    Retry(cmd::retry::Args),
    /// Wait for TCP ports, HTTP endpoints and files, in parallel.
    Wait(cmd::wait::Args),
    /// Run the init steps of a spec, then run the workload, if one is given.
    Init(cmd::init::Args),
    /// Print the JSON Schema of the init spec, for editors.
    #[cfg(feature = "schema")]
    Schema(cmd::schema::Args),
    /// Serve single-flight `ensure` for the runtimes in a config.
    #[cfg(feature = "agent")]
    Agent(cmd::agent::Args),
    /// Ask an agent to ensure a runtime is started; poll until ready.
    #[cfg(feature = "agent")]
    Ensure(cmd::ensure::Args),
    /// Record, inspect and run recoveries of failed migrations.
    #[cfg(feature = "recovery")]
    Recovery(cmd::recovery::Args),
}

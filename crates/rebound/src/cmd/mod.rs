//! One module per command. Each has an `Args` struct and a `run` function
//! that returns the exit code (or an error carrying one).

pub mod agent;
pub mod ensure;
pub mod init;
pub mod recovery;
pub mod retry;
pub mod schema;
pub mod wait;

use crate::cli::{Cli, Command};

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    init_tracing(&cli.log);
    match cli.command {
        Command::Retry(args) => retry::run(args),
        Command::Wait(args) => wait::run(args),
        Command::Init(args) => init::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Ensure(args) => ensure::run(args),
        Command::Recovery(args) => recovery::run(args),
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Builds the tokio runtime commands use.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

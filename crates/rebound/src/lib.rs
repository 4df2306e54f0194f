//! The `rebound` command as a library: [`run`] is the whole program (the
//! binary's `main` returns its exit code), and [`agent`] holds what a
//! host program written in Rust needs to talk to `rebound agent`: its
//! addresses, config, protocol and client. See `docs/architecture.md`.

#[cfg(feature = "agent")]
pub mod agent;
mod child;
mod cli;
mod cmd;
// Some exit codes are only used by the agent, ensure and recovery commands.
#[cfg_attr(not(all(feature = "agent", feature = "recovery")), allow(dead_code))]
mod exit;
mod logging;
// The service notifications (Service, watchdog) are only used by the agent.
#[cfg_attr(not(feature = "agent"), allow(dead_code))]
mod notify;
mod output;
mod runtime;
mod signal;

/// Parses the process's command line, runs the command and returns its
/// exit code (see the README's table).
pub fn run() -> std::process::ExitCode {
    use clap::Parser as _;
    let cli = cli::Cli::parse();
    exit::report(dispatch(cli))
}

/// Runs the parsed command line and returns the process exit code.
fn dispatch(cli: cli::Cli) -> anyhow::Result<i32> {
    use cli::Command;
    logging::init(&cli.log)?;
    match cli.command {
        Command::Retry(args) => cmd::retry::run(args),
        Command::Wait(args) => cmd::wait::run(args),
        Command::Init(args) => cmd::init::run(args),
        #[cfg(feature = "schema")]
        Command::Schema(args) => cmd::schema::run(args),
        #[cfg(feature = "agent")]
        Command::Agent(args) => cmd::agent::run(args),
        #[cfg(feature = "agent")]
        Command::Ensure(args) => cmd::ensure::run(args),
        #[cfg(feature = "recovery")]
        Command::Recovery(args) => cmd::recovery::run(args),
    }
}

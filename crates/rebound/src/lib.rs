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
    exit::report(cmd::run(cli))
}

//! The `rebound` command: see `rebound --help` and the README.

mod agent;
mod child;
mod cli;
mod cmd;
mod exit;
mod init;
mod recovery;
mod wait;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    exit::report(cmd::run(cli))
}

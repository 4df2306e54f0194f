//! `rebound agent` (being built).

use crate::exit::CliError;

/// Arguments of `rebound agent`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound agent`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound agent` is not built yet").into())
}

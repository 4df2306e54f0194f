//! `rebound ensure` (being built).

use crate::exit::CliError;

/// Arguments of `rebound ensure`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound ensure`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound ensure` is not built yet").into())
}

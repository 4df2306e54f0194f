//! `rebound wait` (being built).

use crate::exit::CliError;

/// Arguments of `rebound wait`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound wait`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound wait` is not built yet").into())
}

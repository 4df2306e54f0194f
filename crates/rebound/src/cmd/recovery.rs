//! `rebound recovery` (being built).

use crate::exit::CliError;

/// Arguments of `rebound recovery`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound recovery`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound recovery` is not built yet").into())
}

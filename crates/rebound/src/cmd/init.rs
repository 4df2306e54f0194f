//! `rebound init` (being built).

use crate::exit::CliError;

/// Arguments of `rebound init`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound init`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound init` is not built yet").into())
}

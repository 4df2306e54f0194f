//! `rebound schema` (being built).

use crate::exit::CliError;

/// Arguments of `rebound schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound schema`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound schema` is not built yet").into())
}

//! `rebound retry` (being built).

use crate::exit::CliError;

/// Arguments of `rebound retry`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `rebound retry`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    Err(CliError::failed("`rebound retry` is not built yet").into())
}

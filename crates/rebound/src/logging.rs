//! Diagnostics on stderr (`--log`, `REBOUND_LOG`), set up once per process.

use std::io::IsTerminal;

use crate::exit::CliError;

/// Sets up diagnostics on stderr; colours only when stderr is a terminal.
///
/// An invalid `--log`/`REBOUND_LOG` filter is a usage error (exit 2), not a
/// silent fallback: someone asked for diagnostics and would not get them.
#[cfg(feature = "env-filter")]
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| invalid(filter, e))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    Ok(())
}

/// Sets up diagnostics on stderr; colours only when stderr is a terminal.
///
/// Without the `env-filter` feature (the entrypoint build) the filter takes
/// `LEVEL`, `TARGET` and `TARGET=LEVEL` directives, comma-separated; the
/// span and field filters of the full build (`[span{field=value}]`) are
/// refused as a usage error (exit 2) rather than read another way.
#[cfg(not(feature = "env-filter"))]
pub fn init(filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let targets = targets(filter)?;
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .finish()
        .with(targets);
    let _ = subscriber.try_init();
    Ok(())
}

/// The filter of the entrypoint build: `LEVEL`, `TARGET`, `TARGET=LEVEL`.
#[cfg(not(feature = "env-filter"))]
fn targets(filter: &str) -> anyhow::Result<tracing_subscriber::filter::Targets> {
    if filter.contains(['[', ']', '{', '}']) {
        return Err(invalid(
            filter,
            "span and field filters ([span{field=value}]) need a build with the \
             `env-filter` feature; this one takes LEVEL, TARGET and TARGET=LEVEL directives",
        ));
    }
    // As the full build's filter: empty directives are skipped.
    let directives: Vec<&str> = filter.split(',').filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Ok(tracing_subscriber::filter::Targets::new());
    }
    directives.join(",").parse().map_err(|e| invalid(filter, e))
}

/// The usage error of an invalid `--log`/`REBOUND_LOG` filter.
fn invalid(filter: &str, e: impl std::fmt::Display) -> anyhow::Error {
    CliError::usage(format!(
        "--log (or REBOUND_LOG): invalid filter {filter:?}: {e}"
    ))
    .into()
}

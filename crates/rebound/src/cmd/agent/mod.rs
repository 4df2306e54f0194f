//! `rebound agent`: serve single-flight `ensure` for the runtimes of a config.

use std::path::PathBuf;

use crate::agent::addr::{Addr, DEFAULT_LISTEN};
use crate::agent::config::AgentConfig;
use crate::agent::{runtime, server};
use crate::exit::{CliError, OK};
use crate::output::err;
use crate::signal;

const AFTER_HELP: &str = "\
The config declares each runtime's start steps (rebound-init's format), its
probe step, endpoint, start_timeout, ready_ttl and backoff (docs/agent.md).
Over TCP a bearer token is required (--token-file); a Unix socket is created
with mode 0600. SIGTERM or SIGINT stops it gracefully (exit 0).

Examples:
  rebound agent --config /etc/rebound/agent.yaml
  rebound agent --config agent.yaml --listen tcp:127.0.0.1:7070 --token-file /etc/rebound/token

Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad config or flags (with
FILE:LINE:COLUMN), 3 cannot listen.";

/// Arguments of `rebound agent`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The agent config (YAML).
    #[arg(long, value_name = "AGENT.yaml")]
    pub config: PathBuf,

    /// Where to listen: unix:PATH or tcp:HOST:PORT (tcp:PORT is loopback);
    /// overrides `listen:` in the config [default: unix:/run/rebound/agent.sock].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// A file holding the bearer token every request must carry; required
    /// when listening on TCP.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Runs `rebound agent`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let config = AgentConfig::load(&args.config).map_err(|e| CliError::usage(e.to_string()))?;
    let addr: Addr = match (&args.listen, &config.listen) {
        (Some(text), _) => text
            .parse()
            .map_err(|e: String| CliError::usage(format!("--listen {e}")))?,
        (None, Some(addr)) => addr.clone(),
        (None, None) => DEFAULT_LISTEN
            .parse()
            .map_err(|e: String| CliError::usage(e))?,
    };
    let token = match &args.token_file {
        Some(path) => Some(crate::agent::token::read(path)?),
        None => None,
    };
    if matches!(addr, Addr::Tcp { .. }) && token.is_none() {
        return Err(CliError::usage(format!(
            "listening on {addr} requires --token-file (a bearer token for every request)"
        ))
        .into());
    }
    if !addr.is_loopback() {
        err!(
            "rebound agent: warning: {addr} is not a loopback address; every request needs the token"
        );
    }
    let runtime = crate::runtime::build()?;
    runtime.block_on(async move {
        let listener = server::Listener::bind(&addr)
            .await
            .map_err(|e| CliError::failed(format!("cannot listen on {addr}: {e}")))?;
        let map = runtime::build(&config);
        let names: Vec<&str> = config.runtimes.iter().map(|r| r.name.as_str()).collect();
        err!(
            "rebound agent: listening on {} ({} runtime(s): {})",
            listener.local_addr(),
            names.len(),
            names.join(", ")
        );
        // sd_notify (src/notify.rs): READY=1 now that it listens, the
        // watchdog while it runs, STOPPING=1 on the stop signal.
        // The stop signals' handlers first: once READY=1 is out, a SIGTERM
        // must stop the agent gracefully, not end it by its default action.
        let stop = stop_signal();
        let mut service = crate::notify::Service::from_env();
        let runtimes = map.clone();
        service.ready(
            &format!(
                "listening on {}; runtimes: {}",
                listener.local_addr(),
                names.join(", ")
            ),
            move || {
                let states: Vec<String> = runtimes
                    .iter()
                    .map(|(name, e)| format!("{name}: {}", e.state().kind().as_str()))
                    .collect();
                states.join(", ")
            },
        );
        let server = server::Server::new(map, token);
        server::serve(listener, server, service.stopping_on(stop)).await;
        err!("rebound agent: stopped");
        Ok::<i32, anyhow::Error>(OK)
    })
}

/// Resolves at the first of the [`signal::STOP`] signals (SIGINT, SIGTERM),
/// listened to from the call on (not from the first poll).
fn stop_signal() -> impl std::future::Future<Output = ()> {
    let signals = signal::Listener::new(signal::STOP);
    async move {
        let Ok(mut signals) = signals else {
            tracing::warn!("cannot install signal handlers; stop the agent with SIGKILL");
            return std::future::pending().await;
        };
        let sig = signals.recv().await;
        tracing::info!("{}: stopping", sig.as_str());
    }
}

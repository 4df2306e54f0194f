//! `rebound agent`: serve single-flight `ensure` for the runtimes of a config.

use std::path::PathBuf;

use crate::agent::addr::{Addr, AddrError, DEFAULT_LISTEN};
use crate::agent::config::AgentConfig;
use crate::agent::listener::{HVSOCK_LISTEN, Inherited};
use crate::agent::{runtime, server};
use crate::exit::{CliError, OK};
use crate::output::err;
use crate::signal;

const AFTER_HELP: &str = "\
The config declares each runtime's start steps (rebound-init's format), its
probe step, endpoint, start_timeout, ready_ttl and backoff (docs/agent.md).
Over TCP or vsock a bearer token is required (--token-file, or
--insecure-no-token); a Unix socket is created with mode 0600, under a lock
file beside it (PATH.lock) held while the agent runs. SIGTERM or SIGINT
stops it gracefully (exit 0).

Socket activation: when a service manager passes listening sockets
(LISTEN_FDS, with LISTEN_PID this process's pid), the agent listens on the
one named --fdname NAME in LISTEN_FDNAMES, or on the only one passed,
instead of binding --listen (which stays the address when started without
a socket). TCP, Unix and vsock stream sockets are taken; a token is
required over TCP and vsock as for --listen.

Examples:
  rebound agent --config /etc/rebound/agent.yaml
  rebound agent --config agent.yaml --listen tcp:127.0.0.1:7070 --token-file /etc/rebound/token
  rebound agent --config agent.yaml --listen vsock:7070 --token-file /etc/rebound/token   (in a VM guest)
  systemd-socket-activate -l /run/rebound/agent.sock --fdname=agent rebound agent --config agent.yaml --fdname agent

Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad config or flags (with
FILE:LINE:COLUMN, or a bad --listen address), or passed sockets that
cannot be used (several and no --fdname, no socket of that name, not a
listening TCP, Unix or vsock stream socket), 3 cannot listen (another
agent is listening on the socket or holds its lock, the vsock port is in
use, the system has no vsock).";

/// Arguments of `rebound agent`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The agent config (YAML).
    #[arg(long, value_name = "AGENT.yaml")]
    pub config: PathBuf,

    /// Where to listen: unix:PATH, tcp:HOST:PORT (tcp:PORT is loopback),
    /// vsock:PORT (any CID, in a VM guest) or vsock:CID:PORT;
    /// overrides `listen:` in the config [default: unix:/run/rebound/agent.sock].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Socket activation: listen on the passed socket of this name
    /// (LISTEN_FDNAMES; systemd's FileDescriptorName=). Without it the
    /// only socket passed is taken, and several are an error. Ignored when
    /// no socket is passed.
    #[arg(long, value_name = "NAME")]
    pub fdname: Option<String>,

    /// A file holding the bearer token every request must carry; required
    /// when listening on TCP or vsock.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Listen on TCP or vsock without a token: any process that can reach
    /// the port (on vsock, any process of the guest or its host) can start
    /// runtimes. For tests and closed setups only.
    #[arg(long, conflicts_with = "token_file")]
    pub insecure_no_token: bool,
}

/// Runs `rebound agent`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let config = AgentConfig::load(&args.config).map_err(|e| CliError::usage(e.to_string()))?;
    let addr: Addr = match (&args.listen, &config.listen) {
        (Some(text), _) => text
            .parse()
            .map_err(|e: AddrError| CliError::usage(format!("--listen {e}")))?,
        (None, Some(addr)) => addr.clone(),
        (None, None) => DEFAULT_LISTEN
            .parse()
            .map_err(|e: AddrError| CliError::usage(e.to_string()))?,
    };
    if let Addr::Hvsock { .. } = addr {
        return Err(CliError::usage(format!("cannot listen on {addr}: {HVSOCK_LISTEN}")).into());
    }
    // Before the runtime's threads start: this removes LISTEN_PID and
    // LISTEN_FDS from the environment.
    let inherited = Inherited::take(args.fdname.as_deref())
        .map_err(|e| CliError::usage(format!("socket activation: {e}")))?;
    let addr = match &inherited {
        Some(socket) => socket.addr(),
        None => addr,
    };
    let token = match &args.token_file {
        Some(path) => Some(crate::agent::token::read(path)?),
        None => None,
    };
    if addr.needs_token() && token.is_none() {
        if !args.insecure_no_token {
            return Err(CliError::usage(format!(
                "listening on {addr} requires --token-file (a bearer token for every request), \
                 or --insecure-no-token"
            ))
            .into());
        }
        err!(
            "rebound agent: warning: --insecure-no-token: anyone who can reach {addr} can start runtimes"
        );
    }
    if matches!(addr, Addr::Tcp { .. }) && !addr.is_loopback() {
        err!(
            "rebound agent: warning: {addr} is not a loopback address; every request needs the token"
        );
    }
    let runtime = crate::runtime::build()?;
    runtime.block_on(async move {
        let (listener, from) = match inherited {
            Some(socket) => {
                let from = format!("socket activation: {}; ", socket.describe());
                let listener = server::Listener::inherit(socket).map_err(|e| {
                    CliError::failed(format!("cannot listen on the passed {addr}: {e}"))
                })?;
                (listener, from)
            }
            None => {
                let listener = server::Listener::bind(&addr)
                    .await
                    .map_err(|e| CliError::failed(format!("cannot listen on {addr}: {e}")))?;
                (listener, String::new())
            }
        };
        let map = runtime::build(&config);
        let names: Vec<&str> = config.runtimes.iter().map(|r| r.name.as_str()).collect();
        err!(
            "rebound agent: listening on {} ({from}{} runtime(s): {})",
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

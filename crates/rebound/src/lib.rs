//! The `rebound` command as a library: [`run`] is the whole program (the
//! binary's `main` returns its exit code), and [`agent`] holds what a
//! host program written in Rust needs to talk to `rebound agent`: its
//! addresses, config, protocol and client. See `docs/architecture.md`.

#[cfg(feature = "agent")]
pub mod agent;
mod child;
mod cli;
mod cmd;
// Some exit codes are only used by the agent, ensure and recovery commands.
#[cfg_attr(not(all(feature = "agent", feature = "recovery")), allow(dead_code))]
mod exit;
mod logging;
// The service notifications (Service, watchdog) are only used by the agent.
#[cfg_attr(not(feature = "agent"), allow(dead_code))]
mod notify;
mod output;
mod runtime;
mod signal;

/// Parses the process's command line, runs the command and returns its
/// exit code (see the README's table).
pub fn run() -> std::process::ExitCode {
    use clap::Parser as _;
    let cli = cli::Cli::parse();
    exit::report(dispatch(cli))
}

/// Runs the parsed command line and returns the process exit code.
fn dispatch(cli: cli::Cli) -> anyhow::Result<i32> {
    use cli::Command;
    logging::init(&cli.log)?;
    match cli.command {
        Command::Retry(args) => cmd::retry::run(args),
        Command::Wait(args) => cmd::wait::run(args),
        Command::Init(args) => cmd::init::run(args),
        #[cfg(feature = "schema")]
        Command::Schema(args) => cmd::schema::run(args),
        #[cfg(feature = "agent")]
        Command::Agent(args) => cmd::agent::run(args),
        #[cfg(feature = "agent")]
        Command::Ensure(args) => cmd::ensure::run(args),
        #[cfg(feature = "recovery")]
        Command::Recovery(args) => cmd::recovery::run(args),
    }
}

/// Entry points for the fuzz targets in `fuzz/`: the parsers of the
/// command line and of the files the commands read, without running
/// anything. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use clap::Parser as _;

    /// Parses `args` (without the program name) as `rebound` would, and
    /// for `rebound wait` checks its targets too. `Ok` holds, for `wait`,
    /// each target's text as shown in messages (passwords as `***`);
    /// `Err` the message of a refused command line.
    ///
    /// ```
    /// let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    /// let shown = rebound::fuzzing::command_line(&args(&["wait", "tcp://db:5432", "redis://:hunter22@cache:6379"]));
    /// assert_eq!(shown.unwrap(), ["tcp://db:5432", "redis://:***@cache:6379"]);
    /// let refused = rebound::fuzzing::command_line(&args(&["wait", "--timeout", "soon", "tcp://db:5432"]));
    /// assert!(refused.unwrap_err().contains("soon"));
    /// ```
    pub fn command_line(args: &[String]) -> Result<Vec<String>, String> {
        let cli = super::cli::Cli::try_parse_from(
            std::iter::once("rebound").chain(args.iter().map(String::as_str)),
        )
        .map_err(|e| e.to_string())?;
        match cli.command {
            super::cli::Command::Wait(wait) => super::cmd::wait::targets(&wait)
                .map(|targets| targets.into_iter().map(|t| t.text).collect())
                .map_err(|e| e.to_string()),
            _ => Ok(Vec::new()),
        }
    }

    /// Reads the text of a `rebound retry --breaker-file` state file;
    /// `Ok` holds the text this rebound would write back for that state.
    ///
    /// ```
    /// let written = rebound::fuzzing::breaker_state(r#"{"version":1,"state":"open","consecutive_failures":5,"cooldown":"60s"}"#).unwrap();
    /// assert!(written.contains("\"cooldown\": \"1m\""));
    /// assert!(rebound::fuzzing::breaker_state(r#"{"version":9}"#).is_err());
    /// ```
    pub fn breaker_state(text: &str) -> Result<String, String> {
        let state = super::cmd::retry::breaker_file::State::parse(text)?;
        state.render().map_err(|e| e.to_string())
    }
}

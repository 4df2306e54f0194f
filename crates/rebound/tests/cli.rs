//! Behaviour shared by every command: help, version, exit-code table.

mod support;

use support::{
    Agent, Cli, Outcome, QUICK_CONFIG, agent_cli, ensure_wait, init_cli, quick_spec, write_file,
};

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let out = Cli::new().args(["--help"]).run().code(0);
    for name in [
        "retry", "wait", "init", "schema", "agent", "ensure", "recovery",
    ] {
        assert!(out.stdout().contains(name), "help lacks {name}");
    }
    out.stdout_has("Exit codes:").stdout_has("124");
}

#[test]
fn unknown_command_is_a_usage_error() {
    Cli::new().args(["frobnicate"]).usage_error("frobnicate");
}

#[test]
fn an_invalid_log_filter_is_a_usage_error_naming_the_flag() {
    Cli::new()
        .args(["--log", "foo=notalevel", "schema"])
        .usage_error("--log");
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    // The retry runner logs each retry at `info`; captured stderr is a pipe,
    // so none of it may carry ANSI escapes.
    let out = Cli::new()
        .args([
            "--log",
            "info",
            "retry",
            "--attempts",
            "2",
            "--delay",
            "1ms",
        ])
        .args(["--", "false"])
        .run()
        .code(1)
        .stderr_has("INFO");
    assert!(
        !out.stderr().contains('\u{1b}'),
        "ANSI escape in non-terminal stderr:\n{}",
        out.stderr()
    );
}

/// Every command that writes its answer to stdout, ready to run: a spec
/// check, the schema, a wait for a file that exists.
fn stdout_commands(dir: &std::path::Path) -> Vec<(&'static str, Cli)> {
    let spec = quick_spec(dir);
    let url = format!("file://{}", spec.display());
    vec![
        ("init --check", init_cli(&["--check"], &spec)),
        (
            "init --check --json",
            init_cli(&["--check", "--json"], &spec),
        ),
        ("schema", Cli::new().args(["schema"])),
        ("wait", Cli::new().args(["wait", &url])),
        ("wait --json", Cli::new().args(["wait", "--json", &url])),
    ]
}

/// A command whose stdout write failed for a reason other than a closed
/// pipe: exit 3 with the reason, no panic.
#[track_caller]
fn assert_cannot_write(what: &str, out: Outcome) {
    out.context(what)
        .code(3)
        .stderr_has("rebound: error: cannot write to standard output: No space left on device")
        .stderr_lacks("panicked");
}

/// A command whose reader went away: exit 0, nothing said.
#[track_caller]
fn assert_quiet_success(what: &str, out: Outcome) {
    let stderr = out.context(what).code(0).stderr();
    assert_eq!(stderr, "", "{what}: stderr is not empty");
}

#[test]
fn stdout_on_a_full_device_is_exit_3_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (what, cli) in stdout_commands(dir.path()) {
        assert_cannot_write(what, cli.run_stdout_full());
    }
}

#[test]
fn with_stderr_full_too_the_exit_code_still_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for (what, cli) in stdout_commands(dir.path()) {
        cli.run_output_full().context(what).code(3);
    }
}

#[test]
fn a_reader_that_went_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for (what, cli) in stdout_commands(dir.path()) {
        // Plain `wait` says on stderr what it waits for; the rest is quiet.
        if what == "wait" {
            cli.run_stdout_closed().code(0).stderr_lacks("error");
            continue;
        }
        assert_quiet_success(what, cli.run_stdout_closed());
    }
}

/// `rebound ensure` writes its answers through the same output path as the
/// other commands.
#[test]
fn ensure_with_stdout_full_or_closed_does_not_panic() {
    let agent = Agent::start(QUICK_CONFIG);
    let ensure = |json: bool| {
        let cli = ensure_wait(&agent.addr(), "quick", "5m");
        if json { cli.args(["--json"]) } else { cli }
    };
    assert_cannot_write("ensure", ensure(false).run_stdout_full());
    assert_cannot_write("ensure --json", ensure(true).run_stdout_full());
    assert_quiet_success("ensure --json", ensure(true).run_stdout_closed());
    // Ready by now: the endpoint is the only output.
    assert_quiet_success("ensure", ensure(false).run_stdout_closed());
}

#[test]
fn a_token_with_a_newline_inside_is_refused_alike_from_a_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = "first-half\nsecond-half";
    let file = write_file(dir.path(), "token", token);
    // Refused before any connection: no agent needs to listen there.
    let agent = format!("unix:{}", dir.path().join("none.sock").display());
    let ensure = || ensure_wait(&agent, "quick", "1s");
    let from_file = ensure()
        .args(["--token-file".as_ref(), file.as_os_str()])
        .usage_error("characters an HTTP header cannot carry");
    let from_env = ensure()
        .env("REBOUND_AGENT_TOKEN", token)
        .usage_error("characters an HTTP header cannot carry")
        .stderr_has("REBOUND_AGENT_TOKEN");
    for out in [from_file, from_env] {
        out.context("the token was printed").stderr_lacks("half");
    }
    // The agent reads its token from a file only: the same answer there.
    let config = write_file(
        dir.path(),
        "agent.yaml",
        &QUICK_CONFIG.replace("{dir}", "/tmp"),
    );
    agent_cli(&config, "tcp:127.0.0.1:0")
        .args(["--token-file"])
        .args([&file])
        .usage_error("characters an HTTP header cannot carry");
}

//! Behaviour shared by every command: help, version, exit-code table.

mod support;

use support::Cli;

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
    Cli::new()
        .args(["frobnicate"])
        .run()
        .code(2)
        .stderr_has("frobnicate");
}

#[test]
fn an_invalid_log_filter_is_a_usage_error_naming_the_flag() {
    Cli::new()
        .args(["--log", "foo=notalevel", "schema"])
        .run()
        .code(2)
        .stderr_has("--log");
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

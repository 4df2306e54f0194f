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

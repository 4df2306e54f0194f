//! The `rebound` command: see `rebound --help` and the README.

fn main() -> std::process::ExitCode {
    rebound::run()
}

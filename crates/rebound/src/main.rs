//! The `rebound` command: see `rebound --help` and the README.

// The static (musl) build: musl's allocator maps and unmaps memory on
// almost every size-class change, which was the largest single cost of
// `rebound init SPEC -- CMD`'s start-up (docs/benchmarks.md, "`rebound
// init` as an entrypoint"); dlmalloc keeps what it mapped.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    rebound::run()
}

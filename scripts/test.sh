#!/usr/bin/env bash
# Runs rebound's whole test suite on a fresh machine: installs what the tests
# need (PostgreSQL server binaries, the s3s-fs S3-compatible server, the musl
# target for the static entrypoint) when it
# is missing, then runs every test, doc test and the loom model checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
ensure_postgres
ensure_redis
ensure_mariadb
ensure_s3s_fs
ensure_musl_target
ensure_systemd_tools

cargo test --workspace --all-features --locked
# Model checking of the ensure state machine (loom), in its own target dir so
# that the `--cfg loom` build does not invalidate the normal one.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p rebound-ensure --release --locked --test loom

#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 30) and
# fails if any of them finds an input that breaks an invariant.
#
#   bash scripts/fuzz.sh 30          # CI's smoke run
#   bash scripts/fuzz.sh 1200        # a longer run (20 minutes a target)
#   bash scripts/fuzz.sh 60 duration # only some targets
#
# Needs the nightly toolchain (installed with rustup when missing) and
# cargo-fuzz (installed with `cargo install --locked cargo-fuzz` when
# missing).
#
# No sanitizer (`-s none`): the crates forbid `unsafe`, the targets check
# their invariants with assertions, and on a 2-core machine an
# AddressSanitizer build of the whole dependency tree takes about twice as
# long and runs several times slower, for little more to find. Set
# FUZZ_SANITIZER=address to fuzz with ASan anyway.
#
# The committed corpus (fuzz/corpus/TARGET) is read, never written: the
# inputs a run finds go to fuzz/target/corpus-work/TARGET (kept between
# runs, ignored by git). A failing input is saved under
# fuzz/artifacts/TARGET/ and the script prints how to reproduce it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
shift || true
sanitizer=${FUZZ_SANITIZER:-none}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (rustup)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install)" >&2
  cargo install --locked cargo-fuzz
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

start=$(date +%s)
# Every target at once: they share one build of the crates.
cargo +nightly fuzz build -s "$sanitizer"
echo "== fuzz build: $(($(date +%s) - start)) s"

failed=()
for target in "${targets[@]}"; do
  echo "== fuzz $target (${seconds}s)"
  work="target/corpus-work/$target"
  mkdir -p "$work" "corpus/$target"
  # -timeout: an input that takes over 10 s is a hang; -max_len: the seeds
  # are small, and a few KiB reach every branch of these parsers.
  if ! cargo +nightly fuzz run -s "$sanitizer" "$target" "$work" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -max_len=8192 -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: invariants broken in: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with" \
    "cargo +nightly fuzz run -s $sanitizer TARGET fuzz/artifacts/TARGET/FILE)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failure"

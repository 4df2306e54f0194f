#!/usr/bin/env bash
# Runs the migration example end to end in a temporary directory:
#   - an S3 server (s3s-fs) and three nodes n1, n2, n3, each with its
#     `rebound agent` on a Unix socket;
#   - n2 crashes (its agent is killed with SIGKILL);
#   - the workload's checkpoint is pushed from n1 to S3 (`init.s3_push`);
#   - the scheduler's migration of `web` from n1 to n2 timed out, and is
#     recorded in the recovery journal;
#   - `rebound recovery run` retries it on n2 (migrate.sh exits 69: n2's
#     agent is unreachable, recorded as target_unreachable), then moves it
#     to n3, where migrate.sh succeeds;
#   - `rebound recovery show` prints the history.
#
# Usage: examples/migration/run.sh        (from anywhere)
# Environment: REBOUND_BIN (a built rebound; else `cargo build -p rebound`),
# MIGRATE_WAIT (ensure's --wait per attempt, default 3s), KEEP=1 keeps the
# temporary directory. Needs s3s-fs on PATH
# (cargo install --locked s3s-fs@0.14.1 --features binary).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ -z "${REBOUND_BIN:-}" ]; then
    cargo build --quiet --manifest-path "$repo/Cargo.toml" -p rebound
    REBOUND_BIN="$repo/target/debug/rebound"
fi
if ! command -v s3s-fs >/dev/null; then
    echo "run.sh: s3s-fs is not installed: cargo install --locked s3s-fs@0.14.1 --features binary" >&2
    exit 2
fi

# The site: the example's files, a bin/ with rebound, the S3 root, the journal.
site=$(mktemp -d "${TMPDIR:-/tmp}/rebound-migration.XXXXXX")
cp -R "$here"/. "$site"/
mkdir -p "$site/bin" "$site/s3/snapshots"
ln -s "$REBOUND_BIN" "$site/bin/rebound"
export PATH="$site/bin:$PATH"
cd "$site"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for f in nodes/*/data/workload.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then echo "kept $site"; else rm -rf "$site"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "an S3 server (s3s-fs) on a free loopback port"
export AWS_ACCESS_KEY_ID=rebound-example AWS_SECRET_ACCESS_KEY=rebound-example-secret AWS_REGION=us-east-1
for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    # Taken already (something answers): another port.
    if rebound wait --timeout 100ms "tcp://127.0.0.1:$port" 2>/dev/null; then continue; fi
    s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" s3 >s3.log 2>&1 &
    s3=$!
    if rebound wait --timeout 10s "tcp://127.0.0.1:$port" && kill -0 "$s3"; then break; fi
    kill "$s3" 2>/dev/null || true
    s3=
done
[ -n "${s3:-}" ] || { echo "run.sh: s3s-fs did not start" >&2; exit 3; }
pids+=("$s3")
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
echo "S3 at $AWS_ENDPOINT_URL"

step "three nodes: an agent each, on nodes/NODE/agent.sock"
for node in n1 n2 n3; do
    (cd "nodes/$node" && exec rebound agent --config agent.yaml 2>agent.log) &
    pids+=("$!")
    declare "agent_$node=$!"
done
rebound wait --timeout 10s file://"$site"/nodes/n1/agent.sock \
    file://"$site"/nodes/n2/agent.sock file://"$site"/nodes/n3/agent.sock

step "n2 crashes: its agent is killed, its socket is left behind"
kill -KILL "$agent_n2"
{ wait "$agent_n2"; } 2>/dev/null || true

step "the workload runs on n1, and its checkpoint goes to S3"
rebound ensure --agent unix:nodes/n1/agent.sock --wait 30s workload
echo "orders=42 written-on=n1" > nodes/n1/data/checkpoint.snap
(cd nodes/n1 && rebound init ../../push.yaml)

step "the scheduler's migration of web from n1 to n2 timed out: recorded"
export REBOUND_JOURNAL="sqlite:$site/journal.db"
rebound recovery --initial-delay 1s record --migration m-1 --workload web --source n1 --target n2 \
    --kind timeout --message "the scheduler's migrate call ran out of time" \
    --candidates n3 --snapshot nodes/n1/data/checkpoint.snap

step "the recovery worker carries it to an end"
export MIGRATE_WAIT="${MIGRATE_WAIT:-3s}"
while [ -n "$(rebound recovery list --state pending --json)$(rebound recovery list --state running --json)" ]; do
    sleep 1   # the next attempt is due 1 s (then 2 s, ...) after a failure
    rebound recovery --initial-delay 1s run --once --migrate-cmd ./migrate.sh --rollback-cmd ./rollback.sh
done

step "the journal's history of m-1"
rebound recovery show m-1

step "the snapshot on n3"
cmp nodes/n1/data/checkpoint.snap nodes/n3/data/workload.snap
echo "nodes/n3/data/workload.snap: $(cat nodes/n3/data/workload.snap)"

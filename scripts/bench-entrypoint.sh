#!/usr/bin/env bash
# `rebound init` as a container entrypoint, beside tini and dumb-init, in one
# run (docs/benchmarks.md, "`rebound init` as an entrypoint, beside tini and
# dumb-init"): binary sizes, the wall time of `rebound init SPEC -- true`
# against `tini -s -- true`, `tini-static -s -- true` and `dumb-init true`,
# and what each costs while its workload idles (RSS, threads, voluntary
# context switches over 10 s).
#
#   bash scripts/bench-entrypoint.sh              # 5 rounds of 200 runs each
#   ROUNDS=9 RUNS=300 bash scripts/bench-entrypoint.sh
#   BEFORE=/path/to/older/rebound bash scripts/bench-entrypoint.sh
#
# hyperfine runs its commands one after the other; on a shared, loaded
# machine the load changes between them. So the wall times are taken in
# ROUNDS short rounds, each running every command (RUNS runs after a
# warm-up), in an order rotated from round to round; the table pools every
# run of every round (median, min) and also gives the median of the
# per-round ratios to tini, which load changes between rounds do not bias.
# BEFORE adds another rebound binary (e.g. a build of an older commit), with
# the empty and the one-step spec, to the same rounds, for before/after
# ratios measured together.
#
# Needs: hyperfine, tini (with tini-static), dumb-init, python3, the musl
# target (scripts/deps.sh installs the target; apt-get install tini
# dumb-init hyperfine). Prints a Markdown report on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
IDLE_SECONDS=${IDLE_SECONDS:-10}

for tool in hyperfine tini tini-static dumb-init python3; do
  command -v "$tool" >/dev/null || { echo "bench-entrypoint: $tool is missing" >&2; exit 1; }
done

# The entrypoint-only static build, as tests/entrypoint.rs builds it.
target=x86_64-unknown-linux-musl
CARGO_TARGET_DIR=target/static-entrypoint cargo build --quiet --profile entrypoint \
  -p rebound --no-default-features --target "$target" >&2
R=$PWD/target/static-entrypoint/$target/entrypoint/rebound
TINI=$(command -v tini)
TINI_STATIC=$(command -v tini-static)
DUMB=$(command -v dumb-init)
TRUE=$(command -v true)
SLEEP=$(command -v sleep)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'init:\n  steps: []\n' >"$work/empty.yaml"
printf 'init:\n  steps:\n    - id: one\n      uses: init.run\n      with: { command: ["true"] }\n' >"$work/one.yaml"

names=(rebound tini tini-static dumb-init "rebound-one-step")
cmds=(
  "$R init $work/empty.yaml -- $TRUE"
  "$TINI -s -- $TRUE"
  "$TINI_STATIC -s -- $TRUE"
  "$DUMB $TRUE"
  "$R init $work/one.yaml -- $TRUE"
)
if [ -n "${BEFORE:-}" ]; then
  names+=(rebound-before)
  cmds+=("$BEFORE init $work/empty.yaml -- $TRUE")
  names+=(rebound-before-one-step)
  cmds+=("$BEFORE init $work/one.yaml -- $TRUE")
fi

echo "bench-entrypoint: $ROUNDS rounds x ${#cmds[@]} commands x $RUNS runs (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
n=${#cmds[@]}
for ((round = 0; round < ROUNDS; round++)); do
  args=()
  for ((i = 0; i < n; i++)); do
    j=$(((i + round) % n))
    args+=(-n "${names[$j]}" "${cmds[$j]}")
  done
  hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$work/round-$round.json" "${args[@]}" >/dev/null
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Idle: the supervisors side by side, each over `sleep`; /proc read at 1 s
# and IDLE_SECONDS later.
idle_for=$((IDLE_SECONDS + 3))
"$R" init --quiet "$work/one.yaml" -- "$SLEEP" "$idle_for" &
p_rebound=$!
"$TINI" -s -- "$SLEEP" "$idle_for" &
p_tini=$!
"$DUMB" "$SLEEP" "$idle_for" &
p_dumb=$!
sleep 1
for p in rebound tini dumb; do
  pid_var=p_$p
  cp "/proc/${!pid_var}/status" "$work/idle-$p-start"
done
sleep "$IDLE_SECONDS"
for p in rebound tini dumb; do
  pid_var=p_$p
  cp "/proc/${!pid_var}/status" "$work/idle-$p-end"
done
wait "$p_rebound" "$p_tini" "$p_dumb" || true

python3 - "$work" "$ROUNDS" "$RUNS" "$IDLE_SECONDS" "$load_after" \
  "$R" "$TINI" "$TINI_STATIC" "$DUMB" "${BEFORE:-}" <<'PY'
import json, os, statistics, sys

work, rounds, runs, idle_s, load_after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rebound, tini, tini_static, dumb, before = sys.argv[6:11]

times = {}
per_round = []
for r in range(rounds):
    with open(os.path.join(work, f"round-{r}.json")) as f:
        res = json.load(f)["results"]
    medians = {}
    for x in res:
        times.setdefault(x["command"], []).extend(x["times"])
        medians[x["command"]] = statistics.median(x["times"])
    per_round.append(medians)

def ms(s):
    return f"{s * 1000:.2f}"

def row(name):
    t = times[name]
    return statistics.median(t), min(t)

print(f"Wall time: {rounds} rounds x {runs} runs of each command (hyperfine -N, "
      f"rotated order), load average after: {load_after}\n")
print("| command | median | min | user+sys CPU (mean of round means) | median / tini's | min / tini's | median of per-round median ratios |")
print("|:---|---:|---:|---:|---:|---:|---:|")
tmed, tmin = row("tini")
cpu = {}
for r in range(rounds):
    with open(os.path.join(work, f"round-{r}.json")) as f:
        for x in json.load(f)["results"]:
            cpu.setdefault(x["command"], []).append(x["user"] + x["system"])
order = ["rebound", "rebound-before", "rebound-one-step", "rebound-before-one-step", "tini", "tini-static", "dumb-init"]
for name in order:
    if name not in times:
        continue
    med, mn = row(name)
    ratios = [m[name] / m["tini"] for m in per_round]
    print(f"| {name} | {ms(med)} ms | {ms(mn)} ms | {ms(statistics.mean(cpu[name]))} ms "
          f"| {med / tmed:.2f}x | {mn / tmin:.2f}x | {statistics.median(ratios):.2f}x |")
if "rebound-before" in times:
    ratios = [m["rebound"] / m["rebound-before"] for m in per_round]
    print(f"\nrebound now / rebound before (median of per-round ratios): {statistics.median(ratios):.2f}x")
    ratios = [m["rebound-one-step"] / m["rebound-before-one-step"] for m in per_round]
    print(f"rebound one-step now / before (median of per-round ratios): {statistics.median(ratios):.2f}x")

print("\nSizes:\n")
print("| binary | bytes |")
print("|:---|---:|")
for name, path in [("rebound (entrypoint, static musl)", rebound), ("tini", tini),
                   ("tini-static", tini_static), ("dumb-init", dumb)] + ([("rebound before", before)] if before else []):
    print(f"| {name} | {os.path.getsize(path):,} |")

def status(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out

print(f"\nIdle, over `sleep` ({idle_s} s between the two reads of /proc/PID/status):\n")
print("| supervisor | VmRSS | of which anonymous | of which file (the binary's pages) | threads | voluntary switches | involuntary switches |")
print("|:---|---:|---:|---:|---:|---:|---:|")
for name, key in [("rebound init", "rebound"), ("tini -s", "tini"), ("dumb-init", "dumb")]:
    a = status(os.path.join(work, f"idle-{key}-start"))
    b = status(os.path.join(work, f"idle-{key}-end"))
    vol = int(b["voluntary_ctxt_switches"]) - int(a["voluntary_ctxt_switches"])
    inv = int(b["nonvoluntary_ctxt_switches"]) - int(a["nonvoluntary_ctxt_switches"])
    print(f"| {name} | {b['VmRSS']} | {b['RssAnon']} | {b['RssFile']} | {b['Threads']} | {vol} | {inv} |")
PY

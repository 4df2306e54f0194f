#!/usr/bin/env python3
"""Wall time of a few commands run in alternation, for before/after figures
on a loaded machine (docs/benchmarks.md, "`rebound init` as an entrypoint").

hyperfine runs each command's runs one after the other, so a burst of load
lands on one command; here every iteration runs every command once (the
order reversed every other iteration), so that load drifts hit all alike.

    python3 scripts/bench-alternate.py 400 "/tmp/old init one.yaml -- /bin/true" \
        "/tmp/new init one.yaml -- /bin/true" "/usr/bin/tini -s -- /bin/true"

Copy the binaries being compared to the same place first: a freshly linked
binary under target/ measured slower than a copy of it (about 0.1 ms at the
minimum). Commands are split on spaces; the program is a path. Prints the
median, quartiles and minimum of each, in ms.
"""
import os
import statistics
import sys
import time

runs = int(sys.argv[1])
cmds = [a.split() for a in sys.argv[2:]]
times = [[] for _ in cmds]
devnull = os.open(os.devnull, os.O_WRONLY)
quiet = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
for i in range(runs):
    order = list(range(len(cmds)))
    if i % 2:
        order.reverse()
    for j in order:
        start = time.perf_counter_ns()
        pid = os.posix_spawn(cmds[j][0], cmds[j], os.environ, file_actions=quiet)
        os.waitpid(pid, 0)
        times[j].append((time.perf_counter_ns() - start) / 1e6)
for cmd, t in zip(cmds, times):
    t.sort()
    print(f"{' '.join(cmd)}: median {statistics.median(t):.2f} ms, "
          f"quartiles {t[len(t) // 4]:.2f} / {t[3 * len(t) // 4]:.2f} ms, min {t[0]:.2f} ms")

#!/bin/sh
# The migrate command `rebound recovery run` runs for each attempt, with
# the target node in $REBOUND_TARGET. It is made of rebound commands only,
# and it ends with their exit code (`set -e`), which the worker classifies
# with its default table:
#    69  the node's agent could not be reached for the whole --wait
#        -> target_unreachable: another candidate
#    78  that node cannot run the runtime: it failed for good there, or
#        the agent has no `workload` runtime -> incompatible_target
#   124  the runtime was still starting when --wait ran out, or a pull step
#        timed out -> timeout: the same node again
#     3  the pull failed -> unknown: roll back
set -eu
node="nodes/$REBOUND_TARGET"
echo "migrate $REBOUND_MIGRATION: $REBOUND_WORKLOAD from $REBOUND_SOURCE to $REBOUND_TARGET ($REBOUND_STRATEGY, retry $REBOUND_RETRY_COUNT)"
# 1. The target's runtime, started exactly once by its agent.
rebound ensure --agent "unix:$node/agent.sock" --wait "${MIGRATE_WAIT:-30s}" workload
# 2. The workload's snapshot, from S3 into the target's data directory.
cd "$node"
rebound init ../../pull.yaml

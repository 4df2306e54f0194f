#!/bin/sh
# The rollback command: the workload goes back to its source node, from the
# snapshot the journal verified (size and CRC32C) before calling this.
set -eu
node="nodes/$REBOUND_SOURCE"
echo "rollback $REBOUND_MIGRATION: $REBOUND_WORKLOAD back to $REBOUND_SOURCE from $REBOUND_SNAPSHOT"
rebound ensure --agent "unix:$node/agent.sock" --wait "${MIGRATE_WAIT:-30s}" workload
cp "$REBOUND_SNAPSHOT" "$node/data/workload.snap"

#!/bin/sh
# The workload runtime of this example, the same on every node: a stand-in
# for a container runtime or a VMM. It comes up, says so in data/ready, and
# stays running. A real one would restore the workload from
# data/workload.snap, where the migration puts its snapshot.
set -eu
node=$1
mkdir -p data
echo $$ > data/workload.pid
echo "workload runtime up on $node" > data/ready.tmp
mv data/ready.tmp data/ready
exec sleep 600

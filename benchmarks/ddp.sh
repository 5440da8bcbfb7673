#!/usr/bin/env bash
# One process on 2 cores against 2 ranks on 1 core each, same global batch (128), same sitting.
set -u
K=${KILN:-.build/release/kiln}
R=${OUT:-benchmarks/results/ddp}
mkdir -p $R
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 POCL_AFFINITY=1
common="--test-limit 1000 --val-fraction 0 --json"
for round in 1 2; do
  $K train $common --epochs 3 --batch-size 128 --out /tmp/ddpb/mlp1 > $R/mlp-1proc-round$round.jsonl 2>/dev/null
  mpirun -np 2 --oversubscribe $K train $common --epochs 3 --batch-size 64 --out /tmp/ddpb/mlp2 > $R/mlp-2ranks-round$round.jsonl 2>/dev/null
  $K train $common --model cnn --limit 20000 --epochs 2 --batch-size 128 --out /tmp/ddpb/cnn1 > $R/cnn-1proc-round$round.jsonl 2>/dev/null
  mpirun -np 2 --oversubscribe $K train $common --model cnn --limit 20000 --epochs 2 --batch-size 64 --out /tmp/ddpb/cnn2 > $R/cnn-2ranks-round$round.jsonl 2>/dev/null
done
for f in $R/*.jsonl; do echo "$(basename $f): $(tail -n 1 $f)"; done

#!/bin/bash
# The input gradient staged in chunks of channels (NEW) against 0.4.1 (OLD), both with the rule
# table, alternating: conv kernels, then CNN epochs.
set -u
R=/work/main/benchmarks/results/2026-12-02-zen3/chunked
NEW=/tmp/rel2/.build/release
OLD=/tmp/rel1/.build/release
unset POCL_AFFINITY
export KILN_TUNING=0
$NEW/kiln bench kernels --only conv > $R/kiln-conv-new-round1.txt 2>&1
$OLD/kiln bench kernels --only conv > $R/kiln-conv-old-round1.txt 2>&1
for r in 1 2; do
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
  $OLD/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-old-round$r.txt 2>&1
done
touch $R/.done

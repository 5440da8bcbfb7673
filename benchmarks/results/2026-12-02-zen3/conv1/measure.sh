#!/bin/bash
# conv1 staged (NEW: staged products need one full tile each way) against the final build (OLD:
# at least 16 weight-gradient tiles, so conv1 ran through im2col), both with the rule table.
set -u
R=/work/main/benchmarks/results/2026-12-02-zen3/conv1
NEW=/tmp/rel4/.build/release
OLD=/tmp/rel3/.build/release
unset POCL_AFFINITY
export KILN_TUNING=0
$NEW/kiln bench kernels --only conv > $R/kiln-conv-new-round1.txt 2>&1
$OLD/kiln bench kernels --only conv > $R/kiln-conv-old-round1.txt 2>&1
for r in 1 2; do
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
  $OLD/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-old-round$r.txt 2>&1
done
touch $R/.done

#!/bin/bash
# The second EPYC sitting: the build with staged input gradients in 1 MiB and multi-row pooling
# (NEW, tuned: after/kiln-tune.txt) against 0.4.0 (OLD, with the first sitting's tuning) and PyTorch.
set -u
R=/work/main/benchmarks/results/2026-12-02-epyc/after
NEW=/tmp/rel3/.build/release
OLD=/tmp/rel1/.build/release
OLDTUNE="env KILN_TUNING_DIR=/tmp/tune-rel1"
unset POCL_AFFINITY
$NEW/kiln bench kernels --only conv > $R/kiln-conv-new.txt 2>&1
$OLDTUNE $OLD/kiln bench kernels --only conv > $R/kiln-conv-old.txt 2>&1
for r in 1 2 3; do
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $OLDTUNE $OLD/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-old-round$r.txt 2>&1
done
for r in 1 2; do
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
done
touch $R/.done

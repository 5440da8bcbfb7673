#!/bin/bash
# The same epochs without POCL_AFFINITY (Kiln's default: nothing sets it).
set -u
R=/work/main/benchmarks/results/2026-12-02-tune/no-affinity
mkdir -p $R
NEW=/tmp/rel3/.build/release
OLD=/tmp/rel0/.build/release
unset POCL_AFFINITY
for r in 1 2; do
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round$r.txt 2>&1
  KILN_TUNING=0 $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-rules-round$r.txt 2>&1
  $OLD/kiln-bench train --epochs 3 > $R/kiln-mlp-before-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-tuned-round$r.txt 2>&1
  $OLD/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-before-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
done
$NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round1.txt 2>&1
python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round1.txt 2>&1
$OLD/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-before-round1.txt 2>&1
touch $R/.done

#!/bin/bash
# HEAD (6db5553, 0.4.2) after `kiln tune --budget 240`: CNN and MLP epochs against PyTorch, interleaved.
set -u
R=/work/main/benchmarks/results/2026-12-02-zen3/head
NEW=/tmp/rel5/.build/release
unset POCL_AFFINITY
$NEW/kiln tune --budget 240 > $R/kiln-tune.txt 2>&1
for r in 1 2; do
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round$r.txt 2>&1
done
python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round1.txt 2>&1
$NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round1.txt 2>&1

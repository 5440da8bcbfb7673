#!/bin/bash
# The final Zen 3 sitting: NEW (chunked input gradients, the AVX2 nt rule) after
# `kiln tune --budget 240`; products against numpy; MLP, MLP + BatchNorm1d and CNN epochs
# against PyTorch, interleaved; the rule table before (RULE0: chunked build, old nt rule) and after.
set -u
R=/work/main/benchmarks/results/2026-12-02-zen3/final
NEW=/tmp/rel3/.build/release
RULE0=/tmp/rel2/.build/release
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
$NEW/kiln tune --budget 240 > $R/kiln-tune.txt 2>&1
for r in 1 2 3; do
  $NP > $R/numpy-round$r.txt 2>&1
  $NEW/kiln bench kernels --only matmul mlp > $R/kiln-products-tuned-round$r.txt 2>&1
  KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp > $R/kiln-products-rules-round$r.txt 2>&1
done
for r in 1 2 3; do
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round$r.txt 2>&1
  KILN_TUNING=0 $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-rules-round$r.txt 2>&1
  KILN_TUNING=0 $RULE0/kiln-bench train --epochs 3 > $R/kiln-mlp-rules0-round$r.txt 2>&1
done
for r in 1 2; do
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-tuned-round$r.txt 2>&1
done
for r in 1 2 3; do
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round$r.txt 2>&1
done
KILN_TUNING=0 $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-rules-round3.txt 2>&1
cp ~/.cache/kiln/tuning/*.json $R/ 2>/dev/null
touch $R/.done

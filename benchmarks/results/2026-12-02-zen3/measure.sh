#!/bin/bash
# The first 2026-12-02 sitting on a 2-core AMD EPYC (Zen 3, AVX2): HEAD 6de59bd (0.4.1) with the
# rule table, then `kiln tune --budget 240`, then products against numpy and MLP, MLP + BatchNorm1d
# and CNN epochs against PyTorch, interleaved, tuned and with the rule table.
set -u
R=/work/main/benchmarks/results/2026-12-02-zen3
NEW=/tmp/rel1/.build/release
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
$NP > $R/numpy-round1.txt 2>&1
KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-rules-round1.txt 2>&1
$NEW/kiln tune --budget 240 > $R/kiln-tune.txt 2>&1
for r in 1 2; do
  $NP > $R/numpy-round$((r+1)).txt 2>&1
  $NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-tuned-round$r.txt 2>&1
done
for r in 1 2; do
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round$r.txt 2>&1
  KILN_TUNING=0 $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-rules-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-tuned-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round$r.txt 2>&1
done
KILN_TUNING=0 $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-rules-round1.txt 2>&1
touch $R/.done

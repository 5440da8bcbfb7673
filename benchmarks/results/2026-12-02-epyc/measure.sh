#!/bin/bash
# The 2026-12-02 EPYC (Zen 5, AVX-512) sitting: after `kiln tune --budget 240` (kiln-tune.txt),
# products against numpy, then MLP, MLP + BatchNorm1d and CNN epochs against PyTorch, interleaved.
set -u
R=/work/main/benchmarks/results/2026-12-02-epyc
NEW=/tmp/rel1/.build/release   # 0.4.0 (63c50b0)
OLD=/tmp/rel0/.build/release   # 0.3.0 (71e37c3)
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
$NP > $R/numpy-round1.txt 2>&1
$NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-tuned-round1.txt 2>&1
KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-rules-round1.txt 2>&1
$OLD/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-before-round1.txt 2>&1
$NP > $R/numpy-round2.txt 2>&1
for r in 1 2; do
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $OLD/kiln-bench train --epochs 3 > $R/kiln-mlp-before-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-tuned-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
done
KILN_TUNING=0 $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-rules-round1.txt 2>&1
$OLD/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-before-round1.txt 2>&1
touch $R/.done

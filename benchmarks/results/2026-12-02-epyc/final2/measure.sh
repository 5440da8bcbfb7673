#!/bin/bash
# More rounds of the final build (NEW, tuned as final/) against 0.4.0 (MID), numpy and PyTorch:
# products three times interleaved with numpy, then the CNN three times interleaved with PyTorch.
set -u
R=/work/main/benchmarks/results/2026-12-02-epyc/final2
NEW=/tmp/rel4/.build/release
MID="env KILN_TUNING_DIR=/tmp/tune-rel1 /tmp/rel1/.build/release"
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
for r in 1 2 3; do
  $NP > $R/numpy-round$r.txt 2>&1
  $NEW/kiln bench kernels --only matmul mlp > $R/kiln-products-new-round$r.txt 2>&1
done
for r in 1 2 3; do
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
  $MID/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-mid-round$r.txt 2>&1
done
touch $R/.done

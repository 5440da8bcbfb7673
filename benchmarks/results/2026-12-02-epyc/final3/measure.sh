#!/bin/bash
# The last sitting: HEAD with matmul_narrow_nt (NEW, tuned: final3/kiln-tune.txt): products three
# times interleaved with numpy, then MLP, MLP + BatchNorm1d and CNN epochs interleaved with PyTorch.
set -u
R=/work/main/benchmarks/results/2026-12-02-epyc/final3
NEW=/tmp/rel8/.build/release
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
for r in 1 2 3; do
  $NP > $R/numpy-round$r.txt 2>&1
  $NEW/kiln bench kernels --only matmul mlp > $R/kiln-products-new-round$r.txt 2>&1
done
for r in 1 2 3 4; do
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-new-round$r.txt 2>&1
done
for r in 1 2; do
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-new-round$r.txt 2>&1
done
for r in 1 2; do
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
done
# Then, run by hand: rounds 4 and 5 of the products (numpy, tuned, KILN_TUNING=0), and rounds 3
# and 4 of the CNN (PyTorch, then Kiln).

#!/bin/bash
# 2026-12-02 (evening) on a 2-core AMD EPYC of family 25 model 17 (Zen 4, AVX-512 on 256-bit units):
# a round of products against numpy and MLP, MLP + BatchNorm1d and CNN epochs against PyTorch,
# interleaved. Usage: measure.sh BUILD_DIR TAG ROUND [what...]
set -u
R=/work/main/benchmarks/results/2026-12-02-zen4
B=$1; TAG=$2; r=$3; shift 3
W=${*:-products mlp bn cnn}
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
T=/work/main/benchmarks/reference
for w in $W; do case $w in
  products) $NP > $R/numpy-$TAG-round$r.txt 2>&1
            $B/kiln bench kernels --only matmul mlp > $R/kiln-products-$TAG-round$r.txt 2>&1 ;;
  mlp) python3 $T/torch_mlp.py time --epochs 3 > $R/torch-mlp-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --epochs 3 > $R/kiln-mlp-$TAG-round$r.txt 2>&1 ;;
  bn)  python3 $T/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-$TAG-round$r.txt 2>&1 ;;
  cnn) python3 $T/torch_cnn.py time --epochs 2 > $R/torch-cnn-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-$TAG-round$r.txt 2>&1 ;;
esac; done

#!/bin/bash
# One measurement round on a CPU: numpy's products then `kiln bench kernels --only matmul mlp`,
# and PyTorch's then Kiln's MLP, MLP + BatchNorm1d and CNN epochs, interleaved so that each pair
# runs back to back. Outputs go to RESULTS as numpy-TAG-roundN.txt, kiln-products-TAG-roundN.txt,
# torch-mlp-TAG-roundN.txt, kiln-mlp-TAG-roundN.txt, ... (the names tables.py reads).
# Usage: round.sh RESULTS BUILD_DIR TAG ROUND [products mlp bn cnn]
set -u
R=$1; B=$2; TAG=$3; r=$4; shift 4
W=${*:-products mlp bn cnn}
unset POCL_AFFINITY
T=$(cd "$(dirname "$0")" && pwd)/reference
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 $T/numpy_matmul.py"
for w in $W; do case $w in
  products) $NP > $R/numpy-$TAG-round$r.txt 2>&1
            $B/kiln bench kernels --only matmul mlp > $R/kiln-products-$TAG-round$r.txt 2>&1 ;;
  mlp) python3 $T/torch_mlp.py time --epochs 3 > $R/torch-mlp-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --epochs 3 > $R/kiln-mlp-$TAG-round$r.txt 2>&1 ;;
  bn)  python3 $T/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-$TAG-round$r.txt 2>&1 ;;
  cnn) python3 $T/torch_cnn.py time --epochs 2 > $R/torch-cnn-$TAG-round$r.txt 2>&1
       $B/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-$TAG-round$r.txt 2>&1 ;;
  *) echo "round.sh: unknown part '$w' (products, mlp, bn or cnn)" >&2; exit 2 ;;
esac; done

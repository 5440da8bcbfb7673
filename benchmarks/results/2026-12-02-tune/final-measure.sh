#!/bin/bash
# The final sitting: kiln tune with the final build, then products and epochs (no POCL_AFFINITY).
set -u
R=/work/main/benchmarks/results/2026-12-02-tune/final
rm -rf $R; mkdir -p $R
NEW=/tmp/rel4/.build/release
OLD=/tmp/rel0/.build/release
unset POCL_AFFINITY
rm -f ~/.cache/kiln/tuning/*.json
(time $NEW/kiln tune --budget 240) 2>&1 | tr '\r' '\n' | grep -v '^\[' > $R/kiln-tune.txt
cp ~/.cache/kiln/tuning/*.json $R/tuned-xeon-avx512.json
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
$NP > $R/numpy-round1.txt 2>&1
$NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-tuned-round1.txt 2>&1
KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-rules-round1.txt 2>&1
$OLD/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-before-round1.txt 2>&1
$NP > $R/numpy-round2.txt 2>&1
for r in 1 2; do
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-tuned-round$r.txt 2>&1
  $OLD/kiln-bench train --epochs 3 > $R/kiln-mlp-before-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-tuned-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
done
$NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-tuned-round1.txt 2>&1
python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round1.txt 2>&1
KILN_TUNING=0 $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-rules-round1.txt 2>&1
touch $R/.done

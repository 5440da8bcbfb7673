#!/bin/bash
# The final EPYC sitting: this session's last build (NEW, tuned: final/kiln-tune.txt) against 0.4.0
# as the session found it (MID, with its own tuning from the first sitting), 0.3.0 (OLD), numpy and
# PyTorch, interleaved.
set -u
R=/work/main/benchmarks/results/2026-12-02-epyc/final
NEW=/tmp/rel4/.build/release
MID="env KILN_TUNING_DIR=/tmp/tune-rel1 /tmp/rel1/.build/release"
OLD=/tmp/rel0/.build/release
unset POCL_AFFINITY
NP="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 /work/main/benchmarks/reference/numpy_matmul.py"
$NP > $R/numpy-round1.txt 2>&1
$NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-new.txt 2>&1
KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-rules.txt 2>&1
$MID/kiln bench kernels --only matmul mlp conv > $R/kiln-kernels-mid.txt 2>&1
$NP > $R/numpy-round2.txt 2>&1
for r in 1 2 3 4; do
  $NEW/kiln-bench train --epochs 3 > $R/kiln-mlp-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 > $R/torch-mlp-round$r.txt 2>&1
  if [ $r -le 2 ]; then $OLD/kiln-bench train --epochs 3 > $R/kiln-mlp-old-round$r.txt 2>&1; fi
  $NEW/kiln-bench train --epochs 3 --batchnorm > $R/kiln-mlp-bn-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_mlp.py time --epochs 3 --batchnorm > $R/torch-mlp-bn-round$r.txt 2>&1
done
for r in 1 2 3; do
  $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-new-round$r.txt 2>&1
  python3 /work/main/benchmarks/reference/torch_cnn.py time --epochs 2 > $R/torch-cnn-round$r.txt 2>&1
  $MID/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-mid-round$r.txt 2>&1
done
KILN_TUNING=0 $NEW/kiln-bench train --model cnn --epochs 2 > $R/kiln-cnn-rules-round1.txt 2>&1
touch $R/.done

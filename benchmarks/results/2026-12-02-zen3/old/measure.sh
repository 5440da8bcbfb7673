#!/bin/bash
# Was Kiln's matmul slower on this Zen 3 than on the 2026-11-23 machine of the same kind because of
# a regression? The 2026-11-23 build (32aa023, OLD) and 0.4.1 (6de59bd, NEW, rule table), with and
# without POCL_AFFINITY, one after the other.
R=/work/main/benchmarks/results/2026-12-02-zen3/old
OLD=/tmp/rel0/.build/release
NEW=/tmp/rel1/.build/release
$OLD/kiln bench kernels --only matmul mlp > $R/kiln-0.1-round1.txt 2>&1
POCL_AFFINITY=1 $OLD/kiln bench kernels --only matmul mlp > $R/kiln-0.1-affinity-round1.txt 2>&1
KILN_TUNING=0 $NEW/kiln bench kernels --only matmul mlp > $R/kiln-rules-round1.txt 2>&1
KILN_TUNING=0 POCL_AFFINITY=1 $NEW/kiln bench kernels --only matmul mlp > $R/kiln-rules-affinity-round1.txt 2>&1

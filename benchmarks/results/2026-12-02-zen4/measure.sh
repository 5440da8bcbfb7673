#!/bin/bash
# 2026-12-02 (evening) on a 2-core AMD EPYC of family 25 model 17 (Zen 4, AVX-512 on 256-bit units):
# a round (benchmarks/round.sh) into this folder. Usage: measure.sh BUILD_DIR TAG ROUND [what...]
exec "$(dirname "$0")/../../round.sh" "$(cd "$(dirname "$0")" && pwd)" "$@"

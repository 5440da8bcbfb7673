#!/bin/bash
# 2026-12-02 (second sitting) on a 2-core AMD EPYC of family 23 (Zen 1, AVX2 on 128-bit units):
# a round (benchmarks/round.sh) into this folder. Usage: measure.sh BUILD_DIR TAG ROUND [what...]
exec "$(dirname "$0")/../../round.sh" "$(cd "$(dirname "$0")" && pwd)" "$@"

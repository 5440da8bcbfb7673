#!/usr/bin/env bash
# `kiln tune` on the GPU machine, then the kernel suite again with what it kept, beside the
# `../shared/gpu` recipe: after `../shared/gpu/prepare.sh`, copy this file into `.gpu/` and run
#   bash .gpu/on-device.sh; bash .gpu/gpu-tune.sh
# in the one device call (it takes about 200 s of the 540). Logs land in $OUT. Untested on a GPU
# so far: no GPU has been lent while the tuner existed.
set -uo pipefail
G="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$G/out}"
mkdir -p "$OUT"
export KILN_TUNING_DIR="$OUT/tuning"
timeout 150 "$G/kiln" tune --device gpu --budget 120 2>&1 | tr '\r' '\n' | tee "$OUT/tune.txt" | tail -30
timeout 60 "$G/kiln" bench kernels --device gpu --only matmul mlp --json-file "$OUT/bench-tuned.json" 2>&1 \
    | tee "$OUT/bench-tuned.txt" | tail -20
cp "$KILN_TUNING_DIR"/*.json "$OUT/" 2>/dev/null || true

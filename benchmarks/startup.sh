#!/usr/bin/env bash
# Start-up cost of building kernels.cl, with PoCL's kernel cache and Kiln's binary cache each
# cold or warm. Each case is a fresh process. Usage: benchmarks/startup.sh [kiln binary]
set -euo pipefail
kiln=${1:-.build/release/kiln}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() { echo "== $1"; shift; env "$@" "$kiln" bench --startup | grep -E "Open and build|First launch"; }
run "PoCL cold, Kiln cold"              POCL_CACHE_DIR="$tmp/pocl1" XDG_CACHE_HOME="$tmp/kiln"
run "PoCL cold, Kiln warm"              POCL_CACHE_DIR="$tmp/pocl2" XDG_CACHE_HOME="$tmp/kiln"
run "PoCL warm, Kiln off (KILN_CACHE=0)" POCL_CACHE_DIR="$tmp/pocl1" KILN_CACHE=0
run "PoCL warm, Kiln warm"              POCL_CACHE_DIR="$tmp/pocl1" XDG_CACHE_HOME="$tmp/kiln"

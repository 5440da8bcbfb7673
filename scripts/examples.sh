#!/usr/bin/env bash
# Runs every program of Examples/ in --quick mode from the debug build (`swift build` or
# `swift build --build-tests` makes them), in a temporary folder that takes their output files,
# and fails, naming them, when any fails. KILN_DEVICE picks the device, as for the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
examples=()
for main in Examples/*/main.swift; do examples+=("$(basename "$(dirname "$main")")"); done
build=$PWD/.build/debug
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for name in "${examples[@]}"; do
    if [[ ! -x $build/$name ]]; then
        echo "FAIL $name: $build/$name is missing (run swift build first)"
        failed+=("$name")
        continue
    fi
    start=$SECONDS
    # Run inside the temporary folder, with it as TMPDIR, so every file an example writes lands there.
    if (cd "$work" && TMPDIR=$work "$build/$name" --quick) >"$work/$name.log" 2>&1; then
        echo "ok   $name ($((SECONDS - start)) s)"
    else
        status=$?
        echo "FAIL $name (exit status $status); its output:"
        sed 's/^/    /' "$work/$name.log"
        failed+=("$name")
    fi
done

if ((${#failed[@]} > 0)); then
    echo "examples.sh: ${#failed[@]} of ${#examples[@]} examples failed: ${failed[*]}" >&2
    exit 1
fi
echo "examples.sh: all ${#examples[@]} examples ran in --quick mode"

#!/usr/bin/env bash
# Builds and runs every test under a sanitizer, in its own build folder (.build-address,
# .build-thread) so the normal .build stays untouched.
#   scripts/sanitize.sh address   # AddressSanitizer (leak checking off: Swift runtime/PoCL globals)
#   scripts/sanitize.sh thread    # ThreadSanitizer, every report printed (halt_on_error=0)
# Extra arguments go to `swift test` (e.g. --filter DeviceTests).
# PoCL and the OpenCL ICD loader are not instrumented; scripts/tsan-suppressions.txt, when
# present, silences reports whose frames lie only in them.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizer="${1:-}"
case "$sanitizer" in
  address|thread) ;;
  *) echo "usage: scripts/sanitize.sh address|thread [swift test arguments...]" >&2; exit 2 ;;
esac
shift

build=".build-$sanitizer"
# Tests that must behave differently under a sanitizer read this (the full-disk test, whose file
# size limit would also cut ThreadSanitizer's own shadow file in $TMPDIR short).
export KILN_SANITIZER="$sanitizer"
case "$sanitizer" in
  address)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:print_summary=1}"
    ;;
  thread)
    options="halt_on_error=0 second_deadlock_stack=1 history_size=4"
    if [ -f scripts/tsan-suppressions.txt ]; then
      options="$options suppressions=$PWD/scripts/tsan-suppressions.txt"
    fi
    export TSAN_OPTIONS="${TSAN_OPTIONS:-$options}"
    ;;
esac

echo "sanitize: $sanitizer  build: $build"
echo "sanitize: ASAN_OPTIONS=${ASAN_OPTIONS:-}  TSAN_OPTIONS=${TSAN_OPTIONS:-}"
swift build --build-tests --sanitize="$sanitizer" --build-path "$build"
swift test --skip-build --sanitize="$sanitizer" --build-path "$build" "$@"

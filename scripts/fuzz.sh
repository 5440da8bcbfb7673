#!/usr/bin/env bash
# Builds one libFuzzer target of Fuzz/ (AddressSanitizer + libFuzzer's coverage instrumentation)
# and fuzzes it. Not part of CI (scripts/test.sh): FuzzTests replays the checked-in corpus there.
#
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER-FLAGS...]
#   scripts/fuzz.sh safetensors 600
#   scripts/fuzz.sh csv 600 -fork=1 -ignore_crashes=1        # go on after a crash
#   scripts/fuzz.sh idx 0 -minimize_crash=1 -runs=20000 .build-fuzz/artifacts/idx/crash-...   # minimize
#   scripts/fuzz.sh metadata build                          # only build
#
# TARGET: safetensors, idx, csv or metadata. The working corpus .build-fuzz/corpus/TARGET is seeded
# from Fuzz/Corpus/TARGET (less the reproducers of Fuzz/Corpus/open-faults.txt, which would stop the
# run at once) and kept between runs; after a run it is merged (minimized) in place. Crashes,
# timeouts, out-of-memory and leak inputs go to .build-fuzz/artifacts/TARGET/, the log to
# .build-fuzz/logs/. A reproducer worth keeping goes into Fuzz/Corpus/TARGET/ with a descriptive
# name (crash-*, timeout-*, oom-*), listed in open-faults.txt until the fault is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${1:?usage: scripts/fuzz.sh safetensors|idx|csv|metadata [SECONDS|build] [libFuzzer flags...]}
SECONDS_TO_RUN=${2:-60}
shift; [ $# -gt 0 ] && shift
case "$TARGET" in safetensors|idx|csv|metadata) ;; *) echo "unknown target $TARGET" >&2; exit 2 ;; esac

BUILD=.build-fuzz
RUNTIME=$(dirname "$(readlink -f "$(command -v swiftc)")")/../lib/clang
RUNTIME=$(ls -d "$RUNTIME"/*/lib/linux | head -1)
NO_MAIN=$RUNTIME/libclang_rt.fuzzer_no_main-x86_64.a
[ -f "$NO_MAIN" ] || { echo "no libFuzzer runtime at $NO_MAIN" >&2; exit 1; }

# -sanitize=fuzzer,address only for the compiler front end (coverage instrumentation); the driver
# links ASan, and libFuzzer comes from fuzzer_no_main (FuzzDriver.swift says why not -sanitize=fuzzer).
# lld, because gold crashes (internal error in format_file_lineno) on these objects.
swift build -c debug --build-path "$BUILD" --product "kiln-fuzz-$TARGET" \
    -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -DKILN_FUZZ -Xswiftc -use-ld=lld -Xlinker "$NO_MAIN" -Xlinker -lstdc++ \
    2>&1 | grep -v "Cannot export local symbol" || true
BINARY=$BUILD/x86_64-unknown-linux-gnu/debug/kiln-fuzz-$TARGET
[ -x "$BINARY" ] || { echo "the build did not produce $BINARY" >&2; exit 1; }
[ "$SECONDS_TO_RUN" = build ] && exit 0

CORPUS=$BUILD/corpus/$TARGET
ARTIFACTS=$BUILD/artifacts/$TARGET
LOGS=$BUILD/logs
mkdir -p "$CORPUS" "$ARTIFACTS" "$LOGS"
OPEN=$( (grep -v '^#' Fuzz/Corpus/open-faults.txt 2>/dev/null || true) | awk -v t="$TARGET/" 'index($1, t) == 1 { print substr($1, length(t) + 1) }')
for seed in Fuzz/Corpus/"$TARGET"/*; do
    name=$(basename "$seed")
    grep -qxF "$name" <<<"$OPEN" && continue
    cp -n "$seed" "$CORPUS/seed-$name" 2>/dev/null || true
done

# Swift's own crash reporter would hold the run up; libFuzzer and ASan report instead.
export SWIFT_BACKTRACE=enable=no
# Step around the faults already reported (FuzzEntry.skipOpenFaults); 0 fuzzes them too.
export KILN_FUZZ_SKIP_OPEN_FAULTS=${KILN_FUZZ_SKIP_OPEN_FAULTS:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:handle_abort=1:symbolize=1}
LOG=$LOGS/$TARGET-$(date +%Y%m%d-%H%M%S).log
FLAGS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/")
# A file argument (a reproducer to minimize or replay) replaces the corpus.
if [ $# -gt 0 ] && [ -f "${!#}" ]; then
    "$BINARY" "${FLAGS[@]}" "$@" 2>&1 | tee "$LOG"
    exit "${PIPESTATUS[0]}"
fi
echo "fuzzing $TARGET for $SECONDS_TO_RUN s on $CORPUS ($(ls "$CORPUS" | wc -l) inputs); log $LOG"
set +e
"$BINARY" "${FLAGS[@]}" -max_total_time="$SECONDS_TO_RUN" "$@" "$CORPUS" 2>&1 | tee "$LOG"
STATUS=${PIPESTATUS[0]}
set -e

# Keep the working corpus minimal: merge it into a fresh folder and swap it in.
MERGED=$BUILD/corpus/$TARGET.merged
rm -rf "$MERGED"; mkdir -p "$MERGED"
"$BINARY" -merge=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$ARTIFACTS/" \
    "$MERGED" "$CORPUS" > "$LOGS/$TARGET-merge.log" 2>&1 && { rm -rf "$CORPUS"; mv "$MERGED" "$CORPUS"; }
echo "$TARGET: corpus $(ls "$CORPUS" | wc -l) files after merge; artifacts: $(ls "$ARTIFACTS" | wc -l) in $ARTIFACTS; fuzzer exit $STATUS"
exit "$STATUS"

#!/usr/bin/env bash
# Builds the documentation of every module with swift-docc-plugin, as one combined archive whose
# front page (Kiln's) leads into every module, and fails when DocC warns about anything.
#   scripts/docs.sh            → .build/plugins/Swift-DocC/outputs/Kiln.doccarchive
#   scripts/docs.sh --preview  → serves the Kiln module's pages at http://localhost:8080
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--preview" ]]; then
    exec swift package --disable-sandbox preview-documentation --target Kiln
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift package --disable-sandbox generate-documentation --enable-experimental-combined-documentation >"$log" 2>&1 || status=$?
grep -E -A3 "warning:|error:" "$log" || true
if [[ $status != 0 ]]; then
    tail -20 "$log" >&2
    echo "docs: DocC failed (exit $status)" >&2
    exit 1
fi
warnings=$(grep -c "warning:" "$log" || true)
if [[ "$warnings" != 0 ]]; then
    echo "docs: DocC gave $warnings warning(s); fix them (the lines above say where)" >&2
    exit 1
fi
echo "docs: 0 warnings; $(grep -A1 "Generated combined" "$log" | tail -1 | xargs)"

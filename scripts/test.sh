#!/usr/bin/env bash
# Installs what is missing (see setup.sh), then builds and runs every test on the default
# OpenCL device (KILN_DEVICE picks another), then every example in --quick mode (examples.sh).
# With no arguments it also checks that the documentation builds without a warning
# (scripts/docs.sh); arguments go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build --disable-xctest "$@"
scripts/examples.sh
if [ $# -eq 0 ]; then
  scripts/docs.sh
fi

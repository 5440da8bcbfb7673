#!/usr/bin/env bash
# Installs what is missing (see setup.sh), then builds and runs every test on the default
# OpenCL device (KILN_DEVICE picks another), then every example in --quick mode (examples.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build --disable-xctest "$@"
scripts/examples.sh

#!/usr/bin/env bash
# Installs what Kiln needs on Debian or Ubuntu when run as root; otherwise prints the exact
# command and stops. Safe to run again: it only installs what is missing.
set -euo pipefail

# openmpi-bin and libopenmpi-dev: `mpirun -np N kiln train` and the data-parallel tests (Kiln loads
# libmpi at run time, so it builds and runs without them).
packages=(pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo dataset-fashion-mnist zlib1g-dev openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: no Swift toolchain on PATH. Install Swift 6 from https://www.swift.org/install/linux/ and retry." >&2
  exit 1
fi

# The TensorBoard tests read Kiln's event files back with the tensorboard package's EventAccumulator
# (on CI a missing package fails them). Debian's own Python needs --break-system-packages for pip.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import tensorboard' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing the tensorboard Python package"
    if ! python3 -m pip --version >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    python3 -m pip install -q tensorboard 2>/dev/null || python3 -m pip install -q --break-system-packages tensorboard
  else
    echo "setup: the TensorBoard tests need the tensorboard Python package (skipped without it, failed on CI); run:  python3 -m pip install tensorboard  (add --break-system-packages for Debian's own Python)" >&2
  fi
fi

# An OpenCL device must be visible; on CI its absence fails loudly instead of skipping.
if ! clinfo -l 2>/dev/null | grep -q "Device #"; then
  echo "setup: no OpenCL device found (clinfo -l lists none). Install pocl-opencl-icd (CPU) or your GPU's OpenCL driver." >&2
  exit 1
fi

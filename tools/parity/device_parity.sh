#!/usr/bin/env bash
# The parity run on a GPU machine (docs/parity.md): builds diffgentor_parity against the machine's torch
# (bench/device_build.sh), then runs tools/parity/parity.py for every implemented type on CUDA, tables to
# $OUT/parity.txt and $OUT/parity.json. diffusers comes from .carry/wheels when the machine has none
# (bench/device_carry.sh); the harness says so and stops with exit code 2 when diffusers or transformers is missing.
set -euo pipefail
OUT=${OUT:-/tmp/dg-device}
source "$(dirname "$0")/../../bench/device_build.sh"
python3 -c 'import diffusers, transformers; print("diffusers", diffusers.__version__, "transformers", transformers.__version__)' || true
python3 tools/parity/parity.py --runner build-cuda/diffgentor_parity --device "${DEVICE:-cuda}" \
  --work "${WORK:-/tmp/dg-parity}" --json "$OUT/parity.json" "$@" 2>&1 | tee "$OUT/parity.txt"

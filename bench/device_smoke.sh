#!/usr/bin/env bash
# The CUDA check for a GPU machine (docs/development.md, 'Engine-only build and the CUDA check'): builds
# the engine alone against the libtorch inside the machine's Python torch, with the few headers and
# libraries it lacks carried in .carry/ (see the comment at the end), runs every implemented pipeline on
# the tiny bundles of the CPU reference run, on CUDA and on the machine's CPU, compares the outputs with
# that reference run's outputs, and times a small bundle on the GPU.
set -euo pipefail
OUT=${OUT:-/tmp/dg-device}
source "$(dirname "$0")/device_build.sh"   # -> build-cuda/, engine only, against the machine's torch
for dev in cuda cpu; do
  rm -rf "run-$dev"; mkdir -p "run-$dev"; cp -r .carry/cpu_ref/bundle_* "run-$dev/"
  ./build-cuda/diffgentor_engine_smoke "$dev" "run-$dev" tiny 4 $([ $dev = cuda ] && echo 5 || echo 1) .carry/cpu_ref | tee -a "$OUT/smoke.txt"
done
./build-cuda/diffgentor_engine_smoke cuda run-small small 20 3 | tee -a "$OUT/smoke.txt"
# .carry/ (ignored by git) is filled on the development machine by `bench/device_carry.sh VENV BUILD smoke`; cpu_ref/ in it is a CPU
# reference run, `diffgentor_engine_smoke cpu .carry/cpu_ref tiny 4 1` (its tiny bundles and .rgb images).

#!/usr/bin/env bash
# Fills .carry/ (git-ignored) here for the GPU machine's scripts. That machine has a Python with torch 2.11.0+cu130
# (the pin of tools/requirements.txt), transformers and accelerate, and none of the rest of the stack; it cannot
# download, and a run there takes at most 64 MiB of working tree and carried files together.
#   bench/device_carry.sh VENV BUILD          for bench/device_bench.sh and tools/parity/device_parity.sh
#   bench/device_carry.sh VENV BUILD smoke    for bench/device_smoke.sh
# VENV: the environment ./setup.sh made (docs/development.md); BUILD: an engine-only build with its tests, such as
# build/engine-only after the engine_only_build test. What goes in:
#   include/, lib/  Debian's nlohmann-json, fmt, Oniguruma and utf8proc headers and the two shared libraries
#   bin/            BUILD's engine-only programs and engine tests, stripped: bench/device_build.sh uses them where
#                   they load against that machine's torch (the same wheel's libtorch) and builds there otherwise
#   googletest/     GoogleTest's sources (Debian's googletest), so that the engine tests build there too
#   wheels/         diffusers' wheel (pure Python) at this project's pin, installed there into a scratch folder
#   cpu_ref/        `smoke` only, instead of the three above: a reference run of the smoke program on this CPU, its
#                   tiny bundles and .rgb outputs (about 33 MB); the smoke run then builds the engine there
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/device_carry.sh VENV ENGINE_ONLY_BUILD [smoke]"
venv=${1:?$usage}
build=${2:?$usage}
rm -rf .carry && mkdir -p .carry/include .carry/lib
cp -r /usr/include/nlohmann /usr/include/fmt /usr/include/oniguruma.h /usr/include/utf8proc.h .carry/include/
cp -P /usr/lib/x86_64-linux-gnu/libonig.so* /usr/lib/x86_64-linux-gnu/libutf8proc.so* .carry/lib/
if [ "${3:-}" = smoke ]; then
  "$build/diffgentor_engine_smoke" cpu .carry/cpu_ref tiny 4 1 >/dev/null
else
  mkdir -p .carry/bin .carry/wheels
  for exe in diffgentor_engine_smoke diffgentor_engine_bench diffgentor_parity dg_engine_tests; do
    strip -o ".carry/bin/$exe" "$build/$exe"
  done
  cp -r /usr/src/googletest .carry/googletest
  pin=$(sed -n 's/^diffusers==\([^ ]*\).*/\1/p' tools/requirements.txt)
  "$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d .carry/wheels "diffusers==$pin"
fi
du -sh .carry/*
# What travels: the files git tracks or would add, and .carry/.
total=$( (git ls-files --cached --others --exclude-standard; find .carry -type f) | tr '\n' '\0' \
  | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "working tree and .carry: $((total >> 20)) MiB of the 64 MiB a device run takes"
[ "$total" -le $((64 << 20)) ] || { echo "too large for a device run"; exit 1; }

#!/usr/bin/env bash
# Fills .carry/ (git-ignored) here for the GPU machine's scripts (bench/device_smoke.sh, bench/device_bench.sh,
# tools/parity/device_parity.sh). That machine has a Python with torch 2.11.0+cu130 (the pin of
# tools/requirements.txt), transformers and accelerate, and none of the rest of the stack; it cannot download.
#   include/, lib/  Debian's nlohmann-json, fmt, Oniguruma and utf8proc headers and the two shared libraries
#   googletest/     GoogleTest's sources (Debian's googletest), so the engine tests build there
#   wheels/         diffusers' wheel (pure Python) at this project's pin, installed there into a scratch folder
#   cpu_ref/        with `smoke`: a reference run of the smoke program on this CPU, its tiny bundles and .rgb
#                   outputs (for bench/device_smoke.sh; about 33 MB, too much beside the rest: a device run takes
#                   at most 64 MiB of working tree and carried files together)
#   bin/            BUILD's engine-only programs, stripped: bench/device_build.sh uses them where they load against
#                   that machine's torch (the same wheel's libtorch) and builds there otherwise
#   bench/device_carry.sh VENV BUILD [smoke]   (VENV: the environment ./setup.sh made, docs/development.md; BUILD:
#                                   an engine-only build, e.g. build/engine-only after the engine_only_build test)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: bench/device_carry.sh VENV ENGINE_ONLY_BUILD}
build=${2:?usage: bench/device_carry.sh VENV ENGINE_ONLY_BUILD}
rm -rf .carry && mkdir -p .carry/include .carry/lib .carry/wheels
cp -r /usr/include/nlohmann /usr/include/fmt /usr/include/oniguruma.h /usr/include/utf8proc.h .carry/include/
cp -P /usr/lib/x86_64-linux-gnu/libonig.so* /usr/lib/x86_64-linux-gnu/libutf8proc.so* .carry/lib/
cp -r /usr/src/googletest .carry/googletest
pin=$(sed -n 's/^diffusers==\([^ ]*\).*/\1/p' tools/requirements.txt)
"$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d .carry/wheels "diffusers==$pin"
mkdir -p .carry/bin
for exe in diffgentor_engine_smoke diffgentor_engine_bench diffgentor_parity dg_engine_tests; do
  strip -o ".carry/bin/$exe" "$build/$exe"
done
[ "${3:-}" != smoke ] || "$build/diffgentor_engine_smoke" cpu .carry/cpu_ref tiny 4 1 >/dev/null
du -sh .carry .carry/*

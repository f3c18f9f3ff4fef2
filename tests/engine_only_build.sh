#!/usr/bin/env bash
# CI check of the engine-only build (DG_ENGINE_ONLY, docs/development.md): configures and compiles the engine
# the way a machine with only a libtorch does it (fmt header-only and nlohmann_json from plain include
# folders), with its tests built from GoogleTest's sources (as bench/device_bench.sh does on a GPU machine),
# checks that nothing of OpenCV, libcurl, CLI11 or spdlog reaches its compile or link lines, and runs its smoke
# program on tiny bundles and the engine tests of the offload. It also checks that no engine source uses the
# command line's types.
#   engine_only_build.sh <source dir> <build dir> <CMAKE_PREFIX_PATH: where libtorch's config is>
set -euo pipefail
src=$1
dir=$2
# The engine knows nothing of the command line: no engine file uses the CLI's types or headers.
if grep -n -E 'EditOptions|UsageError|options\.hpp|cli\.hpp|runner\.hpp' -r "$src/src/engine" "$src/src/models" \
     "$src/src/core" "$src/include/diffgentor/pipeline.hpp" "$src/include/diffgentor/bundle_pipeline.hpp" \
     "$src/include/diffgentor/model_registry.hpp" "$src/bench/engine_smoke.cpp" "$src/bench/engine_bench.cpp" "$src/tools/parity/parity_runner.cpp"; then
  echo "engine code uses the command line's types (above)"; exit 1
fi
cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDG_ENGINE_ONLY=ON "-DCMAKE_PREFIX_PATH=$3" \
  -DDG_FMT_INCLUDE=/usr/include -DDG_JSON_INCLUDE=/usr/include -DDG_GTEST_SOURCE=/usr/src/googletest >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j 2
if grep -E -i 'opencv|libcurl|cli11|spdlog' "$dir/build.ninja" >/dev/null; then
  echo "engine-only build references an I/O library:"; grep -E -i -o '[^ ]*(opencv|libcurl|cli11|spdlog)[^ ]*' "$dir/build.ninja" | sort -u | head
  exit 1
fi
for exe in diffgentor_engine_smoke diffgentor_engine_bench diffgentor_parity dg_engine_tests; do [ -x "$dir/$exe" ] || { echo "missing $exe"; exit 1; }; done
[ ! -e "$dir/diffgentor" ] || { echo "engine-only build produced the full CLI"; exit 1; }
rm -rf "$dir/smoke"
"$dir/diffgentor_engine_smoke" cpu "$dir/smoke" tiny 2 1
"$dir/dg_engine_tests" --gtest_filter='CpuOffload.*:DeviceTiming.*' --gtest_brief=1
echo "engine-only build: ok"

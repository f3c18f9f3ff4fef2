# shellcheck shell=bash
# Sourced by the GPU machine's scripts (bench/device_smoke.sh, bench/device_bench.sh, tools/parity/device_parity.sh):
# puts the engine-only programs and tests in build-cuda/, run against the libtorch inside the machine's Python torch.
# The programs built here beforehand (.carry/bin, bench/device_carry.sh) are used when they load against that
# libtorch (the same torch wheel); otherwise the engine is built there (DG_ENGINE_ONLY, with the engine tests when
# GoogleTest's sources are carried), taking the headers and the two small libraries the machine lacks from .carry/.
mkdir -p "$OUT"
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
  || { echo "device_build.sh: python3 has no torch"; exit 1; }
export LD_LIBRARY_PATH="$PWD/.carry/lib:$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export DIFFGENTOR_TESTDATA="$PWD/tests/data"  # the engine tests' golden data (their built-in path is the build's)
python3 -c 'import torch; c = torch.cuda.is_available(); print("torch", torch.__version__, "cuda", torch.version.cuda,
                                                              torch.cuda.get_device_name(0) if c else "(no GPU)")'
rm -rf build-cuda
if [ -x .carry/bin/dg_engine_tests ] && .carry/bin/dg_engine_tests --gtest_list_tests >"$OUT/prebuilt.log" 2>&1; then
  mkdir -p build-cuda && cp .carry/bin/* build-cuda/
  echo "using the programs built beforehand (.carry/bin)"
else
  [ -x .carry/bin/dg_engine_tests ] && { echo "the carried programs do not load here; building:"; tail -3 "$OUT/prebuilt.log"; }
  TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  GT=(); [ -d .carry/googletest ] && GT=("-DDG_GTEST_SOURCE=$PWD/.carry/googletest")
  cmake -S . -B build-cuda -G Ninja -DDG_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$TP;$PWD/.carry" \
    "-DDG_FMT_INCLUDE=$PWD/.carry/include" "-DDG_JSON_INCLUDE=$PWD/.carry/include" "${GT[@]}" >"$OUT/cmake.log" 2>&1 \
    || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build build-cuda -j "$(nproc)" >"$OUT/build.log" 2>&1 || { grep -m 30 -E "error|Error" "$OUT/build.log"; exit 1; }
fi
# diffusers (the machine has none), for the scripts that compare with it.
if compgen -G ".carry/wheels/*.whl" >/dev/null && ! python3 -c 'import diffusers' 2>/dev/null; then
  if PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-index --no-deps \
    --no-compile --no-cache-dir --target /tmp/dg-site .carry/wheels/*.whl; then
    export PYTHONPATH="/tmp/dg-site:${PYTHONPATH:-}"
  else  # not fatal here: only the comparisons need it, and they say so
    echo "device_build.sh: the carried diffusers wheel did not install (above)"
  fi
fi

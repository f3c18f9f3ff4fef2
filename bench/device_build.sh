# Sourced by bench/device_smoke.sh and tools/parity/device_parity.sh on a GPU machine: builds the engine
# alone (DG_ENGINE_ONLY) in build-cuda/ against the libtorch inside the machine's Python torch, with the headers
# and the two small libraries the machine lacks carried in .carry/ (see the end of bench/device_smoke.sh).
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
rm -rf build-cuda
cmake -S . -B build-cuda -G Ninja -DDG_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$TP;$PWD/.carry" \
  "-DDG_FMT_INCLUDE=$PWD/.carry/include" "-DDG_JSON_INCLUDE=$PWD/.carry/include" >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build-cuda -j "$(nproc)" >"$OUT/build.log" 2>&1 || { grep -m 30 -E "error|Error" "$OUT/build.log"; exit 1; }

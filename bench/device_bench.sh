#!/usr/bin/env bash
# The GPU checks and figures in one run (docs/performance.md, "On a GPU"), for a GPU machine whose Python has
# torch, with .carry/ filled here by bench/device_carry.sh. In order, each step's output in $OUT/bench.txt:
#   1. the engine's programs and tests (bench/device_build.sh: the carried ones, or built there);
#   2. the engine tests that need CUDA: CpuOffload.* (the offload's real moves and the allocator's peak);
#   3. diffgentor_engine_bench on small bundles, 1024x1024 inputs, bfloat16, 20 steps: --batch_size 1, 2, 4,
#      CFG fused vs split, and the model CPU offload (qwen_singleimg with true CFG, flux2_klein with its guidance
#      distilled, so no second branch): rows/s, the loop's overhead over the transformer, peak GPU memory; it
#      exits 1 when the offload changes an image;
#   4. bench/vs_diffusers.py with diffgentor's side through the engine bench, without and with --offload (diffusers'
#      enable_model_cpu_offload): rows/s and peak GPU memory on the same weights.
# About five minutes on an H200 with the carried programs, plus about four when it builds. Steps after a failed one
# still run; the exit status is the first failure's.
#   bench/device_bench.sh         (in the repository root there; OUT defaults to /tmp/dg-device)
# DEVICE, SIZE, IMAGE, STEPS, ROWS and THREADS (CPU threads) override the defaults above, e.g. for a short
# rehearsal on a CPU (without the offload comparison there):
#   DEVICE=cpu SIZE=tiny IMAGE=256x256 STEPS=2 ROWS=2 THREADS=2 bench/device_bench.sh
set -uo pipefail
OUT=${OUT:-/tmp/dg-device}
DEVICE=${DEVICE:-cuda} SIZE=${SIZE:-small} IMAGE=${IMAGE:-1024x1024} STEPS=${STEPS:-20} ROWS=${ROWS:-8} THREADS=${THREADS:-8}
status=0
step() {  # step NAME COMMAND...: runs it, its output into $OUT/bench.txt, and keeps the first failure's status
  local name=$1 t0=$SECONDS
  shift
  echo "== $name" | tee -a "$OUT/bench.txt"
  "$@" 2>&1 | tee -a "$OUT/bench.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/bench.txt"
  [ "$rc" = 0 ] || [ "$status" != 0 ] || status=$rc
}
source "$(dirname "$0")/device_build.sh" || exit 1
step "engine tests on $DEVICE" build-cuda/dg_engine_tests --gtest_filter='CpuOffload.*' --gtest_brief=1
for type in qwen_singleimg flux2_klein; do
  cfg=(); [ $type = qwen_singleimg ] && cfg=(--true_cfg 4 --negative " ")
  step "engine bench $type" build-cuda/diffgentor_engine_bench --type $type --size "$SIZE" --device "$DEVICE" \
    --dtype bfloat16 --steps "$STEPS" --rows "$ROWS" --threads "$THREADS" --image "$IMAGE" "${cfg[@]}" \
    --json "$OUT/engine_bench_$type.json" \
    --modes b1-split,b1-fused,b2-fused,b4-fused,b4-split,b1-fused-offload,b1-split-offload
done
if python3 -c 'import diffusers' 2>/dev/null; then
  offloads=(""); [ "$DEVICE" = cpu ] || offloads+=(--offload)
  for offload in "${offloads[@]}"; do
    step "vs diffusers $offload" python3 bench/vs_diffusers.py --engine_bench build-cuda/diffgentor_engine_bench \
      --types qwen_singleimg,flux2_klein --size "$SIZE" --device "$DEVICE" --dtype bfloat16 --rows "$((ROWS / 2))" \
      --steps "$STEPS" --threads "$THREADS" --repeats 2 ${offload:+"$offload"} \
      --json "$OUT/vs_diffusers${offload:+_offload}.json"
  done
else
  echo "no diffusers here (carry it with bench/device_carry.sh): the comparison is skipped" | tee -a "$OUT/bench.txt"
fi
exit "$status"

#!/usr/bin/env bash
# The GPU checks and figures in one run (docs/performance.md, "On a GPU"), for a GPU machine whose Python has
# torch, with .carry/ filled here by bench/device_carry.sh. It takes the engine's programs and tests from
# bench/device_build.sh (the carried ones, or built there), then runs these steps, each one's output going to
# $OUT/bench.txt as it comes:
#   1. the engine tests that need CUDA: CpuOffload.* (the offload's real moves and the allocator's peak) and
#      DeviceTiming.* (the transformer timed on the device, alone and in a batch);
#   2. diffgentor_engine_bench on small bundles, 1024x1024 inputs, bfloat16, 20 steps, 8 rows: --batch_size 1, 2
#      and 4, CFG fused and split, the model CPU offload, and a -timed mode for the loop's overhead over the
#      transformer; rows/s and peak GPU memory in each. qwen_singleimg runs true CFG 4 (two branches a step);
#      the tiny-family flux2_klein is guidance-distilled (one branch, so fused and split are the same run). The
#      bench exits 1 when the offload changes an image;
#   3. bench/vs_diffusers.py with diffgentor's side through the engine bench, without and with --offload
#      (diffusers' enable_model_cpu_offload): rows/s and peak GPU memory on the same weights (its own small
#      pipelines from the real classes; their flux2_klein is not distilled and runs CFG at guidance 4).
# About five minutes on an H200 with the carried programs, plus about four when it builds. Each step is cut at
# STEP_LIMIT seconds (default 150) so that the steps after it still run, and no step starts or runs past DEADLINE
# seconds after the script started (default 540, inside a 600 s limit). The exit status is the first failure's.
#   bench/device_bench.sh         (in the repository root there; OUT defaults to /tmp/dg-device)
# DEVICE, SIZE, IMAGE, STEPS, ROWS and THREADS (CPU threads) override the defaults above, e.g. for a short
# rehearsal on a CPU (without the offload comparison there):
#   DEVICE=cpu SIZE=tiny IMAGE=256x256 STEPS=2 ROWS=2 THREADS=2 bench/device_bench.sh
set -uo pipefail
OUT=${OUT:-/tmp/dg-device}
DEVICE=${DEVICE:-cuda} SIZE=${SIZE:-small} IMAGE=${IMAGE:-1024x1024} STEPS=${STEPS:-20} ROWS=${ROWS:-8} THREADS=${THREADS:-8}
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: runs it (at most STEP_LIMIT s), its output into $OUT/bench.txt; keeps a failure
  local name=$1 t0=$SECONDS limit=$((${DEADLINE:-540} - SECONDS))
  shift
  [ "$limit" -le "${STEP_LIMIT:-150}" ] || limit=${STEP_LIMIT:-150}
  if [ "$limit" -lt 20 ]; then
    echo "== $name: not started, the deadline is near" | tee -a "$OUT/bench.txt"
    [ "$status" != 0 ] || status=124
    return
  fi
  echo "== $name" | tee -a "$OUT/bench.txt"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/bench.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc$([ "$rc" = 124 ] && echo ' (cut at the step limit)'), $((SECONDS - t0)) s" | tee -a "$OUT/bench.txt"
  [ "$rc" = 0 ] || [ "$status" != 0 ] || status=$rc
}
source "$(dirname "$0")/device_build.sh" || exit 1
step "engine tests on $DEVICE" build-cuda/dg_engine_tests --gtest_filter='CpuOffload.*:DeviceTiming.*' --gtest_brief=1
for type in qwen_singleimg flux2_klein; do
  if [ $type = qwen_singleimg ]; then
    cfg=(--true_cfg 4 --negative " ")
    modes=b1-split,b1-fused,b2-fused,b4-fused,b4-split,b1-fused-offload,b1-split-offload,b1-fused-timed,b1-split-timed
  else
    cfg=()
    modes=b1-fused,b2-fused,b4-fused,b1-fused-offload,b1-fused-timed
  fi
  step "engine bench $type" build-cuda/diffgentor_engine_bench --type $type --size "$SIZE" --device "$DEVICE" \
    --dtype bfloat16 --steps "$STEPS" --rows "$ROWS" --threads "$THREADS" --image "$IMAGE" "${cfg[@]}" \
    --json "$OUT/engine_bench_$type.json" --modes "$modes"
done
if python3 -c 'import diffusers' 2>/dev/null; then
  offloads=(""); [ "$DEVICE" = cpu ] || offloads+=(--offload)
  for offload in "${offloads[@]}"; do  # one --work: the second run reuses the first one's snapshots and bundles
    step "vs diffusers $offload" python3 bench/vs_diffusers.py --engine_bench build-cuda/diffgentor_engine_bench \
      --types qwen_singleimg,flux2_klein --size "$SIZE" --device "$DEVICE" --dtype bfloat16 --rows "$((ROWS / 2))" \
      --steps "$STEPS" --threads "$THREADS" --repeats 2 ${offload:+"$offload"} --work /tmp/dg-vs-diffusers \
      --json "$OUT/vs_diffusers${offload:+_offload}.json"
  done
elif compgen -G ".carry/wheels/*.whl" >/dev/null; then
  echo "diffusers was carried but does not import here (above): the comparison did not run" | tee -a "$OUT/bench.txt"
  [ "$status" != 0 ] || status=1
else
  echo "no diffusers here (carry it with bench/device_carry.sh): the comparison is skipped" | tee -a "$OUT/bench.txt"
fi
exit "$status"

#!/usr/bin/env bash
# Rows/s of the model stage for --batch_size 1, 2, 4 and CFG fused vs split, on tiny and small bundles
# (docs/performance.md, "Batched denoising"). Runs diffgentor_bench once per setting, float32, 2 threads,
# every row the same input with instructions of different lengths so that rows can batch.
#   bench/batching.sh BUILD_DIR [MODEL_TYPE ...]     (default: qwen_singleimg longcat)
set -euo pipefail
build=${1:?usage: bench/batching.sh BUILD_DIR [MODEL_TYPE ...]}
shift
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(qwen_singleimg longcat)
printf '| type | size | batch | CFG | model rows/s | denoise s/row | transformer passes | loop overhead |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for type in "${types[@]}"; do
  for size in tiny small; do
    for setting in "1 split" "1 fused" "2 fused" "4 fused" "4 split"; do
      read -r batch cfg <<<"$setting"
      out=$("$build/diffgentor_bench" --size "$size" --rows 8 --steps 4 --threads 2 --dtype float32 \
        --model_type "$type" --rows_kind single --cfg 1 --batch_size "$batch" --cfg_batch "$cfg" 2>&1)
      rate=$(sed -n 's/^model stage: \([0-9.]*\) rows\/s.*/\1/p' <<<"$out")
      passes=$(sed -n 's/.*transformer calls \([0-9]*\) in \([0-9]*\) passes.*/\2 of \1/p' <<<"$out")
      denoise=$(sed -n 's/^  denoise *\([0-9.]*\)$/\1/p' <<<"$out")
      overhead=$(sed -n 's/.*overhead \([0-9.]*\) %.*/\1 %/p' <<<"$out")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$type" "$size" "$batch" "$cfg" "$rate" "$denoise" \
        "$passes" "${overhead:-·}"
    done
  done
done

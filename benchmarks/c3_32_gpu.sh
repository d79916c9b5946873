#!/usr/bin/env bash
# C^3(32) on one CUDA GPU, apart from the CPU grids (results in benchmarks/results/$TAG, default gpu):
#   1. seconds per epoch of standard and repr, fp32 and bf16 (gpu_epoch.py; target <= 1.5 s on an H100-class GPU);
#   2. bf16 against fp32 on one cell (standard, seed 0) and the augmented regime, 3 seeds, side by side;
#   3. the paper's regime, 3 seeds, and the ranking criteria, 3 seeds, side by side.
# One c3_32 step is far too small to fill a GPU, so cells run side by side (one CPU thread each): a stage's
# throughput, not one cell's speed, is what counts. Every accuracy is fp32 except the bf16 cell. Resumable:
# rerun after an interruption and finished cells are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
R=benchmarks/results/${TAG:-gpu}
SEEDS=${SEEDS:-0,1,2}
mkdir -p "$R"
common=(--model c3_32 --dataset cifar10 --epochs 100 --channels-last --device cuda --threads 1 --quiet)

for precision in fp32 bf16; do
  out=$R/gpu_epoch_$precision.json
  [ -f "$out" ] || python benchmarks/gpu_epoch.py --channels-last --precision $precision --out "$out" 2>&1 | tee "${out%.json}.log"
done

side_by_side() {  # wait for every grid started in the background; fail if any failed
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return $failed
}

prunekit bench --methods standard --set precision=fp32,bf16 --seeds 0 --jobs 2 --out "$R/c3_32-precision" "${common[@]}" &
a=$!
prunekit bench --methods standard,repr --augment --seeds "$SEEDS" --jobs 6 --out "$R/c3_32-augmented" "${common[@]}" &
side_by_side $a $!

prunekit bench --methods standard,repr --seeds "$SEEDS" --jobs 6 --out "$R/c3_32-paper" "${common[@]}" &
a=$!
prunekit bench --methods repr --set ranker=l1,random,activation,apoz,gradient,taylor,hessian,oracle --seeds "$SEEDS" \
  --jobs 7 --out "$R/c3_32-criteria" "${common[@]}" &
side_by_side $a $!
for seed in ${SEEDS//,/ }; do  # the criteria table's orthogonality column is the paper grid's repr cell
  link_finished_run "$R/c3_32-paper/repr_seed$seed" "$R/c3_32-criteria/repr_ranker=orthogonality_seed$seed"
done
prunekit bench --methods repr --set ranker=orthogonality,l1,random,activation,apoz,gradient,taylor,hessian,oracle \
  --seeds "$SEEDS" --table-only --out "$R/c3_32-criteria" "${common[@]}"

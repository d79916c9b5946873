#!/usr/bin/env bash
# Ablations of RePr on C^3(32), paper regime, seed(s) SEEDS (default 0): one
# column per change from RePr's defaults, each alone (`bench --ablate`):
# ranker reverse-orthogonality (drop the most orthogonal filters instead), next
# layer random (not zero), re-init default or keep (not null space), per-layer
# scope (not global), and two remedies for the shallow-layer bias of global
# ranking: never dropping the first conv (the author's advice to a reproducer)
# and the fan-in-corrected score. Rankers l1 and random are in c3_32_criteria.sh.
# The default column links the finished `repr` runs of c3_32_paper.sh (run those
# first). JOBS cells side by side (default 2). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
SEEDS=${SEEDS:-0}
OUT=benchmarks/results/c3_32-ablations
for seed in ${SEEDS//,/ }; do
  link_finished_run benchmarks/results/c3_32-paper/repr_seed$seed "$OUT/repr_seed$seed"
done
import_offline_copy
prunekit bench --methods repr --ablate --set ranker=reverse-orthogonality --set next_layer=random \
  --set reinitializer=default,keep --set scope=layer --set exclude_first=true --set fan_in_correction=true \
  --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
  --seeds "$SEEDS" --jobs "${JOBS:-2}" --out "$OUT" --quiet

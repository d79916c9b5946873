#!/usr/bin/env bash
# Ablations of RePr on C^3(32), paper regime, seed(s) SEEDS (default 0), one grid
# folder per axis under benchmarks/results/c3_32-ablations/. Each axis lists only
# the values that differ from RePr's defaults (ranker orthogonality, next_layer
# zero, reinit nullspace, scope global); the default column is the `repr` cell of
# benchmarks/results/c3_32-paper. Ranker l1 and random are in c3_32_criteria.sh.
# JOBS cells side by side (default 2). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
OUT=benchmarks/results/c3_32-ablations
for axis in "ranker=reverse-orthogonality" "next_layer=random" "reinitializer=default,keep" "scope=layer"; do
  prunekit bench --methods repr --set "$axis" --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
    --seeds "${SEEDS:-0}" --jobs "${JOBS:-2}" --out "$OUT/${axis%%=*}" --quiet
done

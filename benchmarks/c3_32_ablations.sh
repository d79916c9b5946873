#!/usr/bin/env bash
# Ablations of RePr on C^3(32), paper regime, seed(s) SEEDS (default 1): one
# column per change from RePr's defaults, each alone (`bench --ablate`), in the
# order they run, most telling first: two remedies for the shallow-layer bias of
# global ranking (the finished runs drop 24 of conv1's 32 filters at the first
# event): never dropping the first conv (the author's advice to a reproducer)
# and per-layer scope (not global); next layer random (not zero); the
# fan-in-corrected score; re-init default or keep (not null space); ranker
# reverse-orthogonality (drop the most orthogonal filters instead). Rankers l1
# and random are in c3_32_criteria.sh. Seed 1 by default because its `repr` run
# kept its warm-up state (epoch 20), so every cell starts there and trains 80
# epochs, the same run it would be from scratch (prunekit/warmup.py).
# The default column links the finished `repr` runs of c3_32_paper.sh (run those
# first). JOBS cells side by side (default 2). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
SEEDS=${SEEDS:-1}
OUT=benchmarks/results/c3_32-ablations
for seed in ${SEEDS//,/ }; do
  link_finished_run benchmarks/results/c3_32-paper/repr_seed$seed "$OUT/repr_seed$seed"
done
import_offline_copy
prunekit bench --methods repr --ablate --set exclude_first=true --set scope=layer --set next_layer=random \
  --set fan_in_correction=true --set reinitializer=default,keep --set ranker=reverse-orthogonality \
  --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
  --seeds "$SEEDS" --jobs "${JOBS:-2}" --out "$OUT" --quiet

#!/usr/bin/env bash
# The paper's ranking-criteria table: the RePr cycle (paper regime, as in
# c3_32_paper.sh) with each ranker in turn, seeds SEEDS (default 0,1,2), JOBS cells
# side by side (default 2); RANKERS (a comma list, default all nine) runs some of
# them first, into the same grid. The orthogonality column is RePr itself: its cells
# are links to the finished `repr` runs of benchmarks/results/c3_32-paper (same
# settings, which bench checks), so run c3_32_paper.sh for those seeds first.
# Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
SEEDS=${SEEDS:-0,1,2}
OUT=benchmarks/results/c3_32-criteria
for seed in ${SEEDS//,/ }; do
  link_finished_run benchmarks/results/c3_32-paper/repr_seed$seed "$OUT/repr_ranker=orthogonality_seed$seed"
done
import_offline_copy
prunekit bench --methods repr --set ranker="${RANKERS:-orthogonality,l1,random,activation,apoz,gradient,taylor,hessian,oracle}" \
  --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
  --seeds "$SEEDS" --jobs "${JOBS:-2}" --out "$OUT" --quiet

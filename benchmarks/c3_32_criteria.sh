#!/usr/bin/env bash
# The paper's ranking-criteria table: one RePr cycle schedule (paper regime, as in
# c3_32_paper.sh) with each ranker in turn, seeds SEEDS (default 0,1,2). The
# orthogonality column is RePr itself; its runs are the `repr` cells of
# benchmarks/results/c3_32-paper (same configuration), so it is not run twice here.
# JOBS cells side by side (default 2). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods repr --set ranker="${RANKERS:-l1,random,activation,apoz,gradient,taylor,oracle}" \
  --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
  --seeds "${SEEDS:-0,1,2}" --jobs "${JOBS:-2}" --out benchmarks/results/c3_32-criteria --quiet

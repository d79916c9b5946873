#!/usr/bin/env bash
# The paper's regime plus random crop (pad 4) + horizontal flip: C^3(32) on
# CIFAR-10, standard vs RePr, 100 epochs, seeds SEEDS (default 0,1,2), fp32 +
# channels_last, JOBS cells side by side (default 2). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods standard,repr --model c3_32 --dataset cifar10 --epochs 100 --channels-last --augment \
  --seeds "${SEEDS:-0,1,2}" --jobs "${JOBS:-2}" --out benchmarks/results/c3_32-augmented --quiet

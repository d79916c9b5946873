#!/usr/bin/env bash
# The paper's regime for C^3(32) on CIFAR-10: standard vs RePr, 100 epochs, seeds
# SEEDS (default 0,1,2): no augmentation, plain SGD lr 0.01, batch 128, fp32 +
# channels_last; RePr S1 20, S2 10, p 30 %. JOBS cells run side by side (default
# 2, one thread each on this 2-core machine). Resumable: rerun to continue;
# Ctrl-C stops every cell at its last finished epoch.
# Needs CIFAR-10 in the data cache: `prunekit data import ../shared/datasets/cifar10-jpeg.tar.gz`.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods standard,repr --model c3_32 --dataset cifar10 --epochs 100 --channels-last \
  --seeds "${SEEDS:-0,1,2}" --jobs "${JOBS:-2}" --out benchmarks/results/c3_32-paper --quiet

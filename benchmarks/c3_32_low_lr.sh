#!/usr/bin/env bash
# The paper's regime at lr 0.003 instead of 0.01: the one setting in which the
# public reproduction of RePr saw a gain (no augmentation, 64.86 -> 69.05). C^3(32)
# on CIFAR-10, repr then standard, 100 epochs, seeds SEEDS (default 1), fp32 +
# channels_last, JOBS cells at a time (default 1: `standard` then starts from
# `repr`'s warm-up at epoch 20 and trains 80 epochs). Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods repr,standard --model c3_32 --dataset cifar10 --epochs 100 --channels-last --lr 0.003 \
  --seeds "${SEEDS:-1}" --jobs "${JOBS:-1}" --out benchmarks/results/c3_32-low-lr --quiet

#!/usr/bin/env bash
# The public reproduction's one RePr gain, at its own length: C^3(32) (no pooling) on CIFAR-10, no
# augmentation, plain SGD lr 0.003, batch 128, 200 epochs, fp32 + channels_last; repr with S1 20,
# S2 10, p 30 % and as many cycles as fit: six (drops at 20, 50, ..., 170, restores at 30, 60, ...,
# 180, then 20 full-network epochs), as in that reproduction (64.86 -> 69.05, best epoch). repr
# then standard, seeds SEEDS (default 0,1); with JOBS 1 (the default) `standard` starts from the
# same seed's `repr` warm-up at epoch 20 and trains 180 epochs: 380 epochs a seed, at 114 s an
# epoch (one thread, this machine beside another job) some 12 h a seed. Resumable like c3_32_paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods repr,standard --model c3_32 --dataset cifar10 --epochs 200 --channels-last --lr 0.003 \
  --seeds "${SEEDS:-0,1}" --jobs "${JOBS:-1}" --out benchmarks/results/c3_32-low-lr-200 --quiet

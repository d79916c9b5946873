#!/usr/bin/env bash
# CIFAR ResNet-20 on CIFAR-10, standard vs RePr, seed(s) SEEDS (default 0), JOBS
# cells side by side (default 2). A common CIFAR ResNet recipe, shortened to fit
# 2-core sessions: SGD momentum 0.9, lr 0.1 cosine, weight decay 5e-4, batch 128,
# random crop + flip, fp32 + channels_last, EPOCHS epochs (default 24); RePr with
# S1 = EPOCHS/4, S2 = EPOCHS/8 and as many cycles as fit before a last
# full-network phase (24 epochs: drops at 6 and 15, restores at 9 and 18), p 30 %.
# `EPOCHS=100` gives S1 25, S2 12. Resumable: rerun to continue; Ctrl-C stops
# every cell at its last finished epoch.
# Needs CIFAR-10 in the data cache (`prunekit data import ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
EPOCHS=${EPOCHS:-24}
if [ "$EPOCHS" -lt 16 ]; then echo "EPOCHS must be at least 16 (S2 = EPOCHS/8 epochs), got $EPOCHS" >&2; exit 2; fi
import_offline_copy
prunekit bench --methods standard,repr --s1 $((EPOCHS / 4)) --s2 $((EPOCHS / 8)) --model resnet20 --dataset cifar10 \
  --epochs "$EPOCHS" --augment --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine --channels-last \
  --seeds "${SEEDS:-0}" --jobs "${JOBS:-2}" --out "benchmarks/results/resnet20-cifar10-${EPOCHS}ep" --quiet

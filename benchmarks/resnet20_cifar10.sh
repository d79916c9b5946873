#!/usr/bin/env bash
# CIFAR ResNet-20 on CIFAR-10, standard vs RePr (issue: RePr on real architectures).
# A common CIFAR ResNet recipe: SGD momentum 0.9, lr 0.1 cosine, weight decay 5e-4,
# batch 128, random crop + flip, 100 epochs (RePr: S1 20, S2 10, p 30 %, 3 cycles).
# Resumable: rerun to continue. Needs CIFAR-10 in the data cache (`prunekit data import ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
prunekit bench --methods standard,repr --model resnet20 --dataset cifar10 --seeds 0 --epochs 100 \
  --augment --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine --channels-last \
  --out benchmarks/results/resnet20-cifar10 --quiet "$@"

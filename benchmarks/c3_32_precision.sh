#!/usr/bin/env bash
# Does bf16 autocast train C^3(32) as well as fp32? One cell of the paper's regime
# (standard, 100 epochs, seed SEEDS, default 0) in each precision, side by side.
# Meant for a GPU (or a CPU with bf16 hardware): on a CPU without it, such as
# the 2-core AVX2 machine behind the README's figures, bf16 is emulated and ~10x
# slower than fp32, so every accuracy in the README is fp32 and this check has
# not been run there. DEVICE (default auto), JOBS (default 2). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
prunekit bench --methods standard --set precision=fp32,bf16 --model c3_32 --dataset cifar10 --epochs 100 \
  --channels-last --device "${DEVICE:-auto}" --seeds "${SEEDS:-0}" --jobs "${JOBS:-2}" \
  --out benchmarks/results/c3_32-precision --quiet

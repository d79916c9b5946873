#!/usr/bin/env bash
# Does bf16 autocast train C^3(32) as well as fp32? One cell of the paper's regime
# (standard, 100 epochs, seed SEEDS, default 0) in bf16 beside the same cell in
# fp32, which is the paper grid's finished run, linked rather than rerun.
# Needs a GPU or a CPU with bf16 instructions (AVX512-BF16 or AMX): on a 2-core
# AVX512-BF16 EPYC, bf16 + channels_last took 31 s an epoch against 46 s for fp32,
# alone; on an AVX2-only CPU bf16 is emulated and ~10x slower than fp32.
# Run it alone: two processes that each spin their threads on the same cores stall
# bf16 convolutions far more than fp32 ones. DEVICE (default auto). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
import_offline_copy
seed=${SEEDS:-0}
out=benchmarks/results/c3_32-precision
link_finished_run benchmarks/results/c3_32-paper/standard_seed$seed "$out/standard_precision=fp32_seed$seed"
prunekit bench --methods standard --set precision=fp32,bf16 --model c3_32 --dataset cifar10 --epochs 100 \
  --channels-last --device "${DEVICE:-auto}" --seeds "$seed" --jobs 1 --out "$out" --quiet

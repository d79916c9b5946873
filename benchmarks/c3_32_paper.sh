#!/usr/bin/env bash
# The paper's regime for C^3(32) on CIFAR-10: standard vs RePr, 100 epochs, seed 0
# (no augmentation, plain SGD lr 0.01, batch 128, fp32 + channels_last). Each run
# resumes where it stopped, so this script can be interrupted and rerun at will.
# Needs CIFAR-10 in the data cache: `prunekit data import ../shared/datasets/cifar10-jpeg.tar.gz`.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_parallel_runs.sh
OUT=benchmarks/results/c3_32-paper
import_offline_copy
for method in standard repr; do
  start_or_resume "$OUT" "${method}_seed0" --method "$method" --model c3_32 --dataset cifar10 --epochs 100 \
    --seed 0 --channels-last
done
rc=0
wait_runs || rc=$?
# the table (mean ± std over seeds, partial runs marked) and the overlaid curves
prunekit bench --methods standard,repr --model c3_32 --dataset cifar10 --epochs 100 --channels-last --seeds 0 \
  --out "$OUT" --table-only
exit $rc

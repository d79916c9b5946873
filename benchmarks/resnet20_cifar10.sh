#!/usr/bin/env bash
# CIFAR ResNet-20 on CIFAR-10, standard vs RePr, seed 0, both runs side by side.
# A common CIFAR ResNet recipe, shortened to fit 2-core sessions: SGD momentum 0.9,
# lr 0.1 cosine, weight decay 5e-4, batch 128, random crop + flip, fp32 +
# channels_last, EPOCHS epochs (default 24); RePr with S1 = EPOCHS/4, S2 = EPOCHS/8
# and as many cycles as fit before a last full-network phase (24 epochs: drops at
# 6 and 15, restores at 9 and 18), p 30 %. `EPOCHS=100` gives S1 25, S2 12.
# Resumable: rerun to continue; Ctrl-C stops both runs at their last finished epoch.
# Needs CIFAR-10 in the data cache (`prunekit data import ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_parallel_runs.sh
EPOCHS=${EPOCHS:-24}
if [ "$EPOCHS" -lt 16 ]; then echo "EPOCHS must be at least 16 (S2 = EPOCHS/8 epochs), got $EPOCHS" >&2; exit 2; fi
S1=$((EPOCHS / 4)) S2=$((EPOCHS / 8))
OUT=benchmarks/results/resnet20-cifar10-${EPOCHS}ep
COMMON=(--model resnet20 --dataset cifar10 --epochs "$EPOCHS" --augment --lr 0.1 --momentum 0.9
        --weight-decay 5e-4 --lr-schedule cosine --channels-last)
import_offline_copy
start_or_resume "$OUT" standard_seed0 --method standard --seed 0 "${COMMON[@]}"
start_or_resume "$OUT" repr_seed0 --method repr --seed 0 --s1 "$S1" --s2 "$S2" "${COMMON[@]}"
rc=0
wait_runs || rc=$?
prunekit bench --methods standard,repr --s1 "$S1" --s2 "$S2" "${COMMON[@]}" --seeds 0 --out "$OUT" --table-only
exit $rc

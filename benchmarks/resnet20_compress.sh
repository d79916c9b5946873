#!/usr/bin/env bash
# Compressing a trained CIFAR ResNet-20 on CIFAR-10: one-shot prune to 1/2 and 1/3 of the dense MACs
# with each ranker (l1, l2, random, taylor, orthogonality, fpgm) and with torch-pruning's own pruner
# (group L2 importance, benchmarks/tp_baseline.py), every row fine-tuned the same way.
#
# 1. baseline: prunekit run standard, BASE_EPOCHS epochs (default 15): SGD momentum 0.9, lr 0.1 cosine,
#    weight decay 5e-4, batch 128, crop + flip, fp32 + channels_last, seed 0;
# 2. prunekit's rows: `prunekit bench` of prune-<ranker> x target {0.5, 0.333} of MACs x SEEDS (default
#    0,1), each from the baseline's weights (--init-from), dropping at epoch 0 and fine-tuning FT_EPOCHS
#    epochs (default 1) at lr 0.01 cosine (momentum 0.9, weight decay 5e-4, crop + flip);
# 3. torch-pruning's row: the same baseline cut by tp to the same MACs targets, then `prunekit run
#    --method standard --init-from <its export>` with the same fine-tuning recipe and seeds;
# 4. python benchmarks/compression_table.py: one table of all rows (compression.md) and the plot.
# Sized for 2 CPU cores (what is cut: a 15-epoch baseline, 1 fine-tuning epoch); ResNet-56 with the
# full schedule is benchmarks/resnet56_gpu.sh. Resumable: rerun to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
OUT=benchmarks/results/resnet20-compress
BASE_EPOCHS=${BASE_EPOCHS:-15}
FT_EPOCHS=${FT_EPOCHS:-1}
SEEDS=${SEEDS:-0,1}
TARGETS=${TARGETS:-0.5,0.333}
TRAIN=(--model resnet20 --dataset cifar10 --optimizer sgd --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine
       --augment --channels-last --quiet)
FINETUNE=(--epochs "$FT_EPOCHS" --lr 0.01)
import_offline_copy
mkdir -p "$OUT"
if [ ! -f "$OUT/baseline/summary.json" ]; then
  if [ -f "$OUT/baseline/checkpoint.pt" ]; then prunekit run --resume "$OUT/baseline" --quiet
  else prunekit run --method standard "${TRAIN[@]}" --epochs "$BASE_EPOCHS" --lr 0.1 --seed 0 --out "$OUT" --name baseline; fi
fi
seen=""
for seed in ${SEEDS//,/ }; do  # one seed at a time, prunekit's rows then torch-pruning's: a stopped run has whole seeds
  seen=${seen:+$seen,}$seed
  prunekit bench --methods prune-l1,prune-l2,prune-random,prune-taylor,prune-orthogonality,prune-fpgm \
    --set target="$TARGETS" --set metric=macs --seeds "$seen" "${TRAIN[@]}" "${FINETUNE[@]}" --init-from "$OUT/baseline" \
    --jobs "${JOBS:-2}" --out "$OUT/grid"
  for keep in ${TARGETS//,/ }; do
    cut="$OUT/torch-pruning/export_keep=$keep"
    [ -f "$cut/pruned.pt" ] || python benchmarks/tp_baseline.py --base "$OUT/baseline" --keep-macs "$keep" --out "$cut"
    run="$OUT/torch-pruning/finetune_keep=${keep}_seed$seed"
    if [ -f "$run/summary.json" ]; then continue; fi
    if [ -f "$run/checkpoint.pt" ]; then prunekit run --resume "$run" --quiet; continue; fi
    prunekit run --method standard "${TRAIN[@]}" "${FINETUNE[@]}" --init-from "$cut" --seed "$seed" \
      --out "$OUT/torch-pruning" --name "finetune_keep=${keep}_seed$seed"
  done
done
python benchmarks/compression_table.py --out "$OUT" 2>&1 | tee "$OUT/compression_table.log"

#!/usr/bin/env bash
# CIFAR ResNet-56 on CIFAR-10, compressed to 2.11x and 2.55x fewer MACs, on one CUDA GPU: the full-length
# version of benchmarks/resnet20_compress.sh. NOT RUN in this project so far (written on a 2-core CPU
# machine; checked with `bash -n` only).
#
# The comparison is Torch-Pruning's published ResNet-56 / CIFAR-10 results at those two speed-ups (its
# speed-up = base MACs / pruned MACs, the reduction used here): the tables in VainF/Torch-Pruning
# benchmarks/readme.md and the DepGraph paper (Fang et al., CVPR 2023). Read the figures there; none
# are copied here. Their recipe differs in ways that move accuracy (their own ResNet-56 code and
# pretraining with step decay; their pruning + fine-tuning schedule), so set the two side by side, but
# the like-for-like comparison is this script's own torch-pruning row (step 3), cut from the same
# baseline and fine-tuned exactly like prunekit's rows.
#
# 1. baseline: prunekit run standard, BASE_EPOCHS (default 200) epochs: SGD momentum 0.9, lr 0.1 cosine,
#    weight decay 5e-4, batch 128, crop + flip, channels_last, seed 0, --device cuda, PRECISION (default
#    fp32; PRECISION=bf16 for autocast bf16);
# 2. prunekit's rows: `prunekit bench` of prune-<ranker> for l1, l2, random, taylor, orthogonality, fpgm x
#    target {1/2.11, 1/2.55} = {0.4739, 0.3922} of the dense MACs x SEEDS (default 0,1), each from the
#    baseline's weights (--init-from), dropping at epoch 0, then FT_EPOCHS (default 100) epochs of
#    fine-tuning at lr 0.01 cosine (momentum 0.9, weight decay 5e-4, crop + flip);
# 3. torch-pruning's row: the same baseline cut by tp's own pruner (group L2 importance, global, iterative
#    steps to the same MACs targets: benchmarks/tp_baseline.py, on the CPU, seconds), then
#    `prunekit run --method standard --init-from <its export>` with the same fine-tuning and seeds;
# 4. python benchmarks/compression_table.py: one table of all rows, the plot.
# Steps 2 and 3 run side by side (JOBS cells of the grid at once, default 4, plus the tp fine-tunes).
# Results in benchmarks/results/$TAG/resnet56-compress (TAG default gpu), laid out as
# resnet20_compress.sh's (baseline/, grid/, torch-pruning/) so compression_table.py reads both.
# Resumable: rerun after an interruption; finished runs and cells are kept.
# Needs CIFAR-10 in the data cache (`prunekit data import ...`).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
OUT=benchmarks/results/${TAG:-gpu}/resnet56-compress
BASE_EPOCHS=${BASE_EPOCHS:-200}
FT_EPOCHS=${FT_EPOCHS:-100}
SEEDS=${SEEDS:-0,1}
TARGETS=${TARGETS:-0.4739,0.3922}  # 1/2.11 and 1/2.55 of the dense MACs
TRAIN=(--model resnet56 --dataset cifar10 --batch-size 128 --optimizer sgd --momentum 0.9 --weight-decay 5e-4
       --lr-schedule cosine --augment --channels-last --device cuda --precision "${PRECISION:-fp32}" --quiet)
FINETUNE=(--epochs "$FT_EPOCHS" --lr 0.01)
import_offline_copy
mkdir -p "$OUT"

if [ ! -f "$OUT/baseline/summary.json" ]; then
  if [ -f "$OUT/baseline/checkpoint.pt" ]; then prunekit run --resume "$OUT/baseline" --quiet
  else prunekit run --method standard "${TRAIN[@]}" --epochs "$BASE_EPOCHS" --lr 0.1 --seed 0 --out "$OUT" --name baseline; fi
fi

tp_rows() {  # torch-pruning's cut at each target, then its fine-tunes (one after another: small beside the grid)
  local keep cut seed run
  for keep in ${TARGETS//,/ }; do
    cut="$OUT/torch-pruning/export_keep=$keep"
    [ -f "$cut/pruned.pt" ] || python benchmarks/tp_baseline.py --base "$OUT/baseline" --keep-macs "$keep" --out "$cut" \
      2>&1 | tee "$OUT/torch-pruning/tp_prune_keep=$keep.log"
    for seed in ${SEEDS//,/ }; do
      run="$OUT/torch-pruning/finetune_keep=${keep}_seed$seed"
      if [ -f "$run/summary.json" ]; then continue; fi
      if [ -f "$run/checkpoint.pt" ]; then prunekit run --resume "$run" --quiet; continue; fi
      prunekit run --method standard "${TRAIN[@]}" "${FINETUNE[@]}" --init-from "$cut" --seed "$seed" \
        --out "$OUT/torch-pruning" --name "finetune_keep=${keep}_seed$seed"
    done
  done
}

side_by_side() {  # wait for every job started in the background; fail if any failed
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return $failed
}

mkdir -p "$OUT/torch-pruning"
prunekit bench --methods prune-l1,prune-l2,prune-random,prune-taylor,prune-orthogonality,prune-fpgm \
  --set target="$TARGETS" --set metric=macs --seeds "$SEEDS" "${TRAIN[@]}" "${FINETUNE[@]}" --init-from "$OUT/baseline" \
  --jobs "${JOBS:-4}" --out "$OUT/grid" &
grid=$!
tp_rows &
side_by_side $grid $!

python benchmarks/compression_table.py --out "$OUT" 2>&1 | tee "$OUT/compression_table.log"

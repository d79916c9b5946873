#!/usr/bin/env bash
# Issue #26, RePr in the paper's own regime, on the pooled C^3(32) nets: `c3_32p` (3×3 convs, a
# 2×2 max-pool after each: the net the paper's Figure 1 most likely trained) and `c3_32a` (the
# first author's code: 5×5 convs, a 3×3 stride-2 max-pool after each). Both end in 4×4 maps.
# Paper regime: CIFAR-10, no augmentation, plain SGD lr 0.01, batch 128, 100 epochs, fp32 +
# channels_last; cycle S1 20, S2 10, p 30 % (drops at 20, 50, 80, restores at 30, 60, 90).
#
# 1. Per model: standard, repr and repr-author (the author's ranking and re-init, see
#    plugins/prunekit_plugins/methods.py), seeds SEEDS (default 0,1,2), in
#    benchmarks/results/c3_32-pooled/<model>.
# 2. Per model, seed(s) ABLATE_SEEDS (default 0): the four differences between repr and
#    repr-author, each switched alone, from both ends. The finished repr-author and repr runs of
#    step 1 are linked in as the base columns; every cell starts from their warm-up (epoch 20).
#    Order, most telling first:
#    a. from repr-author (<model>-from-author, next layer kept for every cell): back to the
#       null-space re-init (with the next layer still kept), then next_layer zero: these two
#       decide whether a returning filter comes back near its old self with its old outgoing
#       weights, which is what a test-accuracy jump within 1-2 epochs of each restore (the
#       paper's Figure 1; drop_analysis.py's restore gains) needs; then per-filter normalisation
#       (which filters the ranking drops), then the 75 % per-layer cap (acts only where the
#       uncapped ranking takes more of a layer; the drop records say how often).
#    b. from repr (<model>-from-repr, next layer zero for every cell): the same four changes the
#       other way, in the same order: Gram-Schmidt re-init (next layer still zeroed), next
#       layer kept, layer normalisation, no cap.
#    (--reinit alone would also change next_layer, to the new reinitializer's own default, so
#    each folder fixes --next-layer for all its cells and next_layer is switched as a column.)
# Models MODELS (default "c3_32p c3_32a"), JOBS cells side by side (default 2, one thread each).
# One epoch, one cell on one thread of a 2-core machine that another job kept busy: c3_32p 39-50 s,
# c3_32a 66-72 s (c3_32 114 s beside the same job). Step 1 is 260 epochs a seed and model (standard
# and repr-author start from repr's warm-up at epoch 20), step 2 eight cells of 80 epochs a model and
# seed: some 45 h on one such thread for the defaults, far less on a GPU. Resumable: rerun to
# continue; Ctrl-C stops every cell at its last finished epoch. Needs CIFAR-10 in the data cache
# (see c3_32_paper.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/_grid.sh
SEEDS=${SEEDS:-0,1,2}
ABLATE_SEEDS=${ABLATE_SEEDS:-0}
MODELS=${MODELS:-c3_32p c3_32a}
OUT=benchmarks/results/c3_32-pooled
REGIME=(--dataset cifar10 --epochs 100 --channels-last --jobs "${JOBS:-2}" --quiet)
import_offline_copy
for model in $MODELS; do
  prunekit bench --methods standard,repr,repr-author --model "$model" "${REGIME[@]}" --seeds "$SEEDS" \
    --out "$OUT/$model"
done
for model in $MODELS; do
  for seed in ${ABLATE_SEEDS//,/ }; do
    link_finished_run "$OUT/$model/repr-author_seed$seed" "$OUT/$model-from-author/repr-author_seed$seed"
    link_finished_run "$OUT/$model/repr_seed$seed" "$OUT/$model-from-repr/repr_seed$seed"
  done
  prunekit bench --methods repr-author --ablate --next-layer keep --set reinitializer=nullspace \
    --set next_layer=zero --set normalization=filter --set max_layer_fraction=0.75 \
    --model "$model" "${REGIME[@]}" --seeds "$ABLATE_SEEDS" --out "$OUT/$model-from-author"
  prunekit bench --methods repr --ablate --next-layer zero --set reinitializer=gram-schmidt \
    --set next_layer=keep --set normalization=layer --set max_layer_fraction=1.0 \
    --model "$model" "${REGIME[@]}" --seeds "$ABLATE_SEEDS" --out "$OUT/$model-from-repr"
done

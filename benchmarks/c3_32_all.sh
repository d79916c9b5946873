#!/usr/bin/env bash
# Every C^3(32) grid of the README, most wanted first, so that a machine that can
# only run it for a few hours at a time makes the most useful progress: the paper
# regime at seeds 0 and 1, the ablations at seed 1 (they start from that seed's
# kept warm-up, 80 epochs each), the l1 and random rankers at seed 1 (the ranker
# ablations; cells of the criteria grid, from the same warm-up), the augmented regime
# at seed 0 (the public reproduction's setting), the other criteria at seed 1, the
# paper regime's seed 2, the augmented regime's seeds 1 and 2, the paper regime at
# lr 0.003 (where the public reproduction saw RePr gain), then the criteria's other
# seeds. On a CPU with bf16 instructions, the bf16 cell of c3_32_precision.sh
# runs right after the paper regime's seeds 0 and 1. Each step resumes where it
# stopped; rerun this script until it ends. 45 runs of 100 epochs (46 with bf16).
# The ablations ran one cell at a time with every core (JOBS=1), so that a session
# that stopped left finished cells rather than half-finished pairs; the criteria
# run two at a time (JOBS=2): on the 2-core AVX512-BF16 machine an epoch takes ~50 s
# alone and ~89 s for each of two side by side, 11 % more epochs an hour, and a
# stopped pair resumes from its last finished epochs.
# The low-lr pair runs two at a time too: on the AVX2 machine of 2026-12-01 one cell
# took ~117 s an epoch alone and ~140 s each beside another, 1.7x the epochs an hour
# (`standard` still waits for `repr`'s epoch-20 warm-up, which runs alone).
# With a CUDA GPU, benchmarks/c3_32_gpu.sh runs the same regimes there instead.
set -euo pipefail
cd "$(dirname "$0")"
SEEDS=0,1 bash c3_32_paper.sh
if grep -qE "avx512_bf16|amx_bf16" /proc/cpuinfo 2>/dev/null; then  # bf16 against fp32: only where bf16 is not emulated
  SEEDS=0 bash c3_32_precision.sh
fi
SEEDS=1 JOBS=1 bash c3_32_ablations.sh
SEEDS=1 JOBS=1 RANKERS=orthogonality,l1,random bash c3_32_criteria.sh
SEEDS=0 bash c3_32_augmented.sh
SEEDS=1 JOBS=2 bash c3_32_criteria.sh
SEEDS=0,1,2 bash c3_32_paper.sh
SEEDS=0,1,2 bash c3_32_augmented.sh
SEEDS=1 JOBS=2 bash c3_32_low_lr.sh
SEEDS=0,1,2 JOBS=2 bash c3_32_criteria.sh

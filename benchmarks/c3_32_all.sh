#!/usr/bin/env bash
# Every C^3(32) grid of the README, most wanted first, so that a machine that can
# only run it for a few hours at a time makes the most useful progress: the paper
# regime (3 seeds), the augmented regime at seed 0, the ablations (seed 0), the
# criteria at seed 0, then the remaining seeds. Each step resumes where it
# stopped; rerun this script until it ends. 40 runs of 100 epochs.
set -euo pipefail
cd "$(dirname "$0")"
SEEDS=0,1,2 bash c3_32_paper.sh
SEEDS=0 bash c3_32_augmented.sh
SEEDS=0 bash c3_32_ablations.sh
SEEDS=0 bash c3_32_criteria.sh
SEEDS=0,1,2 bash c3_32_augmented.sh
SEEDS=0,1,2 bash c3_32_criteria.sh

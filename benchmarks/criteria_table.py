"""The paper's ranking-criteria table (C^3(32), CIFAR-10) beside ours, from the grids' records.

    python benchmarks/criteria_table.py [--seeds 0,1,2] [--out FILE.md]

One row per ranker inside the RePr cycle: the paper's test accuracy, our final
test accuracy per seed, mean ± sample std over the finished seeds, and the mean
best test accuracy after the first event (the same epochs for every row,
`standard` included), and what the drops cost: the test accuracy each lost in
its first epoch, summed over the run's drops, mean over the finished seeds. Runs come from the criteria grid (`grid.py run c3_32-criteria`);
`standard`, and `repr` where the criteria grid has no link to it yet, from the
paper grid (`grid.py run c3_32-paper`). Nothing is recomputed; a run still training shows
the epoch it has reached.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _results import points, run_script, write_markdown

from prunekit.records import EVENTS, METRICS, RunDir, best_after, drop_costs, first_event, mean_std

# (row label, ranker name or None, the paper's test accuracy %)
PAPER_ROWS = [
    ("none (`standard`)", None, 72.1),
    ("random", "random", 73.4),
    ("mean activation", "activation", 74.1),
    ("APoZ", "apoz", 74.3),
    ("gradient", "gradient", 74.3),
    ("Taylor", "taylor", 74.3),
    ("Hessian", "hessian", 74.4),
    ("weight magnitude (`l1`)", "l1", 74.6),
    ("greedy oracle", "oracle", 76.0),
    ("orthogonality (`repr`)", "orthogonality", 76.4),
]


def run_dir(paper: Path, criteria: Path, ranker: str | None, seed: int) -> Path:
    if ranker is None:
        return paper / f"standard_seed{seed}"
    cell = criteria / f"repr_ranker={ranker}_seed{seed}"
    if ranker == "orthogonality" and not cell.exists():
        return paper / f"repr_seed{seed}"
    return cell


def table(paper: Path, criteria: Path, seeds: list[int]) -> str:
    runs = {(ranker, s): RunDir(run_dir(paper, criteria, ranker, s)) for _, ranker, _ in PAPER_ROWS for s in seeds}
    after = first_event([rd for rd in runs.values() if rd.path.exists()])
    head = (
        f"| ranker inside the RePr cycle | paper | ours, final test acc, seed {' / '.join(map(str, seeds))} "
        f"| ours, mean ± std (finished seeds) | ours, best after epoch {after}, mean "
        f"| ours, first-epoch cost of the drops, summed (points), mean |\n|---|---|---|---|---|---|\n"
    )
    lines = []
    for label, ranker, paper_acc in PAPER_ROWS:
        cells, finals, bests, costs = [], [], [], []
        for s in seeds:
            rd = runs[(ranker, s)]
            metrics = rd.read_jsonl(METRICS) if rd.path.exists() else []
            if not metrics:
                cells.append("–")
                continue
            if rd.read_summary() is None:
                cells.append(f"at epoch {metrics[-1]['epoch']}")
                continue
            finals.append(100 * metrics[-1]["test_acc"])
            if ranker is not None:
                costs.append(sum(drop_costs(rd.read_jsonl(EVENTS), metrics)))
            cells.append(f"{finals[-1]:.2f}")
            if after is not None and (best := best_after(metrics, after)):
                bests.append(100 * best["test_acc"])
        if finals:
            mean = "{:.2f} ± {:.2f}".format(*mean_std(finals)) + f" ({len(finals)})"
            best = f"{statistics.mean(bests):.2f}" if bests else "–"
        else:
            mean, best = ("not run yet" if set(cells) == {"–"} else "not finished"), "–"
        cost = points(statistics.mean(costs)) if costs else "–"
        lines.append(f"| {label} | {paper_acc} | {' / '.join(cells)} | {mean} | {best} | {cost} |\n")
    return head + "".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper", type=Path, default=Path("benchmarks/results/c3_32-paper"))
    ap.add_argument("--criteria", type=Path, default=Path("benchmarks/results/c3_32-criteria"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = ap.parse_args()
    text = table(args.paper, args.criteria, [int(s) for s in args.seeds.split(",")])
    print(text, end="")
    if args.out:
        write_markdown("criteria_table.py", args.out, text)


if __name__ == "__main__":
    run_script(main)

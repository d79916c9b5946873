"""How far apart two or more runs' curves are, epoch by epoch.

    python benchmarks/curve_gap.py REFERENCE RUN [RUN ...] [--out FILE.md]

For each RUN against REFERENCE, over the epochs both recorded: the mean and the
largest absolute difference in test and in train accuracy (points), with the
epoch of the largest, and the final difference (RUN minus REFERENCE). Reads
metrics.jsonl only. Use it to tell a change that moves a curve (bf16 against
fp32, say) from the spread between seeds (another seed as a second RUN).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _results import command_line, run_script

from prunekit.records import METRICS, RunDir


def curves(run: Path) -> dict[int, dict]:
    metrics = RunDir(run).read_jsonl(METRICS)
    if not metrics:
        raise SystemExit(f"{run} has no {METRICS}; give a run directory")
    return {m["epoch"]: m for m in metrics}


def gap_row(ref: dict[int, dict], run: dict[int, dict], name: str) -> str:
    epochs = sorted(set(ref) & set(run))
    cells = [name, str(len(epochs))]
    for key in ("test_acc", "train_acc"):
        diffs = {e: 100 * (run[e][key] - ref[e][key]) for e in epochs}
        worst = max(epochs, key=lambda e: abs(diffs[e]))
        mean = sum(abs(d) for d in diffs.values()) / len(epochs)
        cells += [f"{mean:.2f}", f"{diffs[worst]:+.2f} ({worst})"]
    cells.append(f"{100 * (run[epochs[-1]]['test_acc'] - ref[epochs[-1]]['test_acc']):+.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    ref = curves(args.reference)
    lines = [
        f"Made by `{command_line('curve_gap.py')}`",
        "",
        f"Against `{args.reference.name}` (points):",
        "",
        "| run | epochs | mean abs. test gap | largest test gap (epoch) | mean abs. train gap "
        "| largest train gap (epoch) | final test gap |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [gap_row(ref, curves(run), run.name) for run in args.runs]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    run_script(main)

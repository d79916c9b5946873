"""One compression table for a trained baseline: prunekit's grid rows beside torch-pruning's.

    python benchmarks/compression_table.py --out benchmarks/results/resnet20-compress

Reads ``OUT/baseline`` (the dense run), ``OUT/grid`` (a `prunekit bench` of permanent methods
with compression summaries) and ``OUT/torch-pruning`` (``export_keep=K`` folders written by
``tp_baseline.py`` and their ``finetune_keep=K_seedN`` runs). torch-pruning's rows get the same
figures as prunekit's: test accuracy right after the cut (evaluated here on the test set),
after fine-tuning, the fraction of MACs and parameters kept and the batch-64 latency speed-up
of the cut model against the dense one (median of 10, the two run alternately, measured here). Writes
``OUT/compression.md``, ``OUT/compression.csv``, ``OUT/accuracy_vs_macs.png`` and compression_table.json (its log: compression_table.log, by compress.py).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from _results import run_script, write_results

from prunekit import registry
from prunekit.bench import Cell, Grid
from prunekit.bench import compression as report
from prunekit.config import resolve
from prunekit.cost import count_macs, count_params
from prunekit.data import Batches, data_dir
from prunekit.export import apply_pruned, read_pruned, speed
from prunekit.groups import build_groups
from prunekit.records import RunDir
from prunekit.weights import build_with_weights


@torch.no_grad()
def test_accuracy(model, data) -> float:
    model.eval()
    correct = 0
    for x, y in Batches(data.test_x, data.test_y, 500, data.mean, data.std, device=torch.device("cpu")):
        correct += int((model(x).argmax(1) == y).sum())
    return correct / len(data.test_y)


def torch_pruning_rows(out: Path, dense_acc: float, data) -> list[dict]:
    rows = []
    base_cfg = resolve(RunDir(out / "baseline").read_config())
    for cut in sorted((out / "torch-pruning").glob("export_keep=*")):
        keep = cut.name.split("=", 1)[1]
        record = read_pruned(cut)
        example = torch.zeros((1,) + data.shape)
        dense = build_with_weights(resolve({**base_cfg.to_dict(), "init_from": None}), data.num_classes, data.shape)
        dense.load_state_dict(
            torch.load(out / "baseline" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
        )
        small = apply_pruned(
            build_with_weights(resolve({**base_cfg.to_dict(), "init_from": None}), data.num_classes, data.shape),
            record,
            example,
        )
        x64 = torch.randn((64,) + data.shape)
        speedup = speed(dense, small, x64, 10)["speedup"]
        after = test_accuracy(small, data)
        fine = []
        for run in sorted((out / "torch-pruning").glob(f"finetune_keep={keep}_seed*")):
            summary = RunDir(run).read_summary()
            if summary:
                fine.append(summary)
        removed = {k: len(v) for k, v in record["removed"].items()}
        sizes = {g.name: g.size for g in build_groups(dense, example)}
        recs = [
            {
                "keep_macs": count_macs(small, example) / count_macs(dense, example),
                "keep_params": count_params(small) / count_params(dense),
                "acc_before_prune": dense_acc,
                "acc_after_prune": after,
                "final_test_acc": s["final_test_acc"],
                "best_test_acc": s["best_test_acc"],
                "speedup_b64": speedup,
                "removed": removed,
                "sizes": sizes,
            }
            for s in fine
        ]
        if recs:
            rows.append(report.aggregate(f"torch-pruning (group L2)_target={keep}", recs, len(recs)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    out = args.out
    spec = Grid(out / "grid").read_spec()
    rows = report.rows_for_grid(
        out / "grid", spec, lambda m, o, s: Cell(m, o, s).name if s is not None else Cell(m, o, 0).label
    )
    base = RunDir(out / "baseline").read_summary()
    cfg = resolve(RunDir(out / "baseline").read_config())
    data = registry.get("datasets", cfg.dataset)(data_dir(cfg.data_dir))
    rows += torch_pruning_rows(out, base["final_test_acc"], data)
    rows.sort(key=lambda r: (-float(re.search(r"target=([0-9.]+)", r["method"]).group(1)), r["method"]))
    paths = report.write(out, rows)
    print((out / "compression.md").read_text())
    write_results(
        "compression_table.py",
        argparse.Namespace(out=out / "compression_table.json"),
        [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        written=[str(p) for p in paths],
    )


if __name__ == "__main__":
    run_script(main)

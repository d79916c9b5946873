"""The export path's speed targets, on the CPU.

    python benchmarks/export_speed.py --threads 2 2>&1 | tee benchmarks/results/export_speed.log

(a) timm:resnet50 at 224 px, a fresh model per repeat, median of ``--repeats``:
    * build: ``Pruner(model, x, ranker="l2")`` (tracing + filter groups);
    * cost model: the first use of ``pruner.cost`` (one forward pass + per-tensor bookkeeping), which
      ``Pruner`` builds lazily; timed apart here, by touching ``pruner.cost`` before ``drop``;
    * rank + select: ``pruner.drop(keep=0.5, metric="macs")`` with the cost model already built.
      Target <= 2 s, checked against cost model + rank + select (what a user's first ``drop`` costs);
    * export: ``pruner.export()`` (target <= 10 s), and the largest output difference between the
      masked and the exported model on a random batch of 2 (eval mode).
(b) resnet20 at 32 px cut to 50 % of its MACs (l2 ranking; random weights unless ``--base RUN_DIR``):
    latency at batch 64 and 1, dense and exported measured alternately in the same process, median
    of ``--runs`` after ``--warmup`` passes each; target dense/exported >= 1.5x at batch 64.

(c) with ``--grid OUT`` (a compression benchmark folder, e.g. benchmarks/results/resnet20-compress):
    every finished grid cell at ``--keep`` of the MACs and torch-pruning's cut at that target, each
    exported from its run's final checkpoint and timed against OUT/baseline alternately, batch 64
    and 1, median of ``--runs``: at equal MACs, how the speed-up depends on where the filters went.

Writes benchmarks/results/export_speed.json (the log is this output, through tee).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from _results import run_script, write_results

from prunekit import registry
from prunekit.cost import count_macs, count_params
from prunekit.environment import describe
from prunekit.errors import PrunekitError
from prunekit.export import apply_pruned, load_run, paired_latency_ms, read_pruned
from prunekit.pruner import Pruner
from prunekit.records import RunDir

RESULTS = Path(__file__).parent / "results"
RANK_TARGET_S, EXPORT_TARGET_S, SPEEDUP_TARGET = 2.0, 10.0, 1.5


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_resnet50(repeats: int, keep: float) -> dict:
    """Build, cost model, rank + select and export times of timm:resnet50 at 224 px."""
    factory = registry.get("models", "timm:resnet50")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    times = {"build": [], "cost_model": [], "rank_select": [], "export": []}
    diffs, kept = [], []
    for r in range(repeats):
        torch.manual_seed(r)
        model = factory(num_classes=1000, in_channels=3, image_size=224).eval()
        s, pruner = timed(lambda: Pruner(model, x, ranker="l2"))
        times["build"].append(s)
        s, _ = timed(lambda: pruner.cost)
        times["cost_model"].append(s)
        s, _ = timed(lambda: pruner.drop(keep=keep, metric="macs"))
        times["rank_select"].append(s)
        s, small = timed(pruner.export)
        times["export"].append(s)
        small.eval()
        with torch.no_grad():
            masked = model(batch)
            diffs.append((masked - small(batch)).abs().max().item())
            scale = masked.abs().max().item()  # for reading the difference: the outputs' own size
        kept.append(count_macs(small, x) / pruner.cost.dense["macs"])
        print(
            f"  resnet50 repeat {r}: build {times['build'][-1]:.2f} s  cost model {times['cost_model'][-1]:.2f} s  "
            f"rank+select {times['rank_select'][-1]:.2f} s  export {times['export'][-1]:.2f} s  "
            f"max diff {diffs[-1]:.2e} (outputs up to {scale:.2g})  MACs kept {kept[-1]:.4f}",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    first_drop = med["cost_model"] + med["rank_select"]
    return {
        "part": "a",
        "model": "timm:resnet50",
        "image": 224,
        "keep_macs": keep,
        "repeats": repeats,
        "groups": len(pruner.groups),
        "filters": sum(g.size for g in pruner.groups),
        "median_build_s": med["build"],
        "median_cost_model_s": med["cost_model"],
        "median_rank_select_s": med["rank_select"],
        "median_cost_model_plus_rank_select_s": first_drop,
        "rank_select_target_s": RANK_TARGET_S,
        "rank_select_target_met": first_drop <= RANK_TARGET_S,
        "rank_select_target_counts": "cost model + rank + select",
        "median_export_s": med["export"],
        "export_target_s": EXPORT_TARGET_S,
        "export_target_met": med["export"] <= EXPORT_TARGET_S,
        "max_abs_diff_masked_vs_exported": max(diffs),
        "max_abs_output_last_repeat": scale,
        "macs_kept": kept[-1],
        "all_s": times,
    }


def bench_resnet20(base: str | None, keep: float, runs: int, warmup: int) -> list[dict]:
    """Latency of resnet20 dense and cut to ``keep`` of its MACs, batch 64 and 1."""
    torch.manual_seed(0)
    model = registry.get("models", "resnet20")(num_classes=10, in_channels=3, image_size=32)
    weights = "random (seed 0)"
    if base:
        ckpt = RunDir(Path(base)).load_checkpoint()
        if ckpt is None:
            raise PrunekitError(f"{base} holds no checkpoint.pt; give a finished resnet20 run")
        model.load_state_dict(ckpt["model"])
        weights = base
    model.eval()
    x = torch.zeros(1, 3, 32, 32)
    dense_model = copy.deepcopy(model)  # before the drop zeroes any filter
    pruner = Pruner(model, x, ranker="l2")
    pruner.drop(keep=keep, metric="macs")
    small = pruner.export().eval()
    counts = {
        "dense_macs": count_macs(dense_model, x),
        "exported_macs": count_macs(small, x),
        "dense_params": count_params(dense_model),
        "exported_params": count_params(small),
    }
    rows = []
    for batch in (64, 1):
        xb = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        dense_ms, small_ms = paired_latency_ms(dense_model, small, xb, runs, warmup)
        rows.append(
            {
                "part": "b",
                "model": "resnet20",
                "image": 32,
                "weights": weights,
                "keep_macs": keep,
                "batch": batch,
                "runs": runs,
                "warmup": warmup,
                **counts,
                "macs_kept": counts["exported_macs"] / counts["dense_macs"],
                "median_dense_ms": dense_ms,
                "median_exported_ms": small_ms,
                "speedup": dense_ms / small_ms,
                "speedup_target": SPEEDUP_TARGET if batch == 64 else None,
                "speedup_target_met": dense_ms / small_ms >= SPEEDUP_TARGET if batch == 64 else None,
            }
        )
    return rows


def bench_grid(out: Path, keep: float, runs: int, warmup: int) -> list[dict]:
    """(c) Latency of every finished cell of ``out/grid`` at ``keep`` of the MACs, and of torch-pruning's cut."""

    dense_run = load_run(out / "baseline")
    dense = dense_run.model.to(memory_format=torch.contiguous_format).eval()
    x1 = torch.zeros((1,) + dense_run.data.shape)
    cuts = {}
    for cell in sorted((out / "grid").glob(f"*target={keep:g}_seed*")):
        if cell.is_dir() and (cell / "summary.json").exists():
            cuts[cell.name] = load_run(cell).pruner.export()
    tp_cut = out / "torch-pruning" / f"export_keep={keep:g}"
    if (tp_cut / "pruned.pt").exists():
        cuts[f"torch-pruning (group L2)_target={keep:g}"] = apply_pruned(dense, read_pruned(tp_cut), x1)
    rows = []
    for name, small in cuts.items():
        small.eval()
        row = {
            "part": "c",
            "cell": name,
            "keep_target": keep,
            "runs": runs,
            "warmup": warmup,
            "macs_kept": count_macs(small, x1) / count_macs(dense, x1),
            "params_kept": count_params(small) / count_params(dense),
        }
        for batch in (64, 1):
            xb = torch.randn((batch,) + dense_run.data.shape, generator=torch.Generator().manual_seed(batch))
            dense_ms, small_ms = paired_latency_ms(dense, small, xb, runs, warmup)
            row[f"b{batch}"] = {"dense_ms": dense_ms, "exported_ms": small_ms, "speedup": dense_ms / small_ms}
        row["speedup_target_met"] = row["b64"]["speedup"] >= SPEEDUP_TARGET
        print(
            f"  {name}: MACs {row['macs_kept']:.3f}  b64 {row['b64']['speedup']:.2f}x  b1 {row['b1']['speedup']:.2f}x",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="(a) fresh models timed, median taken (default 3)")
    ap.add_argument("--keep", type=float, default=0.5, help="fraction of the dense MACs to keep (default 0.5)")
    ap.add_argument("--base", help="(b) a finished resnet20 run whose weights to use (default: random weights)")
    ap.add_argument("--runs", type=int, default=20, help="(b) timed passes per model and batch size (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="(b) untimed passes first (default 3)")
    ap.add_argument("--grid", type=Path, help="(c) a compression benchmark folder: time each finished cell's export")
    ap.add_argument("--parts", default="a,b", help="which parts to run (default a,b; c runs with --grid)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    ap.add_argument("--out", default=str(RESULTS / "export_speed.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = describe(torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {env['cpu']}", flush=True)
    rows = []
    parts = set(args.parts.split(","))
    if "a" in parts:
        rows.append(bench_resnet50(args.repeats, args.keep))
    if "b" in parts:
        rows += bench_resnet20(args.base, args.keep, args.runs, args.warmup)
    if args.grid:
        rows += bench_grid(args.grid, args.keep, args.runs, args.warmup)

    print()
    for r in rows:
        if r["part"] == "a":
            print(f"(a) timm:resnet50 224 px, {r['groups']} groups, {r['filters']} filters, median of {r['repeats']}")
            print(f"    build (groups)              {r['median_build_s']:7.3f} s")
            print(f"    cost model (first use)      {r['median_cost_model_s']:7.3f} s")
            print(f"    rank + select to {r['keep_macs']:.0%} MACs   {r['median_rank_select_s']:7.3f} s")
            print(
                f"    cost model + rank + select  {r['median_cost_model_plus_rank_select_s']:7.3f} s  "
                f"target <= {RANK_TARGET_S:g} s: {'met' if r['rank_select_target_met'] else 'MISSED'}"
            )
            print(
                f"    export                      {r['median_export_s']:7.3f} s  "
                f"target <= {EXPORT_TARGET_S:g} s: {'met' if r['export_target_met'] else 'MISSED'}"
            )
            print(
                f"    max |masked - exported|     {r['max_abs_diff_masked_vs_exported']:.2e}   "
                f"exported MACs {r['macs_kept']:.4f} of dense"
            )
    lat = [r for r in rows if r["part"] == "b"]
    if lat:
        print(
            f"(b) resnet20 32 px cut to {lat[0]['macs_kept']:.4f} of its MACs ({lat[0]['exported_params']:,} of "
            f"{lat[0]['dense_params']:,} params), weights {lat[0]['weights']}, median of {lat[0]['runs']}"
        )
        print("    batch   dense ms   exported ms   speedup")
        for r in lat:
            target = (
                ""
                if r["speedup_target"] is None
                else f"   target >= {r['speedup_target']:g}x: {'met' if r['speedup_target_met'] else 'MISSED'}"
            )
            print(
                f"    {r['batch']:5d}  {r['median_dense_ms']:9.2f}  {r['median_exported_ms']:12.2f}  "
                f"{r['speedup']:7.2f}x{target}"
            )
    grid = [r for r in rows if r["part"] == "c"]
    if grid:
        print(
            f"(c) {args.grid}: exports at {args.keep:g} of the MACs against the baseline, median of {args.runs}, "
            f"alternately"
        )
        print("    cell                                          MACs   params   b64 speedup   b1 speedup")
        for r in sorted(grid, key=lambda r: -r["b64"]["speedup"]):
            print(
                f"    {r['cell']:<44}  {r['macs_kept']:.3f}  {r['params_kept']:.3f}  {r['b64']['speedup']:10.2f}x  "
                f"{r['b1']['speedup']:10.2f}x   target >= {SPEEDUP_TARGET:g}x at b64: "
                f"{'met' if r['speedup_target_met'] else 'MISSED'}"
            )
    write_results(
        "export_speed.py",
        args,
        rows,
        environment={k: env[k] for k in ("torch", "cpu", "threads", "commit", "code_modified", "python", "platform")},
    )


if __name__ == "__main__":
    run_script(main)

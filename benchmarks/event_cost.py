"""Cost of building filter groups and of one RePr event (rank + drop, null-space restore).

    python benchmarks/event_cost.py --models c3_32,resnet20,timm:resnet50 --repeats 5

Median over ``repeats`` of: dependency-graph/group build, ``Pruner.drop(0.3)`` (orthogonality
ranking + selection + drop of 30 %, global, and clearing the dropped filters' optimizer state) and
``Pruner.restore`` (null-space re-init, clearing the returning filters' optimizer state, release): the
calls the engine makes at each event. Writes benchmarks/results/event_cost.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import run_script, write_results

from prunekit import registry
from prunekit.groups import build_groups
from prunekit.pruner import Pruner

RESULTS = Path(__file__).parent / "results"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def oracle_estimate(model, filters: int, data, repeats: int) -> dict:
    """The oracle scores each filter by one loss evaluation over its batches, plus one for the
    baseline: time that evaluation and scale it, instead of running it (days on ResNet-50)."""
    model.eval()
    with torch.no_grad():
        evals = [timed(lambda: [F.cross_entropy(model(x), y) for x, y in data])[0] for _ in range(repeats)]
    return {
        "estimated": True,
        "median_loss_eval_s": statistics.median(evals),
        "median_rank_drop_s": (filters + 1) * statistics.median(evals),
        "median_reinit_s": None,
        "median_rank_plus_reinit_s": None,
    }


def bench(
    model_name: str, repeats: int, image: int, ranker_name: str, reinit_name: str, estimate_oracle: bool = False
) -> dict:
    torch.manual_seed(0)
    model = registry.get("models", model_name)(num_classes=10, in_channels=3, image_size=image)
    build_s = []
    for _ in range(repeats):
        s, groups = timed(lambda: build_groups(model, torch.zeros(1, 3, image, image)))
        build_s.append(s)
    ranker = registry.get("rankers", ranker_name).build(ranker_name)
    reinit = registry.get("reinitializers", reinit_name).build(reinit_name)
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(128, 3, image, image, generator=g), torch.randint(0, 10, (128,), generator=g))
        for _ in range(getattr(ranker, "batches", 0))
    ]  # data-driven rankers get their batches
    row = {
        "model": model_name,
        "groups": len(groups),
        "filters": sum(g.size for g in groups),
        "params": sum(p.numel() for p in model.parameters()),
        "ranker": ranker_name,
        "reinitializer": reinit_name,
        "median_build_s": statistics.median(build_s),
    }
    if estimate_oracle and ranker_name == "oracle":
        return {**row, **oracle_estimate(model, row["filters"], data, repeats)}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pruner = Pruner(model, torch.zeros(1, 3, image, image), ranker, reinit, groups=groups)
    drop_s, restore_s = [], []
    for r in range(repeats):
        s, _ = timed(
            lambda: pruner.drop(
                0.3, optimizer=opt, batches=lambda n: iter(data[:n]), generator=torch.Generator().manual_seed(r)
            )
        )
        drop_s.append(s)
        s, _ = timed(lambda: pruner.restore(opt, generator=torch.Generator().manual_seed(r)))
        restore_s.append(s)
    return {
        **row,
        "median_rank_drop_s": statistics.median(drop_s),
        "median_reinit_s": statistics.median(restore_s),
        "median_rank_plus_reinit_s": statistics.median(drop_s) + statistics.median(restore_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="c3_32,resnet20,timm:resnet50")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--ranker", default="orthogonality", help="comma list: one row per model and ranker")
    ap.add_argument("--reinit", default="nullspace")
    ap.add_argument("--out", default=str(RESULTS / "event_cost.json"))
    ap.add_argument(
        "--estimate-oracle",
        action="store_true",
        help="time the oracle's loss evaluation and scale it by the filter count instead of running it",
    )
    ap.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's); 1 beside a training run, "
        "whose threads would otherwise contend with these",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, ranker in ((m, r) for m in args.models.split(",") for r in args.ranker.split(",")):
        r = bench(name, args.repeats, args.image, ranker, args.reinit, args.estimate_oracle)
        rows.append(r)
        head = f"{name:16s} {ranker:14s} {r['groups']:4d} groups {r['filters']:6d} filters  build {r['median_build_s']:.3f} s  "
        if r.get("estimated"):
            print(
                head + f"loss evaluation {r['median_loss_eval_s']:.3f} s x {r['filters'] + 1} = "
                f"rank {r['median_rank_drop_s']:.0f} s (estimated, not run)",
                flush=True,
            )
            continue
        print(
            head + f"rank+drop {r['median_rank_drop_s']:.3f} s  reinit {r['median_reinit_s']:.3f} s  "
            f"rank+reinit {r['median_rank_plus_reinit_s']:.3f} s",
            flush=True,
        )
    write_results("event_cost.py", args, rows)


if __name__ == "__main__":
    run_script(main)

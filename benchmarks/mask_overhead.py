"""Per-step cost of holding dropped filters at zero, against a plain training step.

    python benchmarks/mask_overhead.py --models c3_32,resnet20 --steps 30

For each model: drop 30 % of the filters (random), then time, interleaved in
one process, plain optimizer steps and steps followed by ``masks.hold``
(SGD with momentum, so the optimizer state is masked too). Reports medians and
the ratio, and the median of ``hold`` alone. Writes benchmarks/results/mask_overhead.json.
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
from prunekit.masks import FilterMasks
from prunekit.selection import select_lowest

RESULTS = Path(__file__).parent / "results"


def bench(model_name: str, steps: int, batch: int, image: int) -> dict:
    torch.manual_seed(0)
    model = registry.get("models", model_name)(num_classes=10, in_channels=3, image_size=image)
    groups = build_groups(model, torch.zeros(1, 3, image, image))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    masks = FilterMasks(model, groups)
    g = torch.Generator().manual_seed(0)
    picks = select_lowest([torch.rand(gr.size, generator=g) for gr in groups], masks.dropped, 0.3)
    x = torch.randn(batch, 3, image, image).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step(hold: bool) -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hold:
            masks.hold(opt)
        return time.perf_counter() - t0

    for _ in range(3):
        step(False)
    masks.drop(picks, opt)
    plain, held, hold_only = [], [], []
    for i in range(steps):  # alternate the order so neither kind always runs second
        if i % 2:
            held.append(step(True))
            plain.append(step(False))
        else:
            plain.append(step(False))
            held.append(step(True))
        t0 = time.perf_counter()
        masks.hold(opt)
        hold_only.append(time.perf_counter() - t0)
    p, h, o = statistics.median(plain), statistics.median(held), statistics.median(hold_only)
    return {
        "model": model_name,
        "batch": batch,
        "steps": steps,
        "groups": len(groups),
        "dropped_fraction": sum(int(d.sum()) for d in masks.dropped) / sum(gr.size for gr in groups),
        "median_step_ms": p * 1e3,
        "median_step_with_hold_ms": h * 1e3,
        "median_hold_ms": o * 1e3,
        "step_ratio_overhead_pct": 100 * (h - p) / p,
        "hold_over_step_pct": 100 * o / p,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="c3_32,resnet20")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--out", default=str(RESULTS / "mask_overhead.json"))
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        r = bench(name, args.steps, args.batch, args.image)
        rows.append(r)
        print(
            f"{name:10s} step {r['median_step_ms']:8.1f} ms  with hold {r['median_step_with_hold_ms']:8.1f} ms "
            f"({r['step_ratio_overhead_pct']:+.2f} %)  hold alone {r['median_hold_ms']:.3f} ms "
            f"= {r['hold_over_step_pct']:.2f} % of a step",
            flush=True,
        )
    write_results("mask_overhead.py", args, rows)


if __name__ == "__main__":
    run_script(main)

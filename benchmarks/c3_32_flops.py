"""Floating-point work of one training epoch of a model, and the rate the measured epochs reached.

    python benchmarks/c3_32_flops.py [--model c3_32] [--speed benchmarks/results/train_speed.json]

Counts FLOPs (a multiply-add = 2) of one image's forward and forward + backward pass with
``torch.utils.flop_counter.FlopCounterMode``, scales them to an epoch of CIFAR-10's 50,000
training images, and divides by the median epoch seconds of each configuration in the
``--speed`` file (``benchmarks/train_speed.py``'s output) to give the rate this machine reached.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _results import run_script, write_results
from torch.utils.flop_counter import FlopCounterMode

from prunekit import registry

TRAIN_IMAGES = 50_000


def count_flops(model: torch.nn.Module, image: torch.Tensor, backward: bool) -> int:
    with FlopCounterMode(display=False) as counter:
        out = model(image)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="c3_32")
    ap.add_argument("--speed", default="benchmarks/results/train_speed.json")
    ap.add_argument("--out", default="benchmarks/results/c3_32_flops.json")
    args = ap.parse_args()
    model = registry.get("models", args.model)(num_classes=10, in_channels=3, image_size=32)
    image = torch.randn(1, 3, 32, 32)
    forward = count_flops(model, image, backward=False)
    train_step = count_flops(model, image, backward=True)
    epoch = train_step * TRAIN_IMAGES
    print(
        f"{args.model}: forward {forward / 1e6:.1f} MFLOP per image, forward + backward "
        f"{train_step / 1e6:.1f} MFLOP ({train_step / forward:.2f}x), epoch of {TRAIN_IMAGES:,} images "
        f"{epoch / 1e12:.2f} TFLOP"
    )
    rates = []
    speed_file = Path(args.speed)
    if speed_file.exists():
        for row in json.loads(speed_file.read_text())["results"]:
            seconds = row["median_epoch_seconds"]
            rate = epoch / seconds / 1e9
            rates.append({"config": row["config"], "median_epoch_seconds": seconds, "gflop_per_s": rate})
            print(f"  {row['config']}: {seconds:.1f} s per epoch -> {rate:.1f} GFLOP/s")
    print(f"a 40 s epoch needs {epoch / 40 / 1e9:.1f} GFLOP/s")
    write_results(
        "c3_32_flops.py",
        args,
        rates,
        model=args.model,
        forward_flops_per_image=forward,
        train_flops_per_image=train_step,
        epoch_flops=epoch,
        speed_file=str(speed_file),
    )


if __name__ == "__main__":
    run_script(main)

"""Seconds per training epoch of c3_32 on CIFAR-10 (data pipeline included), per precision.

    python benchmarks/train_speed.py                      # fp32 and bf16+channels_last, 3 epochs each
    python benchmarks/train_speed.py --batches 40         # quick: time 40 batches, scale to an epoch

Each configuration runs in its own process (so peak memory is its own) through
the same engine `prunekit run` uses. Prints a table and writes JSON to
benchmarks/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import command_line, run_script, write_json

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16+cl": ("bf16", True), "plain-fp32": ("fp32", False)}


def plain_epoch_seconds(run, batches: int | None) -> float:
    """Reference: a textbook loop, torchvision per-image transforms in DataLoader workers."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    data = run.data
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])

    class Images(Dataset):
        def __len__(self):
            return len(data.train_y) if not batches else batches * run.cfg.batch_size

        def __getitem__(self, i):
            return tf(data.train_x[i].permute(1, 2, 0).numpy()), int(data.train_y[i])

    loader = DataLoader(Images(), batch_size=run.cfg.batch_size, shuffle=True, num_workers=2)
    model, opt = run.model, run.optimizer
    model.train()
    t0 = time.perf_counter()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def measure(name: str, epochs: int, batches: int | None, device: str, model: str, dataset: str) -> dict:
    """Train ``epochs`` epochs (or the first ``batches`` batches of each) in this process."""
    import torch

    from prunekit.config import resolve
    from prunekit.engine import Run

    precision, channels_last = CONFIGS[name]
    cfg = resolve(
        {
            "method": "standard",
            "model": model,
            "dataset": dataset,
            "epochs": epochs,
            "precision": precision,
            "channels_last": channels_last,
            "device": device,
        }
    )
    run = Run(cfg)
    full = len(run.train_batches)
    if batches:
        run.train_batches.x = run.train_batches.x[: batches * cfg.batch_size]
        run.train_batches.y = run.train_batches.y[: batches * cfg.batch_size]
    per_epoch = []
    for _ in range(epochs):
        if name.startswith("plain"):
            per_epoch.append(plain_epoch_seconds(run, batches) * full / len(run.train_batches))
            continue
        stats = run.train_epoch()
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        per_epoch.append(stats.seconds * full / len(run.train_batches))
    peak = (
        torch.cuda.max_memory_allocated()
        if run.device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "config": name,
        "device": str(run.device),
        "epoch_seconds": per_epoch,
        "median_epoch_seconds": statistics.median(per_epoch),
        "images_per_s": 50000 / statistics.median(per_epoch),
        "peak_memory_mb": peak / 2**20,
        "timed_batches_per_epoch": len(run.train_batches),
        "batches_per_epoch": full,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="fp32,bf16+cl", help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batches", type=int, default=None, help="time only this many batches per epoch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="c3_32")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--out", default=str(RESULTS / "train_speed.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.epochs, args.batches, args.device, args.model, args.dataset)))
        return
    rows = []
    for name in args.configs.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--epochs",
            str(args.epochs),
            "--device",
            args.device,
            "--model",
            args.model,
            "--dataset",
            args.dataset,
        ] + (["--batches", str(args.batches)] if args.batches else [])
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"{name} failed:\n{res.stderr[-2000:]}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["wall_seconds"] = time.time() - t0
        rows.append(row)
        print(
            f"{name:8s} {row['device']:5s} median {row['median_epoch_seconds']:7.1f} s/epoch "
            f"{row['images_per_s']:7.0f} img/s  peak {row['peak_memory_mb']:7.0f} MB  "
            f"epochs {[round(s, 1) for s in row['epoch_seconds']]}",
            flush=True,
        )
    record = {
        "command": command_line("train_speed.py"),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "model": args.model,
        "dataset": args.dataset,
        "results": rows,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)

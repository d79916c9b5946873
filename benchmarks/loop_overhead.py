"""prunekit's training loop against a bare PyTorch loop of the same net, in the same process.

    python benchmarks/loop_overhead.py 2>&1 | tee benchmarks/results/loop_overhead.log

For each precision (``--configs``: fp32, fp32+cl, bf16+cl), one ``Run`` of ``standard`` on c3_32 /
CIFAR-10 and a bare loop over the very same in-memory batches and the same model and optimizer:
forward under the same autocast, cross-entropy, zero_grad, backward, step, nothing else.
``--batches`` batches a pass, the two alternated ``--repeats`` times (after one untimed pass
each); the figure is the ratio of the medians (prunekit / bare), target <= 1.05. What prunekit
adds per step: the GradScaler calls (no-ops outside fp16), the per-batch loss and accuracy sums
kept on the device, the progress callback, and ``hold`` where filters are dropped (none here).
bf16 is only meaningful where the CPU has AVX512-BF16 (``/proc/cpuinfo``); elsewhere it is
emulated and both loops crawl. Writes benchmarks/results/loop_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import run_script, write_results

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16+cl": ("bf16", True)}


def bare_pass(run, batches: list) -> float:
    model, opt = run.model, run.optimizer
    model.train()
    t0 = time.perf_counter()
    for xb, yb in batches:
        with run.autocast():
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())  # waits for the last step, as train_epoch does
    return time.perf_counter() - t0


def measure(name: str, n_batches: int, repeats: int) -> dict:
    from prunekit.config import resolve
    from prunekit.engine import Run

    precision, channels_last = CONFIGS[name]
    cfg = resolve(
        {
            "method": "standard",
            "model": "c3_32",
            "dataset": "cifar10",
            "precision": precision,
            "channels_last": channels_last,
            "device": "cpu",
        }
    )
    run = Run(cfg)
    run.train_batches.x = run.train_batches.x[: n_batches * cfg.batch_size]
    run.train_batches.y = run.train_batches.y[: n_batches * cfg.batch_size]
    batches = list(run.train_batches)  # the bare loop's: the same tensors, made before timing
    run.train_epoch()
    bare_pass(run, batches)
    ours, bare = [], []
    for _ in range(repeats):
        ours.append(run.train_epoch().seconds)
        bare.append(bare_pass(run, batches))
    ratio = statistics.median(ours) / statistics.median(bare)
    print(
        f"  {name}: prunekit {statistics.median(ours):.2f} s, bare {statistics.median(bare):.2f} s "
        f"per {n_batches} batches: {ratio:.3f}x",
        flush=True,
    )
    return {
        "config": name,
        "batches": n_batches,
        "repeats": repeats,
        "prunekit_s": ours,
        "bare_s": bare,
        "median_prunekit_s": statistics.median(ours),
        "median_bare_s": statistics.median(bare),
        "ratio": ratio,
        "target_met": ratio <= 1.05,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="fp32,fp32+cl", help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "loop_overhead.json"))
    args = ap.parse_args()
    bf16 = "avx512_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, avx512_bf16: {bf16}", flush=True)
    rows = [measure(name, args.batches, args.repeats) for name in args.configs.split(",")]
    write_results("loop_overhead.py", args, rows, avx512_bf16=bf16)


if __name__ == "__main__":
    run_script(main)

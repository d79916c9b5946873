"""Seconds per epoch of `standard` and `repr` on a CUDA GPU (c3_32, CIFAR-10).

    python benchmarks/gpu_epoch.py --epochs 6 --precision bf16 --channels-last

Runs each method for ``epochs`` epochs (RePr compressed to S1 = S2 = 2 so the
run holds, drops and restores) through the engine, data on the GPU, and reports
the median epoch time (training + evaluation) from each run's metrics.jsonl.
Target on an H100-class GPU: ≤ 1.5 s per c3_32 epoch. Writes
benchmarks/results/gpu_epoch.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from _results import run_script, write_results

from prunekit.config import resolve
from prunekit.device import cuda_settings
from prunekit.engine import start_run
from prunekit.errors import PrunekitError
from prunekit.records import METRICS, RunDir

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--model", default="c3_32")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "gpu_epoch.json"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise PrunekitError(
            "no CUDA GPU is visible to torch here; this benchmark times epochs on one: "
            "run it on a machine with a GPU (`python benchmarks/grid.py run c3_32-gpu` runs it first)"
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("standard", "repr"):
            extra = {"s1": 2, "s2": 2} if method == "repr" else {}
            cfg = resolve(
                {
                    "method": method,
                    "model": args.model,
                    "dataset": "cifar10",
                    "epochs": args.epochs,
                    "device": "cuda",
                    "precision": args.precision,
                    "channels_last": args.channels_last,
                    "out": tmp,
                    "name": method,
                    **extra,
                }
            )
            summary = start_run(cfg)
            metrics = RunDir(Path(tmp) / method).read_jsonl(METRICS)[1:]  # first epoch includes warm-up
            row = {
                "method": method,
                "median_epoch_s": statistics.median(m["seconds"] for m in metrics),
                "median_train_s": statistics.median(m["train_seconds"] for m in metrics),
                "final_test_acc": summary["final_test_acc"],
                "gpu": torch.cuda.get_device_name(),
                **cuda_settings(),
            }
            rows.append(row)
            print(
                f"{method:8s} {row['median_epoch_s']:.2f} s/epoch (train {row['median_train_s']:.2f} s) on {row['gpu']}"
            )
    write_results("gpu_epoch.py", args, rows)


if __name__ == "__main__":
    run_script(main)

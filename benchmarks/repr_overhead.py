"""Wall-clock overhead of `repr` over `standard` at equal epochs (c3_32, CPU).

    python benchmarks/repr_overhead.py --train-images 10000 --epochs 3 --repeats 3

Runs `standard` and `repr` alternately through the engine on the first
``train-images`` CIFAR-10 training images. The RePr cycle is compressed
(S1 = S2 = 1: a drop and a restore every 3 epochs, ~11x denser than the paper's
100-epoch schedule), so the measured ratio bounds the real one from above. It
also projects the overhead of the paper's schedule (3 drops and 3 restores in
100 epochs, 30 of them holding masks) from the measured per-event and per-epoch
costs. Writes benchmarks/results/repr_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from _results import command_line, run_script, write_json

from prunekit.config import resolve
from prunekit.engine import load_data, start_run
from prunekit.records import EVENTS, METRICS, RunDir

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", default=str(RESULTS / "repr_overhead.json"))
    args = ap.parse_args()
    base = {"model": "c3_32", "dataset": "cifar10", "epochs": args.epochs, "channels_last": args.channels_last}
    data = load_data(resolve(base))
    data = replace(data, train_x=data.train_x[: args.train_images], train_y=data.train_y[: args.train_images])
    walls = {"standard": [], "repr": []}
    event_seconds, epoch_seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for method in ("standard", "repr"):
                extra = {"s1": 1, "s2": 1} if method == "repr" else {}
                cfg = resolve({**base, **extra, "method": method, "out": tmp, "name": f"{method}{r}"})
                summary = start_run(cfg, data=data)
                walls[method].append(summary["wall_seconds"])
                if method == "standard":  # a full CIFAR-10 epoch: training scaled up, evaluation as is
                    for m in RunDir(Path(tmp) / f"{method}{r}").read_jsonl(METRICS):
                        epoch_seconds.append(
                            m["train_seconds"] * 50000 / args.train_images + m["seconds"] - m["train_seconds"]
                        )
                if method == "repr":
                    event_seconds += [e["seconds"] for e in RunDir(Path(tmp) / f"repr{r}").read_jsonl(EVENTS)]
                print(f"repeat {r} {method:8s} {summary['wall_seconds']:.1f} s", flush=True)
    std, rep = statistics.median(walls["standard"]), statistics.median(walls["repr"])
    per_epoch = statistics.median(epoch_seconds)
    event = statistics.median(event_seconds)
    projected = 100 * (6 * event) / (100 * per_epoch)
    result = {
        "command": command_line("repr_overhead.py"),
        "threads": torch.get_num_threads(),
        "walls": walls,
        "median_standard_s": std,
        "median_repr_s": rep,
        "measured_overhead_pct": 100 * (rep - std) / std,
        "median_event_s": event,
        "full_epoch_s_estimate": per_epoch,
        "projected_100_epoch_overhead_pct": projected,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(
        f"standard {std:.1f} s, repr {rep:.1f} s (median of {args.repeats}): overhead "
        f"{result['measured_overhead_pct']:+.2f} % with a drop/restore every 3 epochs; "
        f"median event {event * 1e3:.1f} ms -> paper schedule (6 events / 100 epochs) {projected:.3f} %"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_script(main)

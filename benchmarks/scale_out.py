"""Scale-out costs on the CPU: the streamed image-folder loader, and torchrun's DDP overhead.

    python benchmarks/scale_out.py 2>&1 | tee benchmarks/results/scale_out.log

(a) loader: images/s of the training batches (batch 128, augmented, normalised) over the CIFAR-10
    JPEG copy, in memory (``Batches``, the decoded cache) against streamed from the folder
    (``folder:PATH``: ImageFolder + DataLoader, decode + random-resized-crop + flip at 32 px) with
    ``--workers`` processes; nothing but the loader runs, so streamed images/s per worker is the
    decode throughput per worker. Median of ``--repeats`` passes over ``--loader-batches`` batches.
(b) DDP: c3_32 training on CIFAR-10 (in memory, fp32), the first ``--batches`` global batches of 128,
    one process with 2 threads against ``torchrun`` with 2 ranks of 1 thread (64 images each), the
    same engine and global batch; median images/s of ``--repeats`` passes, and their ratio.

Needs the CIFAR-10 data cache (``prunekit data import``) and, for (a), the JPEG copy as a folder:
``--folder`` (default: extracted once from ../shared/datasets/cifar10-jpeg.tar.gz into
/tmp/prunekit-cifar10-jpeg). Writes benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from _results import run_script, write_results

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TAR = HERE.parent.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def folder_copy(folder: Path) -> Path:
    if (folder / "train").is_dir():
        return folder
    if not TAR.exists():
        raise SystemExit(f"no image folder at {folder} and no {TAR} to extract it from; give --folder")
    print(f"extracting {TAR} to {folder} ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(TAR) as tar:
        tar.extractall(folder, filter="data")
    return folder


def images_per_s(batches, limit: int, repeats: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeats):
        seen, t0 = 0, time.perf_counter()
        for i, (xb, _) in enumerate(batches):
            seen += len(xb)
            if i + 1 >= limit:
                break
        rates.append(seen / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def bench_loader(folder: Path, workers: list[int], limit: int, repeats: int) -> list[dict]:
    from prunekit import registry
    from prunekit.data import data_dir
    from prunekit.folders import FolderData

    cpu = torch.device("cpu")
    memory = registry.get("datasets", "cifar10")(data_dir())
    rate, all_rates = images_per_s(
        memory.batches(
            "train", 128, device=cpu, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)
        ),
        limit,
        repeats,
    )
    rows = [{"part": "a", "loader": "in memory (Batches)", "workers": 0, "images_per_s": rate, "all": all_rates}]
    print(f"  in memory: {rate:,.0f} images/s", flush=True)
    for n in workers:
        data = FolderData(folder, image_size=32, workers=n)
        rate, all_rates = images_per_s(
            data.batches("train", 128, device=cpu, shuffle=True, generator=torch.Generator().manual_seed(0)),
            limit,
            repeats,
        )
        rows.append(
            {
                "part": "a",
                "loader": "streamed (folder:)",
                "workers": n,
                "images_per_s": rate,
                "per_worker": rate / max(n, 1),
                "all": all_rates,
            }
        )
        print(f"  streamed, {n} worker(s): {rate:,.0f} images/s", flush=True)
    return rows


def ddp_worker(out: Path, batches: int, repeats: int) -> None:
    """One configuration of (b), in this process (a rank under torchrun, or alone)."""
    from prunekit import distributed
    from prunekit.config import resolve
    from prunekit.engine import Run

    world = distributed.setup("cpu")
    cfg = resolve({"method": "standard", "model": "c3_32", "dataset": "cifar10", "epochs": 1, "device": "cpu"})
    run = Run(cfg)
    run.train_batches.x = run.train_batches.x[: batches * cfg.batch_size]
    run.train_batches.y = run.train_batches.y[: batches * cfg.batch_size]
    run.train_epoch()  # warm-up: allocator, DDP buckets
    rates = [s.images / s.seconds for s in (run.train_epoch() for _ in range(repeats))]
    if world.main:
        out.write_text(
            json.dumps(
                {
                    "ranks": world.size,
                    "threads_per_rank": torch.get_num_threads(),
                    "images_per_s": statistics.median(rates),
                    "all": rates,
                }
            )
        )


def bench_ddp(batches: int, repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, launch, env in (
            ("1 process x 2 threads", [sys.executable], {"OMP_NUM_THREADS": "2"}),
            (
                "torchrun 2 ranks x 1 thread",
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
                {"OMP_NUM_THREADS": "1"},
            ),
        ):
            out = Path(tmp) / "rate.json"
            subprocess.run(
                launch + [__file__, "--ddp-worker", str(out), "--batches", str(batches), "--repeats", str(repeats)],
                check=True,
                env={**os.environ, **env},
            )
            result = json.loads(out.read_text())
            rows.append({"part": "b", "config": label, "batches": batches, "global_batch": 128, **result})
            print(f"  {label}: {result['images_per_s']:,.0f} images/s", flush=True)
    rows[1]["ratio_to_one_process"] = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "prunekit-cifar10-jpeg")
    ap.add_argument("--workers", default="1,2", help="(a) streamed loader worker counts (default 1,2)")
    ap.add_argument("--loader-batches", type=int, default=60, help="(a) batches per pass (default 60)")
    ap.add_argument("--batches", type=int, default=60, help="(b) global batches per pass (default 60)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="a,b")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "scale_out.json"))
    args = ap.parse_args()
    if args.ddp_worker:
        return ddp_worker(args.ddp_worker, args.batches, args.repeats)
    rows = []
    parts = set(args.parts.split(","))
    if "a" in parts:
        print(f"(a) loader, batch 128, median of {args.repeats} passes of {args.loader_batches} batches", flush=True)
        rows += bench_loader(
            folder_copy(args.folder), [int(w) for w in args.workers.split(",")], args.loader_batches, args.repeats
        )
    if "b" in parts:
        print(
            f"(b) c3_32 training, global batch 128, median of {args.repeats} passes of {args.batches} batches",
            flush=True,
        )
        rows += bench_ddp(args.batches, args.repeats)
        print(f"    torchrun 2x1 / one process 1x2: {rows[-1]['ratio_to_one_process']:.2f}x the images/s")
    write_results("scale_out.py", args, rows)


if __name__ == "__main__":
    run_script(main)

"""Writing a benchmark's figures: one JSON file with the command that made them."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch


def write_results(script: str, args, rows: list[dict], **extra) -> None:
    """Save ``rows`` to ``args.out`` with the command line (from ``args``), threads and date."""
    command = f"python benchmarks/{script} " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "threads": torch.get_num_threads(), "results": rows,
                               "date": time.strftime("%Y-%m-%d %H:%M"), **extra}, indent=2) + "\n")
    print(f"wrote {out}")

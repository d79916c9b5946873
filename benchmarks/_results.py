"""Writing a benchmark's figures: one JSON file with the command that made them."""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import torch


def command_line(script: str) -> str:
    """The command that made this process's figures, as typed (options left out take their defaults)."""
    return f"python benchmarks/{script} " + shlex.join(sys.argv[1:])


def write_results(script: str, args, rows: list[dict], **extra) -> None:
    """Save ``rows`` to ``args.out`` with the command line, threads and date."""
    command = command_line(script)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "threads": torch.get_num_threads(), "results": rows,
                               "date": time.strftime("%Y-%m-%d %H:%M"), **extra}, indent=2) + "\n")
    print(f"wrote {out}")

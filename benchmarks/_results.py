"""The one writer of the benchmarks' results: a JSON record or a Markdown table, each with the command
that made it; and running a script so that a user error (data missing, a folder that is not a run) is
one line, not a traceback."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prunekit.errors import PrunekitError


def command_line(script: str) -> str:
    """The command that made this process's figures, as typed (options left out take their defaults)."""
    return shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])


def points(fraction: float) -> str:
    """A fraction as percentage points to one decimal; a value that rounds to zero prints 0.0, never -0.0."""
    value = round(100 * fraction, 1)
    return f"{value + 0.0:.1f}"


def write_json(out, record: dict, indent: int = 2) -> None:
    """Write ``record`` to ``out`` (its folder made if need be); a record says the command that made it
    (``command_line``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=indent) + "\n")


def write_results(script: str, args, rows: list[dict], **extra) -> None:
    """Save ``rows`` to ``args.out`` with the command line, threads and date."""
    import torch

    record = {
        "command": command_line(script),
        "threads": torch.get_num_threads(),
        "results": rows,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        **extra,
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")


def write_markdown(script: str, out, text: str) -> None:
    """Write a Markdown table or report to ``out``, headed by the command that made it (an HTML comment,
    hidden when rendered)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"<!-- {command_line(script)} -->\n{text}")
    print(f"wrote {out}")


def run_script(main: Callable[[], None]) -> None:
    """Call a benchmark's ``main``; a PrunekitError ends it with its one-line message and exit status 2."""
    try:
        main()
    except PrunekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

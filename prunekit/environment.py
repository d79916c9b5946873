"""What a run trained on: one record per start or resume, so a run stopped on one machine (or one checkout)
and resumed on another says so, and a figure can be traced to the code and hardware that made it."""
from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import torch

from . import __version__

_CODE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=_CODE, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict:
    """prunekit's version; in a git checkout, its commit and whether prunekit's own files (the package and
    the first-party plugins beside it) differ from that commit. Installed from a wheel: commit is None."""
    commit = _git("rev-parse", "HEAD")
    modified = None
    if commit:
        top = _git("rev-parse", "--show-toplevel")
        paths = [str(_CODE)] + ([str(Path(top) / "plugins")] if top and (Path(top) / "plugins").is_dir() else [])
        status = _git("status", "--porcelain", "--untracked-files=no", "--", *paths)
        modified = None if status is None else bool(status)
    return {"prunekit": __version__, "commit": commit, "code_modified": modified}


def _cpu() -> tuple[str, bool | None]:
    """CPU model name and whether it has bf16 instructions (None where /proc/cpuinfo is not readable)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), None
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return name, any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def describe(device: torch.device) -> dict:
    """This process's code, libraries and hardware, with the time (UTC)."""
    cpu, bf16 = _cpu()
    record = {**code_version(), "torch": torch.__version__, "python": platform.python_version(),
              "platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
              "cpu": cpu, "cpu_bf16": bf16, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record

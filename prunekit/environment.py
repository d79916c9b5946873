"""What a run trained on: one record per start or resume, so a run stopped on one machine (or one checkout)
and resumed on another says so, and a figure can be traced to the code and hardware that made it."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import torch

from . import __version__
from .device import cuda_settings

_CODE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:  # --no-optional-locks: never take the index lock from under a user's own git command
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=_CODE, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict:
    """prunekit's version; in a git checkout, its commit and whether prunekit's own files (the package and
    the first-party plugins beside it) differ from that commit. Installed from a wheel: commit is None."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() / _CODE.name != _CODE:  # not prunekit's own checkout (e.g. a venv in
        return {"prunekit": __version__, "commit": None, "code_modified": None}  # another project's repository)
    commit = _git("rev-parse", "HEAD")
    plugins = Path(top) / "plugins"
    status = _git("status", "--porcelain", "--", str(_CODE), *([str(plugins)] if plugins.is_dir() else []))
    return {
        "prunekit": __version__,
        "commit": commit,
        "code_modified": None if commit is None or status is None else bool(status),
    }


def _cpuinfo_field(info: str, key: str) -> str | None:
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.split(":", 1)[0].strip() == key and ":" in line
        ),
        None,
    )


def _cpu() -> tuple[str, bool | None]:
    """This machine's CPU (see ``parse_cpuinfo``); without /proc/cpuinfo, bf16 support is unknown (None)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return parse_cpuinfo("")


def parse_cpuinfo(info: str) -> tuple[str, bool | None]:
    """CPU model name and whether it has bf16 instructions: x86's ``flags`` (avx512_bf16, amx_bf16) or Arm's
    ``Features`` (bf16); None where the text lists neither."""
    name = _cpuinfo_field(info, "model name") or platform.processor() or platform.machine()
    flags = _cpuinfo_field(info, "flags") or _cpuinfo_field(info, "Features")
    if flags is None:
        return name, None
    return name, any(f in flags.split() for f in ("avx512_bf16", "amx_bf16", "bf16"))


def describe(device: torch.device) -> dict:
    """This process's code, libraries and hardware, with the time (UTC)."""
    cpu, bf16 = _cpu()
    record = {
        **code_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cpu_bf16": bf16,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record.update(cuda_settings())
    return record


def changes(before: dict, now: dict) -> list[str]:
    """What differs between two session records in ways that can move a run's numbers (code, libraries,
    hardware); empty when nothing that matters changed. Timing-only fields (threads, time) are ignored."""
    found = []
    if before.get("commit") and now.get("commit") and before["commit"] != now["commit"]:
        found.append(f"commit {before['commit'][:7]} -> {now['commit'][:7]}")
    edited = [when for when, record in (("then", before), ("now", now)) if record.get("code_modified")]
    if edited:  # the edits themselves are not recorded: whether the two sessions ran the same code is unknown
        found.append(f"uncommitted changes to prunekit's code {' and '.join(edited)}")
    compared = [("prunekit", "prunekit"), ("torch", "torch"), ("device", "device"), ("gpu", "GPU")]
    if any(str(record.get("device", "cpu")).startswith("cpu") for record in (before, now)):
        compared.append(("cpu", "CPU"))  # the CPU model counts only where a session did its arithmetic on it
    for key, label in compared:
        if before.get(key) != now.get(key):
            found.append(f"{label} {before.get(key) or 'none'} -> {now.get(key) or 'none'}")
    return found

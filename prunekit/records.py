"""Run records: one folder per run with the resolved config, per-epoch metrics,
drop/restore events, the environment of each training session, an atomically written
checkpoint and a final summary."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .errors import PrunekitError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
EVENTS = "events.jsonl"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
WARMUP = "warmup.pt"  # the state at the schedule's first event, kept for runs that share the warm-up
WARMUP_INFO = "warmup.json"
SESSIONS = "sessions.jsonl"  # one line per start or resume: code, libraries, hardware (see environment.py)
FORK = "fork.json"  # in a run that started from another run's warm-up: where from, at which epoch
LOCK = ".lock"  # held (flock) by the process that trains the run

# Config keys that say where a run lives or runs, not what it computes: a grid
# folder may be moved, a finished run linked into another grid, a run resumed on
# another device.
LOCATION_KEYS = {"device", "out", "name", "data_dir"}


def write_failed(path: Path, exc: OSError) -> PrunekitError:
    """One line for a write the disk or the file system refused (full, read-only, permission lost)."""
    return PrunekitError(
        f"cannot write {path} ({exc.strerror or exc}); what was written before is kept as it was: "
        f"free disk space or restore write permission, then run again (a run continues with --resume)"
    )


def _atomic(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` into a temp file beside ``path``, then rename it over: a write that
    fails midway leaves ``path`` as it was."""
    path = Path(path)
    # a fresh name, created by ``write`` itself, so the file gets the mode any new file gets (mkstemp's is 0600)
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise write_failed(path, exc) from None
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:  # the file system is failing: leave the temp file rather than hide the first error
                pass


def _append_line(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def append_line(path: Path, line: str) -> None:
    """Append one line; a write that fails midway is cut back, so the file keeps only whole records."""
    size = path.stat().st_size if path.exists() else 0
    try:
        _append_line(path, line)
    except OSError as exc:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise write_failed(path, exc) from None


def atomic_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(text: str, path: Path) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        return self.file(SUMMARY).exists()

    def epochs_done(self) -> int:
        """Epochs recorded so far (one metrics line each)."""
        return len(self.read_jsonl(METRICS))

    def has_files(self) -> bool:
        if self.path.exists() and not self.path.is_dir():
            raise PrunekitError(
                f"{self.path} is a file, not a run directory; choose another --name or --out "
                f"(the file is left as it is)"
            )
        return self.path.exists() and any(p.name != LOCK for p in self.path.iterdir())

    @contextmanager
    def training_lock(self):
        """Held while a process trains this run, so that a second one is refused, not mixed in."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no guard
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(LOCK), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise PrunekitError(
                    f"{self.path} is being trained by another process; wait for it to end (or stop it), then resume"
                ) from None
            yield

    def create(self, overwrite: bool) -> None:
        if self.has_files():
            if not overwrite:
                raise PrunekitError(
                    f"run directory {self.path} already exists; pass --resume to continue it, "
                    f"--overwrite to replace it, or --name for a new one"
                )
            for name in (CONFIG, METRICS, EVENTS, CHECKPOINT, SUMMARY, WARMUP, WARMUP_INFO, FORK, SESSIONS):
                if self.file(name).exists():
                    self.file(name).unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict) -> None:
        atomic_write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", self.file(CONFIG))

    def read_config(self) -> dict:
        path = self.file(CONFIG)
        if not path.exists():
            raise PrunekitError(
                f"{self.path} is not a prunekit run (no {CONFIG}); give a folder made by `prunekit run`"
            )
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PrunekitError(f"cannot read {path} ({exc}); the run record is damaged") from None

    def append(self, name: str, record: dict) -> None:
        append_line(self.file(name), json.dumps(record, sort_keys=True) + "\n")

    def read_jsonl(self, name: str) -> list[dict]:
        """Records of a .jsonl file; a last line cut short by a killed process is ignored."""
        path = self.file(name)
        if not path.exists():
            return []
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break
                raise PrunekitError(f"{path} line {i + 1} is not JSON; the run record is damaged") from None
        return rows

    def truncate_jsonl(self, name: str, keep) -> None:
        """Keep only records for which ``keep(record)`` is true (used when resuming)."""
        self.write_jsonl(name, [r for r in self.read_jsonl(name) if keep(r)])

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        atomic_write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), self.file(name))

    def first_event(self) -> int | None:
        """The 0-based epoch at whose start this run's first drop or restore happened (None before any)."""
        return min((ev["epoch"] for ev in self.read_jsonl(EVENTS)), default=None)

    def save_checkpoint(self, state: dict) -> None:
        atomic_save(state, self.file(CHECKPOINT))

    def load_checkpoint(self, name: str = CHECKPOINT) -> dict | None:
        path = self.file(name)
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise PrunekitError(
                f"cannot load checkpoint {path} ({type(exc).__name__}); it is damaged or not a prunekit checkpoint"
            ) from None

    def resume_source(self) -> str | None:
        """The file a resume continues from: the checkpoint, else the kept warm-up, else None."""
        return next((name for name in (CHECKPOINT, WARMUP) if self.file(name).exists()), None)

    def resume_state(self) -> tuple[dict | None, str]:
        """The latest state a resume can continue from and its file: the checkpoint, else the kept warm-up
        (checkpoints are not kept in git; a committed unfinished run may keep only its warm-up). Refuses a
        run with recorded epochs and neither, rather than silently training it again from epoch 1."""
        if name := self.resume_source():
            return self.load_checkpoint(name), name
        if done := self.epochs_done():
            raise PrunekitError(
                f"{self.path} records {done} epoch(s) but has no {CHECKPOINT} or {WARMUP} to continue from; nothing "
                f"was changed. To train it again from epoch 1 (replacing its records): {self.rerun_command()}"
            )
        return None, ""

    def rerun_command(self) -> str:
        """The command that trains this run again from epoch 1 into this folder, replacing its records."""
        ranks = int(self.read_config().get("world_size", 1))
        launch = f"torchrun --nproc-per-node {ranks} -m prunekit" if ranks > 1 else "prunekit"
        q = shlex.quote
        return f"`{launch} run --config {q(str(self.file(CONFIG)))} --out {q(str(self.path.parent))} --name {q(self.path.name)} --overwrite`"

    def save_warmup(self, state: dict, device: str) -> None:
        atomic_save(state, self.file(WARMUP))
        atomic_write_text(json.dumps({"epoch": int(state["epoch"]), "device": device}) + "\n", self.file(WARMUP_INFO))

    def warmup_info(self) -> dict | None:
        """Epoch and device type of this run's kept warm-up state, if it has one."""
        if not (self.file(WARMUP).exists() and self.file(WARMUP_INFO).exists()):
            return None
        try:
            info = json.loads(self.file(WARMUP_INFO).read_text())
        except (OSError, json.JSONDecodeError):
            return None  # damaged: not a source to start from
        return info if isinstance(info, dict) and isinstance(info.get("epoch"), int) else None

    def fork_epoch(self) -> int:
        """The epochs this run took from another run's warm-up (0 when it trained them all)."""
        if not self.file(FORK).exists():
            return 0
        try:
            return int(json.loads(self.file(FORK).read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            raise PrunekitError(
                f"cannot read {self.file(FORK)}; the run's record of its warm-up source is damaged"
            ) from None

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", self.file(SUMMARY))

    def read_summary(self) -> dict | None:
        path = self.file(SUMMARY)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PrunekitError(
                f"cannot read {path} ({type(exc).__name__}); the run's summary is damaged: "
                f"remove it and resume the run to write it again"
            ) from None


# ------------------------------------------------------------------ reading figures off records
def first_event(runs) -> int | None:
    """The earliest epoch at which any of ``runs`` (RunDirs) had an event: the epochs after it are
    the ones where runs that share a warm-up can differ."""
    return min((e for rd in runs if (e := rd.first_event()) is not None), default=None)


def best_after(metrics: list[dict], epoch: int | None) -> dict | None:
    """The metrics record with the highest test accuracy among those after ``epoch`` (all of them when
    ``epoch`` is None); None when there are none. Metrics epoch k is the state after k epochs."""
    later = [m for m in metrics if epoch is None or m["epoch"] > epoch]
    return max(later, key=lambda m: m["test_acc"]) if later else None


def drop_costs(events: list[dict], metrics: list[dict]) -> list[float]:
    """Test accuracy lost in the first epoch after each drop (the epoch before it minus the epoch it
    opened; negative = gained), for the drops whose two epochs are in ``metrics``."""
    acc = {m["epoch"]: m["test_acc"] for m in metrics}  # epoch k = after k epochs; an event at e opens epoch e + 1
    return [
        acc[ev["epoch"]] - acc[ev["epoch"] + 1]
        for ev in events
        if ev["event"] == "drop" and ev["epoch"] in acc and ev["epoch"] + 1 in acc
    ]


def restore_gains(events: list[dict], metrics: list[dict]) -> list[tuple[float, float | None]]:
    """Test accuracy gained 1 and 2 epochs after each restore, against the epoch just before it (the
    epoch it opened minus the one before, the next one minus the one before; negative = lost): RePr's
    restore signature, a jump within 1-2 epochs in the paper's Figure 1. For the restores whose
    epoch before and first epoch after are in ``metrics``; the 2-epoch gain is None where that epoch is
    not (yet), and counts any event at the start of the second epoch too."""
    acc = {m["epoch"]: m["test_acc"] for m in metrics}  # epoch k = after k epochs; an event at e opens epoch e + 1
    return [
        (acc[e + 1] - acc[e], acc[e + 2] - acc[e] if e + 2 in acc else None)
        for ev in events
        if ev["event"] == "restore" and (e := ev["epoch"]) in acc and e + 1 in acc
    ]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

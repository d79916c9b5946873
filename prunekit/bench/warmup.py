"""Runs that share a warm-up: start a run from another run's state at its first event.

Until a schedule's first event, a run's state (weights, optimizer, learning-rate
schedule, random generators, data order) depends only on its training settings,
not on its ranker, re-initializer or schedule. So a run keeps its state at its
first event (``warmup.pt``), and a new run whose training settings agree, and
whose own first event comes no earlier, starts from there: its first epochs are
the source's to the bit, and it records where it came from in ``fork.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..callbacks import Callback
from ..config import RunConfig, as_resolved_now
from ..device import resolve_device
from ..records import CHECKPOINT, FORK, LOCATION_KEYS, LOCK, METRICS, SESSIONS, WARMUP, RunDir, atomic_write_text

# what a run prunes and how: none of it acts before the first event (which groups may be dropped included)
METHOD_KEYS = {
    "method",
    "ranker",
    "reinitializer",
    "schedule",
    "ranker_args",
    "reinitializer_args",
    "schedule_args",
    "exclude",
    "exclude_first",
}


def first_event_epoch(cfg: RunConfig) -> int | None:
    """The epoch at whose start the run's schedule first acts; None when it never does."""
    from ..engine import build_component

    return build_component("schedule", cfg.schedule, cfg.schedule_args).first_event(cfg.epochs)


def training_settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in METHOD_KEYS | LOCATION_KEYS}


def find_source(cfg: RunConfig, candidates: list[Path]) -> tuple[RunDir, int] | None:
    """The candidate run with the latest warm-up state that ``cfg`` can start from."""
    own_first = first_event_epoch(cfg)
    wanted = training_settings(cfg.to_dict())
    device = resolve_device(cfg.device).type
    best = None
    for path in candidates:
        rd = RunDir(path)
        info = rd.warmup_info()
        if info is None or info.get("device") != device:  # the same numbers need the same kind of device
            continue
        epoch = int(info["epoch"])
        if epoch <= 0 or (own_first is not None and epoch > own_first):
            continue
        if training_settings(as_resolved_now(rd.read_config())) != wanted:
            continue
        if best is None or epoch > best[1]:
            best = (rd, epoch)
    return best


def start_from_warmup(source: RunDir, epoch: int, target: RunDir, cfg: RunConfig) -> None:
    """Write ``target`` as a run of ``cfg`` interrupted after ``epoch``: resuming it continues from the
    source's warm-up state, with the source's first ``epoch`` epochs as its own records."""
    target.create(overwrite=False)  # the clear error when the folder holds something else
    staging = RunDir(tempfile.mkdtemp(prefix=f".{target.path.name}.", dir=target.path.parent))
    try:
        staging.write_jsonl(METRICS, [r for r in source.read_jsonl(METRICS) if r["epoch"] <= epoch])
        if sessions := [r for r in source.read_jsonl(SESSIONS) if r["from_epoch"] < epoch]:
            staging.write_jsonl(SESSIONS, sessions)  # who trained the epochs this run takes over
        shutil.copyfile(source.file(WARMUP), staging.file(CHECKPOINT))
        atomic_write_text(json.dumps({"source": str(source.path), "epoch": epoch}) + "\n", staging.file(FORK))
        staging.write_config(cfg.to_dict())
        os.chmod(staging.path, 0o755)  # mkdtemp made it private
        with target.training_lock():  # a lock left by a run whose files were removed, unless a process holds it
            pass
        target.file(LOCK).unlink(missing_ok=True)
        os.rename(staging.path, target.path)  # all at once: replaces the empty folder made above
    except BaseException:
        shutil.rmtree(staging.path, ignore_errors=True)
        raise


class WarmupKeeper(Callback):
    """Keeps a run's state at its schedule's first event (``warmup.pt``), for the same-seed cells of its
    grid to start from; installed for a run in a grid's folder (by bench, or a resume by hand). Called after the ``Recorder``, so a run stopped between its
    checkpoint and its warm-up keeps the warm-up when resumed, and a kept warm-up is always the state the
    run went on from."""

    def run_start(self, run) -> None:
        self._keep(run)  # resumed (or started from a warm-up) right at its first event

    def epoch_end(self, run, record: dict) -> None:
        self._keep(run)

    def _keep(self, run) -> None:
        run_dir = RunDir(run.path)
        if run.world.main and 0 < run.epoch == run.first_event and run_dir.warmup_info() is None:
            run_dir.save_warmup(run.state_dict(), run.device.type)

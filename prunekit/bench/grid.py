"""A grid folder: ``bench.json`` (the grid's spec) and one run directory per cell.

Running the same grid again skips finished cells and resumes interrupted ones, so a
grid that takes many hours can be stopped at any point. Cells run one after another
in this process, or side by side in worker processes (``workers.py``); a new cell
may start from the warm-up a same-seed sibling kept (``warmup.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console

from ..config import RunConfig, as_resolved_now
from ..errors import PrunekitError
from ..records import CHECKPOINT, CONFIG, LOCATION_KEYS, WARMUP, RunDir, atomic_write_text
from . import tables
from .spec import Cell

SPEC = "bench.json"


class Grid:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def run_dir(self, cell: Cell) -> RunDir:
        return RunDir(self.path / cell.name)

    def cell_state(self, cell: Cell) -> str:
        rd = self.run_dir(cell)
        if rd.finished:
            return "done"
        if rd.file(CONFIG).exists():
            return "partial"
        return "new"

    # ------------------------------------------------------------------ the spec
    def read_spec(self) -> dict:
        path = self.path / SPEC
        if not path.exists():
            raise PrunekitError(f"{self.path} has no {SPEC}; give a folder made by `prunekit bench`")
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PrunekitError(f"cannot read {path} ({exc}); the grid record is damaged") from None

    def add(self, spec: dict, cells: list[Cell], configs: list[RunConfig]) -> None:
        """Take ``cells`` into the grid's record, after checking that they fit the grid already here."""
        spec = self._merged_spec(spec)
        for cell, cfg in zip(cells, configs):  # before the grid's record takes in these cells
            self._check_cell(cell, cfg)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(spec, indent=2) + "\n", self.path / SPEC)

    def _merged_spec(self, spec: dict) -> dict:
        """Refuse to mix two different grids in one folder; returns the spec to write (the folder's, extended
        by this call's cells). Where the grid runs (device, data folder) is not part of it: a grid may be
        resumed on another machine."""
        spec = {**spec, "base": _without_location(spec["base"])}
        if (self.path / SPEC).exists():
            old = self.read_spec()
            old_base = _without_location(old.get("base", {}))
            if old_base != spec["base"]:
                diff = sorted(k for k in set(old_base) | set(spec["base"]) if old_base.get(k) != spec["base"].get(k))
                raise PrunekitError(
                    f"{self.path} holds a grid with other base options ({', '.join(diff)}); give another --out "
                    f"or repeat the original options"
                )
            spec = {
                **spec,
                "methods": _union(old["methods"], spec["methods"]),
                "sets": _union(old["sets"], spec["sets"]),
                "seeds": _union(old["seeds"], spec["seeds"]),
            }
        return spec

    def _check_cell(self, cell: Cell, cfg: RunConfig) -> None:
        """A cell folder that already exists must hold a run of the same configuration."""
        rd = self.run_dir(cell)
        if rd.path.is_symlink() and not rd.path.exists():
            raise PrunekitError(
                f"{rd.path} links to {os.readlink(rd.path)}, which does not exist; fix or remove the link"
            )
        if not rd.file(CONFIG).exists():
            return
        saved, wanted = as_resolved_now(rd.read_config()), cfg.to_dict()
        diff = sorted(k for k in set(saved) | set(wanted) if k not in LOCATION_KEYS and saved.get(k) != wanted.get(k))
        if diff:
            raise PrunekitError(
                f"{rd.path} holds a run with other settings ({', '.join(diff)}); use another --out or remove that "
                f"folder"
            )

    # ------------------------------------------------------------------ the order cells start in
    def ready_cell(self, cell: Cell, cfg: RunConfig, cells: list[Cell], share_warmup: bool) -> str:
        """Make an unfinished cell's run directory resumable; returns how the cell starts.

        A new cell starts from the warm-up state of a same-seed cell of the grid when
        one fits (see warmup.py), else from scratch."""
        from . import warmup

        rd = self.run_dir(cell)
        again = ""
        if rd.file(CONFIG).exists():
            done, source = rd.epochs_done(), rd.resume_source()
            if source == CHECKPOINT or not done:
                return f"resumes after epoch {done}"
            if source == WARMUP:
                after = f" after epoch {info['epoch']}" if (info := rd.warmup_info()) else ""
                return f"resumes from its kept warm-up{after} (no {CHECKPOINT})"
            again = f"its {done} recorded epochs had no {CHECKPOINT} (moved to {self.set_aside(rd)}); "
        if share_warmup:
            found = warmup.find_source(cfg, [self.path / c.name for c in cells if c.seed == cell.seed and c != cell])
            if found:
                source, epoch = found
                warmup.start_from_warmup(source, epoch, rd, cfg)
                return f"{again}starts from the warm-up of {source.path.name} (epochs 1-{epoch})"
        rd.create(overwrite=False)
        rd.write_config(cfg.to_dict())
        return f"{again}starts"

    def set_aside(self, rd: RunDir) -> Path:
        """Move a cell's folder out of the grid's way (into ``.set-aside/``), keeping what it recorded; refused
        while a process trains it."""
        aside = (
            self.path / ".set-aside" / f"{rd.path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        )
        aside.parent.mkdir(exist_ok=True)
        with rd.training_lock():
            rd.path.rename(aside)
        return aside

    def warmup_leaders(self, cells: list[Cell], configs: list[RunConfig]) -> dict[str, str]:
        """For each new cell that no kept warm-up fits yet, the unfinished sibling that will keep one it can
        start from (same seed and training settings, kept no later than the cell's own first event); the
        cell waits for it instead of computing the same epochs beside it. A cell that keeps a warm-up
        itself waits only for an earlier one, so no two cells wait for each other."""
        from . import warmup

        firsts = [warmup.first_event_epoch(cfg) for cfg in configs]
        settings = [warmup.training_settings(cfg.to_dict()) for cfg in configs]
        leaders: dict[str, str] = {}
        for i, (cell, cfg) in enumerate(zip(cells, configs)):
            siblings = [self.path / c.name for c in cells if c.seed == cell.seed and c != cell]
            if self.cell_state(cell) != "new" or warmup.find_source(cfg, siblings):
                continue
            best = None
            for j, other in enumerate(cells):
                first = firsts[j]
                if j == i or other.seed != cell.seed or settings[j] != settings[i] or not first:
                    continue
                if firsts[i] is not None and (first > firsts[i] or j > i):
                    continue
                rd = self.run_dir(other)
                if rd.finished or rd.epochs_done() > first:  # past its first event: it keeps none now
                    continue
                if best is None or first > firsts[best]:
                    best = j
            if best is not None:
                leaders[cell.name] = cells[best].name
        return leaders

    def start_order(self, cells: list[Cell], configs: list[RunConfig], leaders: dict[str, str]) -> list[int]:
        """The order one cell at a time runs in: ``leaders_first``, with the cells under way moved ahead."""
        return sorted(
            leaders_first(cells, leaders),
            key=lambda i: start_key(configs[i].epochs, self.run_dir(cells[i]).epochs_done()),
        )

    # ------------------------------------------------------------------ running
    def run(
        self,
        cells: list[Cell],
        configs: list[RunConfig],
        *,
        share_warmup: bool,
        jobs: int,
        threads: int | None,
        console: Console,
        quiet: bool,
    ) -> None:
        """Run every unfinished cell: one after another in this process, or ``jobs`` side by side in workers."""
        warn_oversubscription(jobs, threads, len(cells), console)
        leaders = self.warmup_leaders(cells, configs) if share_warmup else {}
        if jobs > 1:
            self._run_in_workers(cells, configs, leaders, share_warmup, jobs, threads, console, quiet)
        else:
            self._run_in_process(cells, configs, leaders, share_warmup, threads, console, quiet)

    def _run_in_process(self, cells, configs, leaders, share_warmup, threads, console, quiet) -> None:
        from ..engine import start_run
        from ..progress import RichProgress
        from .warmup import WarmupKeeper

        if threads:
            import torch

            torch.set_num_threads(threads)
        for i, k in enumerate(self.start_order(cells, configs, leaders), 1):
            cell, cfg = cells[k], configs[k]
            if self.cell_state(cell) == "done":
                console.log(f"[bold]cell {i}/{len(cells)}[/bold] {cell.name}: done")
                continue
            how = self.ready_cell(cell, cfg, cells, share_warmup)
            console.log(f"[bold]cell {i}/{len(cells)}[/bold] {cell.name}: {how}")
            with RichProgress(console, cfg, quiet=quiet) as progress:
                start_run(cfg, resume=True, callbacks=[WarmupKeeper(), progress])

    def _run_in_workers(self, cells, configs, leaders, share_warmup, jobs, threads, console, quiet) -> None:
        from functools import partial

        from . import workers

        pending = []
        for cell, cfg in zip(cells, configs):
            if self.cell_state(cell) == "done":
                console.log(f"{cell.name}: done")
                continue
            ready = partial(self.ready_cell, cell, cfg, cells, share_warmup)
            pending.append(
                workers.Job(
                    cell.name,
                    self.run_dir(cell),
                    cfg.epochs,
                    self.path / f"{cell.name}.log",
                    ready,
                    leader=leaders.get(cell.name),
                )
            )
        failed = workers.run_jobs(pending, jobs, threads, _location_options(configs[0]), console, quiet)
        if failed:
            try:
                self.write_tables()  # what did run, before the error
            except PrunekitError:
                pass  # nothing ran at all: the failure below is the news
            raise PrunekitError(
                f"{len(failed)} cell(s) failed ({', '.join(failed)}); the last line of each log is above; "
                f"fix the cause and rerun the same command to resume"
            )

    # ------------------------------------------------------------------ tables and plots
    def write_tables(self) -> tuple[Path, Path, list[dict]]:
        rows = tables.collect(self.path, self.read_spec())
        if not rows:
            raise PrunekitError(f"{self.path} has no finished or started runs yet")
        md, cs = self.path / "table.md", self.path / "table.csv"
        atomic_write_text(tables.markdown(rows), md)
        atomic_write_text(tables.csv_text(rows), cs)
        return md, cs, rows

    def write_compression(self) -> list[Path]:
        """The compression table and plot of a grid whose cells prune permanently (none otherwise)."""
        from . import compression

        rows = compression.rows_for_grid(
            self.path,
            self.read_spec(),
            lambda m, o, s: Cell(m, o, s).name if s is not None else Cell(m, o, 0).label,
        )
        return compression.write(self.path, rows) if rows else []

    def plot(self, cells: list[Cell], seed: int) -> list[Path]:
        """Curves of the cells of ``seed`` that have records."""
        from ..plot import plot_runs

        runs = [self.path / c.name for c in cells if c.seed == seed and (self.path / c.name / "metrics.jsonl").exists()]
        return plot_runs(runs, self.path) if runs else []


def _without_location(base: dict) -> dict:
    return {k: v for k, v in base.items() if k not in LOCATION_KEYS}


def _union(a: list, b: list) -> list:
    return a + [x for x in b if x not in a]


def leaders_first(cells: list[Cell], leaders: dict[str, str]) -> list[int]:
    """Grid order, except that a cell waits until its warm-up leader has been placed (one at a time)."""
    order: list[int] = []
    placed: set[str] = set()
    pending = list(range(len(cells)))
    while pending:
        i = next(i for i in pending if leaders.get(cells[i].name) in (None, *placed))
        pending.remove(i)
        placed.add(cells[i].name)
        order.append(i)
    return order


def start_key(epochs: int, done: int) -> tuple[int, int]:
    """Sort key for the cells of a grid: cells under way first, the fewest epochs left first, so that a grid
    stopped again ends with as many finished cells as it can; fresh cells keep their order (sorts are stable)."""
    return (0, epochs - done) if done else (1, 0)


def warn_oversubscription(jobs: int, threads: int | None, cells: int, console: Console) -> None:
    """More compute threads than cores make every cell slower than running them in turn: say so."""
    from .workers import available_cores

    cores = available_cores()
    side_by_side = max(1, min(jobs, cells))
    if threads and threads * side_by_side > cores:
        console.print(
            f"[yellow]warning:[/yellow] {side_by_side} cell(s) x {threads} threads = "
            f"{threads * side_by_side} threads on {cores} cores; threads that outnumber the cores slow "
            f"every cell far more than the share they lose (leave out --threads for cores / jobs)"
        )


def _location_options(cfg: RunConfig) -> list[str]:
    """This bench call's device and data cache, for workers resuming cells made by any earlier call."""
    return ["--device", cfg.device] + (["--data-dir", cfg.data_dir] if cfg.data_dir else [])

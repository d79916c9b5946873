"""Grids of runs (methods × option sets × seeds) and the tables that compare them.

A grid lives in one folder: ``bench.json`` (the grid's spec) and one run
directory per cell, named ``<method>[_<key>=<value>...]_seed<N>`` (keys sorted). Running the
same grid again skips finished cells and resumes interrupted ones, so a grid
that takes many hours can be stopped at any point.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig, as_resolved_now, resolve
from .errors import PrunekitError
from .records import LOCATION_KEYS, METRICS, RunDir, atomic_write_text, best_after, mean_std

SPEC = "bench.json"


@dataclass
class Cell:
    method: str
    options: dict[str, Any]  # the --set values of this column
    seed: int

    @property
    def label(self) -> str:  # keys sorted: the order of the --set options does not rename the cell
        return "_".join([self.method] + [f"{k}={_fmt(v)}" for k, v in sorted(self.options.items())])

    @property
    def name(self) -> str:
        return f"{self.label}_seed{self.seed}"


def _fmt(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


# set per cell or per call, never a column: bench names cells by method and seed, and a worker resumes on
# the call's device and data folder
NOT_AN_AXIS = {"method", "seed", "name", "out", "device", "data_dir"}


def parse_grid_sets(pairs: list[str], ablate: bool = False) -> list[dict[str, Any]]:
    """``--set k=a,b --set j=x`` -> every combination [{k: a, j: x}, {k: b, j: x}];
    with ``ablate``, the base column and one column per value, each alone:
    [{}, {k: a}, {k: b}, {j: x}]. A list value keeps its commas: ``--set exclude=[a,b],[c]``."""
    from .config import split_set, typed_value

    axes, keys = [], set()
    for pair in pairs:
        key, values = split_set(pair, "key=value[,value...]", "ranker=l1,random")
        if key in NOT_AN_AXIS:
            raise PrunekitError(
                f"--set {key}=... cannot be a grid axis in bench; use --methods/--seeds for methods "
                f"and seeds, and --{key.replace('_', '-')} once for the whole grid"
            )
        if key in keys:
            raise PrunekitError(f"--set {key} is given twice; list its values once: --set {key}=A,B")
        keys.add(key)
        parsed = [typed_value(key, v) for v in split_values(values)]
        twice = repeated([_fmt(v) for v in parsed])  # as the cell names write them: true and True are one value
        if twice:
            raise PrunekitError(f"--set {key}={values} lists the value {twice[0]} twice; list each once")
        axes.append([(key, v) for v in parsed])
    if ablate:
        return [{}] + [{key: value} for axis in axes for key, value in axis]
    return [dict(combo) for combo in itertools.product(*axes)] or [{}]


def repeated(values: list) -> list[str]:
    """The values listed more than once, as text, sorted."""
    return sorted({str(v) for v in values if values.count(v) > 1})


def split_values(text: str) -> list[str]:
    """Split on the commas outside brackets: ``l1,[a,b]`` -> ``["l1", "[a,b]"]``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    if depth != 0 or not all(parts):
        raise PrunekitError(
            f"cannot read the values {text!r}: give them separated by commas, lists in brackets, "
            f"e.g. ranker=l1,random or exclude=[features.0],[features.0,features.2]"
        )
    return parts


def grid(methods: list[str], option_sets: list[dict], seeds: list[int]) -> list[Cell]:
    """Seed-major, so that an interrupted grid has every column at one seed before any has two."""
    return [Cell(m, opts, s) for s in seeds for opts in option_sets for m in methods]


def cell_configs(cells: list[Cell], base: dict, out: Path) -> list:
    """Resolved configs of every cell. A component option applies to the cells whose
    components take it; one that no cell takes is an error (a typo, most likely)."""
    from .config import component_keys, unsafe_name

    configs, used = [], set()
    for cell in cells:
        if why := unsafe_name(cell.name):
            raise PrunekitError(
                f"cell {cell.name!r} cannot be a folder inside {out} ({why}); a --set value "
                f"makes it so: give values without '/', '\\' or '..'-only names"
            )
        values = {**base, **cell.options, "method": cell.method, "seed": cell.seed, "out": str(out), "name": cell.name}
        keys = frozenset(component_keys(values))
        cfg = resolve(values, optional=keys)
        configs.append(cfg)
        for key in keys:
            kind, _, opt = key.rpartition(".")
            for k in [kind] if kind else ["ranker", "reinitializer", "schedule"]:
                if opt in (getattr(cfg, f"{k}_args") or {}):
                    used.add(key)
    unused = sorted(set().union(*(component_keys({**base, **c.options}) for c in cells)) - used)
    if unused:
        raise PrunekitError(
            f"no method in this grid takes option(s) {', '.join(unused)}; see `prunekit list --options`"
        )
    return configs


def check_spec(out: Path, spec: dict) -> dict:
    """Refuse to mix two different grids in one folder; returns the spec to write (the folder's, extended
    by this call's cells). Where the grid runs (device, data folder) is not part of it: a grid may be
    resumed on another machine."""
    path = out / SPEC
    spec = {**spec, "base": _without_location(spec["base"])}
    if path.exists():
        old = _read_spec(path)
        old_base = _without_location(old.get("base", {}))
        if old_base != spec["base"]:
            diff = sorted(k for k in set(old_base) | set(spec["base"]) if old_base.get(k) != spec["base"].get(k))
            raise PrunekitError(
                f"{out} holds a grid with other base options ({', '.join(diff)}); give another --out "
                f"or repeat the original options"
            )
        spec = {
            **spec,
            "methods": _union(old["methods"], spec["methods"]),
            "sets": _union(old["sets"], spec["sets"]),
            "seeds": _union(old["seeds"], spec["seeds"]),
        }
    return spec


def write_spec(out: Path, spec: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(spec, indent=2) + "\n", out / SPEC)


def _without_location(base: dict) -> dict:
    return {k: v for k, v in base.items() if k not in LOCATION_KEYS}


def _union(a: list, b: list) -> list:
    return a + [x for x in b if x not in a]


def check_cell(out: Path, cell: Cell, cfg) -> None:
    """A cell folder that already exists must hold a run of the same configuration."""
    rd = RunDir(out / cell.name)
    if rd.path.is_symlink() and not rd.path.exists():
        raise PrunekitError(f"{rd.path} links to {os.readlink(rd.path)}, which does not exist; fix or remove the link")
    if not rd.file("config.json").exists():
        return
    saved, wanted = as_resolved_now(rd.read_config()), cfg.to_dict()
    diff = sorted(k for k in set(saved) | set(wanted) if k not in LOCATION_KEYS and saved.get(k) != wanted.get(k))
    if diff:
        raise PrunekitError(
            f"{rd.path} holds a run with other settings ({', '.join(diff)}); use another --out or remove that folder"
        )


def ready_cell(out: Path, cell: Cell, cfg, cells: list[Cell], share_warmup: bool) -> str:
    """Make an unfinished cell's run directory resumable; returns how the cell starts.

    A new cell starts from the warm-up state of a same-seed cell of the grid when
    one fits (see warmup.py), else from scratch."""
    from . import warmup

    rd = RunDir(out / cell.name)
    if rd.file("config.json").exists():
        return f"resumes after epoch {rd.epochs_done()}"
    if share_warmup:
        found = warmup.find_source(cfg, [out / c.name for c in cells if c.seed == cell.seed and c != cell])
        if found:
            source, epoch = found
            warmup.start_from_warmup(source, epoch, rd, cfg)
            return f"starts from the warm-up of {source.path.name} (epochs 1-{epoch})"
    rd.create(overwrite=False)
    rd.write_config(cfg.to_dict())
    return "starts"


def warmup_leaders(out: Path, cells: list[Cell], configs: list) -> dict[str, str]:
    """For each new cell that no kept warm-up fits yet, the unfinished sibling that will keep one it can
    start from (same seed and training settings, kept no later than the cell's own first event); the
    cell waits for it instead of computing the same epochs beside it. A cell that keeps a warm-up
    itself waits only for an earlier one, so no two cells wait for each other."""
    from . import warmup

    firsts = [warmup.first_event_epoch(cfg) for cfg in configs]
    settings = [warmup.training_settings(cfg.to_dict()) for cfg in configs]
    leaders: dict[str, str] = {}
    for i, (cell, cfg) in enumerate(zip(cells, configs)):
        siblings = [out / c.name for c in cells if c.seed == cell.seed and c != cell]
        if cell_state(out, cell) != "new" or warmup.find_source(cfg, siblings):
            continue
        best = None
        for j, other in enumerate(cells):
            first = firsts[j]
            if j == i or other.seed != cell.seed or settings[j] != settings[i] or not first:
                continue
            if firsts[i] is not None and (first > firsts[i] or j > i):
                continue
            rd = RunDir(out / other.name)
            if rd.finished or rd.epochs_done() > first:  # past its first event: it keeps none now
                continue
            if best is None or first > firsts[best]:
                best = j
        if best is not None:
            leaders[cell.name] = cells[best].name
    return leaders


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


def start_order(out: Path, cells: list[Cell], configs: list[RunConfig], leaders: dict[str, str]) -> list[int]:
    """The order one cell at a time runs in: ``leaders_first``, with the cells under way moved ahead."""
    return sorted(
        leaders_first(cells, leaders),
        key=lambda i: start_key(configs[i].epochs, RunDir(out / cells[i].name).epochs_done()),
    )


def cell_state(out: Path, cell: Cell) -> str:
    rd = RunDir(out / cell.name)
    if rd.finished:
        return "done"
    if rd.file("config.json").exists():
        return "partial"
    return "new"


# --------------------------------------------------------------------------- tables
# best_after_first_event: best test accuracy after the grid's first event (the earliest epoch at which any
# cell's records show a drop or restore), the same epochs for every row, so that cells sharing a warm-up differ in it;
# overhead: time per epoch vs a base row, see collect()
COLUMNS = [
    "method",
    "runs",
    "epochs",
    "final_test_acc",
    "best_test_acc",
    "best_after_first_event",
    "final_train_acc",
    "gap",
    "wall_seconds",
    "images_per_s",
    "overhead",
]
PERCENT = {"final_test_acc", "best_test_acc", "best_after_first_event", "final_train_acc", "gap"}
MEAN_STD = PERCENT | {"wall_seconds", "images_per_s"}


def collect(out: Path) -> list[dict]:
    """One row per (method, option set), aggregated over its finished seeds, and one more
    for its unfinished runs, marked "(in progress)"."""
    spec_path = out / SPEC
    if not spec_path.exists():
        raise PrunekitError(f"{out} has no {SPEC}; give a folder made by `prunekit bench`")
    spec = _read_spec(spec_path)
    grid = [
        (method, opts, [r for r in (_run_record(out / Cell(method, opts, s).name) for s in spec["seeds"]) if r])
        for opts in spec["sets"]
        for method in spec["methods"]
    ]
    firsts = [r["first_event"] for *_, records in grid for r in records if r["first_event"] is not None]
    after = min(firsts) if firsts else None
    rows = []
    for method, opts, records in grid:
        label, n = Cell(method, opts, 0).label, len(spec["seeds"])
        epochs = opts.get("epochs", spec["base"].get("epochs", RunConfig().epochs))  # an axis may set them
        done = [r for r in records if r["summary"]]
        going = [r for r in records if not r["summary"]]
        if done:  # finished and unfinished runs are never averaged together
            rows.append(_aggregate(label, done, epochs, f"{len(done)}/{n} finished", after))
        if going:
            rows.append(_aggregate(f"{label} (in progress)", going, epochs, f"{len(going)}/{n} unfinished", after))
    by_label = {r["method"]: r for r in rows}
    for opts in spec["sets"]:
        # several methods: each against the first under the same options; one method (an ablation):
        # each option set against the first set, the unablated method where --ablate made the grid
        base_opts = opts if len(spec["methods"]) > 1 else spec["sets"][0]
        base = by_label.get(Cell(spec["methods"][0], base_opts, 0).label)
        for method in spec["methods"]:
            row = by_label.get(Cell(method, opts, 0).label)
            if row and base and base["_per_epoch"] and row["_per_epoch"]:
                row["overhead"] = 100 * (row["_per_epoch"] / base["_per_epoch"] - 1)
    return rows


def _read_spec(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PrunekitError(f"cannot read {path} ({exc}); the grid record is damaged") from None


def _run_record(path: Path) -> dict | None:
    rd = RunDir(path)
    metrics = rd.read_jsonl(METRICS)
    if not metrics:
        return None
    return {
        "metrics": metrics,
        "summary": rd.read_summary(),
        "forked_at": rd.fork_epoch(),
        "first_event": rd.first_event(),
    }


def _aggregate(label: str, records: list[dict], epochs: int, runs: str, after: int | None) -> dict:
    """Accuracies over all epochs; speed (images/s, time per epoch, hence overhead) over the epochs each
    run trained itself, not those it took from a sibling's warm-up, timed in the sibling's process.
    wall_seconds is the whole record's: what one run of all its epochs took."""
    last = [r["metrics"][-1] for r in records]
    seconds = [sum(m["seconds"] for m in r["metrics"]) for r in records]
    own = [r["metrics"][r["forked_at"] :] for r in records]
    timed = [t for t in own if t]
    row = {
        "method": label,
        "runs": runs,
        "epochs": "/".join(str(e) for e in sorted({m["epoch"] for m in last})) + f" of {epochs}",
        "final_test_acc": mean_std([m["test_acc"] for m in last]),
        "best_test_acc": mean_std([max(x["test_acc"] for x in r["metrics"]) for r in records]),
        "best_after_first_event": _best_after(records, after),
        "final_train_acc": mean_std([m["train_acc"] for m in last]),
        "gap": mean_std([m["train_acc"] - m["test_acc"] for m in last]),
        "wall_seconds": mean_std(seconds),
        "images_per_s": mean_std([statistics.mean(m["images_per_s"] for m in t) for t in timed]) if timed else None,
        "overhead": None,
        "_per_epoch": statistics.mean(sum(m["seconds"] for m in t) / len(t) for t in timed) if timed else None,
    }
    return row


def _best_after(records: list[dict], after: int | None) -> tuple[float, float] | None:
    """Best test accuracy over the epochs after ``after``, over the runs that have any (None when none has)."""
    if after is None:
        return None
    bests = [best["test_acc"] for r in records if (best := best_after(r["metrics"], after))]
    return mean_std(bests) if bests else None


def _cell_text(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, tuple):
        mean, std = value
        if key in PERCENT:
            return f"{100 * mean:.2f} ± {100 * std:.2f}"
        return f"{mean:.0f} ± {std:.0f}"
    if isinstance(value, float):
        return f"{value:+.1f} %"
    return str(value)


def markdown(rows: list[dict], columns: list[str] = COLUMNS, text=None) -> str:
    """A markdown table of ``rows``; ``text(key, value)`` writes a cell (the grid table's by default)."""
    text = text or _cell_text
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(text(k, r[k]) for k in columns) + " |\n" for r in rows)


def csv_text(rows: list[dict], columns: list[str] = COLUMNS, mean_std: set[str] = MEAN_STD) -> str:
    """CSV of ``rows``; a (mean, std) column becomes two."""
    buf = io.StringIO()
    w = csv.writer(buf)
    header = []
    for k in columns:
        header += [f"{k}_mean", f"{k}_std"] if k in mean_std else [k]
    w.writerow(header)
    for r in rows:
        line = []
        for k in columns:
            v = r[k]
            if k in mean_std:
                line += list(v) if v is not None else ["", ""]
            else:
                line.append(v if v is not None else "")
        w.writerow(line)
    return buf.getvalue()


def write_tables(out: Path) -> tuple[Path, Path, list[dict]]:
    rows = collect(out)
    if not rows:
        raise PrunekitError(f"{out} has no finished or started runs yet")
    md, cs = out / "table.md", out / "table.csv"
    atomic_write_text(markdown(rows), md)
    atomic_write_text(csv_text(rows), cs)
    return md, cs, rows


def write_compression(out: Path) -> list[Path]:
    """The compression table and plot of a grid whose cells prune permanently (none otherwise)."""
    from . import compression_report

    spec = _read_spec(out / SPEC)
    rows = compression_report.rows_for_grid(
        out, spec, lambda m, o, s: Cell(m, o, s).name if s is not None else Cell(m, o, 0).label
    )
    return compression_report.write(out, rows) if rows else []

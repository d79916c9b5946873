"""The tables that compare a grid's cells: one row per method and option set, mean ± std over seeds."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from ..config import RunConfig
from ..records import METRICS, RunDir, best_after, mean_std
from .spec import Cell

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


def collect(out: Path, spec: dict) -> list[dict]:
    """One row per (method, option set) of the grid ``spec`` in ``out``, aggregated over its finished seeds,
    and one more for its unfinished runs, marked "(in progress)"."""
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


def cell_text(
    key: str, value, percent: set[str] = PERCENT, pair=lambda key, mean, std: f"{mean:.0f} ± {std:.0f}"
) -> str:
    """One table cell: – for no value, a (mean, std) pair in percent for ``percent`` keys and as
    ``pair(key, mean, std)`` writes it otherwise, a lone float as a signed percentage."""
    if value is None:
        return "–"
    if isinstance(value, tuple):
        mean, std = value
        if key in percent:
            return f"{100 * mean:.2f} ± {100 * std:.2f}"
        return pair(key, mean, std)
    if isinstance(value, float):
        return f"{value:+.1f} %"
    return str(value)


def markdown(rows: list[dict], columns: list[str] = COLUMNS, text=None) -> str:
    """A markdown table of ``rows``; ``text(key, value)`` writes a cell (the grid table's by default)."""
    text = text or cell_text
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

"""PNG pictures of finished or running run directories (``prunekit plot``).

``curves.png`` overlays the accuracy and loss curves of several runs and greys
out the sub-network phases (drop -> restore) of the first run that drops.
``filters_<run>.png`` shows, for one run, which filters each drop event removed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import PrunekitError
from .records import EVENTS, METRICS, RunDir

CURVES = [
    ("train_acc", "train accuracy"),
    ("test_acc", "test accuracy"),
    ("train_loss", "train loss"),
    ("test_loss", "test loss"),
]


def natural_key(name: str) -> list:
    """Sort key that orders "features.2" before "features.10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def drop_phases(events: list[dict], last_epoch: float) -> list[tuple[float, float]]:
    """(start, end) epoch spans from each drop to the next restore.

    A drop at 0-based epoch ``e`` acts from x = e (metrics epoch k is "after k
    epochs"); a drop never restored lasts until ``last_epoch``.
    """
    spans, start = [], None
    for ev in events:
        if ev.get("event") == "drop" and start is None:
            start = ev["epoch"]
        elif ev.get("event") == "restore" and start is not None:
            spans.append((start, ev["epoch"]))
            start = None
    if start is not None:
        spans.append((start, last_epoch))
    return spans


def filter_map(drops: list[dict]):
    """Matrix (filters x drop events, 1 = dropped) plus the group (name, size) rows.

    Group sizes come from the events' "sizes" field, falling back to the largest
    dropped index + 1. Groups follow the events' "order" (shallow to deep); older
    records without it fall back to natural name order.
    """
    import numpy as np

    sizes: dict[str, int] = {}
    for ev in drops:
        for name, idx in ev.get("dropped", {}).items():
            size = ev.get("sizes", {}).get(name, max(idx, default=-1) + 1)
            sizes[name] = max(sizes.get(name, 0), size)
    order = drops[0].get("order") if drops else None  # the engine's shallow->deep order
    names = [n for n in order if n in sizes] if order else sorted(sizes, key=natural_key)
    groups = [(n, sizes[n]) for n in names if sizes[n] > 0]
    offsets, total = {}, 0
    for name, size in groups:
        offsets[name] = total
        total += size
    grid = np.zeros((total, len(drops)))
    for col, ev in enumerate(drops):
        for name, idx in ev.get("dropped", {}).items():
            if name in offsets:
                grid[[offsets[name] + i for i in idx], col] = 1.0
    return grid, groups


def _plot_curves(runs, path: Path, plt) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    last = max((m["epoch"] for _, metrics, _ in runs for m in metrics), default=1)
    shader, shaded = next(
        ((name, events) for name, _, events in runs if events), (None, [])
    )  # the first run that drops
    for ax, (key, title) in zip(axes.flat, CURVES):
        for start, end in drop_phases(shaded, last):
            ax.axvspan(start, end, color="0.85", lw=0)
        for name, metrics, _ in runs:
            rows = [m for m in metrics if key in m]
            ax.plot([m["epoch"] for m in rows], [m[key] for m in rows], label=name)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].legend(fontsize="small")
    if any(ev.get("event") == "drop" for ev in shaded):
        fig.suptitle(f"grey: sub-network phases of {shader}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_filters(name: str, drops: list[dict], path: Path, plt) -> None:
    grid, groups = filter_map(drops)
    fig, ax = plt.subplots(figsize=(max(4, 1 + 0.4 * len(drops)), max(3, min(12, grid.shape[0] / 40))))
    ax.imshow(grid, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ticks, row = [], 0
    for _, size in groups:
        ticks.append(row + size / 2 - 0.5)
        row += size
        if row < grid.shape[0]:
            ax.axhline(row - 0.5, color="tab:red", lw=0.5)
    ax.set_yticks(ticks, [g for g, _ in groups], fontsize="small")
    ax.set_xticks(range(len(drops)), [str(ev["epoch"]) for ev in drops])
    ax.set_xlabel("drop event (epoch)")
    ax.set_title(f"{name}: dropped filters (dark)", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_labels(paths: list[Path]) -> list[str]:
    """Each run's folder name as given (a linked cell keeps its own name); where runs share a name,
    as many parent folders in front as tell them apart."""
    parts = [Path(os.path.abspath(p)).parts[1:] or ("/",) for p in paths]  # no root: "/a/r" is ("a", "r")
    labels = [p[-1] for p in parts]
    for depth in range(2, max(map(len, parts)) + 1):
        clash = {lab for lab in labels if labels.count(lab) > 1}
        if not clash:
            break
        labels = ["/".join(p[-depth:]) if lab in clash else lab for p, lab in zip(parts, labels)]
    return labels


def plot_runs(run_dirs: list[Path], out_dir: Path | None) -> list[Path]:
    """Write curves.png for all runs and filters_<run>.png for each run that dropped.

    ``out_dir`` defaults to the first run directory. Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    labels = run_labels([Path(p) for p in run_dirs])
    for path, label in zip(map(Path, run_dirs), labels):
        rd = RunDir(path)
        if not rd.file(METRICS).exists():
            raise PrunekitError(f"{path} has no metrics.jsonl; give run directories made by `prunekit run`")
        runs.append((label, rd.read_jsonl(METRICS), rd.read_jsonl(EVENTS)))
    out = Path(out_dir) if out_dir is not None else Path(run_dirs[0])
    out.mkdir(parents=True, exist_ok=True)

    written = [out / "curves.png"]
    _plot_curves(runs, written[0], plt)
    for name, _, events in runs:
        drops = [ev for ev in events if ev.get("event") == "drop"]
        if drops:
            written.append(out / f"filters_{name.replace('/', '-')}.png")
            _plot_filters(name, drops, written[-1], plt)
    return written

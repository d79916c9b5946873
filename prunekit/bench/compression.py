"""The compression table of a grid: accuracy before and after fine-tuning, what export keeps,
the measured speed-up and the filters removed per layer, per (method, option set) over seeds;
and one accuracy-against-MACs plot."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..records import RunDir, atomic_write_text, mean_std

COLUMNS = [
    "method",
    "runs",
    "keep_macs",
    "keep_params",
    "acc_before_prune",
    "acc_after_prune",
    "final_test_acc",
    "best_test_acc",
    "speedup_b64",
    "removed_per_layer",
]
PERCENT = {"acc_before_prune", "acc_after_prune", "final_test_acc", "best_test_acc"}
MEAN_STD = PERCENT | {"keep_macs", "keep_params", "speedup_b64"}


def compression_record(path: Path) -> dict | None:
    """The figures of one finished permanent run (None for runs without a compression summary)."""
    summary = RunDir(path).read_summary()
    comp = (summary or {}).get("compression")
    if not comp:
        return None
    return {
        "keep_macs": comp["keep"]["macs"],
        "keep_params": comp["keep"]["params"],
        "acc_before_prune": comp["test_acc_before"],
        "acc_after_prune": comp["test_acc_after"],
        "final_test_acc": summary["final_test_acc"],
        "best_test_acc": summary["best_test_acc"],
        "speedup_b64": comp["speedup_b64"],
        "removed": comp["removed"],
        "sizes": comp["sizes"],
    }


def aggregate(label: str, records: list[dict], seeds: int) -> dict:
    row = {"method": label, "runs": f"{len(records)}/{seeds} finished"}
    for key in MEAN_STD:
        values = [r[key] for r in records if r.get(key) is not None]
        row[key] = mean_std(values) if values else None
    sizes = records[0]["sizes"]
    row["removed_per_layer"] = ", ".join(
        f"{name} {statistics.mean(r['removed'][name] for r in records):.0f}/{size}"
        for name, size in sizes.items()
        if any(r["removed"].get(name) for r in records)
    )
    row["_macs"] = [r["keep_macs"] for r in records]
    row["_acc"] = [r["final_test_acc"] for r in records]
    return row


def rows_for_grid(out: Path, spec: dict, label_of) -> list[dict]:
    """One row per (method, option set) of a bench grid with finished permanent runs."""
    rows = []
    for opts in spec["sets"]:
        for method in spec["methods"]:
            records = [r for s in spec["seeds"] if (r := compression_record(out / label_of(method, opts, s)))]
            if records:
                rows.append(aggregate(label_of(method, opts, None), records, len(spec["seeds"])))
    return rows


def _pair(key: str, mean: float, std: float) -> str:
    return f"{mean:.2f}× ± {std:.2f}" if key == "speedup_b64" else f"{mean:.3f} ± {std:.3f}"


def plot(rows: list[dict], path: Path) -> Path:
    """Final test accuracy against the fraction of dense MACs kept, one series per row's method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    series: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        name = r["method"].split("_")[0]
        series.setdefault(name, []).append(
            (
                statistics.mean(r["_macs"]),
                100 * statistics.mean(r["_acc"]),
                100 * (statistics.stdev(r["_acc"]) if len(r["_acc"]) > 1 else 0.0),
            )
        )
    for name, points in sorted(series.items()):
        points.sort()
        ax.errorbar(
            [p[0] for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("MACs kept (fraction of the dense model)")
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(out: Path, rows: list[dict]) -> list[Path]:
    """compression.md, compression.csv and accuracy_vs_macs.png in ``out``."""
    from .tables import cell_text, csv_text, markdown

    md, cs = out / "compression.md", out / "compression.csv"
    atomic_write_text(markdown(rows, COLUMNS, lambda key, value: cell_text(key, value, PERCENT, _pair)), md)
    atomic_write_text(csv_text(rows, COLUMNS, MEAN_STD), cs)
    return [md, cs, plot(rows, out / "accuracy_vs_macs.png")]

"""What each drop did in a run: filters lost per layer, and accuracy around drops and restores.

    python benchmarks/drop_analysis.py benchmarks/results/c3_32-paper/repr_seed0 [--out FILE.md]
    python benchmarks/drop_analysis.py --summary RUN [RUN ...] [--out FILE.md]

Reads the run's events.jsonl and metrics.jsonl (nothing is recomputed) and
prints a Markdown report: for each drop, the share of every layer's filters it
took; for each drop and restore, the test accuracy of the epoch before it and of
the epoch it opened, and for each restore the points gained 1 and 2 epochs after it
(RePr's restore signature); and, for runs that recorded the ranker's scores, each
layer's mean score at each drop, of the filters it kept and of those it dropped
(orthogonality ranker: score = −O_f, so values near 0 mean near-orthogonal filters). With --summary, one row per run instead:
final and best test accuracy (best after the runs' first event, where the runs of
an ablation grid part, as in `prunekit bench`'s tables), final train accuracy and test loss, what each drop cost
in its first epoch and took from each layer, how many of its filters the drop before it had taken too, and
what each restore gained 1 and 2 epochs after it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _results import command_line, points, run_script

from prunekit.plot import natural_key, run_labels
from prunekit.records import EVENTS, METRICS, RunDir, best_after, drop_costs, first_event, restore_gains


def report(run: Path) -> str:
    rd = RunDir(run)
    events, metrics = rd.read_jsonl(EVENTS), rd.read_jsonl(METRICS)
    acc = {m["epoch"]: m["test_acc"] for m in metrics}  # metrics epoch k = after k epochs
    lines = [
        f"# {run.name}",
        "",
        "| epoch | event | test acc before | test acc after its first epoch "
        "| restore: gain after 1 / 2 epochs (points) | filters dropped per layer |",
        "|---|---|---|---|---|---|",
    ]
    for ev in events:
        e = ev["epoch"]  # 0-based epoch at whose start the event happened
        before, after = acc.get(e), acc.get(e + 1)
        fmt = lambda a: "–" if a is None else f"{100 * a:.2f}"
        gain = "–"
        if ev["event"] == "drop":
            sizes = ev.get("sizes", {})
            order = ev.get("order", list(ev["dropped"]))
            per_layer = ", ".join(f"{g} {len(ev['dropped'][g])}/{sizes.get(g, '?')}" for g in order)
        else:
            per_layer = "; ".join(ev.get("log", []))[:200]
            gain = " / ".join(gains_text(g) for g in restore_gains([ev], metrics)) or "–"
        lines.append(f"| {e + 1} | {ev['event']} | {fmt(before)} | {fmt(after)} | {gain} | {per_layer} |")
    return "\n".join(lines + score_table(events)) + "\n"


def score_table(events: list[dict]) -> list[str]:
    """Mean score per layer at each drop: of the filters it kept (alive before it and not dropped by it),
    and of those it dropped."""
    drops, held = [], {}  # held: filters dropped since the last restore, per layer
    for ev in events:
        if ev["event"] == "restore":
            held = {}
        elif ev["event"] == "drop":
            if ev.get("scores"):
                drops.append((ev, {g: set(v) for g, v in held.items()}))
            for g, idx in ev["dropped"].items():
                held.setdefault(g, set()).update(idx)
    if not drops:
        return []
    order = drops[0][0].get("order", list(drops[0][0]["scores"]))
    lines = [
        "",
        "Mean ranker score per layer at each drop (filters it kept / those it dropped; higher = kept):",
        "",
        "| layer | " + " | ".join(f"drop at {ev['epoch'] + 1}" for ev, _ in drops) + " |",
        "|---|" + "---|" * len(drops),
    ]

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    table = []  # per layer, per drop: (kept mean, dropped mean)
    for g in order:
        row = []
        for ev, before in drops:
            scores = ev["scores"][g]
            gone = before.get(g, set()) | set(ev["dropped"][g])
            kept = [v for i, v in enumerate(scores) if i not in gone]
            row.append((mean(kept), mean(scores[i] for i in ev["dropped"][g])))
        table.append(row)

    def text(v):  # under 0.001 four decimals keep one digit or none (gradient, Hessian: 1e-8 to 1e-4)
        return "–" if v is None else format(v, ".4f" if v == 0 or abs(v) >= 0.001 else ".3e")

    for g, row in zip(order, table):
        lines.append(f"| {g} | " + " | ".join(f"{text(k)} / {text(d)}" for k, d in row) + " |")
    return lines


def gains_text(gain: tuple[float, float | None]) -> str:
    """One restore's gains after 1 and 2 epochs, in points: ``3.1, 4.0`` (``3.1, –`` before the second epoch)."""
    one, two = gain
    return f"{points(one)}, {'–' if two is None else points(two)}"


def repeated(earlier: dict, later: dict) -> int:
    """How many filters the ``later`` drop event takes that the ``earlier`` one took too."""
    return sum(len(set(idx) & set(earlier["dropped"].get(g, []))) for g, idx in later["dropped"].items())


def summary(runs: list[Path]) -> str:
    """One Markdown row per run (see the module docstring)."""
    records = []
    for run in runs:
        rd = RunDir(run)
        events, metrics = rd.read_jsonl(EVENTS), rd.read_jsonl(METRICS)
        if not metrics:
            raise SystemExit(f"{run} has no finished epoch (no metrics.jsonl records); give a run that has trained")
        records.append((run, events, metrics))
    layers: list[str] = []  # every layer any run dropped from, so that rows line up
    for _, events, _ in records:
        for ev in events:
            for g in ev.get("order", list(ev.get("dropped", {}))):
                if g not in layers:
                    layers.append(g)
    layers.sort(key=natural_key)  # features.2 before features.10
    after = first_event(RunDir(run) for run, _, _ in records)
    best_head = "best test acc (epoch)" if after is None else f"best after epoch {after} (epoch)"
    lines = [
        f"| run | epochs | final test acc | {best_head} | final train acc | final test loss "
        f"| first-epoch cost of each drop (points) | filters dropped at each drop ({'+'.join(layers) or '–'}) "
        f"| of those, dropped by the drop before too | gain of each restore after 1, 2 epochs (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, (_, events, metrics) in zip(run_labels(runs), records):
        last = metrics[-1]
        best = best_after(metrics, after)  # None for a run that has not yet trained past ``after``
        drops = [ev for ev in events if ev["event"] == "drop"]
        costs = " / ".join(points(c) for c in drop_costs(events, metrics)) or "–"
        taken = "; ".join("+".join(str(len(ev["dropped"].get(g, []))) for g in layers) for ev in drops) or "–"
        again = " / ".join(str(repeated(a, b)) for a, b in zip(drops, drops[1:])) or "–"
        gains = " / ".join(gains_text(g) for g in restore_gains(events, metrics)) or "–"
        best_text = f"{100 * best['test_acc']:.2f} ({best['epoch']})" if best else "–"
        lines.append(
            f"| {label} | {last['epoch']} | {100 * last['test_acc']:.2f} | {best_text} "
            f"| {100 * last['train_acc']:.2f} | {last['test_loss']:.2f} | {costs} | {taken} | {again} | {gains} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--summary", action="store_true", help="one row per run instead of one run's report")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not args.summary and len(args.runs) > 1:
        ap.error("give one run, or --summary for several")
    text = summary(args.runs) if args.summary else report(args.runs[0])
    if args.summary:
        text = f"Made by `{command_line('drop_analysis.py')}`\n\n" + text
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    run_script(main)

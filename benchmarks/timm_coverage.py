"""How much of timm prunekit handles: one model per timm family, each stage timed, each in its own process.

    python benchmarks/timm_coverage.py 2>&1 | tee benchmarks/results/timm_coverage.log

For every module timm registers models in (``timm.list_modules()``, a "family"), the smallest model
(parameters counted on the meta device, up to ``--max-params``) is built at random init and taken
through, at its own input size from timm's config and batch 2:
  build  - ``Pruner(model, x, ranker="l2", reinitializer="default")``: torch-pruning's dependency
           graph and prunekit's filter groups, bounded by ``--graph-timeout``;
  drop   - ``drop(0.3)``: 30 % of the filters, ranked globally with the per-layer cap;
  forward- a forward pass with the filters held (outputs must be finite);
  restore- ``restore()``: the dropped filters back through the reinitializer;
  export - ``drop(0.3)`` again and ``export()``: torch-pruning cuts the model; the largest output
           difference between the masked and the cut model (eval mode) must be <= 1e-4 of the
           outputs' scale (at least 1).
Each family runs in a child process killed after ``--timeout`` seconds, so nothing can hang the
sweep. A family counts as convolutional when its model has at least three Conv2d layers (a ViT's
single patch-embedding conv does not make it one). Results are appended as each family ends, so a
stopped sweep resumes (``--redo`` starts over). Writes benchmarks/results/timm_coverage.json and
timm_coverage.md. Runs on any newer timm: the family list and the models come from timm itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _results import command_line, write_json, write_markdown

HERE = Path(__file__).parent
RESULTS = HERE / "results"
STAGES = ("build", "drop", "forward", "restore", "export")


def smallest_model(family: str, max_params: int) -> tuple[str | None, int | None, int]:
    """The family's model with the fewest parameters (counted on the meta device), and how many were tried."""
    import timm
    import torch

    best, tried = (None, None), 0
    for name in timm.list_models(module=family):
        tried += 1
        try:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False)
        except Exception:  # noqa: BLE001 - a model that needs arguments or cannot build on meta
            continue
        n = sum(p.numel() for p in model.parameters())
        if n <= max_params and (best[1] is None or n < best[1]):
            best = (name, n)
    return best[0], best[1], tried


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def one_family(family: str, max_params: int, graph_timeout: float) -> dict:
    """The stages for one family, in this process; the row of the table."""
    import timm
    import torch

    from prunekit.pruner import Pruner

    torch.manual_seed(0)
    row = {
        "family": family,
        "model": None,
        "params": None,
        "result": "ok",
        "stage": None,
        "reason": None,
        "seconds": {},
    }
    t0 = time.perf_counter()
    name, params, tried = smallest_model(family, max_params)
    row["seconds"]["choose"] = time.perf_counter() - t0
    if name is None:
        return {
            **row,
            "result": "skipped",
            "reason": f"no model of the {tried} builds on meta within {max_params / 1e6:.0f} M parameters",
        }
    row.update(model=name, params=params)
    model = timm.create_model(name, pretrained=False).eval()
    row["conv_layers"] = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    row["convolutional"] = row["conv_layers"] >= 3
    size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    row["input"] = list(size)
    x = torch.randn((2,) + size, generator=torch.Generator().manual_seed(0))
    stage = "build"
    try:
        t = time.perf_counter()
        pruner = Pruner(model, x, ranker="l2", reinitializer="default", graph_timeout=graph_timeout)
        row["seconds"]["build"] = time.perf_counter() - t
        row["groups"], row["filters"] = len(pruner.groups), sum(g.size for g in pruner.groups)
        row["excluded"] = list(pruner.groups.excluded)
        if not pruner.groups:
            return {
                **row,
                "result": "no filters",
                "reason": "no prunable conv filters ("
                + ("; ".join(pruner.groups.excluded)[:200] or "attention/MLP blocks only")
                + ")",
            }
        stage = "drop"
        t = time.perf_counter()
        pruner.drop(0.3, generator=torch.Generator().manual_seed(1))
        row["seconds"]["drop"] = time.perf_counter() - t
        row["dropped"] = sum(int(d.sum()) for d in pruner.dropped)
        stage = "forward"
        t = time.perf_counter()
        with torch.no_grad():
            out = model(x)
        row["seconds"]["forward"] = time.perf_counter() - t
        if not torch.isfinite(out).all():
            raise ValueError("outputs are not finite with 30 % of the filters held at zero")
        stage = "restore"
        t = time.perf_counter()
        pruner.restore(generator=torch.Generator().manual_seed(2))
        row["seconds"]["restore"] = time.perf_counter() - t
        stage = "export"
        pruner.drop(0.3, generator=torch.Generator().manual_seed(3))
        t = time.perf_counter()
        small = pruner.export().eval()
        row["seconds"]["export"] = time.perf_counter() - t
        with torch.no_grad():
            masked, cut = model(x), small(x)
        diff = float((masked - cut).abs().max())
        scale = max(1.0, float(masked.abs().max()))
        row["export_max_abs_diff"], row["output_scale"] = diff, scale
        if not diff <= 1e-4 * scale:
            raise ValueError(f"exported outputs differ from the masked model's by {diff:.3g} (scale {scale:.3g})")
        row["macs_kept_filters"] = sum(p.numel() for p in small.parameters()) / sum(
            p.numel() for p in model.parameters()
        )
    except Exception as exc:  # noqa: BLE001 - the table reports every failure with its stage
        row.update(result="fails", stage=stage, reason=first_line(exc))
    return row


def cause(row: dict) -> str:
    """A short cause for the summary: what kind of failure this is."""
    if row["result"] in ("ok", "skipped", "no filters"):
        return row["result"]
    reason = row.get("reason") or ""
    if row.get("stage") == "export":
        if "differ from the masked" in reason:
            return "export: cut model's outputs differ from the masked one's (a norm or attention mixes channels)"
        if "torch-pruning cannot cut" in reason:
            return "export: torch-pruning refuses a cut"
        return "export: the cut model does not run (a reshape or grouped conv left at the old width)"
    if "torch-pruning cannot build" in reason:
        return f"{row['stage']}: torch-pruning cannot build the graph"
    if "time" in reason.lower() and row.get("stage") == "build":
        return "build: graph time bound"
    return f"{row['stage']}: {reason.split(':')[0]}"


def write_tables(rows: list[dict], out: Path) -> None:
    conv = [r for r in rows if r.get("convolutional")]
    ok_conv = [r for r in conv if r["result"] == "ok"]
    cycle_conv = [r for r in conv if r["result"] == "ok" or (r["result"] == "fails" and r["stage"] == "export")]
    causes: dict[str, int] = {}
    for r in rows:
        if r["result"] != "ok":
            causes[cause(r)] = causes.get(cause(r), 0) + 1
    lines = [
        f"# timm coverage ({len(rows)} families)",
        "",
        f"- convolutional families (>= 3 Conv2d layers): {len(conv)}; a drop/restore cycle works on "
        f"{len(cycle_conv)} ({100 * len(cycle_conv) / max(1, len(conv)):.0f} %), every stage including export on "
        f"{len(ok_conv)} ({100 * len(ok_conv) / max(1, len(conv)):.0f} %)",
        f"- all families: {sum(r['result'] == 'ok' for r in rows)} ok, "
        + ", ".join(f"{n} {c}" for c, n in sorted(causes.items(), key=lambda t: -t[1])),
        "",
        "| family | model | params (M) | conv | groups | filters | build s | drop s | restore s | export s | result | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["family"]):
        s = r.get("seconds", {})
        fmt = lambda k: f"{s[k]:.2f}" if k in s else ""
        lines.append(
            f"| {r['family']} | {r.get('model') or ''} | {(r.get('params') or 0) / 1e6:.1f} | "
            f"{'yes' if r.get('convolutional') else 'no'} | {r.get('groups', '')} | {r.get('filters', '')} | "
            f"{fmt('build')} | {fmt('drop')} | {fmt('restore')} | {fmt('export')} | {r['result']}"
            f"{' (' + r['stage'] + ')' if r.get('stage') else ''} | "
            f"{(r.get('reason') or '').replace('|', '/')[:160]} |"
        )
    print("\n".join(lines[:5]))
    write_markdown("timm_coverage.py", out.with_suffix(".md"), "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", help="comma list (default: every timm module)")
    ap.add_argument(
        "--max-params",
        type=float,
        default=150e6,
        help="largest model tried (default 150e6: VGG-11 is the smallest VGG)",
    )
    ap.add_argument("--graph-timeout", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per family before its process is killed")
    ap.add_argument("--redo", action="store_true", help="run the families again (those of --families, else all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "timm_coverage.json")
    ap.add_argument("--table-only", action="store_true", help="write the tables from the JSON, run nothing")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_family(args.child, int(args.max_params), args.graph_timeout)))
        return
    if args.table_only:
        return write_tables(json.loads(args.out.read_text())["rows"], args.out)
    import timm
    import torch

    families = args.families.split(",") if args.families else timm.list_modules()
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = {r["family"]: r for r in record.get("rows", []) if not (args.redo and r["family"] in families)}
    record.setdefault("commands", []).append(command_line("timm_coverage.py"))
    record.update(timm=timm.__version__, torch=torch.__version__)
    for i, family in enumerate(families):
        if family in rows:
            continue
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    family,
                    "--max-params",
                    str(args.max_params),
                    "--graph-timeout",
                    str(args.graph_timeout),
                ],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            row = (
                json.loads(lines[-1])
                if lines
                else {
                    "family": family,
                    "result": "fails",
                    "stage": "process",
                    "reason": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:200]}",
                }
            )
        except subprocess.TimeoutExpired:
            row = {
                "family": family,
                "result": "fails",
                "stage": "process",
                "reason": f"no answer within {args.timeout:.0f} s (killed)",
            }
        row["wall_seconds"] = time.perf_counter() - t0
        rows[family] = row
        print(
            f"[{i + 1}/{len(families)}] {family}: {row.get('model')} {row['result']}"
            f"{' (' + row['stage'] + ')' if row.get('stage') else ''} {row.get('reason') or ''} "
            f"[{row['wall_seconds']:.0f} s]",
            flush=True,
        )
        record["rows"] = list(rows.values())
        write_json(args.out, record, indent=1)
    write_tables(list(rows.values()), args.out)


if __name__ == "__main__":
    main()

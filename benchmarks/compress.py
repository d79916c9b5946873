"""A compression pipeline: a dense baseline, its prune-and-fine-tune grid, torch-pruning's row, one table.

    python benchmarks/compress.py resnet20-compress              # CPU: ResNet-20, 15 + 1 epochs
    python benchmarks/compress.py resnet56-compress              # one CUDA GPU: ResNet-56, 200 + 100 epochs

The grid is declared in benchmarks/grids.toml and run by benchmarks/grid.py; its run options are the
recipe every step shares, so that all rows are trained alike:
1. baseline: `prunekit run --method standard` with the grid's options, at the pipeline's baseline
   epochs and lr (`--base-epochs`), seed 0, into the grid's --init-from folder;
2. prunekit's rows: the grid (prune-<ranker> x --set target=... of the dense MACs x seeds), each cell
   cut from the baseline at epoch 0 and fine-tuned;
3. torch-pruning's row: the baseline cut by benchmarks/tp_baseline.py to each target, then fine-tuned
   by `prunekit run --method standard --init-from <its cut>` with the grid's options and seeds;
4. benchmarks/compression_table.py: one table of all rows and the plot, next to the grid folder.
With `side_by_side` (the GPU pipeline) steps 2 and 3 run at the same time; otherwise one seed at a
time, prunekit's rows then torch-pruning's, so that a stopped run has whole seeds. Resumable: rerun
to continue; finished runs and cells are kept. `--param ft_epochs=N` changes the fine-tuning epochs,
`--set target=0.5` the MACs targets (torch-pruning's row follows both).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grid as grids


def with_option(argv: list[str], flag: str, value: str | None) -> list[str]:
    """``argv`` with ``flag``'s value replaced (appended when missing; removed when ``value`` is None)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag:
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out + ([flag, value] if value is not None else [])


def option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def train(runner: grids.Runner, run: Path, argv: list[str]) -> None:
    """A `prunekit run` into ``run``: nothing when it has finished, resumed when it has started."""
    if (grids.ROOT / run / "summary.json").is_file():
        return
    if (grids.ROOT / run / "checkpoint.pt").is_file():
        runner.call(["run", "--resume", str(run), "--quiet"])
    else:
        runner.call(["run", "--method", "standard", *argv, "--out", str(run.parent), "--name", run.name, "--quiet"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="a grid of grids.toml with a pipeline table (resnet20-compress, resnet56-compress)")
    ap.add_argument("--base-epochs", type=int, help="the baseline's epochs, instead of the pipeline's")
    grids.add_run_options(ap)
    args = ap.parse_args()
    try:
        config = grids.load(args.grids)
        names = [n for n, g in config["grids"].items() if "pipeline" in g]
        if args.name not in names:
            raise grids.GridError(f"{args.name!r} is not a compression grid of grids.toml; valid: {', '.join(names)}")
        given = grids.given_from(args)
        (bench,) = grids.plan(config, [args.name], given)
        pipeline(grids.Runner(args.dry_run), config, bench, given, args.base_epochs)
    except grids.GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except grids.Failed as exc:
        print(f"stopped: `{exc.command}` exited with status {exc.code}", file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished epochs are kept)", file=sys.stderr)
        sys.exit(130)


def pipeline(runner: grids.Runner, config: dict, bench: grids.Bench, given: grids.Given, base_epochs) -> None:
    base = option(bench.options, "--init-from")
    if base is None or "target" not in bench.axes:
        raise grids.GridError(f"grid {bench.grid} needs --init-from (the baseline) and a target axis to be a pipeline")
    base, out = Path(base), Path(bench.out).parent
    tp = out / "torch-pruning"
    device = ["--device", bench.device] if bench.device else []
    settings = bench.pipeline
    recipe = with_option(bench.options, "--init-from", None)
    recipe = with_option(recipe, "--epochs", str(base_epochs or settings["baseline_epochs"]))
    train(runner, base, [*with_option(recipe, "--lr", str(settings["baseline_lr"])), *device, "--seed", "0"])

    def torch_pruning_rows(seeds: list[int]) -> None:
        for keep in bench.axes["target"].split(","):
            cut = tp / f"export_keep={keep}"
            if not (grids.ROOT / cut / "pruned.pt").is_file():
                log = str(tp / f"tp_prune_keep={keep}.log")
                argv = ["benchmarks/tp_baseline.py", "--base", str(base), "--keep-macs", keep, "--out", str(cut)]
                runner.call(argv, prunekit=False, log=log)
            for seed in seeds:
                ft = [*with_option(bench.options, "--init-from", str(cut)), *device, "--seed", str(seed)]
                train(runner, tp / f"finetune_keep={keep}_seed{seed}", ft)

    def grid(seeds: list[int]) -> None:
        runner.run(grids.bench_steps(config, {"grid": bench.grid, "seeds": seeds}, given))

    if settings.get("side_by_side") and not runner.dry_run:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(grid, bench.seeds), pool.submit(torch_pruning_rows, bench.seeds)]
        for future in futures:
            if future.exception():
                raise future.exception()
    elif settings.get("side_by_side"):
        grid(bench.seeds)  # printed one after the other; run side by side
        torch_pruning_rows(bench.seeds)
    else:
        for i, seed in enumerate(bench.seeds):  # one seed at a time: a stopped run has whole seeds
            grid(bench.seeds[: i + 1])
            torch_pruning_rows([seed])
    runner.call(
        ["benchmarks/compression_table.py", "--out", str(out)], prunekit=False, log=str(out / "compression_table.log")
    )


if __name__ == "__main__":
    main()

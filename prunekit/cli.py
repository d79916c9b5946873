"""The ``prunekit`` command: run, list, data import, plot, bench."""

from __future__ import annotations

import inspect
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import registry
from .cli_options import WithComponentOptions
from .config import CHOICES
from .errors import PrunekitError

# Wide lines when written to a file or pipe (logs, CI), the terminal's width otherwise.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)

# CLI option -> config key; None values mean "not given" and never override.
RUN_OPTIONS = [
    click.option("--method", help="Method recipe (see `prunekit list`)."),
    click.option("--model", help="Model name, e.g. c3_32, resnet20, timm:resnet18."),
    click.option(
        "--dataset",
        help="cifar10, cifar100, synthetic, or folder:PATH (train/ and val/ or test/ of "
        "<class>/<image> files, streamed).",
    ),
    click.option(
        "--image-size",
        type=click.IntRange(min=8),
        help="folder: datasets: crop size (default: the timm model's own, else 224).",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=0),
        help="folder: datasets: decoding processes per rank (default min(8, cores)).",
    ),
    click.option("--epochs", type=int, help="Total epochs (default 100)."),
    click.option("--batch-size", type=int, help="Default 128."),
    click.option("--optimizer", type=click.Choice(CHOICES["optimizer"]), help="Default sgd."),
    click.option("--lr", type=float, help="Learning rate (default 0.01)."),
    click.option("--momentum", type=float, help="SGD momentum (default 0)."),
    click.option("--nesterov/--no-nesterov", default=None),
    click.option("--weight-decay", type=float, help="Default 0."),
    click.option("--lr-schedule", type=click.Choice(CHOICES["lr_schedule"]), help="Default constant."),
    click.option(
        "--augment/--no-augment", default=None, help="Random crop (pad 4) + flip; off by default (the paper's regime)."
    ),
    click.option("--seed", type=int, help="Default 0; same seed on CPU = same numbers."),
    click.option("--device", type=click.Choice(CHOICES["device"]), help="Default auto (cuda when present)."),
    click.option("--precision", type=click.Choice(CHOICES["precision"]), help="Autocast dtype (default fp32)."),
    click.option("--channels-last/--no-channels-last", default=None),
    click.option("--data-dir", help="Dataset cache (default $PRUNEKIT_DATA or ~/.cache/prunekit)."),
    click.option("--out", help="Folder for run directories (default runs)."),
    click.option("--name", help="Run directory name (default method_model_dataset_seedN)."),
    click.option(
        "--ranker",
        help="Override the method's ranker (see `prunekit list`). Data rankers (activation, "
        "apoz, gradient, taylor, hessian) add a few forward/backward passes per event; oracle adds one loss evaluation "
        "per filter: 10–30 s per event on c3_32 on one CPU thread, days on a ResNet-50.",
    ),
    click.option("--reinit", "reinitializer", help="Override the method's reinitializer."),
    click.option("--schedule", help="Override the method's schedule, e.g. oneshot, iterative, gradual, repr."),
    click.option(
        "--target-macs",
        type=float,
        help="Permanent schedules: fraction of the dense model's MACs to keep, "
        "in (0, 1), counted on the exported shape.",
    ),
    click.option(
        "--target-params",
        type=float,
        help="Permanent schedules: fraction of the dense model's parameters to keep, in (0, 1).",
    ),
    click.option(
        "--init-from", help="Start from these weights: a finished run's folder, an export folder or a state_dict file."
    ),
    click.option(
        "--pretrained",
        is_flag=False,
        flag_value="cache",
        default=None,
        metavar="[FILE]",
        help="timm models: timm's published weights, from the local cache (alone) or a weights FILE.",
    ),
    click.option("--exclude-first/--no-exclude-first", default=None, help="Never drop the first conv's filters."),
    click.option(
        "--graph-timeout", type=float, help="Seconds torch-pruning may take to build the filter groups (default 60)."
    ),
]


def _apply(options):
    def deco(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


def _targets(given: dict) -> dict:
    """``--target-macs X`` / ``--target-params X`` become the schedule options target=X, metric=macs|params."""
    chosen = {k: given.pop(k) for k in ("target_macs", "target_params") if given.get(k) is not None}
    if len(chosen) > 1:
        raise PrunekitError("give one of --target-macs and --target-params, not both")
    for key, fraction in chosen.items():
        flag = "--" + key.replace("_", "-")
        if not 0.0 < fraction < 1.0:
            raise PrunekitError(
                f"{flag} must be in (0, 1) (the fraction of the dense model to keep), got {fraction}; "
                f"e.g. 0.5 keeps half"
            )
        given.update(target=fraction, metric=key.removeprefix("target_"))
    return given


def _parse_sets(pairs) -> dict:
    from .config import split_set, typed_value

    result = {}
    for pair in pairs:
        key, text = split_set(pair, "key=value", "next_layer=random")
        result[key] = typed_value(key, text)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="prunekit")
def cli():
    """Pruning methods for PyTorch: Ranker x Reinitializer x Schedule over filter groups."""


@cli.command(cls=WithComponentOptions)
@_apply(RUN_OPTIONS)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON file of options; CLI options win."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config key or component option.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue an interrupted run directory.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--quiet", is_flag=True, help="No progress bars; one line per epoch.")
def run(config_file, sets, resume_dir, overwrite, quiet, **options):
    """Train one model with one method and record the run."""
    from .bench.workers import stop_with_bench
    from .config import read_config_file, resolve
    from .records import RunDir

    stop_with_bench()  # a worker of `bench --jobs` ends with it

    given = _targets({k: v for k, v in options.items() if v is not None})
    if resume_dir:
        location = {k: given.pop(k) for k in ("device", "data_dir") if k in given}  # where, not what
        if given or sets or config_file or overwrite:
            raise PrunekitError(
                "--resume continues a run with its saved config; drop the other options "
                "(only --device and --data-dir may change)"
            )
        given = location
        rd = RunDir(resume_dir)
        saved = rd.read_config()
        if rd.finished:
            raise PrunekitError(f"{resume_dir} has already finished (summary.json exists); nothing to resume")
        saved.update(out=str(rd.path.parent), name=rd.path.name, **given)
        cfg = resolve(saved)
        summary = _train(cfg, quiet, resume=True)
    else:
        values = read_config_file(config_file) if config_file else {}
        cfg = resolve(values, {**given, **_parse_sets(sets)})
        summary = _train(cfg, quiet, overwrite=overwrite)
    if summary:  # under torchrun, rank 0's
        _print_summary(summary)


def _train(cfg, quiet: bool, **kw) -> dict:
    from .bench import SPEC
    from .bench.warmup import WarmupKeeper
    from .distributed import launched_by_torchrun
    from .engine import start_run
    from .progress import RichProgress

    if launched_by_torchrun() and os.environ.get("RANK", "0") != "0":  # rank 0 speaks for the run
        with _sigterm_as_interrupt():
            return start_run(cfg, **kw)
    keeper = [WarmupKeeper()] if (Path(cfg.out) / SPEC).exists() else []  # a grid's cell, by bench or by hand
    with _sigterm_as_interrupt(), RichProgress(console, cfg, quiet=quiet) as progress:
        return start_run(cfg, callbacks=[*keeper, progress], **kw)


def _print_summary(summary: dict) -> None:
    table = Table(title=f"run {summary['name']}", show_header=False)
    for key in (
        "method",
        "model",
        "dataset",
        "seed",
        "epochs",
        "final_test_acc",
        "best_test_acc",
        "final_train_acc",
        "gap",
        "wall_seconds",
        "images_per_s",
        "events",
        "device",
        "precision",
    ):
        value = summary.get(key)
        if isinstance(value, float):
            value = f"{value:.4f}" if key.endswith("acc") or key == "gap" else f"{value:.1f}"
        table.add_row(key, str(value))
    comp = summary.get("compression")
    if comp:
        table.add_row("kept (params, MACs)", f"{comp['keep']['params']:.3f}, {comp['keep']['macs']:.3f}")
        table.add_row(
            "test acc before / after the drops", f"{comp['test_acc_before']:.4f} / {comp['test_acc_after']:.4f}"
        )
        table.add_row(
            "speed-up, batch 64", f"{comp['speedup_b64']:.2f}x (`prunekit export` to write the smaller model)"
        )
    out.print(table)


@cli.command(cls=WithComponentOptions)
@_apply([o for o in RUN_OPTIONS])
@click.option("--methods", required=True, help="Comma list of methods, e.g. standard,repr,magnitude.")
@click.option("--seeds", default="0", show_default=True, help="Comma list of seeds.")
@click.option("--set", "sets", multiple=True, metavar="KEY=V1,V2", help="A grid axis: one column per value.")
@click.option(
    "--ablate",
    is_flag=True,
    help="Vary one --set value at a time from the method's defaults (plus a default column) "
    "instead of every combination.",
)
@click.option("--table-only", is_flag=True, help="Only rebuild the tables and plots from what has run.")
@click.option(
    "--share-warmup/--no-share-warmup",
    default=True,
    show_default=True,
    help="Start a new cell from the state of a same-seed cell at its schedule's first event, "
    "when their training settings agree (the same numbers, fewer epochs); with --jobs, such a "
    "cell waits for the sibling that will keep that state rather than compute it again.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells run side by side, each in its own process (logs in OUT/<cell>.log).",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per cell (default: cores / jobs).")
@click.option("--quiet", is_flag=True, help="No progress bars; one line per epoch.")
def bench(methods, seeds, sets, ablate, table_only, share_warmup, jobs, threads, quiet, **options):
    """Run (or resume) a grid of methods x --set values x seeds, then write table.md, table.csv and plots."""
    from . import bench as grids
    from .distributed import launched_by_torchrun

    if launched_by_torchrun():
        raise PrunekitError(
            "bench runs each cell in one process and cannot run under torchrun; launch "
            "`torchrun --nproc-per-node N -m prunekit run ...` for each run instead"
        )
    given = _targets({k: v for k, v in options.items() if v is not None})
    for key in ("method", "seed", "name"):
        if key in given:
            raise PrunekitError(
                f"--{key} is set per cell by bench; use --methods/--seeds (and --out for the grid folder)"
            )
    if "out" not in given:
        raise PrunekitError("bench needs --out FOLDER for the grid (e.g. --out bench/c3); rerun with it")
    grid = grids.Grid(given.pop("out"))
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise PrunekitError(f"--seeds takes integers separated by commas, got {seeds!r}") from None
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    if not method_list:
        raise PrunekitError("--methods names no method; give a comma list, e.g. --methods standard,repr")
    for name, values in (("--methods", method_list), ("--seeds", seed_list)):
        twice = grids.repeated(values)
        if twice:
            raise PrunekitError(f"{name} lists {', '.join(twice)} more than once; list each once")
    option_sets = grids.parse_grid_sets(list(sets), ablate)
    cells = grids.plan(method_list, option_sets, seed_list)
    configs = grids.cell_configs(cells, given, grid.path)  # validates every cell before any run
    if table_only and all(grid.cell_state(c) == "new" for c in cells):
        raise PrunekitError(
            f"no run of this grid in {grid.path} yet, so no table to build; run without --table-only first"
        )
    if not table_only:  # a grid that cannot run leaves no folder behind
        from .device import resolve_device

        resolve_device(configs[0].device)
    grid.add({"base": given, "methods": method_list, "sets": option_sets, "seeds": seed_list}, cells, configs)
    if not table_only:
        try:
            with _sigterm_as_interrupt():
                grid.run(
                    cells, configs, share_warmup=share_warmup, jobs=jobs, threads=threads, console=console, quiet=quiet
                )
        except KeyboardInterrupt:
            console.print("interrupted; rerun the same command to resume the grid (finished epochs are kept)")
            sys.exit(130)
    md, cs, _ = grid.write_tables()
    out.print(md.read_text())
    out.print(f"wrote {md} and {cs}")
    compression = grid.write_compression()
    if compression:
        out.print(compression[0].read_text())
        out.print(f"wrote {', '.join(map(str, compression))}")
    for path in grid.plot(cells, seed_list[0]):
        out.print(f"wrote {path}")


def _interrupt(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM (torchrun repeats it) must not cut the
    raise KeyboardInterrupt  # way out short: the process still says where the run stopped, then exits


@contextmanager
def _sigterm_as_interrupt():
    """A plain `kill` stops training like Ctrl-C (at the last finished epoch). It also reaches a process
    started in the background by a shell, which ignores Ctrl-C's SIGINT there."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _interrupt:  # not once SIGTERM came: it is ignored until exit
            signal.signal(signal.SIGTERM, previous)


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for the export (must not exist).")
@click.option("--overwrite", is_flag=True, help="Replace an existing export in --out.")
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where to cut, compare and time the model.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Timed forward passes per model and batch size (the median is kept).",
)
@click.option("--data-dir", help="Dataset cache (default $PRUNEKIT_DATA or ~/.cache/prunekit).")
def export(run_dir, out_dir, overwrite, device, repeats, data_dir):
    """Remove a run's held filters physically: OUT gets model.pt2 (torch.export), pruned.pt and export.json."""
    from .export import export_run

    with console.status(f"exporting {run_dir} ..."):
        report = export_run(
            Path(run_dir), Path(out_dir), overwrite=overwrite, device=device, repeats=repeats, data_dir=data_dir
        )
    if report["note"]:
        console.print(f"[yellow]note:[/yellow] {report['note']}")
    table = Table(title=f"export {out_dir}", show_header=True)
    for col in ("", "dense", "pruned", "kept"):
        table.add_column(col)
    for key in ("params", "macs"):
        table.add_row(key, f"{report['dense'][key]:,}", f"{report['pruned'][key]:,}", f"{report['keep'][key]:.3f}")
    for batch, row in report["latency"].items():
        table.add_row(
            f"ms, {batch.replace('_', ' ')}",
            f"{row['dense_ms']:.2f}",
            f"{row['pruned_ms']:.2f}",
            f"{row['speedup']:.2f}x faster",
        )
    out.print(table)
    out.print(
        f"filters removed: {report['filters_removed']}; largest |pruned - masked| output difference on "
        f"{report['compared_images']} test images: {report['max_abs_diff_vs_masked']:.2e}"
    )


@cli.command("list")
@click.option("--models", "model_pattern", metavar="PATTERN", help="List models matching a glob, e.g. 'timm:*resnet*'.")
@click.option("--options", "show_options", is_flag=True, help="Show each component's options and defaults.")
def list_(model_pattern, show_options):
    """Methods, rankers, reinitializers, schedules, models and datasets, with the package that registered each."""
    if model_pattern:
        names = registry.names("models", model_pattern)
        for name in names:
            out.print(name)
        if not names:
            raise PrunekitError(f"no model matches {model_pattern!r}; try 'timm:*' or see `prunekit list`")
        return
    for kind in registry.KINDS:
        table = Table(title=kind, title_justify="left")
        table.add_column("name")
        table.add_column("package")
        table.add_column("description" if not show_options else "options")
        for entry in registry.REGISTRY.report(kind):
            if entry.error:
                table.add_row(entry.name, entry.package, f"[red]broken: {escape(entry.error)}[/red]")
                continue
            obj = entry.load()
            table.add_row(entry.name, entry.package, escape(_describe(obj, show_options)))
        out.print(table)


def _describe(obj, show_options: bool) -> str:
    if show_options and hasattr(obj, "options"):
        return ", ".join(f"{k}={v!r}" for k, v in obj.options().items()) or "-"
    if hasattr(obj, "description"):
        text = obj.description
        if show_options:
            text += f"  [ranker={obj.ranker}, reinit={obj.reinitializer}, schedule={obj.schedule}]"
        return text
    doc = inspect.getdoc(obj) or ""
    text = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
    return f"family, e.g. {obj.example}: {text}" if hasattr(obj, "example") else text


@cli.group()
def data():
    """Dataset cache."""


@data.command("import")
@click.argument("path", type=click.Path())
@click.option("--dataset", default="cifar10", show_default=True, type=click.Choice(["cifar10", "cifar100"]))
@click.option("--data-dir", help="Cache folder (default $PRUNEKIT_DATA or ~/.cache/prunekit).")
@click.option("--overwrite", is_flag=True, help="Replace an existing cached copy.")
def data_import(path, dataset, data_dir, overwrite):
    """Import an image-folder copy (train/<class>/*, test/<class>/*; folder or .tar.gz)."""
    from .data import data_dir as resolve_dir
    from .data import import_image_folder, load_cached

    with console.status(f"decoding {path} ..."):
        dest = import_image_folder(path, dataset, resolve_dir(data_dir), overwrite=overwrite)
    d = load_cached(dataset, dest.parent)
    out.print(
        f"imported {len(d['train_y'])} train + {len(d['test_y'])} test images, {len(d['classes'])} classes -> {dest}"
    )


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Where PNGs go (default: the first run directory)."
)
def plot(run_dirs, out_dir):
    """Accuracy/loss curves (drop phases shaded) and the filter on/off map, as PNG."""
    from .plot import plot_runs

    for path in plot_runs([Path(d) for d in run_dirs], Path(out_dir) if out_dir else None):
        out.print(f"wrote {path}")


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="prunekit", standalone_mode=False)
    except PrunekitError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C inside a command into Abort
        from .distributed import launched_by_torchrun

        if launched_by_torchrun():  # torchrun stops every rank when one fails or is interrupted
            console.print(
                f"rank {os.environ.get('RANK')}: stopped (torchrun stops all ranks when one fails or is "
                f"interrupted); finished epochs are kept: continue with `torchrun --nproc-per-node "
                f"{os.environ.get('WORLD_SIZE')} -m prunekit run --resume <run dir>`"
            )
        else:
            console.print("interrupted; finished epochs are kept: continue with `prunekit run --resume <run dir>`")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (NotADirectoryError, FileExistsError) as exc:  # a file where a folder must go (or be created)
        console.print(
            f"[bold red]error:[/bold red] {exc.filename}: a file stands where prunekit needs a folder "
            f"({exc.strerror}); choose another path for it (the file is left as it is)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except PermissionError as exc:
        console.print(
            f"[bold red]error:[/bold red] {exc.filename}: {exc.strerror}; give it read and write "
            f"permission, or choose an --out folder you can write to",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()

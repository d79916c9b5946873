"""The one runner of the benchmark grids declared in benchmarks/grids.toml.

    python benchmarks/grid.py list
    python benchmarks/grid.py run c3_32-paper [--seeds 0,1] [--jobs 1] [--dry-run]
    python benchmarks/grid.py run c3_32-gpu --out-root benchmarks/results/h100

`run` links the finished runs a grid reuses as its cells, imports the offline CIFAR-10 copy
(../shared/datasets/cifar10-jpeg.tar.gz, when present; a no-op once cached) and runs `prunekit bench`
for each grid (one per model), in order, stopping at the first failure with its exit status. Grids
resume where they stopped: rerun the same command until it ends. The commands run in the repository
root and their paths are relative to it; `--dry-run` prints them, one per line, instead (as
`prunekit ...`: they run as `python -m prunekit ...` with this python). Options given here replace a
grid's defaults, never what a sequence's step fixes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOML = ROOT / "benchmarks" / "grids.toml"
RESULTS = "benchmarks/results"
OFFLINE_COPY = "../shared/datasets/cifar10-jpeg.tar.gz"

GRID_KEYS = {
    "description": str,
    "out": str,
    "methods": "strs",
    "sets": "strs",
    "ablate": bool,
    "options": "strs",
    "seeds": "ints",
    "jobs": int,
    "device": str,
    "models": "strs",
    "params": dict,
    "variants": dict,
    "reuse": list,
    "out_root": str,
    "pipeline": dict,
}
STEP_KEYS = {
    "grid": str,
    "seeds": "ints",
    "jobs": int,
    "device": str,
    "threads": int,
    "models": "strs",
    "sets": "strs",
    "link": bool,
    "table_only": bool,
    "needs": str,
}
SCRIPT_KEYS = {"script": str, "args": "strs", "unless": str, "log": str}
PIPELINE_KEYS = {"baseline_epochs": int, "baseline_lr": "number", "side_by_side": bool}
SEQUENCE_KEYS = {"description": str, "steps": list, "out_root": str, "every_step": dict}


def cpu_has_bf16() -> bool:
    """A CPU with bf16 instructions (where bf16 autocast is not emulated, ~10x slower than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


NEEDS = {"cpu-bf16": (cpu_has_bf16, "a CPU with bf16 instructions (avx512_bf16 or amx_bf16)")}


class GridError(Exception):
    """A mistake in grids.toml or on the command line, phrased as one line."""


class Failed(Exception):
    """A command of the plan exited with a non-zero status."""

    def __init__(self, command: str, code: int):
        super().__init__(command)
        self.command, self.code = command, code


# --- grids.toml --------------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    path = path.resolve()
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def _check(where: str, table: dict, kinds: dict, required=()) -> None:
    """Refuse a missing or unknown key and a value of the wrong type."""
    for key in required:
        if key not in table:
            raise GridError(f"{where} has no {key!r}; add it")
    for key, value in table.items():
        if key not in kinds:
            raise GridError(f"{where}: unknown key {key!r}; valid: {', '.join(kinds)}")
        kind = kinds[key]
        if kind == "strs":
            ok, what = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of strings"
        elif kind == "ints":
            ok = isinstance(value, list) and bool(value) and all(type(v) is int for v in value)
            what = "a list of integers"
        elif kind is int:
            ok, what = type(value) is int and value >= 1, "a positive integer"
        elif kind == "number":
            ok, what = type(value) in (int, float) and value > 0, "a positive number"
        else:
            ok, what = (
                isinstance(value, kind),
                {str: "a string", bool: "true or false", dict: "a table", list: "a list"}[kind],
            )
        if not ok:
            raise GridError(f"{where}: {key} must be {what}, got {value!r}")


def _key_values(items: list[str], wrong) -> dict[str, str]:
    """``["key=value", ...]`` as {key: value}, in order; ``wrong(item)`` is the message for a malformed item."""
    pairs = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise GridError(wrong(item))
        pairs[key] = value
    return pairs


def _axes(where: str, sets: list[str]) -> dict[str, str]:
    """``["key=v1,v2", ...]`` as {key: "v1,v2"}, in order."""
    return _key_values(
        sets, lambda item: f"{where}: set {item!r} is not KEY=V1,V2; write it as on `prunekit bench --set`"
    )


def _check_step(where: str, step, config: dict) -> None:
    if not isinstance(step, dict):
        raise GridError(
            f"{where} must be a table: {{grid = ...}}, {{script = ...}}, {{together = [...]}} or {{per_model = [...]}}"
        )
    if "per_model" in step:
        subs = step["per_model"]
        if set(step) != {"per_model"} or not isinstance(subs, list) or not subs:
            raise GridError(f"{where}: per_model takes a list of grid steps and nothing else")
        for i, sub in enumerate(subs, 1):
            _check_step(f"{where}, per-model step {i}", sub, config)
            if "grid" not in sub or "models" not in config["grids"][sub["grid"]] or "models" in sub:
                raise GridError(f"{where}, per-model step {i}: must be a grid with a models list (and not fix models)")
    elif "together" in step:
        if set(step) != {"together"} or not isinstance(step["together"], list) or len(step["together"]) < 2:
            raise GridError(f"{where}: together takes a list of two or more steps and nothing else")
        for i, sub in enumerate(step["together"], 1):
            _check_step(f"{where}, side-by-side step {i}", sub, config)
    elif "script" in step:
        _check(where, step, SCRIPT_KEYS, ["script"])
    else:
        _check(where, step, STEP_KEYS, ["grid"])
        grid = config["grids"].get(step["grid"])
        if grid is None:
            raise GridError(f"{where}: no grid named {step['grid']!r}; valid: {', '.join(config['grids'])}")
        if "needs" in step and step["needs"] not in NEEDS:
            raise GridError(f"{where}: needs {step['needs']!r} is unknown; valid: {', '.join(NEEDS)}")
        other = set(_axes(where, step.get("sets", []))) - set(_axes(where, grid.get("sets", [])))
        if other:
            raise GridError(f"{where}: grid {step['grid']} has no axis {', '.join(sorted(other))} to set")


def load(path: Path = TOML) -> dict:
    """grids.toml, checked: {"grids": {name: table}, "sequences": {name: table}}."""
    try:
        import tomllib
    except ModuleNotFoundError:
        raise GridError("reading grids.toml needs Python 3.11 or later (tomllib); run with a newer python") from None
    shown = _shown(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise GridError(f"cannot read {shown} ({exc.strerror}); give the grids file with --grids FILE") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{shown} is not valid TOML ({exc}); fix it") from None
    _check(shown, data, {"grids": dict, "sequences": dict})
    config = {"grids": data.get("grids", {}), "sequences": data.get("sequences", {})}
    both = set(config["grids"]) & set(config["sequences"])
    if both:
        raise GridError(f"{shown}: {', '.join(sorted(both))} is both a grid and a sequence; rename one")
    for name, grid in config["grids"].items():
        where = f"{shown}: grid {name}"
        if not isinstance(grid, dict):
            raise GridError(f"{where} must be a table")
        _check(where, grid, GRID_KEYS, ["description", "out", "methods"])
        _axes(where, grid.get("sets", []))
        if "pipeline" in grid:
            _check(f"{where}: pipeline", grid["pipeline"], PIPELINE_KEYS, ["baseline_epochs", "baseline_lr"])
        if "models" in grid and "{model}" not in grid["out"]:
            raise GridError(f"{where}: out must contain {{model}} (one folder per model)")
        for item in grid.get("reuse", []):
            if not isinstance(item, dict) or set(item) != {"from", "cell"} or "{seed}" not in item["cell"]:
                raise GridError(f'{where}: each reuse is {{from = "RUN", cell = "NAME_seed{{seed}}"}}, got {item!r}')
        for param, rows in grid.get("variants", {}).items():
            tables = isinstance(rows, dict) and all(isinstance(r, dict) for r in rows.values())
            if param not in grid.get("params", {}) or not tables:
                raise GridError(f"{where}: variants.{param} must give a table of values per value of param {param}")
    for name, seq in config["sequences"].items():
        where = f"{shown}: sequence {name}"
        if not isinstance(seq, dict):
            raise GridError(f"{where} must be a table")
        _check(where, seq, SEQUENCE_KEYS, ["description", "steps"])
        pins = seq.get("every_step", {})
        _check(f"{where}: every_step", pins, {k: v for k, v in STEP_KEYS.items() if k not in ("grid", "needs")})
        for i, step in enumerate(seq["steps"], 1):
            _check_step(f"{where}, step {i}", step, config)
    return config


# --- what runs -------------------------------------------------------------------------------------------


@dataclass
class Given:
    """The command line's choices (None: not given); ``used`` collects those that changed something."""

    seeds: list[int] | None = None
    jobs: int | None = None
    device: str | None = None
    models: list[str] | None = None
    sets: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    out_root: str | None = None
    used: set[str] = field(default_factory=set)


@dataclass
class Bench:
    """One `prunekit bench`: the finished runs to link in first, then the command (after `prunekit`)."""

    grid: str
    argv: list[str]
    out: str
    links: list[tuple[str, str]]
    options: list[str]
    device: str | None
    seeds: list[int]
    axes: dict[str, str]
    pipeline: dict


@dataclass
class Script:
    argv: list[str]  # after `python`
    unless: str | None = None
    log: str | None = None


@dataclass
class Together:
    branches: list[list]


@dataclass
class Skipped:
    what: str
    why: str


def _fill(where: str, text: str, values: dict) -> str:
    try:
        return text.format_map(values)
    except KeyError as exc:
        raise GridError(f"{where}: {{{exc.args[0]}}} in {text!r} names no value; known: {', '.join(values)}") from None
    except ValueError as exc:
        raise GridError(f"{where}: {text!r} is not a template ({exc}); double a literal brace") from None


def bench_steps(config: dict, step: dict, given: Given, root: str | None = None) -> list[Bench]:
    """The bench commands of one grid step (one per model): step > command line > grid."""
    name = step["grid"]
    grid = config["grids"][name]
    where = f"grid {name}"

    def pick(key, default=None):
        if key in step:
            return step[key]
        if getattr(given, key) is not None:
            given.used.add(f"--{key}")
            return getattr(given, key)
        return grid.get(key, default)

    if given.out_root:
        given.used.add("--out-root")
    root = given.out_root or root or grid.get("out_root", RESULTS)
    seeds, jobs, device = pick("seeds", [0]), pick("jobs", 1), pick("device")
    models = pick("models") if "models" in grid else [None]
    axes, fixed = _axes(where, grid.get("sets", [])), _axes(where, step.get("sets", []))
    for key in axes:
        if key in fixed:
            axes[key] = fixed[key]
        elif key in given.sets:
            axes[key] = given.sets[key]
            given.used.add(f"--set {key}")
    values = {"root": root, **{k: str(v) for k, v in grid.get("params", {}).items()}}
    for key in set(given.params) & set(grid.get("params", {})):
        values[key] = given.params[key]
        given.used.add(f"--param {key}")
    for param, rows in grid.get("variants", {}).items():
        row = rows.get(values[param])
        if row is None:
            raise GridError(
                f"{where}: {param}={values[param]} has no row in [grids.{name}.variants.{param}] of grids.toml "
                f"(declared: {', '.join(rows)}); add one with its {', '.join(next(iter(rows.values()), {}))}"
            )
        values.update({k: str(v) for k, v in row.items()})
    benches = []
    for model in models:
        filled = {**values, "model": model} if model else values
        out = f"{root}/{_fill(where, grid['out'], filled)}"
        options = [_fill(where, o, filled) for o in grid.get("options", [])]
        links = []
        if step.get("link", True):
            for item in grid.get("reuse", []):
                for seed in seeds:
                    run = _fill(where, item["from"], {**filled, "seed": seed})
                    links.append((f"{root}/{run}", f"{out}/{_fill(where, item['cell'], {**filled, 'seed': seed})}"))
        argv = ["bench", "--methods", ",".join(grid["methods"]), *(["--ablate"] if grid.get("ablate") else [])]
        argv += [a for key, v in axes.items() for a in ("--set", f"{key}={v}")]
        argv += options + (["--device", device] if device else [])
        argv += ["--threads", str(step["threads"])] if "threads" in step else []
        argv += ["--seeds", ",".join(map(str, seeds))]
        argv += ["--table-only"] if step.get("table_only") else ["--jobs", str(jobs)]
        argv += ["--out", out, "--quiet"]
        benches.append(Bench(name, argv, out, links, options, device, seeds, axes, grid.get("pipeline", {})))
    return benches


def _sequence_step(config: dict, step: dict, pins: dict, given: Given, root: str | None) -> list:
    if "together" in step:
        return [Together([_sequence_step(config, s, pins, given, root) for s in step["together"]])]
    if "per_model" in step:  # each model through every step before the next model
        if given.models is not None:
            given.used.add("--models")
        models = given.models or config["grids"][step["per_model"][0]["grid"]]["models"]
        return [
            b
            for m in models
            for sub in step["per_model"]
            for b in _sequence_step(config, {**sub, "models": [m]}, pins, given, root)
        ]
    if "script" in step:
        if given.out_root:
            given.used.add("--out-root")
        values = {"root": given.out_root or root or RESULTS}
        fill = lambda text: _fill(f"script step {step['script']}", text, values)
        return [
            Script(
                [f"benchmarks/{step['script']}", *map(fill, step.get("args", []))],
                fill(step["unless"]) if "unless" in step else None,
                fill(step["log"]) if "log" in step else None,
            )
        ]
    step = {**pins, **step}
    if "needs" in step and not NEEDS[step["needs"]][0]():
        return [Skipped(f"grid {step['grid']}", f"needs {NEEDS[step['needs']][1]}")]
    return bench_steps(config, step, given, root)


def plan(config: dict, names: list[str], given: Given) -> list:
    """The steps that `run NAMES` takes. Refuses an unknown name and a command-line option that
    changes nothing (every step fixes it, or no grid has it)."""
    steps = []
    for name in names:
        if name in config["grids"]:
            steps += bench_steps(config, {"grid": name}, given)
        elif name in config["sequences"]:
            seq = config["sequences"][name]
            for step in seq["steps"]:
                steps += _sequence_step(config, step, seq.get("every_step", {}), given, seq.get("out_root"))
        else:
            valid = ", ".join([*config["grids"], *config["sequences"]])
            raise GridError(f"no grid or sequence named {name!r} in grids.toml; valid: {valid}")
    offered = {f"--{k}" for k in ("seeds", "jobs", "device", "models") if getattr(given, k) is not None}
    offered |= {f"--set {k}" for k in given.sets} | {f"--param {k}" for k in given.params}
    offered |= {"--out-root"} if given.out_root else set()
    unused = sorted(offered - given.used)
    if unused:
        raise GridError(
            f"{', '.join(unused)} changes nothing in {' '.join(names)} (each step fixes it in grids.toml, or no grid "
            f"there has that axis, parameter or models list); leave it out, or run the grids by name to choose their "
            f"values (python benchmarks/grid.py list)"
        )
    return steps


# --- running ----------------------------------------------------------------------------------------------


def link_finished_run(run: str, link: str) -> None:
    """Count the finished run ``run`` as a cell ``link`` of a second grid (a relative symlink, so that the
    results folder can move; bench checks that the settings match). A link already there is kept."""
    run_path, link_path = ROOT / run, ROOT / link
    if link_path.is_symlink() and not link_path.exists():
        raise GridError(f"{link} links to {os.readlink(link_path)}, which does not exist; fix or remove the link")
    if link_path.exists():
        return
    if not (run_path / "summary.json").is_file():
        raise GridError(f"{run} has not finished; run the grid that makes it first (it is reused as {link})")
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(os.path.relpath(run_path, link_path.parent))


def _wait(command: list[str], log: str | None = None) -> int:
    """Run ``command`` in the repository root; its output also goes to ``log`` when given. A Ctrl-C reaches
    the command too (prunekit stops at its last finished epoch): wait for it, then stop here as well."""
    sink = None
    if log:
        (ROOT / log).parent.mkdir(parents=True, exist_ok=True)
        sink = (ROOT / log).open("w")
    pipe = subprocess.PIPE if sink else None
    proc = subprocess.Popen(command, cwd=ROOT, text=True, stdout=pipe, stderr=subprocess.STDOUT if sink else None)
    interrupted = False
    try:
        while True:
            try:
                for line in proc.stdout if sink else ():
                    print(line, end="", flush=True)
                    sink.write(line)
                code = proc.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    finally:
        if sink:
            sink.close()
    if interrupted:
        raise KeyboardInterrupt
    return code


class Runner:
    """Runs steps (or, with ``dry_run``, prints their commands), stopping at the first failure."""

    def __init__(self, dry_run: bool = False):
        self.dry_run, self.imported = dry_run, False

    def show(self, step) -> list[str]:
        """The shell commands of a step, as it stands now."""
        if isinstance(step, Bench):
            links = [_link_command(run, link) for run, link in step.links]
            return [c for c in links if c] + [shlex.join(["prunekit", *step.argv])]
        if isinstance(step, Script):
            if step.unless and (ROOT / step.unless).exists():
                return []
            return [shlex.join(["python", *step.argv]) + (f" 2>&1 | tee {shlex.quote(step.log)}" if step.log else "")]
        if isinstance(step, Skipped):
            return [f"# skipped: {step.what} ({step.why})"]
        lines = []
        for branch in step.branches:
            commands = [c for s in branch for c in self.show(s)]
            if commands:
                lines.append(f"( {' && '.join(commands)} ) &" if len(commands) > 1 else f"{commands[0]} &")
        return lines + ["wait"]

    def import_data(self) -> None:
        """The offline CIFAR-10 copy into the data cache, once, when it is there (a failure is ignored: the
        grid then says what data it misses)."""
        if self.imported or not (ROOT / OFFLINE_COPY).is_file():
            return
        self.imported = True
        if self.dry_run:
            print(shlex.join(["prunekit", "data", "import", OFFLINE_COPY]))
        else:
            with open(os.devnull, "w") as devnull:
                subprocess.run(
                    [sys.executable, "-m", "prunekit", "data", "import", OFFLINE_COPY], cwd=ROOT, stderr=devnull
                )

    def call(self, argv: list[str], prunekit: bool = True, log: str | None = None) -> None:
        """Run ``prunekit ARGV`` (or ``python ARGV``); raise Failed on a non-zero exit status."""
        self.import_data()
        shown = shlex.join(["prunekit" if prunekit else "python", *argv])
        shown += f" 2>&1 | tee {shlex.quote(log)}" if log else ""
        if self.dry_run:
            print(shown)
            return
        code = _wait([sys.executable, *(["-m", "prunekit"] if prunekit else []), *argv], log)
        if code:
            raise Failed(shown, code)

    def run(self, steps: list) -> None:
        for step in steps:
            if isinstance(step, Bench):
                for run, link in step.links:
                    if not self.dry_run:
                        link_finished_run(run, link)
                    elif command := _link_command(run, link):
                        print(command)
                self.call(step.argv)
            elif isinstance(step, Script):
                if not (step.unless and (ROOT / step.unless).exists()):
                    self.call(step.argv, prunekit=False, log=step.log)
            elif isinstance(step, Skipped):
                print(self.show(step)[0] if self.dry_run else f"skipped: {step.what} ({step.why})", flush=True)
            elif self.dry_run:
                self.import_data()
                print("\n".join(self.show(step)))
            else:
                self.import_data()  # once, before the branches start
                with ThreadPoolExecutor(len(step.branches)) as pool:
                    futures = [pool.submit(self.run, branch) for branch in step.branches]
                for future in futures:  # every branch has ended; the first failure stops the plan
                    if future.exception():
                        raise future.exception()


def _link_command(run: str, link: str) -> str | None:
    """The `ln -s` that link_finished_run would make; None when the link is there."""
    if (ROOT / link).exists() or (ROOT / link).is_symlink():
        return None
    return shlex.join(["ln", "-s", os.path.relpath(ROOT / run, (ROOT / link).parent), link])


# --- command line ----------------------------------------------------------------------------------------


def _pairs(flag: str, items: list[str]) -> dict[str, str]:
    return _key_values(items, lambda item: f"{flag} takes KEY=VALUE, got {item!r}; e.g. {flag} ranker=l1,random")


def given_from(args) -> Given:
    """The command line's choices (shared with compress.py)."""
    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise GridError(f"--seeds takes integers separated by commas, got {args.seeds!r}") from None
    if args.jobs is not None and args.jobs < 1:
        raise GridError(f"--jobs takes a positive number of cells side by side, got {args.jobs}")
    out_root = None
    if args.out_root:
        path = Path(args.out_root).resolve()
        out_root = os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)
    return Given(
        seeds=seeds,
        jobs=args.jobs,
        device=args.device,
        models=[m for m in args.models.split(",") if m] if args.models else None,
        sets=_pairs("--set", args.set),
        params=_pairs("--param", args.param),
        out_root=out_root,
    )


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The options that choose what a grid runs (shared with compress.py)."""
    ap.add_argument("--seeds", help="comma list of seeds, instead of the grid's")
    ap.add_argument("--jobs", type=int, help="cells side by side, instead of the grid's")
    ap.add_argument("--models", help="comma list of models, for grids with a models list")
    ap.add_argument("--device", help="prunekit's --device (auto, cpu, cuda, ...), instead of the grid's")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="replace an axis's values")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="replace a grid parameter")
    ap.add_argument("--out-root", help=f"results root instead of {RESULTS} (or the grid's own)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, one per line; run nothing")
    ap.add_argument("--grids", type=Path, default=TOML, help="the grids file (default benchmarks/grids.toml)")


def listing(config: dict) -> str:
    rows = []
    for name, grid in config["grids"].items():
        out = f"{grid.get('out_root', RESULTS)}/{grid['out']}"
        rows.append((name, out + (f" (models {', '.join(grid['models'])})" if "models" in grid else ""), grid))
    for name, seq in config["sequences"].items():
        names = []
        for step in seq["steps"]:
            for s in step.get("together", step.get("per_model", [step])):
                if "grid" in s and s["grid"] not in names:
                    names.append(s["grid"])
        rows.append((name, f"{', '.join(names)} (under {seq.get('out_root', RESULTS)})", seq))
    width = max(len(name) for name, _, _ in rows)
    return "\n".join(f"{name:<{width}}  {table['description']}\n{'':<{width}}  -> {out}" for name, out, table in rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="each grid and sequence: description and results folder").add_argument(
        "--grids", type=Path, default=TOML, help="the grids file (default benchmarks/grids.toml)"
    )
    run = sub.add_parser("run", help="run grids and sequences by name, in order")
    run.add_argument("names", nargs="+", metavar="NAME", help="grids and sequences of grids.toml (see list)")
    add_run_options(run)
    args = ap.parse_args(argv)
    try:
        config = load(args.grids)
        if args.command == "list":
            print(listing(config))
            return
        steps = plan(config, args.names, given_from(args))
        Runner(args.dry_run).run(steps)
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Failed as exc:
        print(f"stopped: `{exc.command}` exited with status {exc.code}", file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished epochs are kept)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

"""What a grid is: its cells (method × option set × seed), parsed from the command line, and each
cell's resolved config. A cell's folder is named ``<method>[_<key>=<value>...]_seed<N>`` (keys sorted)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import resolve
from ..errors import PrunekitError


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
    from ..config import split_set, typed_value

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


def plan(methods: list[str], option_sets: list[dict], seeds: list[int]) -> list[Cell]:
    """Seed-major, so that an interrupted grid has every column at one seed before any has two."""
    return [Cell(m, opts, s) for s in seeds for opts in option_sets for m in methods]


def cell_configs(cells: list[Cell], base: dict, out: Path) -> list:
    """Resolved configs of every cell. A component option applies to the cells whose
    components take it; one that no cell takes is an error (a typo, most likely)."""
    from ..config import component_keys, unsafe_name

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

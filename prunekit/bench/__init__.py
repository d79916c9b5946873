"""Grids of runs (methods × option sets × seeds) and the tables that compare them.

``spec`` turns the command line into cells and their configs; ``Grid`` is the folder that holds
them, runs them (in this process, or side by side in ``workers``, new cells starting from a
sibling's ``warmup``) and writes ``tables`` (and ``compression`` tables for permanent pruning).
"""

from .grid import SPEC, Grid
from .spec import Cell, cell_configs, parse_grid_sets, plan, repeated

__all__ = ["SPEC", "Cell", "Grid", "cell_configs", "parse_grid_sets", "plan", "repeated"]

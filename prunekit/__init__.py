"""prunekit: pruning methods as a Ranker, a Reinitializer and a Schedule over filter groups."""

from .errors import PrunekitError
from .groups import FilterGroup, GroupSet, Slice, build_groups
from .interfaces import Drop, Method, RankContext, Ranker, ReinitContext, Reinitializer, Restore, Schedule, filter_rows
from .masks import FilterMasks
from .pruner import Pruner

__version__ = "0.1.0"

__all__ = [
    "PrunekitError",
    "FilterGroup",
    "GroupSet",
    "Slice",
    "build_groups",
    "Drop",
    "Restore",
    "Method",
    "RankContext",
    "Ranker",
    "ReinitContext",
    "Reinitializer",
    "Schedule",
    "filter_rows",
    "FilterMasks",
    "Pruner",
]

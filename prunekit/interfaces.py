"""The three interfaces a pruning method is made of, and the recipe that names them.

* :class:`Ranker` — which filters matter least now (scores, then a selection).
* :class:`Reinitializer` — what dropped filters become when they return.
* :class:`Schedule` — when to drop and when to restore.

A :class:`Method` names one of each plus default options. The engine knows these
interfaces and no method by name; plugins implement them.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from .errors import PrunekitError
from .groups import FilterGroup, GroupSet

Batch = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------- events
METRICS = ("filters", "macs", "params")


@dataclass(frozen=True)
class Drop:
    """Rank now and drop filters, held at zero until the next Restore (for ever when none comes).

    ``ratio``: drop this fraction of all prunable filters, on top of those already held;
    ``keep``: or drop until the model that export would produce keeps at most this fraction of the
    dense model's ``metric`` (``filters``, ``macs`` or ``params``): a cumulative target.
    """

    ratio: float | None = None
    keep: float | None = None
    metric: str = "filters"

    def __post_init__(self):
        if (self.ratio is None) == (self.keep is None):
            raise PrunekitError(f"a Drop takes exactly one of ratio and keep, got ratio={self.ratio}, keep={self.keep}")
        if self.metric not in METRICS:
            raise PrunekitError(f"a Drop's metric must be one of {', '.join(METRICS)}, got {self.metric!r}")


@dataclass(frozen=True)
class Restore:
    """Re-initialize every held filter and let it train again."""


Event = Drop | Restore


# --------------------------------------------------------------------------- contexts
@dataclass
class RankContext:
    """What a ranker may look at. Data-driven rankers ask ``batches(n)`` for training
    batches (never the test set); weight rankers only read the model."""

    model: nn.Module
    groups: GroupSet
    dropped: list[torch.Tensor]  # bool per group: currently held at zero
    generator: torch.Generator
    batches: Callable[[int], Iterator[Batch]]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device

    def tensor(self, name: str) -> torch.Tensor:
        return _tensor(self.model, name)

    def filter_rows(self, group: FilterGroup, name: str) -> torch.Tensor:
        """Rows of filter weight ``name`` for the group's channels: (size × K), row c = channel c."""
        return filter_rows(self.model, group, name)


@dataclass
class ReinitContext:
    """What a reinitializer needs: which channels return, and their values before the drop."""

    model: nn.Module
    groups: GroupSet
    returning: list[torch.Tensor]  # bool per group
    before_drop: list[dict[str, torch.Tensor]]  # per group: tensor name -> values of the dropped positions
    generator: torch.Generator
    log: list[str] = field(default_factory=list)

    def tensor(self, name: str) -> torch.Tensor:
        return _tensor(self.model, name)


def _tensor(model: nn.Module, name: str) -> torch.Tensor:
    mod_name, _, attr = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    return getattr(mod, attr)


def filter_rows(model: nn.Module, group: FilterGroup, name: str) -> torch.Tensor:
    sl = next(s for s in group.slices if s.name == name and s.role == "owner")
    weight = _tensor(model, name).detach()
    rows = weight.movedim(sl.dim, 0).reshape(weight.shape[sl.dim], -1)[sl.index.to(weight.device)]
    channel = sl.channel.to(rows.device)
    if len(channel) == group.size:  # one row per channel (the usual case): a permutation
        out = torch.empty_like(rows)
        out[channel] = rows
        return out
    out = torch.zeros(group.size, rows.shape[1], dtype=rows.dtype, device=rows.device)
    return out.index_add_(0, channel, rows)


# --------------------------------------------------------------------------- options
class Configurable:
    """Components take keyword options; ``options()`` lists them with defaults.

    The command line offers each option as ``--name-with-dashes`` (typed from the ``__init__``
    annotation: a ``Literal`` becomes a choice, ``bool`` a ``--x/--no-x`` flag), with the help text in
    ``option_help`` and another flag name, where one is wanted, in ``option_flags``."""

    option_help: dict[str, str] = {}
    option_flags: dict[str, str] = {}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """Each option's annotation (resolved), or the type of its default where it has none."""
        import typing

        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            try:
                hints = typing.get_type_hints(init)
            except Exception:  # noqa: BLE001 - an annotation that does not resolve: fall back to the default's type
                hints = {}
            for p in list(inspect.signature(init).parameters.values())[1:]:
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                out[p.name] = hints.get(p.name, type(p.default) if p.default not in (p.empty, None) else None)
        return out

    @classmethod
    def option_helps(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("option_help", {}))
        return out

    @classmethod
    def option_flag_names(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("option_flags", {}))
        return out

    @classmethod
    def options(cls) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in list(inspect.signature(init).parameters.values())[1:]:
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                out[p.name] = None if p.default is p.empty else p.default
        return out

    @classmethod
    def build(cls, what: str, **kwargs):
        valid = cls.options()
        bad = sorted(set(kwargs) - set(valid))
        if bad:
            raise PrunekitError(
                f"{what} does not take option(s) {', '.join(bad)}; valid: {', '.join(sorted(valid)) or '(none)'}"
            )
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a value of the wrong type
            from .errors import first_line

            raise PrunekitError(
                f"{what}: bad option value ({first_line(exc)}); see `prunekit list --options`"
            ) from None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k, v)!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- interfaces
Scope = Literal["global", "layer"]


class Ranker(Configurable, ABC):
    """Scores filters (higher = keep) and picks which to drop.

    Subclasses implement :meth:`scores`. Selection is shared: ``scope="global"``
    ranks all groups' channels together, ``"layer"`` drops the ratio from each
    group; ``max_layer_fraction`` caps what any one group may lose. Rankers
    that need data draw training batches from ``ctx.batches``.
    """

    option_help = {
        "scope": "Rank across all layers (global) or within each (layer).",
        "max_layer_fraction": "Cap on the fraction of its filters any one layer may lose.",
    }

    def __init__(self, scope: Scope = "global", max_layer_fraction: float = 0.75):
        if scope not in ("global", "layer"):
            raise PrunekitError(f"scope must be 'global' or 'layer', got {scope!r}")
        if not 0.0 < float(max_layer_fraction) <= 1.0:
            raise PrunekitError(f"max_layer_fraction must be in (0, 1], got {max_layer_fraction}")
        self.scope = scope
        self.max_layer_fraction = float(max_layer_fraction)

    @abstractmethod
    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        """One float tensor per group (length = group size); higher = more important."""

    def select(self, ctx: RankContext, ratio: float) -> list[torch.Tensor]:
        """Bool masks (per group) of the filters to drop now."""
        return self.select_scored(ctx, ratio)[0]

    def select_scored(
        self,
        ctx: RankContext,
        ratio: float | None = None,
        *,
        keep: float | None = None,
        metric: str = "filters",
        cost=None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """The drop masks and the scores they came from (the engine records both): ``ratio`` of the
        filters, or as many as leave ``keep`` of the dense ``metric`` (counted by ``cost``, a
        :class:`prunekit.cost.CostModel`). A ranker that overrides ``select`` is honoured for ratios,
        with no scores to record."""
        from .selection import select_lowest, select_to_target

        if type(self).select is not Ranker.select:
            if keep is not None:
                raise PrunekitError(
                    f"ranker {type(self).__name__} picks its own filters (it overrides select), so it "
                    f"cannot aim at a {metric} target; use a ratio, or implement scores() instead"
                )
            return self.select(ctx, ratio), None
        scores = self.scores(ctx)
        if keep is None:
            picks = select_lowest(
                scores,
                ctx.dropped,
                ratio,
                scope=self.scope,
                max_layer_fraction=self.max_layer_fraction,
                segments=[g.segments for g in ctx.groups],
            )
        else:
            picks = select_to_target(
                scores,
                ctx.dropped,
                cost,
                keep,
                metric,
                scope=self.scope,
                max_layer_fraction=self.max_layer_fraction,
                segments=[g.segments for g in ctx.groups],
            )
        return picks, scores


NextLayer = Literal["zero", "random", "keep"]


class Reinitializer(Configurable, ABC):
    """Writes the values returning filters start from (owner slices, norm stats,
    and, through ``next_layer``, the consumers' input slices)."""

    option_help = {"next_layer": "Consumers' inputs of returning filters: zero, random or keep."}

    def __init__(self, next_layer: NextLayer = "zero"):
        if next_layer not in ("zero", "random", "keep"):
            raise PrunekitError(f"next_layer must be zero, random or keep, got {next_layer!r}")
        self.next_layer = next_layer

    @abstractmethod
    def reinit(self, ctx: ReinitContext) -> None:
        """Overwrite the returning positions in place; append one line per group to ``ctx.log``."""


class Schedule(Configurable, ABC):
    """Decides at the start of each epoch (0-based) which events happen.

    A schedule that never restores is *permanent*: what it drops stays dropped, the engine
    records the test accuracy right before and after each drop, and ``prunekit export`` can remove
    the held filters physically."""

    def permanent(self, epochs: int) -> bool:
        """True when the schedule drops and never restores in a run of ``epochs``."""
        kinds = {type(ev) for _, ev in self.timeline(epochs)}
        return Drop in kinds and Restore not in kinds

    def validate(self, epochs: int) -> None:  # noqa: B027 - optional hook
        """Raise PrunekitError when the schedule cannot fit ``epochs``."""

    @abstractmethod
    def events(self, epoch: int, epochs: int) -> list[Event]:
        """Events at the start of ``epoch`` in a run of ``epochs``."""

    def timeline(self, epochs: int) -> list[tuple[int, Event]]:
        return [(e, ev) for e in range(epochs) for ev in self.events(e, epochs)]

    def first_event(self, epochs: int) -> int | None:
        """The epoch at whose start the schedule first acts; None when it never does."""
        return next((e for e in range(epochs) if self.events(e, epochs)), None)


@dataclass(frozen=True)
class Method:
    """A named recipe: one ranker, reinitializer and schedule, with default options."""

    name: str
    description: str
    schedule: str
    ranker: str | None = None
    reinitializer: str | None = None
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"ranker": {...}, ...}

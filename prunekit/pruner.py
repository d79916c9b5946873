"""One object that prunes a model: its filter groups, masks, ranker and reinitializer.

Usable in any training loop, prunekit's own or a user's::

    pruner = Pruner(model, torch.randn(1, 3, 224, 224), ranker="l2")
    pruner.drop(keep=0.5, metric="macs")      # hold the lowest-ranked filters at zero
    ...                                       # fine-tune; after each optimizer.step(): pruner.hold(optimizer)
    small = pruner.export()                   # a physically smaller copy, plain torch

``drop`` and ``restore`` return the event records that the engine's Recorder writes to ``events.jsonl``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import PrunekitError
from .groups import GroupSet, build_groups
from .interfaces import Batch, RankContext, Ranker, ReinitContext, Reinitializer
from .masks import FilterMasks, clear_optimizer_state


def _component(kind: str, value):
    if value is None or not isinstance(value, str):
        return value
    from . import registry

    return registry.get(kind + "s", value).build(f"{kind} {value!r}")


class Pruner:
    """Drops, holds, restores and physically removes filters of ``model``.

    ``ranker``/``reinitializer``: instances, or registered names (``"l2"``, ``"nullspace"``) with
    default options. ``example_inputs``: one batch the model accepts (traced for the groups, and for
    counting MACs). ``groups``: prebuilt groups, else built here (``exclude``, ``exclude_first``,
    ``graph_timeout``: seconds torch-pruning may take to trace the model).
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: torch.Tensor,
        ranker: Ranker | str | None = None,
        reinitializer: Reinitializer | str | None = None,
        *,
        groups: GroupSet | None = None,
        exclude=(),
        exclude_first: bool = False,
        graph_timeout: float | None = 60.0,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    ):
        self.model = model
        self.example_inputs = example_inputs[:1]
        self.groups = (
            groups
            if groups is not None
            else build_groups(
                model, self.example_inputs, exclude=exclude, exclude_first=exclude_first, timeout=graph_timeout
            )
        )
        self.masks = FilterMasks(model, self.groups)
        self.ranker = _component("ranker", ranker)
        self.reinitializer = _component("reinitializer", reinitializer)
        self.loss_fn = loss_fn
        self._cost = None

    # ------------------------------------------------------------------ queries
    @property
    def dropped(self) -> list[torch.Tensor]:
        return self.masks.dropped

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the CPU for a model without any)."""
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    @property
    def cost(self):
        """The :class:`prunekit.cost.CostModel` (built on first use: one forward pass)."""
        if self._cost is None:
            from .cost import CostModel

            self._cost = CostModel(self.model, self.groups, self.example_inputs.to(self.device))
        return self._cost

    def counts(self) -> dict[str, int]:
        """Params, MACs and prunable filters of the model export would produce now."""
        return self.cost.count(self.dropped)

    def least_reachable(self, metric: str) -> float:
        from .selection import least_reachable

        cap = self.ranker.max_layer_fraction if self.ranker is not None else 1.0
        return least_reachable(self.cost, self.dropped, metric, cap, [g.segments for g in self.groups])

    def check_target(self, keep: float, metric: str) -> None:
        """Refuse, in one line, a target the ranker's per-layer cap makes unreachable."""
        least = self.least_reachable(metric)
        if keep < least - 1e-12:
            from .selection import _unreachable_message

            raise PrunekitError(_unreachable_message(keep, metric, least, self.ranker.max_layer_fraction))

    # ------------------------------------------------------------------ events
    def drop(
        self,
        ratio: float | None = None,
        *,
        keep: float | None = None,
        metric: str = "filters",
        optimizer: torch.optim.Optimizer | None = None,
        batches: Callable[[int], Iterator[Batch]] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict:
        """Rank and hold at zero ``ratio`` of the filters, or as many as leave ``keep`` of the dense
        ``metric``; clears their optimizer state. ``batches(n)`` feeds data-driven rankers."""
        if self.ranker is None:
            raise PrunekitError("this pruner has no ranker; give one (e.g. ranker='l2') to drop filters")
        ctx = RankContext(
            self.model,
            self.groups,
            [d.clone() for d in self.dropped],
            generator if generator is not None else torch.Generator().manual_seed(0),
            batches or _no_batches,
            self.loss_fn,
            self.device,
        )
        t0 = time.perf_counter()
        cost = self.cost if keep is not None else None
        picks, scores = self.ranker.select_scored(ctx, ratio, keep=keep, metric=metric, cost=cost)
        self.masks.drop(picks, optimizer)
        record = {
            "event": "drop",
            "ratio": ratio,
            "seconds": time.perf_counter() - t0,
            "dropped": {g.name: p.nonzero().flatten().tolist() for g, p in zip(self.groups, picks)},
            "scores": None if scores is None else {g.name: _finite_or_none(s) for g, s in zip(self.groups, scores)},
            "fraction": self.masks.fractions(),
            "sizes": {g.name: g.size for g in self.groups},
            "order": [g.name for g in self.groups],
        }
        if keep is not None:
            record.update(keep=keep, metric=metric, counts=self.counts())
        return record

    def restore(self, optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None) -> dict:
        """Re-initialize every held filter (the reinitializer writes its values), clear its optimizer
        state and stop holding it."""
        if self.reinitializer is None:
            raise PrunekitError(
                "this pruner has no reinitializer; give one (e.g. reinitializer='nullspace') to restore filters"
            )
        returning = [d.clone() for d in self.dropped]
        ctx = ReinitContext(
            self.model,
            self.groups,
            returning,
            self.masks.before_drop,
            generator if generator is not None else torch.Generator().manual_seed(0),
        )
        t0 = time.perf_counter()
        with torch.no_grad():
            self.reinitializer.reinit(ctx)
        for group, ret in zip(self.groups, returning):
            if ret.any():
                clear_optimizer_state(optimizer, self.model, group.slices, ret)
        self.masks.release()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the time below covers the re-init kernels still queued
        return {
            "event": "restore",
            "seconds": time.perf_counter() - t0,
            "restored": {g.name: r.nonzero().flatten().tolist() for g, r in zip(self.groups, returning)},
            "log": ctx.log,
        }

    def hold(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-zero the held filters and their optimizer state: call after every optimizer step."""
        self.masks.hold(optimizer)

    def export(self) -> nn.Module:
        """A physically smaller copy of the model without the held filters (torch-pruning cuts it)."""
        from .export import physically_prune

        return physically_prune(self.model, self.groups, self.dropped, self.example_inputs)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return self.masks.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.masks.load_state_dict(state)


def _no_batches(n: int) -> Iterator[Batch]:
    raise PrunekitError(
        "this ranker needs training batches; pass batches=... (a function of n returning n batches) to Pruner.drop"
    )


def _finite_or_none(scores: torch.Tensor) -> list[float | None]:
    """Scores as JSON numbers (higher = kept); non-finite ones as null."""
    return [x if math.isfinite(x) else None for x in scores.detach().double().cpu().tolist()]

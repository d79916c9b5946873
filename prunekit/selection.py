"""Turning per-filter scores into a drop set: global or per-layer, with a per-layer cap."""

from __future__ import annotations

import math

import torch


def layer_budget(size: int, already: int, max_layer_fraction: float) -> int:
    """How many more channels a group of ``size`` may lose (always keeps one alive)."""
    cap = min(math.floor(max_layer_fraction * size), size - 1)
    return max(cap - already, 0)


class Caps:
    """How many more channels each group may lose under the per-layer cap, and each conv that owns
    only part of a group (``segments``: branches joined by a concat) likewise."""

    def __init__(self, dropped: list[torch.Tensor], max_layer_fraction: float, segments=None):
        self.group = [layer_budget(len(d), int(d.sum()), max_layer_fraction) for d in dropped]
        self.segments = []
        for g, d in enumerate(dropped):
            parts = []
            for channels in segments[g] if segments else []:
                member = torch.zeros(len(d), dtype=torch.bool)
                member[channels] = True
                parts.append([member, layer_budget(len(channels), int((d & member).sum()), max_layer_fraction)])
            self.segments.append(parts)

    def allows(self, g: int, c: int) -> bool:
        return self.group[g] > 0 and all(left > 0 for member, left in self.segments[g] if member[c])

    def take(self, g: int, c: int) -> None:
        self.group[g] -= 1
        for part in self.segments[g]:
            if part[0][c]:
                part[1] -= 1


def select_lowest(
    scores: list[torch.Tensor],
    dropped: list[torch.Tensor],
    ratio: float,
    scope: str = "global",
    max_layer_fraction: float = 1.0,
    segments: list[list[torch.Tensor]] | None = None,
) -> list[torch.Tensor]:
    """Bool masks of the lowest-scoring alive channels to drop.

    ``global``: ``round(ratio * all channels)`` picked across groups by score;
    ``layer``: ``round(ratio * size)`` from each group. Already-dropped channels
    are never picked, and no group ends with more than ``max_layer_fraction``
    of its channels dropped (nor with none alive), nor any conv of a group's ``segments``.
    """
    picks = [torch.zeros(len(s), dtype=torch.bool) for s in scores]
    caps = Caps([d.cpu() for d in dropped], max_layer_fraction, segments)
    if scope == "layer":
        for g, (s, d) in enumerate(zip(scores, dropped)):
            want = round(ratio * len(s))
            alive = (~d.cpu()).nonzero().flatten()
            for c in alive[torch.argsort(s.detach().float().cpu()[alive], stable=True)].tolist():
                if want == 0:
                    break
                if caps.allows(g, c):
                    caps.take(g, c)
                    picks[g][c] = True
                    want -= 1
        return picks
    total = round(ratio * sum(len(s) for s in scores))
    flat = torch.cat([s.detach().float().cpu() for s in scores])
    owner = torch.cat([torch.full((len(s),), g, dtype=torch.long) for g, s in enumerate(scores)])
    local = torch.cat([torch.arange(len(s)) for s in scores])
    alive = ~torch.cat([d.cpu() for d in dropped])
    cand = alive.nonzero().flatten()
    order = cand[torch.argsort(flat[cand], stable=True)].tolist()
    owner_of, local_of = owner.tolist(), local.tolist()
    chosen: list[list[int]] = [[] for _ in scores]
    taken = 0
    for i in order:
        if taken >= total:
            break
        g, c = owner_of[i], local_of[i]
        if not caps.allows(g, c):
            continue
        chosen[g].append(c)
        caps.take(g, c)
        taken += 1
    for g, idx in enumerate(chosen):
        picks[g][idx] = True
    return picks


def select_to_target(
    scores: list[torch.Tensor],
    dropped: list[torch.Tensor],
    cost,
    keep: float,
    metric: str,
    scope: str = "global",
    max_layer_fraction: float = 1.0,
    segments: list[list[torch.Tensor]] | None = None,
) -> list[torch.Tensor]:
    """Bool masks of the lowest-scoring alive channels whose removal leaves at most ``keep`` of the
    dense model's ``metric`` (a :class:`prunekit.cost.CostModel` counts it on the exported shape).

    ``global``: channels go in score order across all groups, each group within its cap, until the
    target is met; ``layer``: the smallest uniform per-group ratio that meets it. A target the caps
    make unreachable is refused with the least the model can keep.
    """
    from .cost import Budget
    from .errors import PrunekitError

    goal = keep * cost.dense[metric]
    picks = [torch.zeros(len(s), dtype=torch.bool) for s in scores]
    if scope == "layer":
        lo, hi = 0.0, 1.0
        best = select_lowest(scores, dropped, hi, "layer", max_layer_fraction, segments)
        if _left(cost, dropped, best, metric) > goal:
            _unreachable(cost, dropped, best, keep, metric, max_layer_fraction)
        for _ in range(40):  # the smallest uniform ratio that meets the goal
            mid = (lo + hi) / 2
            trial = select_lowest(scores, dropped, mid, "layer", max_layer_fraction, segments)
            if _left(cost, dropped, trial, metric) <= goal:
                hi, best = mid, trial
            else:
                lo = mid
        return best
    budget = Budget(cost)
    for g, d in enumerate(dropped):
        for c in d.nonzero().flatten().tolist():
            budget.remove(g, c)
    caps = Caps([d.cpu() for d in dropped], max_layer_fraction, segments)
    flat = torch.cat([s.detach().float().cpu() for s in scores])
    owner = torch.cat([torch.full((len(s),), g, dtype=torch.long) for g, s in enumerate(scores)]).tolist()
    local = torch.cat([torch.arange(len(s)) for s in scores]).tolist()
    cand = (~torch.cat([d.cpu() for d in dropped])).nonzero().flatten()
    for i in cand[torch.argsort(flat[cand], stable=True)].tolist():
        if budget.totals()[metric] <= goal:
            break
        g, c = owner[i], local[i]
        if not caps.allows(g, c):
            continue
        budget.remove(g, c)
        caps.take(g, c)
        picks[g][c] = True
    if budget.totals()[metric] > goal:
        least = budget.totals()[metric] / cost.dense[metric]
        raise PrunekitError(_unreachable_message(keep, metric, least, max_layer_fraction))
    return picks


def _left(cost, dropped, picks, metric) -> int:
    return cost.count([d | p for d, p in zip(dropped, picks)])[metric]


def _unreachable(cost, dropped, picks, keep, metric, max_layer_fraction) -> None:
    from .errors import PrunekitError

    least = _left(cost, dropped, picks, metric) / cost.dense[metric]
    raise PrunekitError(_unreachable_message(keep, metric, least, max_layer_fraction))


def _unreachable_message(keep: float, metric: str, least: float, max_layer_fraction: float) -> str:
    return (
        f"cannot keep only {keep:.4g} of the model's {metric}: with at most {max_layer_fraction:.4g} of each "
        f"layer's filters dropped (max_layer_fraction) it keeps at least {least:.4f}; choose a target ≥ "
        f"{least:.4f}, or raise --max-layer-fraction"
    )


def least_reachable(cost, dropped: list[torch.Tensor], metric: str, max_layer_fraction: float, segments=None) -> float:
    """The smallest fraction of the dense ``metric`` the caps allow (every group dropped to its cap)."""
    from .cost import Budget

    budget = Budget(cost)
    caps = Caps([d.cpu() for d in dropped], max_layer_fraction, segments)
    for g, d in enumerate(dropped):
        for c in d.nonzero().flatten().tolist():
            budget.remove(g, c)
        for c in (~d.cpu()).nonzero().flatten().tolist():  # which channels changes the shapes only where
            if caps.allows(g, c):  # a group spans several convs: taken in order, each within its cap
                caps.take(g, c)
                budget.remove(g, c)
    return budget.totals()[metric] / cost.dense[metric]

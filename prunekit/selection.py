"""Turning per-filter scores into a drop set: global or per-layer, with a per-layer cap."""
from __future__ import annotations

import math

import torch


def layer_budget(size: int, already: int, max_layer_fraction: float) -> int:
    """How many more channels a group of ``size`` may lose (always keeps one alive)."""
    cap = min(math.floor(max_layer_fraction * size), size - 1)
    return max(cap - already, 0)


def select_lowest(
    scores: list[torch.Tensor],
    dropped: list[torch.Tensor],
    ratio: float,
    scope: str = "global",
    max_layer_fraction: float = 1.0,
) -> list[torch.Tensor]:
    """Bool masks of the lowest-scoring alive channels to drop.

    ``global``: ``round(ratio * all channels)`` picked across groups by score;
    ``layer``: ``round(ratio * size)`` from each group. Already-dropped channels
    are never picked, and no group ends with more than ``max_layer_fraction``
    of its channels dropped (nor with none alive).
    """
    picks = [torch.zeros(len(s), dtype=torch.bool) for s in scores]
    budgets = [layer_budget(len(s), int(d.sum()), max_layer_fraction) for s, d in zip(scores, dropped)]
    if scope == "layer":
        for g, (s, d) in enumerate(zip(scores, dropped)):
            want = min(round(ratio * len(s)), budgets[g])
            alive = (~d).nonzero().flatten()
            order = alive[torch.argsort(s.detach().float().cpu()[alive], stable=True)]
            picks[g][order[:want]] = True
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
        g = owner_of[i]
        if budgets[g] == 0:
            continue
        chosen[g].append(local_of[i])
        budgets[g] -= 1
        taken += 1
    for g, idx in enumerate(chosen):
        picks[g][idx] = True
    return picks

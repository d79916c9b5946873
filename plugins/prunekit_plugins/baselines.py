"""Baselines: magnitude and random rankers, plain reinitializers, the no-op schedule."""

from __future__ import annotations

import torch

from prunekit import PrunekitError, RankContext, Ranker, ReinitContext, Reinitializer, Schedule
from prunekit.interfaces import NextLayer
from prunekit.reinit import init_consumers, reset_owners


class Magnitude(Ranker):
    """Filter weight norm (mean over a coupled group's convs); small = dropped first.

    ``normalize``: divide each group's norms by their mean over its live filters, so that a global
    ranking compares filters with their own layer's typical norm rather than across layers' scales.
    """

    p = 1
    option_help = {"normalize": "l1/l2: divide each layer's norms by their live mean before a global ranking."}

    def __init__(self, normalize: bool = False, **base):
        super().__init__(**base)
        if not isinstance(normalize, bool):
            raise PrunekitError(f"normalize must be true or false, got {normalize!r}")
        self.normalize = normalize

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        out = []
        for group, dropped in zip(ctx.groups, ctx.dropped):
            total = torch.zeros(group.size)
            for name in group.filters:
                total += ctx.filter_rows(group, name).float().norm(p=self.p, dim=1).cpu()
            score = total / max(len(group.filters), 1)
            if self.normalize and (~dropped).any():
                score = score / score[~dropped].mean().clamp_min(1e-12)
            out.append(score)
        return out


class L1(Magnitude):
    """L1 norm of each filter."""

    p = 1


class L2(Magnitude):
    """L2 norm of each filter."""

    p = 2


class RandomRanker(Ranker):
    """Uniform random scores from the event's seeded generator."""

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        return [torch.rand(g.size, generator=ctx.generator) for g in ctx.groups]


class _ResetInit(Reinitializer):
    """Writes every owner slice of the returning filters in one ``mode`` of ``reset_owners``."""

    mode = "default"

    def reinit(self, ctx: ReinitContext) -> None:
        for g, group in enumerate(ctx.groups):
            if ctx.returning[g].any():
                reset_owners(ctx, g, mode=self.mode)
                init_consumers(ctx, g, self.next_layer)
                ctx.log.append(f"{group.name}: {self.mode}")


class DefaultInit(_ResetInit):
    """Returning filters get their layer's init: the model's own where it declares one (prunekit's
    ResNets: He-normal), else PyTorch's default (BatchNorm: γ=1, β=0, fresh stats)."""

    mode = "default"


class ZeroInit(_ResetInit):
    """Returning conv/linear weights and biases start at zero; norm layers get their
    defaults. Consumers get random inputs by default, or a zero filter could never learn."""

    mode = "zero"

    def __init__(self, next_layer: NextLayer = "random"):
        super().__init__(next_layer=next_layer)


class KeepInit(_ResetInit):
    """Returning filters get back their values from before the drop (temporary filter dropout)."""

    mode = "keep"

    def __init__(self, next_layer: NextLayer = "keep"):
        super().__init__(next_layer=next_layer)


class NoSchedule(Schedule):
    """Plain training: never drops."""

    def events(self, epoch: int, epochs: int):
        return []


__all__ = ["L1", "L2", "RandomRanker", "DefaultInit", "ZeroInit", "KeepInit", "NoSchedule"]

"""Baselines: magnitude and random rankers, plain reinitializers, the no-op schedule."""
from __future__ import annotations

import torch

from prunekit import PrunekitError, RankContext, Ranker, ReinitContext, Reinitializer, Schedule
from prunekit.reinit import init_consumers, reset_owners


class Magnitude(Ranker):
    """Filter weight norm (mean over a coupled group's convs); small = dropped first."""

    p = 1

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        out = []
        for group in ctx.groups:
            total = torch.zeros(group.size)
            for name in group.filters:
                total += ctx.filter_rows(group, name).float().norm(p=self.p, dim=1).cpu()
            out.append(total / max(len(group.filters), 1))
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


class DefaultInit(Reinitializer):
    """Returning filters get the layer's own default init (BatchNorm: γ=1, β=0, fresh stats)."""

    def reinit(self, ctx: ReinitContext) -> None:
        for g, group in enumerate(ctx.groups):
            if ctx.returning[g].any():
                reset_owners(ctx, g, mode="default")
                init_consumers(ctx, g, self.next_layer)
                ctx.log.append(f"{group.name}: default init")


class ZeroInit(Reinitializer):
    """Returning filter weights and biases start at zero (norm layers get their defaults)."""

    def reinit(self, ctx: ReinitContext) -> None:
        for g, group in enumerate(ctx.groups):
            if ctx.returning[g].any():
                reset_owners(ctx, g, mode="zero")
                init_consumers(ctx, g, self.next_layer)
                ctx.log.append(f"{group.name}: zero")


class KeepInit(Reinitializer):
    """Returning filters get back their values from before the drop (temporary filter dropout)."""

    def __init__(self, next_layer: str = "keep"):
        super().__init__(next_layer=next_layer)

    def reinit(self, ctx: ReinitContext) -> None:
        for g, group in enumerate(ctx.groups):
            if ctx.returning[g].any():
                reset_owners(ctx, g, mode="keep")
                init_consumers(ctx, g, self.next_layer)
                ctx.log.append(f"{group.name}: restored old values")


class NoSchedule(Schedule):
    """Plain training: never drops."""

    def events(self, epoch: int, epochs: int):
        return []


__all__ = ["L1", "L2", "RandomRanker", "DefaultInit", "ZeroInit", "KeepInit", "NoSchedule", "PrunekitError"]

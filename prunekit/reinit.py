"""Building blocks reinitializers share: default values, slice writes, next-layer init."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .groups import FilterGroup, Slice
from .interfaces import ReinitContext


def fan_in(module: nn.Module) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return module.in_features
    return 1


def default_bound(module: nn.Module) -> float:
    """Bound of PyTorch's default uniform init for conv/linear weights (kaiming_uniform, a=√5)."""
    return 1.0 / math.sqrt(max(fan_in(module), 1))


def declared_init(model: nn.Module, module: nn.Module, generator: torch.Generator) -> torch.Tensor | None:
    """A fresh weight for ``module`` drawn the way ``model``'s constructor draws it, or None.

    A model declares its init with a method ``prunekit_init(module, weight, generator) -> bool``
    that fills ``weight`` (a tensor shaped like ``module.weight``) in place and returns True, or
    returns False for layers left at PyTorch's default. Fan-in and fan-out come from the whole
    weight's shape, hence a whole fresh weight rather than the returning rows alone."""
    init = getattr(model, "prunekit_init", None)
    weight = getattr(module, "weight", None)
    if init is None or not isinstance(weight, torch.Tensor):
        return None
    fresh = torch.empty(weight.shape, dtype=torch.float64)
    return fresh if init(module, fresh, generator) else None


def default_values(ctx: ReinitContext, sl: Slice, channels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """What the layer's init gives the positions of ``channels`` in ``sl`` (``like``: their current values,
    positions first): the model's own where it declares it (``model.prunekit_init``, see
    :func:`declared_init`), else PyTorch's default for the layer."""
    shape = tuple(like.shape)
    mod = ctx.model.get_submodule(sl.module) if sl.module else None
    leaf = sl.name.rpartition(".")[2]
    if leaf == "weight" and mod is not None:
        declared = declared_init(ctx.model, mod, ctx.generator)
        if declared is not None:  # the fresh weight's own positions: an init may depend on them (dirac)
            return declared.index_select(sl.dim, sl.positions(channels).cpu()).movedim(sl.dim, 0).to(like)
    if isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
        bound = default_bound(mod)
        u = torch.rand(shape, generator=ctx.generator, dtype=torch.float64)
        return ((u * 2 - 1) * bound).to(like)
    if isinstance(mod, nn.PReLU):
        return torch.full(shape, 0.25, dtype=like.dtype, device=like.device)
    if leaf in ("weight", "running_var"):
        return torch.ones(shape, dtype=like.dtype, device=like.device)
    if leaf in ("bias", "running_mean"):
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    raise ValueError(f"no default init for {sl.name}")  # bare parameters: see reset_owners


@torch.no_grad()
def write_positions(ctx: ReinitContext, sl: Slice, channels: torch.Tensor, values: torch.Tensor) -> None:
    """Write ``values`` (positions along dim first) into the positions of ``channels``."""
    t = ctx.tensor(sl.name)
    pos = sl.positions(channels).to(t.device)
    t.index_copy_(sl.dim, pos, values.to(t).movedim(0, sl.dim).contiguous())


def read_positions(ctx: ReinitContext, sl: Slice, channels: torch.Tensor) -> torch.Tensor:
    t = ctx.tensor(sl.name)
    return t.index_select(sl.dim, sl.positions(channels).to(t.device)).movedim(sl.dim, 0)


@torch.no_grad()
def reset_owners(ctx: ReinitContext, g: int, skip: set[str] = frozenset(), mode: str = "default") -> None:
    """Owner and state slices of the returning channels (except ``skip``): the layer's
    default init (``mode="default"``), zero, or the values before the drop (``"keep"``)."""
    group: FilterGroup = ctx.groups[g]
    for sl in group.slices:
        if sl.role != "consumer" and sl.name not in skip:
            reset_slice(ctx, g, sl, mode)


@torch.no_grad()
def reset_slice(ctx: ReinitContext, g: int, sl: Slice, mode: str = "default") -> None:
    """One owner/state slice of the returning channels. ``zero`` zeroes conv/linear
    weights and biases only (norm layers get their defaults, so the filter can
    still learn); bare parameters such as layer scales get their values from
    before the drop in every mode."""
    ret = ctx.returning[g]
    cur = read_positions(ctx, sl, ret)
    mod = ctx.model.get_submodule(sl.module) if sl.module else None
    if mode == "keep" or mod is None:
        values = before_drop_values(ctx, g, sl, ret)
    elif mode == "zero" and isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
        values = torch.zeros_like(cur)
    else:
        values = default_values(ctx, sl, ret, cur)
    write_positions(ctx, sl, ret, values)


def before_drop_values(ctx: ReinitContext, g: int, sl: Slice, channels: torch.Tensor) -> torch.Tensor:
    """Values of ``channels``' positions in ``sl`` saved when they were dropped."""
    saved = ctx.before_drop[g]
    pos_saved = saved[f"{sl.name}#pos"].tolist()
    row = {p: i for i, p in enumerate(pos_saved)}
    want = sl.positions(channels).tolist()
    return saved[sl.name][[row[p] for p in want]].to(ctx.tensor(sl.name).device)


@torch.no_grad()
def init_consumers(ctx: ReinitContext, g: int, mode: str) -> None:
    """Consumers' input slices of returning channels: ``zero``, ``random`` (the consumer
    layer's default init values) or ``keep`` (leave them)."""
    if mode == "keep":
        return
    ret = ctx.returning[g]
    for sl in ctx.groups[g].of_role("consumer"):
        cur = read_positions(ctx, sl, ret)
        values = torch.zeros_like(cur) if mode == "zero" else default_values(ctx, sl, ret, cur)
        write_positions(ctx, sl, ret, values)

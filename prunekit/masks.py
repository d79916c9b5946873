"""Soft masks that hold: dropped filters stay exactly zero through training.

``FilterMasks.drop`` zeroes every owner slice of the chosen channels (conv rows
and bias, norm weight/bias, bare parameters) and remembers their values;
``hold`` runs after every optimizer step and re-zeroes them together with the
optimizer state of the same positions (momentum, Adam moments), so neither
momentum, weight decay nor Adam's update can revive a held filter. The cost is
one in-place multiply per masked tensor and per state tensor.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .groups import GroupSet, Slice
from .interfaces import _tensor


class FilterMasks:
    def __init__(self, model: nn.Module, groups: GroupSet):
        self.model = model
        self.groups = groups
        self.dropped = [torch.zeros(g.size, dtype=torch.bool) for g in groups]
        self.before_drop: list[dict[str, torch.Tensor]] = [{} for _ in groups]
        self._held: list[tuple[torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ queries
    @property
    def any_dropped(self) -> bool:
        return any(bool(d.any()) for d in self.dropped)

    def fractions(self) -> dict[str, float]:
        """Fraction of filters currently dropped, per group (root conv name)."""
        return {g.name: float(d.float().mean()) for g, d in zip(self.groups, self.dropped)}

    # ------------------------------------------------------------------ changes
    @torch.no_grad()
    def drop(self, picks: list[torch.Tensor], optimizer: torch.optim.Optimizer | None = None) -> None:
        """Drop the channels marked in ``picks`` (bool per group) and hold them at zero."""
        for g, (group, pick) in enumerate(zip(self.groups, picks)):
            new = pick & ~self.dropped[g]
            if not new.any():
                continue
            for sl in group.slices:
                if sl.role == "consumer":
                    continue
                t = _tensor(self.model, sl.name)
                pos = sl.positions(new).to(t.device)
                self.before_drop[g][sl.name] = torch.cat(  # kept on the CPU: checkpoints load there
                    [
                        self.before_drop[g].get(sl.name, torch.empty((0,) + shape_without(t, sl.dim), dtype=t.dtype)),
                        t.index_select(sl.dim, pos).movedim(sl.dim, 0).cpu(),
                    ]
                )
                self.before_drop[g][f"{sl.name}#pos"] = torch.cat(
                    [self.before_drop[g].get(f"{sl.name}#pos", torch.empty(0, dtype=torch.long)), pos.cpu()]
                )
            self.dropped[g] |= new
        self._rebuild()
        self.hold(optimizer)

    def release(self) -> None:
        """Stop holding every dropped channel. Values are left as they are:
        a reinitializer writes what the returning filters start from."""
        for g in range(len(self.groups)):
            self.dropped[g].zero_()
            self.before_drop[g] = {}
        self._rebuild()

    @torch.no_grad()
    def hold(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-zero held slices of parameters and of their optimizer state."""
        for t, mask in self._held:
            t.mul_(mask)
            for v in per_element_state(optimizer, t):
                v.mul_(mask)

    def _rebuild(self) -> None:
        masks: dict[tuple[str, int], torch.Tensor] = {}
        params = dict(self.model.named_parameters())
        for g, group in enumerate(self.groups):
            if not self.dropped[g].any():
                continue
            for sl in group.slices:
                if sl.role != "owner" or sl.name not in params:
                    continue
                t = params[sl.name]
                key = (sl.name, sl.dim)
                if key not in masks:
                    shape = [1] * t.dim()
                    shape[sl.dim] = t.shape[sl.dim]
                    masks[key] = torch.ones(shape, dtype=t.dtype, device=t.device)
                pos = sl.positions(self.dropped[g]).to(t.device)
                masks[key].view(-1).index_fill_(0, pos, 0.0)
        self._held = [(params[name], m) for (name, _), m in masks.items()]

    # ------------------------------------------------------------------ records
    def state_dict(self) -> dict:
        return {
            "groups": [g.name for g in self.groups],
            "dropped": [d.clone() for d in self.dropped],
            "before_drop": [dict(b) for b in self.before_drop],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore by group name, so that a run which may drop fewer or more groups (``exclude``) can start
        from another's state as long as nothing is dropped in the groups they do not share; states
        written before groups were named load by position."""
        names = state.get("groups")
        if names is None and not any(d.any() for d in state["dropped"]):
            names, state = [], {"dropped": [], "before_drop": []}  # nothing held: nothing to restore
        elif names is None:
            names = [g.name for g in self.groups]
        if len(names) != len(state["dropped"]):
            raise ValueError(f"mask state holds {len(state['dropped'])} groups, this run has {len(self.groups)}")
        saved = {n: (d, b) for n, d, b in zip(names, state["dropped"], state["before_drop"])}
        own = {g.name for g in self.groups}
        held_elsewhere = [n for n, (d, _) in saved.items() if d.any() and n not in own]
        if held_elsewhere:
            raise ValueError(
                f"mask state holds dropped filters in groups this run does not have: {', '.join(held_elsewhere)}"
            )
        dropped, before = [], []
        for g in self.groups:
            d, b = saved.get(g.name, (torch.zeros(g.size, dtype=torch.bool), {}))
            if len(d) != g.size:
                raise ValueError(f"mask state of group {g.name} has {len(d)} channels, this run's has {g.size}")
            dropped.append(d.clone().bool())
            before.append(dict(b))
        self.dropped, self.before_drop = dropped, before
        self._rebuild()


def shape_without(t: torch.Tensor, dim: int) -> tuple[int, ...]:
    """``t``'s shape with dimension ``dim`` left out."""
    shape = list(t.shape)
    shape.pop(dim)
    return tuple(shape)


def clear_optimizer_state(
    optimizer: torch.optim.Optimizer, model: nn.Module, slices: list[Slice], channels: torch.Tensor
) -> None:
    """Zero the optimizer state (momentum, Adam moments) at the positions of ``channels``."""
    by_name = dict(model.named_parameters())
    for sl in slices:
        t = by_name.get(sl.name)
        if t is None:
            continue
        pos = sl.positions(channels).to(t.device)
        for v in per_element_state(optimizer, t):
            v.index_fill_(sl.dim, pos, 0.0)


def per_element_state(optimizer: torch.optim.Optimizer | None, t: torch.Tensor) -> list[torch.Tensor]:
    """``t``'s optimizer state shaped like it (momentum, Adam moments); not scalars such as Adam's step."""
    if optimizer is None or t not in optimizer.state:
        return []
    return [v for v in optimizer.state[t].values() if torch.is_tensor(v) and v.shape == t.shape]

"""What a model costs after export: parameters and MACs for any set of dropped channels.

MACs are multiply-accumulates as PyTorch's ``FlopCounterMode`` counts them (FLOPs / 2:
convolutions, matmuls, attention), for one input of the example's shape. The dense
count is measured once; a drop set changes it only through the weight tensors that
its slices shorten (conv/linear rows and input columns, norm affine, biases), so the
count for any drop set is the dense count less what those tensors lose. ``count``
agrees exactly with counting the physically pruned model (tested), and
``Budget`` updates it one channel at a time for greedy selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .groups import GroupSet

_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def count_macs(model: nn.Module, example_inputs: torch.Tensor) -> int:
    """MACs of one forward pass on ``example_inputs`` (FlopCounterMode's FLOPs / 2)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example_inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class _Tensor:
    shape: tuple[int, ...]
    per_element_macs: int  # MACs one weight element costs per example (output positions), 0 for non-weights
    is_param: bool


class CostModel:
    """Params, MACs and filters of the model export would produce, as a function of the drop masks."""

    def __init__(self, model: nn.Module, groups: GroupSet, example_inputs: torch.Tensor):
        self.groups = groups
        example = example_inputs[:1]
        positions = _output_positions(model, example)
        params = dict(model.named_parameters())
        self.tensors: dict[str, _Tensor] = {}
        for group in groups:
            for sl in group.slices:
                if sl.name in self.tensors or sl.role == "state":
                    continue
                mod_name, _, attr = sl.name.rpartition(".")
                t = params.get(sl.name)
                if t is None:
                    continue
                per = positions.get(mod_name, 0) if attr == "weight" else 0
                self.tensors[sl.name] = _Tensor(tuple(t.shape), per, True)
        # per group channel: (tensor, dim) -> number of positions it removes
        self.removes: list[list[dict[tuple[str, int], int]]] = []
        for group in groups:
            per_channel: list[dict[tuple[str, int], int]] = [{} for _ in range(group.size)]
            for sl in group.slices:
                if sl.name not in self.tensors:
                    continue
                for c in sl.channel.tolist():
                    key = (sl.name, sl.dim)
                    per_channel[c][key] = per_channel[c].get(key, 0) + 1
            self.removes.append(per_channel)
        self.dense = {
            "params": count_params(model),
            "macs": count_macs(model, example),
            "filters": sum(g.size for g in groups),
        }

    def count(self, dropped: list[torch.Tensor]) -> dict[str, int]:
        """Params, MACs and prunable filters left when the channels marked in ``dropped`` are removed."""
        budget = Budget(self)
        for g, d in enumerate(dropped):
            for c in d.nonzero().flatten().tolist():
                budget.remove(g, c)
        return budget.totals()

    def fraction(self, counts: dict[str, int]) -> dict[str, float]:
        return {k: counts[k] / self.dense[k] if self.dense[k] else 1.0 for k in counts}


class Budget:
    """Running totals while channels are removed one at a time (greedy selection)."""

    def __init__(self, cost: CostModel):
        self.cost = cost
        self.removed: dict[tuple[str, int], int] = {}
        self.params, self.macs, self.filters = cost.dense["params"], cost.dense["macs"], cost.dense["filters"]

    def _kept(self, name: str) -> int:
        t = self.cost.tensors[name]
        return math.prod(size - self.removed.get((name, d), 0) for d, size in enumerate(t.shape))

    def remove(self, g: int, c: int) -> None:
        changes = self.cost.removes[g][c]
        names = {name for name, _ in changes}
        before = {name: self._kept(name) for name in names}
        for key, n in changes.items():
            self.removed[key] = self.removed.get(key, 0) + n
        for name in names:
            lost = before[name] - self._kept(name)
            self.params -= lost
            self.macs -= lost * self.cost.tensors[name].per_element_macs
        self.filters -= 1

    def totals(self) -> dict[str, int]:
        return {"params": self.params, "macs": self.macs, "filters": self.filters}


def _output_positions(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Per conv/linear module: output positions per example (H·W for a 2-D conv, tokens for a
    linear), i.e. the MACs each of its weight elements costs on one input."""
    found: dict[str, int] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, _WEIGHTED):

            def hook(m, inputs, output, name=name):
                out = output[0] if isinstance(output, (tuple, list)) else output
                channels = m.out_channels if isinstance(m, nn.modules.conv._ConvNd) else m.out_features
                found[name] = found.get(name, 0) + out.numel() // (channels * max(len(example), 1))

            hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found

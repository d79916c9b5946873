"""Filter groups: every tensor slice one filter owns, from torch-pruning's graph.

``build_groups`` asks ``torch_pruning.DependencyGraph`` for the coupled groups
of a model (conv outputs, their BatchNorm channels, consumers' input channels,
Linear blocks after a flatten, residual adds) and converts each group once into
plain :class:`Slice` records. Nothing downstream touches torch-pruning objects.
"""

from __future__ import annotations

import fnmatch
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
import torch_pruning as tp

from .errors import PrunekitError, first_line

Role = Literal["owner", "state", "consumer"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Slice:
    """Positions ``index`` along ``dim`` of tensor ``name`` belonging to group channels ``channel``.

    role ``owner``: zeroed while the filter is dropped (conv rows, bias, norm affine);
    ``state``: buffers reset when it returns (BatchNorm running stats);
    ``consumer``: input weights of the layers that read the channel.
    """

    name: str  # dotted tensor name in the model, e.g. "features.0.weight"
    module: str  # dotted module name ("" for a bare parameter)
    kind: str  # module class name, for reports
    role: Role
    dim: int
    index: torch.Tensor  # long, positions along dim
    channel: torch.Tensor  # long, group channel of each position

    def positions(self, channels: torch.Tensor) -> torch.Tensor:
        """Positions along ``dim`` that carry any of ``channels`` (a bool mask over the group)."""
        return self.index[channels[self.channel]]


@dataclass
class FilterGroup:
    """One prunable unit: ``size`` channels that are dropped together across all ``slices``."""

    name: str  # the root conv's module name
    size: int
    slices: list[Slice]
    filters: list[str] = field(default_factory=list)  # owner weight names used for ranking
    depth: int = 0  # order of the root conv in the model (0 = first)
    # channels of each conv that owns only part of the group (branches joined by a concat): the
    # per-layer cap holds for each of them too, so that no branch loses all its filters
    segments: list[torch.Tensor] = field(default_factory=list)

    def of_role(self, role: Role) -> list[Slice]:
        return [s for s in self.slices if s.role == role]

    def describe(self) -> list[str]:
        return [f"{s.role:8s} {s.name} dim={s.dim} n={len(s.index)} ({s.kind})" for s in self.slices]


@dataclass
class GroupSet:
    groups: list[FilterGroup]
    excluded: list[str]  # root convs left out, with reason
    unsupported: list[str]  # modules with parameters we could not map, by name

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    def __getitem__(self, i):
        return self.groups[i]


def build_groups(
    model: nn.Module,
    example_inputs: torch.Tensor,
    exclude: Sequence[str] = (),
    exclude_first: bool = False,
    ignore: Iterable[nn.Module] = (),
    timeout: float | None = 60.0,
) -> GroupSet:
    """Filter groups of every conv output in ``model``.

    ``exclude``: glob patterns of module names whose groups are never dropped;
    ``exclude_first``: leave the first conv's group alone (RePr's shallow-layer remedy);
    ``ignore``: modules torch-pruning must not prune (the classifier by default);
    ``timeout``: seconds torch-pruning may take (None: no bound); past them, one clear error
    naming the stage and the last module the trace ran.
    """
    names = {m: n for n, m in model.named_modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    first_conv = convs[0] if convs else None
    ignore = list(ignore) or _default_ignored(model)
    was_training = model.training
    model.eval()
    progress = _Progress(model)
    deadline = time.monotonic() + timeout if timeout else None
    try:
        with _time_bound(timeout), torch.enable_grad():  # torch-pruning traces through autograd
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        progress.stage = "grouping coupled channels"
        tp_groups, slow = _conv_groups(graph, ignore, deadline, timeout)
        if slow and not tp_groups:
            raise _TimeUp()
    except _TimeUp:
        raise PrunekitError(
            f"building the filter groups of {type(model).__name__} took more than {timeout:g} s (torch-pruning, "
            f"{progress.describe()}); allow more with --graph-timeout SECONDS, or leave that part out of pruning "
            f"with --set exclude=[NAME*]"
        ) from None
    except Exception as exc:  # noqa: BLE001 - tracing runs the model; any failure means "cannot trace"
        raise _graph_failure(model, example_inputs, exc, progress) from None
    finally:
        progress.remove()
        model.train(was_training)
    param_names = {p: n for n, p in model.named_parameters()}
    order = {m: i for i, m in enumerate(convs)}

    groups, excluded, unsupported, owners = [], [], set(), []
    excluded += [f"{names[m]}: torch-pruning did not group it within the time bound (left unpruned)" for m in slow]
    for tp_group in tp_groups:
        root = tp_group[0].dep.target.module
        root_name = names[root]
        slices, bad = _group_slices(tp_group, graph, names, param_names)
        unsupported.update(bad)
        owner_modules = {s.module for s in slices if s.role == "owner"}
        owners += sorted(owner_modules - set(owners))
        reason = None
        if bad:
            reason = f"touches unsupported {', '.join(sorted(bad))}"
        elif exclude_first and first_conv is not None and names[first_conv] in owner_modules:
            reason = "first conv (exclude_first)"
        elif any(fnmatch.fnmatch(m, pat) for m in owner_modules for pat in exclude):
            reason = "excluded by pattern"
        if reason:
            excluded.append(f"{root_name}: {reason}")
            continue
        size = len(tp_group[0].idxs)
        depth = min(order.get(_module(model, s.module), 1 << 30) for s in slices if s.role == "owner")
        groups.append(
            FilterGroup(
                root_name,
                size,
                slices,
                filters=_ranked_filters(slices, model),
                depth=depth,
                segments=_segments(slices, size, model),
            )
        )
    unmatched = [pat for pat in exclude if not any(fnmatch.fnmatch(m, pat) for m in owners)]
    position = {n: i for i, n in enumerate(names.values())}
    owners.sort(key=lambda n: position.get(n, len(position)))
    if unmatched:
        raise PrunekitError(
            f"exclude pattern(s) {', '.join(unmatched)} match no module that owns filters in "
            f"{type(model).__name__} (those are {', '.join(owners[:6])}{', ...' if len(owners) > 6 else ''}); "
            f"correct the name(s); globs work, e.g. '{owners[0] if owners else 'conv'}*'"
        )
    groups.sort(key=lambda g: g.depth)
    return GroupSet(groups, excluded, sorted(unsupported))


def _graph_failure(model: nn.Module, example_inputs: torch.Tensor, exc: Exception, progress) -> PrunekitError:
    """One line for a failed graph build: the model's own forward pass failing on this input, or (when
    that runs) torch-pruning failing to analyse it."""
    shape = tuple(example_inputs.shape)
    try:
        with torch.no_grad():
            model(example_inputs)
    except Exception as own:  # noqa: BLE001 - the model itself cannot run this input
        return PrunekitError(
            f"{type(model).__name__} cannot run on an input of shape {shape} ({first_line(own)}); "
            f"use a model that accepts this input size or a dataset with larger images"
        )
    return PrunekitError(
        f"torch-pruning cannot build the dependency graph of {type(model).__name__} ({progress.describe()}: "
        f"{first_line(exc)}); the model itself runs on {shape}, so this is a torch-pruning limitation, not the input: "
        f"use another model, or report it to torch-pruning with the model's name"
    )


def _segments(slices: list[Slice], size: int, model: nn.Module) -> list[torch.Tensor]:
    """The channel sets of the convs that own only part of a group's channels, each once."""
    seen, out = set(), []
    for s in slices:
        if s.role != "owner" or not s.name.endswith(".weight") or s.dim != 0:
            continue
        if not isinstance(_module(model, s.module), nn.modules.conv._ConvNd):
            continue
        channels = torch.unique(s.channel)
        key = tuple(channels.tolist())
        if len(channels) < size and key not in seen:
            seen.add(key)
            out.append(channels)
    return out


def _conv_groups(graph, ignore: list, deadline: float | None, timeout: float | None):
    """torch-pruning's groups rooted at each conv (as its ``get_all_groups`` makes them), each root given
    at most a tenth of the time bound (at least 2 s) and all of them the rest of it: a root whose
    group torch-pruning cannot work out in time (attention hybrids can take minutes) is returned
    in ``slow`` and left unpruned, and the rest of the model is grouped."""
    ignored = ignore + graph.IGNORED_LAYERS_IN_TRACING
    visited, groups, slow = set(), [], []
    per_root = max(2.0, timeout / 10) if timeout else None
    for m in list(graph.module2node.keys()):
        if m in ignored or not isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Conv3d)) or id(m) in visited:
            continue
        pruner = graph.get_pruner_of_module(m)
        if pruner is None or pruner.get_out_channels(m) is None:
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            slow.append(m)
            continue
        try:
            with _time_bound(min(per_root, left) if left is not None else None):
                group = graph.get_pruning_group(m, pruner.prune_out_channels, list(range(pruner.get_out_channels(m))))
        except _TimeUp:
            slow.append(m)
            continue
        prunable = True
        for dep, _ in group:
            if graph.is_out_channel_pruning_fn(dep.handler):
                visited.add(id(dep.target.module))
                if dep.target.module in ignored:
                    prunable = False
        if prunable:
            groups.append(group)
    return groups, slow


class _TimeUp(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` inside the library swallows it."""


@contextmanager
def _time_bound(seconds: float | None):
    """Raise _TimeUp in this thread after ``seconds`` (a no-op off the main thread or without SIGALRM)."""
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, alarm)
    # it fires again every 0.2 s once the time is up: a library that catches everything (torch-pruning's
    # tracer retries the call in a bare ``except``) is interrupted again until the error gets out
    signal.setitimer(signal.ITIMER_REAL, float(seconds), 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Progress:
    """Where graph building is: the stage, and the last module the traced forward pass entered."""

    def __init__(self, model: nn.Module):
        self.stage, self.last = "tracing the forward pass", None
        self.hooks = [m.register_forward_pre_hook(self._entered(n)) for n, m in model.named_modules() if n]

    def _entered(self, name: str):
        def hook(module, args):
            self.last = name

        return hook

    def describe(self) -> str:
        return self.stage + (f"; last module run: {self.last}" if self.last else "")

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def _default_ignored(model: nn.Module) -> list[nn.Module]:
    """The classifier: the model's declared head, else the last Linear."""
    head = getattr(model, "get_classifier", None)
    if callable(head):
        mod = head()
        if isinstance(mod, nn.Module) and any(True for _ in mod.parameters()):
            return [mod]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def _module(model: nn.Module, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _group_slices(tp_group, graph, names, param_names):
    modules = {n: m for m, n in names.items()}
    slices: list[Slice] = []
    unsupported: set[str] = set()
    for item in tp_group.items:
        dep, idxs = item.dep, item.idxs
        target = dep.target.module
        index = torch.as_tensor(list(idxs), dtype=torch.long)
        channel = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
        if isinstance(target, nn.Parameter):
            pname = param_names[target]
            if target.dim() != 1:  # a per-channel scale is 1-D; a matrix used by some custom op is not ours to mask
                unsupported.add(f"{pname} (parameter of shape {tuple(target.shape)} used outside a known layer)")
                continue
            slices.append(Slice(pname, "", "Parameter", "owner", 0, index, channel))
            continue
        mod_name = names.get(target)
        if mod_name is None or not any(True for _ in target.parameters(recurse=False)):
            continue  # functional ops (add, flatten, ...) own no tensors
        kind = type(target).__name__
        prefix = f"{mod_name}." if mod_name else ""
        is_out = graph.is_out_channel_pruning_fn(dep.handler)
        if isinstance(target, nn.modules.conv._ConvNd) and not isinstance(target, nn.modules.conv._ConvTransposeNd):
            depthwise = target.groups == target.in_channels == target.out_channels and target.groups > 1
            if is_out and target.groups > 1 and not depthwise:
                unsupported.add(f"{mod_name} (grouped {kind} output: its groups must stay equal in size)")
            elif is_out or depthwise:
                slices.append(Slice(prefix + "weight", mod_name, kind, "owner", 0, index, channel))
                if target.bias is not None:
                    slices.append(Slice(prefix + "bias", mod_name, kind, "owner", 0, index, channel))
            elif target.groups == 1:
                slices.append(Slice(prefix + "weight", mod_name, kind, "consumer", 1, index, channel))
            else:
                unsupported.add(f"{mod_name} (grouped {kind} input)")
        elif isinstance(target, nn.Linear):
            if is_out:
                slices.append(Slice(prefix + "weight", mod_name, kind, "owner", 0, index, channel))
                if target.bias is not None:
                    slices.append(Slice(prefix + "bias", mod_name, kind, "owner", 0, index, channel))
            else:
                slices.append(Slice(prefix + "weight", mod_name, kind, "consumer", 1, index, channel))
        elif isinstance(target, _NORMS):
            for pname in ("weight", "bias"):
                if getattr(target, pname, None) is not None:
                    slices.append(Slice(prefix + pname, mod_name, kind, "owner", 0, index, channel))
            for bname in ("running_mean", "running_var"):
                if getattr(target, bname, None) is not None:
                    slices.append(Slice(prefix + bname, mod_name, kind, "state", 0, index, channel))
        elif isinstance(target, nn.PReLU):
            if target.num_parameters > 1:
                slices.append(Slice(prefix + "weight", mod_name, kind, "owner", 0, index, channel))
        else:
            unsupported.add(f"{mod_name} ({kind})")
    for sl in slices:  # torch-pruning's index mapping must stay inside each tensor
        t = _lookup(modules, sl)
        if t is not None and len(sl.index) and int(sl.index.max()) >= t.shape[sl.dim]:
            unsupported.add(f"{sl.name} (channel indices beyond its {t.shape[sl.dim]} channels)")
    return slices, unsupported


def _lookup(modules: dict[str, nn.Module], sl: Slice):
    mod_name, _, attr = sl.name.rpartition(".")
    mod = modules.get(mod_name)
    return getattr(mod, attr, None) if mod is not None else None


def _ranked_filters(slices: list[Slice], model: nn.Module) -> list[str]:
    """Owner weights that are 'filters' for weight-based rankers: dense convs/linears,
    else depthwise convs when the group has nothing denser."""
    dense, depthwise = [], []
    for s in slices:
        if s.role != "owner" or not s.name.endswith("weight"):
            continue
        mod = model.get_submodule(s.module) if s.module else None
        if not isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        (depthwise if getattr(mod, "groups", 1) > 1 else dense).append(s.name)
    return dense or depthwise

"""Rankers that look at data: activation, APoZ, gradient, first-order Taylor, Hessian (OBD), greedy oracle.

They ask the rank context for a few training batches (never the test set), run
the model in eval mode (BatchNorm statistics untouched) with forward hooks on
each group's channel-producing layer (its norm layer, else its conv), and take
gradients with ``torch.autograd.grad`` with respect to those outputs only, so
parameters' ``.grad``, the weights and the optimizer state are left exactly as
they were. Scores: higher = keep.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from prunekit import FilterGroup, RankContext, Ranker


def probe_modules(ctx: RankContext, group: FilterGroup) -> list[tuple[str, object]]:
    """(module name, owner slice) pairs whose outputs carry the group's channels."""
    owners = [s for s in group.slices if s.role == "owner" and s.name.endswith("weight") and s.module]
    norms = [
        s
        for s in owners
        if isinstance(ctx.model.get_submodule(s.module), nn.modules.batchnorm._NormBase) or "norm" in s.kind.lower()
    ]
    if norms:
        return [(s.module, s) for s in norms]
    return [(s.rpartition(".")[0], next(x for x in owners if x.name == s)) for s in group.filters]


@contextmanager
def _no_inplace(model: nn.Module):
    """Turn off in-place activations so hooked outputs keep their values and gradients."""
    flipped = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in flipped:
        m.inplace = False
    try:
        yield
    finally:
        for m in flipped:
            m.inplace = True


def _channel_dim(out: torch.Tensor, channels: int) -> int:
    if out.dim() >= 2 and out.shape[1] == channels:
        return 1
    return out.dim() - 1  # channels-last layers (e.g. ConvNeXt's LayerNorm)


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or value < 1:
        from prunekit import PrunekitError

        raise PrunekitError(f"{name} must be a positive integer, got {value!r}")
    return value


def _by_sample_and_channel(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(samples × channels × positions) view of a batch of outputs with channels along ``dim``."""
    moved = values.movedim(dim, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


def _per_channel(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over every dimension but ``dim``."""
    return values.movedim(dim, 0).reshape(values.shape[dim], -1).mean(1)


class DataRanker(Ranker):
    """Shared machinery: hooks, batches, per-channel statistics mapped onto groups."""

    needs_grad = False
    option_help = {
        "batches": "Data rankers: training batches their statistics are taken over.",
        "samples": "hessian: random probe vectors per batch.",
    }

    def __init__(self, batches: int = 8, **base):
        super().__init__(**base)
        self.batches = _positive_int("batches", batches)

    def derivatives(
        self, ctx: RankContext, logits: torch.Tensor, y: torch.Tensor, acts: list[torch.Tensor]
    ) -> list[torch.Tensor | None]:
        """What ``statistic`` gets as ``grad`` for each hooked output: ∂L/∂a, or None."""
        if not self.needs_grad:
            return [None] * len(acts)
        return list(torch.autograd.grad(ctx.loss_fn(logits, y), acts, allow_unused=True))

    def statistic(self, act: torch.Tensor, grad: torch.Tensor | None, dim: int) -> torch.Tensor:
        """Per-position statistic of one batch (length = channels along ``dim``)."""
        raise NotImplementedError

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        model = ctx.model
        probes = {g: probe_modules(ctx, group) for g, group in enumerate(ctx.groups)}
        names = sorted({name for plist in probes.values() for name, _ in plist})
        sums = {name: None for name in names}
        captured: dict[str, torch.Tensor] = {}
        hooks = [
            model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: captured.__setitem__(n, o)) for n in names
        ]
        was_training = model.training
        model.eval()
        count = 0
        try:
            with _no_inplace(model):
                for x, y in ctx.batches(self.batches):
                    captured.clear()
                    with torch.set_grad_enabled(self.needs_grad):
                        logits = model(x)
                        acts = [captured[n] for n in names]
                        grads = self.derivatives(ctx, logits, y, acts)
                    for n, a, gr in zip(names, acts, grads):
                        w = model.get_submodule(n).weight
                        dim = _channel_dim(a, w.shape[0])
                        gr = torch.zeros_like(a) if (self.needs_grad and gr is None) else gr
                        stat = self.statistic(a.detach().float(), None if gr is None else gr.float(), dim).cpu()
                        sums[n] = stat if sums[n] is None else sums[n] + stat
                    count += 1
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
        if count == 0:
            from prunekit import PrunekitError

            raise PrunekitError(f"ranker {type(self).__name__} got no training batches")
        out = []
        for g, group in enumerate(ctx.groups):
            total = torch.zeros(group.size)
            for name, sl in probes[g]:
                per_pos = sums[name] / count
                total.index_add_(0, sl.channel, per_pos[sl.index].float())
            out.append(total / max(len(probes[g]), 1))
        return out


class MeanActivation(DataRanker):
    """Mean post-ReLU activation of each channel (low = dropped first)."""

    def statistic(self, act, grad, dim):
        return _per_channel(act.clamp_min(0), dim)


class APoZ(DataRanker):
    """Average percentage of zeros after ReLU; more zeros = less important."""

    def statistic(self, act, grad, dim):
        return 1.0 - _per_channel((act <= 0).float(), dim)


class Gradient(DataRanker):
    """Mean |∂L/∂a| of each channel's output a."""

    needs_grad = True

    def statistic(self, act, grad, dim):
        return _per_channel(grad.abs(), dim)


class Taylor(DataRanker):
    """First-order Taylor: |a · ∂L/∂a| per channel, averaged over the batch."""

    needs_grad = True

    def statistic(self, act, grad, dim):
        per_sample = _by_sample_and_channel(act * grad, dim).mean(2).abs()  # |mean over positions|
        return per_sample.mean(0)


class Hessian(DataRanker):
    """Second-order saliency (Optimal Brain Damage on a channel's output): the loss
    increase ½ Σ_p h_p a_p² from zeroing the channel's map a, with h the diagonal of
    the loss Hessian with respect to a; the first-order term is left out, as OBD does.

    h is estimated per sample as (∂ℓ/∂a)² with a label drawn from the model's own
    softmax (``samples`` draws per batch, from the event's generator): in expectation
    that is the Gauss-Newton diagonal, which equals the Hessian's where the net between
    a and the logits is piecewise linear (ReLU, max-pool, eval-mode BatchNorm) and the
    loss is softmax cross-entropy; elsewhere (GELU, SiLU) it is its positive
    semi-definite part. One backward pass per draw, like ``gradient``.
    """

    needs_grad = True

    def __init__(self, batches: int = 8, samples: int = 1, **base):
        super().__init__(batches=batches, **base)
        self.samples = _positive_int("samples", samples)

    def derivatives(self, ctx, logits, y, acts):
        n = logits.shape[0]
        probs = logits.detach().float().softmax(1).cpu()
        curvature: list[torch.Tensor | None] = [None] * len(acts)
        for s in range(self.samples):
            drawn = torch.multinomial(probs, 1, generator=ctx.generator).squeeze(1).to(y.device)
            grads = torch.autograd.grad(
                ctx.loss_fn(logits, drawn), acts, allow_unused=True, retain_graph=s + 1 < self.samples
            )
            for k, g in enumerate(grads):
                if g is not None:  # the loss is a batch mean: n·∂L/∂a is each sample's own ∂ℓ/∂a
                    h = (g.float() * n).square() / self.samples
                    curvature[k] = h if curvature[k] is None else curvature[k] + h
        return curvature

    def statistic(self, act, grad, dim):
        return 0.5 * _by_sample_and_channel(grad * act.square(), dim).sum(2).mean(0)


class Oracle(DataRanker):
    """Greedy oracle: the loss increase when each channel alone is zeroed, measured on
    ``batches`` training batches. Costs one forward pass over those batches per filter:
    10–30 s per event for C^3(32)'s 96 filters, ~60 h for a ResNet-50's 11,456 (one CPU thread)."""

    def __init__(self, batches: int = 2, **base):
        super().__init__(batches=batches, **base)

    @torch.no_grad()
    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        model = ctx.model
        batches = list(ctx.batches(self.batches))
        was_training = model.training
        model.eval()

        def loss() -> float:
            return sum(float(ctx.loss_fn(model(x), y)) for x, y in batches) / len(batches)

        try:
            base = loss()
            out = []
            for group, dropped in zip(ctx.groups, ctx.dropped):
                owners = [s for s in group.slices if s.role == "owner"]
                score = torch.zeros(group.size)
                for c in range(group.size):
                    if dropped[c]:
                        continue
                    one = torch.zeros(group.size, dtype=torch.bool)
                    one[c] = True
                    saved = []
                    for s in owners:
                        t = ctx.tensor(s.name)
                        pos = s.positions(one).to(t.device)
                        saved.append((t, s.dim, pos, t.index_select(s.dim, pos).clone()))
                        t.index_fill_(s.dim, pos, 0.0)
                    score[c] = loss() - base
                    for t, dim, pos, values in saved:
                        t.index_copy_(dim, pos, values)
                out.append(score)
        finally:
            model.train(was_training)
        return out

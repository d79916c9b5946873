"""RePr (Prakash et al., CVPR 2019): orthogonality ranking, null-space re-init, S1/S2 cycles."""

from __future__ import annotations

import math
from typing import Literal

import torch

from prunekit import Drop, PrunekitError, RankContext, Ranker, ReinitContext, Reinitializer, Restore, Schedule
from prunekit.interfaces import NextLayer
from prunekit.masks import shape_without
from prunekit.reinit import (
    before_drop_values,
    default_bound,
    init_consumers,
    reset_owners,
    reset_slice,
    write_positions,
)


# --------------------------------------------------------------------------- ranking
def orthogonality(rows: torch.Tensor, normalization: str = "filter") -> torch.Tensor:
    """O_f for the rows of one layer (J × K): how much each filter overlaps the others.

    ``filter``: rows scaled to unit norm, O_f = Σ_j |ŴŴᵀ − I|[f, j] / J.
    ``layer``: the whole matrix scaled by its Frobenius norm, diagonal zeroed,
    O_f = |mean_j (ŴŴᵀ)[f, j]| (the author's own code).
    """
    rows = rows.float()
    j = rows.shape[0]
    if normalization == "filter":
        unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        diag = (unit * unit).sum(1)  # 1, or 0 for an all-zero filter
        return (_abs_gram_row_sums(unit) - diag.abs() + (diag - 1.0).abs()) / j
    unit = rows / rows.norm().clamp_min(1e-12)
    gram = unit @ unit.T
    gram.diagonal().zero_()
    return gram.mean(1).abs()


def _abs_gram_row_sums(unit: torch.Tensor, block: int = 512) -> torch.Tensor:
    """Σ_j |UUᵀ|[f, j] from the upper block triangle only: each off-diagonal block
    serves its rows and (transposed) its columns, so large layers cost about half
    of one J × J product."""
    j = unit.shape[0]
    if j <= block:
        return (unit @ unit.T).abs().sum(1)
    sums = torch.zeros(j, dtype=unit.dtype, device=unit.device)
    for a in range(0, j, block):
        for b in range(a, j, block):
            part = (unit[a : a + block] @ unit[b : b + block].T).abs()
            sums[a : a + block] += part.sum(1)
            if b != a:
                sums[b : b + block] += part.sum(0)
    return sums


def expected_random_overlap(k: int) -> float:
    """E|cos| of two random directions in K dimensions, about √(2/(πK))."""
    return math.sqrt(2.0 / (math.pi * k))


class Orthogonality(Ranker):
    """Drops the filters that overlap their layer most (high O_f), ranked globally by default.

    ``fan_in_correction`` divides O_f by √(2/(πK)) so layers of small fan-in are
    not dropped first just because random filters overlap more there.
    """

    reverse = False
    option_help = {
        "normalization": "Orthogonality: filter (each filter unit norm) or layer (Frobenius).",
        "fan_in_correction": "Orthogonality: divide O_f by its value for random filters of that fan-in.",
    }

    def __init__(self, normalization: Literal["filter", "layer"] = "filter", fan_in_correction: bool = False, **base):
        super().__init__(**base)
        if normalization not in ("filter", "layer"):
            raise PrunekitError(f"normalization must be 'filter' or 'layer', got {normalization!r}")
        self.normalization = normalization
        self.fan_in_correction = bool(fan_in_correction)

    def overlap(self, ctx: RankContext) -> list[torch.Tensor]:
        """O per group channel (mean over the group's filter tensors); dropped channels get +inf."""
        out = []
        for group, dropped in zip(ctx.groups, ctx.dropped):
            alive = ~dropped
            total = torch.zeros(group.size)
            for name in group.filters:
                rows = ctx.filter_rows(group, name)
                o = torch.full((group.size,), float("inf"))
                score = orthogonality(rows[alive.to(rows.device)], self.normalization).cpu()
                if self.fan_in_correction:
                    score = score / expected_random_overlap(rows.shape[1])
                o[alive] = score
                total += o
            out.append(total / max(len(group.filters), 1))
        return out

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        overlap = self.overlap(ctx)
        return overlap if self.reverse else [-o for o in overlap]


class ReverseOrthogonality(Orthogonality):
    """Ablation: drops the *most* orthogonal filters first."""

    reverse = True


# --------------------------------------------------------------------------- re-init
class _FilterwiseReinit(Reinitializer):
    """Re-initializes each filter tensor of a returning group (``_reinit_filter``), then the group's
    other owner and state slices (``others``: the layer's default init, or ``keep``: their values
    from before the drop), then the consumers' inputs (``next_layer``)."""

    others = "default"

    def reinit(self, ctx: ReinitContext) -> None:
        returning = [g for g, ret in enumerate(ctx.returning) if ret.any()]
        fed = {h: {s.name for s in ctx.groups[h].of_role("consumer")} for h in returning}
        done: set[int] = set()

        def init_inputs(h: int) -> None:
            if h not in done:
                done.add(h)
                init_consumers(ctx, h, self.next_layer)

        for g in returning:
            group = ctx.groups[g]
            # Input columns of these filters that returning channels feed (a later group's, or this
            # group's own through a residual add) get their new values first: the new filters are computed
            # against the survivors as training will see them. Feed-forward nets never need this.
            for h in returning:
                if h >= g and fed[h] & set(group.filters):
                    init_inputs(h)
            for name in group.filters:
                ctx.log.append(f"{group.name} {name}: {self._reinit_filter(ctx, g, name)}")
            reset_owners(ctx, g, skip=set(group.filters), mode=self.others)
            init_inputs(g)

    def _reinit_filter(self, ctx: ReinitContext, g: int, name: str) -> str:
        """Write the returning rows of filter tensor ``name`` of group ``g``; returns a log line."""
        raise NotImplementedError


class NullSpace(_FilterwiseReinit):
    """Returning filters become random combinations of an orthonormal basis of the
    null space of [survivors; their own values before the drop] (a Householder QR in float64).

    When that null space is too small for the returning filters, only the
    most-overlapping constraint rows are kept ('relaxed'); if even that leaves no
    room, the layer's default init is used ('default'). ``scale``: ``norm-match``
    (mean norm of the survivors), ``clip`` (unit rows, each scaled down as a whole
    until no entry exceeds the bound of PyTorch's uniform init, so they stay in the null space;
    smaller than default-init rows, about 0.3 against 0.6 in norm for K = 288; the same bound
    for a model that declares a Gaussian init, which has none) or
    ``none`` (unit norm).
    """

    option_help = {
        "scale": "Size of re-initialized filters: norm-match, clip or none (null space); keep or none (gram-schmidt)."
    }
    option_flags = {"scale": "--reinit-scale"}

    def __init__(self, scale: Literal["norm-match", "clip", "none"] = "norm-match", **base):
        super().__init__(**base)
        if scale not in ("norm-match", "clip", "none"):
            raise PrunekitError(f"scale must be norm-match, clip or none, got {scale!r}")
        self.scale = scale

    def _reinit_filter(self, ctx: ReinitContext, g: int, name: str) -> str:
        group = ctx.groups[g]
        ret = ctx.returning[g]
        sl = next(s for s in group.slices if s.name == name and s.role == "owner")
        weight = ctx.tensor(name)
        rows = _rows(weight, sl)  # (positions × K), in slice order
        on_ret = ret[sl.channel]
        survivors = rows[~on_ret].double()
        old = before_drop_values(ctx, g, sl, ret).reshape(int(on_ret.sum()), -1).double().to(rows.device)
        d = old.shape[0]
        constraints = torch.cat([survivors, old])
        new, how = null_space_sample(constraints, d, ctx.generator)
        if new is None:
            reset_slice(ctx, g, sl, "default")
            return f"default init ({how})"
        if self.scale == "norm-match":
            ref = survivors if len(survivors) else old
            new = new * ref.norm(dim=1).mean()
        elif self.scale == "clip":
            bound = default_bound(ctx.model.get_submodule(sl.module))
            new = new * (bound / new.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        shaped = new.to(weight.dtype).reshape((d,) + shape_without(weight, sl.dim))
        write_positions(ctx, sl, ret, shaped)
        return how


def _rows(weight: torch.Tensor, sl) -> torch.Tensor:
    moved = weight.detach().movedim(sl.dim, 0)
    return moved.reshape(moved.shape[0], -1)[sl.index.to(weight.device)]


def null_space_sample(constraints: torch.Tensor, needed: int, generator: torch.Generator):
    """``needed`` random orthonormal rows orthogonal to every row of ``constraints`` (r × K).

    A Householder QR of the constraints (K × r, float64 when they are) gives a full
    orthogonal Q whose last K − r columns are an orthonormal basis of their null
    space; the new rows are random combinations of that basis (a Gaussian
    (K − r) × needed matrix, orthonormalised, then multiplied by Q without ever
    forming Q). When r + needed > K there is not enough room, so only the
    ``K - needed`` most-overlapping constraint rows are kept ('relaxed').
    Returns (rows, how), or (None, reason) when no room is left at all.
    """
    r, k = constraints.shape
    if r + needed <= k:
        return _orthogonal_sample(constraints, needed, generator), f"null space (constraints {r}, null dim {k - r})"
    keep = k - needed
    if keep < 1:
        return None, f"{r} constraints in K={k} leave no room for {needed}"
    o = orthogonality(constraints.float(), "filter").double()
    top = constraints[torch.argsort(o, descending=True)[:keep]]
    return _orthogonal_sample(top, needed, generator), (
        f"relaxed null space ({keep} most-overlapping of {r} constraints, null dim {k - keep})"
    )


def _orthogonal_sample(constraints: torch.Tensor, needed: int, generator: torch.Generator) -> torch.Tensor:
    r, k = constraints.shape
    reflectors, tau = torch.geqrf(constraints.T.contiguous())  # Cᵀ = Q R, Q (K × K) kept as reflectors
    mix = torch.randn(k - r, needed, generator=generator, dtype=constraints.dtype)
    mix, _ = torch.linalg.qr(mix)  # orthonormal columns: the new rows stay mutually orthonormal
    coords = torch.zeros(k, needed, dtype=constraints.dtype, device=constraints.device)
    coords[r:] = mix.to(constraints.device)  # coordinates in Q's null-space columns only
    return torch.ormqr(reflectors, tau, coords).T.contiguous()  # Q @ coords


class GramSchmidt(_FilterwiseReinit):
    """The first author's own re-init: each returning filter becomes the Gram–Schmidt residual of its
    *own value before the drop* against the filters before it in the layer, so it comes back close
    to what it was, only orthogonal to its predecessors.

    "Before it" is the layer's own order (output-channel index), as a QR of the whole layer matrix
    gives it: every filter of a lower index, the survivors at their current values and the
    returning filters as re-initialized (the same span as their old values, which is what the QR
    uses). Filters of a higher index do not count, so the first filter of a layer comes back
    unchanged. ``scale``: ``keep`` (the filter's norm before the drop) or ``none`` (unit norm, as
    the QR's column). Where nothing is left of a filter once the filters before it are taken out
    (it lies in their span: the 28th-32nd filters of a layer of fan-in 27, or an exact copy), it
    gets its old value back and the log says so. Bias and the other owner slices get their values
    from before the drop; the consumers' inputs are kept by default (``next_layer``).
    """

    others = "keep"

    def __init__(self, scale: Literal["keep", "none"] = "keep", next_layer: NextLayer = "keep"):
        super().__init__(next_layer=next_layer)
        if scale not in ("keep", "none"):
            raise PrunekitError(f"scale must be keep or none, got {scale!r}")
        self.scale = scale

    def _reinit_filter(self, ctx: ReinitContext, g: int, name: str) -> str:
        group = ctx.groups[g]
        ret = ctx.returning[g]
        sl = next(s for s in group.slices if s.name == name and s.role == "owner")
        weight = ctx.tensor(name)
        moved = weight.detach().movedim(sl.dim, 0)
        layer = moved.reshape(moved.shape[0], -1).double()  # every filter of the layer, in its own order
        pos = sl.positions(ret).to(layer.device)  # the returning filters' rows, in slice order
        old = before_drop_values(ctx, g, sl, ret).reshape(len(pos), -1).double().to(layer.device)
        layer = layer.index_copy(0, pos, old)[: int(pos.max()) + 1]  # rows after the last returning one play no part
        units, room = gram_schmidt(layer)
        units, room = units[pos], room[pos]
        norms = old.norm(dim=1, keepdim=True)
        new = units * norms if self.scale == "keep" else units
        new = torch.where(room[:, None], new, old)
        write_positions(ctx, sl, ret, new.to(weight.dtype).reshape((len(pos),) + shape_without(weight, sl.dim)))
        cos = (units[room] * old[room]).sum(1) / norms[room, 0]
        how = f"gram-schmidt of {len(pos)} old value{'s' if len(pos) != 1 else ''}"
        if len(cos):
            how += f", cos to the old value mean {cos.mean().item():.3f} (min {cos.min().item():.3f})"
        if not room.all():
            how += (
                f"; {int((~room).sum())} kept their old values (in the span of the filters before them: "
                f"K={layer.shape[1]})"
            )
        return how


def gram_schmidt(rows: torch.Tensor, tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit Gram–Schmidt residual of each row of ``rows`` (m × K) against the rows before it,
    and whether it has one: False for a zero row and for a row whose residual is under ``tol`` of its
    norm (in the span of the rows before it), whose unit row is left at zero.

    One Householder QR of the rows (as columns) gives every residual at once: column j of Q, signed
    like R[j, j] so that it points along its own row. A row in the span of those before it would
    make QR's next column an arbitrary direction, so it is taken out (it changes no later span)
    and the QR redone: one more QR per such row among the first K; rows after K independent ones
    have no room at all."""
    m = rows.shape[0]
    norms = rows.norm(dim=1)
    units = torch.zeros_like(rows)
    room = torch.zeros(m, dtype=torch.bool, device=rows.device)
    idx = torch.nonzero(norms > 0).flatten()
    while len(idx):
        q, r = torch.linalg.qr(rows[idx].T)  # reduced: Q is K × n, R is n × len(idx), n = min(K, len(idx))
        n = q.shape[1]
        diag = r.diagonal()
        short = torch.nonzero(diag.abs() <= tol * norms[idx[:n]]).flatten()
        if len(short):
            idx = torch.cat([idx[: int(short[0])], idx[int(short[0]) + 1 :]])
            continue
        sign = torch.where(diag < 0, -1.0, 1.0).to(q.dtype)
        units[idx[:n]] = (q * sign).T
        room[idx[:n]] = True
        break
    return units, room


# --------------------------------------------------------------------------- schedule
class RePrSchedule(Schedule):
    """Train S1 epochs, drop ``prune_ratio``, train S2 epochs, restore; repeat
    ``cycles`` times (default: while a whole cycle plus one more epoch fits in the run)."""

    option_help = {
        "s1": "RePr: full-network epochs per cycle.",
        "s2": "RePr: sub-network epochs per cycle.",
        "prune_ratio": "Fraction of filters dropped per cycle, in (0, 1).",
        "cycles": "RePr: number of cycles (default: as many as fit).",
    }

    def __init__(self, s1: int = 20, s2: int = 10, prune_ratio: float = 0.3, cycles: int | None = None):
        for key, value in (("s1", s1), ("s2", s2)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PrunekitError(f"{key} must be a positive number of epochs, got {value!r}")
        if not isinstance(prune_ratio, (int, float)) or not 0.0 < prune_ratio < 1.0:
            raise PrunekitError(f"prune_ratio must be in (0, 1), got {prune_ratio!r}; e.g. 0.3 drops 30 %")
        if cycles is not None and (not isinstance(cycles, int) or cycles <= 0):
            raise PrunekitError(f"cycles must be a positive integer or unset, got {cycles!r}")
        self.s1, self.s2, self.prune_ratio, self.cycles = s1, s2, float(prune_ratio), cycles

    def validate(self, epochs: int) -> None:
        if self.s1 + self.s2 >= epochs:
            raise PrunekitError(
                f"epochs={epochs} leaves no room for one RePr cycle (needs more than s1 + s2 = {self.s1 + self.s2}); "
                f"raise --epochs or lower --s1/--s2"
            )
        if self.cycles is not None and self.cycles * (self.s1 + self.s2) >= epochs:
            fit = (epochs - 1) // (self.s1 + self.s2)
            raise PrunekitError(
                f"cycles={self.cycles} of s1 + s2 = {self.s1 + self.s2} epochs need more than "
                f"{self.cycles * (self.s1 + self.s2)} epochs, the run has {epochs} (room for {fit}); "
                f"raise --epochs, lower --cycles, or leave --cycles out for as many as fit"
            )

    def _cycle_fits(self, k: int, epochs: int) -> bool:
        if self.cycles is not None and k >= self.cycles:
            return False
        return (k + 1) * (self.s1 + self.s2) < epochs

    def events(self, epoch: int, epochs: int):
        period = self.s1 + self.s2
        k, r = divmod(epoch, period)
        if r == self.s1 and self._cycle_fits(k, epochs):
            return [Drop(self.prune_ratio)]
        if r == 0 and k >= 1 and self._cycle_fits(k - 1, epochs):
            return [Restore()]
        return []

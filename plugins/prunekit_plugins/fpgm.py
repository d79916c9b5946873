"""FPGM (He et al., CVPR 2019): filters near their layer's geometric median are the most replaceable."""

from __future__ import annotations

import torch

from prunekit import RankContext, Ranker


def total_distance(rows: torch.Tensor) -> torch.Tensor:
    """For each row f of ``rows`` (J × K): Σ_j ||w_f − w_j||₂ over the other rows (float64)."""
    if rows.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64, device=rows.device)
    rows = rows.double()
    return torch.cdist(rows[None], rows[None])[0].sum(1)  # the diagonal is zero: "other" rows only


class FPGM(Ranker):
    """Geometric median: drops the filters closest to all others (small summed L2 distance) first.

    A filter's score is its summed Euclidean distance to the group's other live filters, averaged over
    the group's filter tensors; held (dropped) channels are no one's neighbours and score +inf.
    """

    def scores(self, ctx: RankContext) -> list[torch.Tensor]:
        out = []
        for group, dropped in zip(ctx.groups, ctx.dropped):
            alive = ~dropped.cpu()
            total = torch.zeros(group.size, dtype=torch.float64)
            for name in group.filters:
                rows = ctx.filter_rows(group, name)
                score = torch.full((group.size,), float("inf"), dtype=torch.float64)
                score[alive] = total_distance(rows[alive.to(rows.device)]).cpu()
                total += score
            out.append((total / max(len(group.filters), 1)).float())
        return out


__all__ = ["FPGM", "total_distance"]

"""Benjamini-Hochberg / Benjamini-Yekutieli q-values per family, batched over columns.

Matches ``scipy.stats.false_discovery_control`` applied to the finite p-values of each
family: NaN p gives NaN q and is left out of the family size m.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import FDR_METHODS  # stdlib-only leaf module: the one home of the choices

#: on the CPU, gather each column's members into a [depth, K] matrix instead of sorting
#: all F rows when depth (the largest family) is at most this share of F
_GATHER_SHARE = 0.25


def fdr_adjust(p: Tensor, family: Tensor | None = None, method: str = "bh") -> Tensor:
    """q-values for ``p`` [F, K], one family per column.

    ``family`` [F, K] bool selects the members of each column's family (default: all).
    Non-members and NaN p get NaN q. float64 out, p's device.

    Only a column's m member p-values (m its family size) enter its q: on the CPU, when
    the largest family is small against F (module members among all features), they are
    gathered into a [largest family, K] matrix and only that is sorted (cost of the members,
    not of F K). The order among tied p-values does not matter: tied p get the same q
    whatever their order.
    """
    if method not in FDR_METHODS:
        raise ValueError(f"fdr_method must be one of {list(FDR_METHODS)}, got {method!r}")
    p = p.to(torch.float64)
    if p.ndim == 1:
        return fdr_adjust(p[:, None], None if family is None else family[:, None], method)[:, 0]
    member = torch.isfinite(p)
    if family is not None:
        member = member & family.to(p.device)
    f = p.shape[0]
    m = member.sum(dim=0, keepdim=True)  # [1, K] int64
    depth = f
    if family is not None and p.device.type == "cpu" and m.numel():
        depth = int(m.max())  # no host sync to avoid on the CPU (K = 0: no max to take)
    if depth == 0:  # no column has a member
        return torch.full_like(p, float("nan"))
    if depth <= _GATHER_SHARE * f:
        rows, cols, at = _member_slots(member)
        gathered = torch.full((depth, p.shape[1]), float("inf"), dtype=p.dtype,
                              device=p.device)
        gathered[at, cols] = p[rows, cols]
        q = _sorted_qvalues(gathered, m, method)
        out = torch.full_like(p, float("nan"))
        out[rows, cols] = q[at, cols]
        return out
    return _sorted_qvalues(torch.where(member, p, torch.full_like(p, float("inf"))), m,
                           method)


def _member_slots(member: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(row, column, slot) [P] of the True entries of ``member`` [F, K], column by column:
    each entry's slot is its place among its column's members (0, 1, ...)."""
    cols, rows = torch.nonzero(member.T, as_tuple=True)  # column-major: sorted by column
    counts = torch.bincount(cols, minlength=member.shape[1])
    start = torch.cumsum(counts, 0) - counts
    return rows, cols, torch.arange(rows.numel(), device=member.device) - start[cols]


def _sorted_qvalues(keyed: Tensor, m: Tensor, method: str) -> Tensor:
    """q [D, K] of the p-values ``keyed`` [D, K] (float64; +inf: not a member, at least
    D - m of them per column) in families of size ``m`` [1, K] int64: NaN where not a
    member."""
    depth = keyed.shape[0]
    order = torch.argsort(keyed, dim=0, stable=True)
    p_sorted = torch.gather(keyed, 0, order)
    m = m.to(torch.float64)
    rank = torch.arange(1, depth + 1, dtype=torch.float64, device=keyed.device)[:, None]
    scaled = p_sorted * m / rank
    if method == "by":
        harmonic = torch.cumsum(1.0 / rank, dim=0)  # H_i for i = 1..depth
        h_m = torch.gather(harmonic.expand(-1, keyed.shape[1]), 0,
                           (m.long() - 1).clamp_min(0))  # H_m per column
        scaled = scaled * h_m
    in_family = rank <= m
    scaled = torch.where(in_family, scaled, torch.full_like(scaled, float("inf")))
    q_sorted = torch.flip(torch.cummin(torch.flip(scaled, [0]), dim=0).values, [0]).clamp(0.0, 1.0)
    # rows past a column's family hold non-members (keyed +inf): NaN, as every non-member
    q_sorted = torch.where(in_family, q_sorted, torch.full_like(q_sorted, float("nan")))
    return torch.full_like(keyed, float("nan")).scatter_(0, order, q_sorted)

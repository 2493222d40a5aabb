"""Pairwise-complete Pearson correlation: batched against many columns (GEMM form) and
elementwise over broadcast tensors (for the eigengene sign alignment)."""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import (
    InPlace,
    Moments,
    broadcast_column,
    centred_pair_moments,
    masked_moments,
    put_entries,
)

#: a variance below this fraction of the raw second moment is treated as zero
#: (the column is constant on its complete pairs), scaled by the dtype's epsilon
_CONSTANT_RTOL_EPS = 1024.0


def _constant_tolerance(dtype: torch.dtype) -> float:
    return _CONSTANT_RTOL_EPS * torch.finfo(dtype).eps


def pearson_from_moments(m: Moments, min_pairs: int = 3) -> Tensor:
    """Pearson r [F, K] from pairwise-complete moments.

    NaN where fewer than ``min_pairs`` complete pairs or either side is constant on its
    complete pairs (as scipy.stats.pearsonr). Values are centred by their column mean, so a
    column constant on its pairs has identical centred values and a variance at rounding
    level: below ``1024 eps`` of its raw second moment counts as zero. Clipped to [-1, 1].
    The pairs recomputed from their own centred values (``m.centred``) take their r from
    there (NaN where a sync-free selection had no room). Differentiable; without autograd
    in place on its own temporaries (three [F, K] and two bool [F, K]), the packed block's
    broadcast n / sx / sxx read as one column.
    """
    n, sx, sxx = (broadcast_column(t) for t in (m.n, m.sx, m.sxx))
    r = _pearson(n, sx, m.sy, sxx, m.syy, m.sxy, min_pairs)
    c = m.centred
    if c is not None:
        zero = torch.zeros_like(c.va)
        r = put_entries(r, c.index, _pearson(c.n, zero, zero, c.va, c.vb, c.cov, min_pairs))
        if c.lost.shape[0]:
            r = torch.where(c.lost, torch.full_like(r, float("nan")), r)
    return r


def _pearson(n: Tensor, sx: Tensor, sy: Tensor, sxx: Tensor, syy: Tensor, sxy: Tensor,
             min_pairs: int) -> Tensor:
    """r of :func:`pearson_from_moments` from moments that broadcast to [F, K] (x's side
    may be [F, 1]); sy, syy, sxy of the full shape."""
    own = InPlace(n, sx, sy, sxx, syy, sxy)
    safe_n = n.clamp_min(1.0)
    vx = sxx - sx * sx / safe_n
    vy = own.rsub_(own.div_(sy * sy, safe_n), syy)
    cov = own.rsub_(own.div_(sx * sy, safe_n), sxy)
    tol = _constant_tolerance(sxx.dtype)
    invalid = vy <= syy * tol  # bools: in place whatever autograd does
    invalid |= vx <= tol * sxx
    invalid |= n < min_pairs
    denom = own.sqrt_(own.masked_fill_(own.mul_(vy, vx), invalid, 1.0))
    r = own.clamp_(own.div_(cov, denom), -1.0, 1.0)
    return own.masked_fill_(r, invalid, float("nan"))


def masked_pearson(x: Tensor, y: Tensor, min_pairs: int = 3) -> tuple[Tensor, Tensor]:
    """Pairwise-complete Pearson r and pair counts of every column of ``x`` [n, F] against
    every column of ``y`` [n, K].

    Returns ``(r, n)``, both [F, K] on x's device; r in x's dtype (NaN where undefined),
    n as int64. NaN/inf in either input mark missing values.
    """
    y = y.to(dtype=x.dtype, device=x.device)
    m = masked_moments(x, y)
    r = pearson_from_moments(m, min_pairs)
    return r, m.n.round().to(torch.int64)


def paired_pearson(a: Tensor, b: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Pearson r between ``a`` and ``b`` along ``dim`` (broadcasting), pairwise complete.

    Two-pass (exactly centred) and exact about constancy (max == min on the pairs):
    NaN for constant inputs or fewer than 2 pairs
    (:func:`~isograph_gpu.ops.moments.centred_pair_moments`: each side divided by the
    power of two of its pairs, so values of 1e300 or 1e-300 give the same r as values near
    1). Returns ``(r, n)`` with n int64.
    """
    n, cov, va, vb = centred_pair_moments(a, b, dim)
    invalid = (va == 0) | (vb == 0) | (n < 2)
    r = (cov / torch.sqrt(torch.where(invalid, torch.ones_like(va), va * vb))).clamp(-1.0, 1.0)
    return (torch.where(invalid, torch.full_like(r, float("nan")), r),
            n.round().to(torch.int64))

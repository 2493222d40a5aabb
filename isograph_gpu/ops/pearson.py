"""Pairwise-complete Pearson correlation: batched against many columns (GEMM form) and
elementwise over broadcast tensors (for the eigengene sign alignment)."""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import Moments, centred_pair_moments, masked_moments

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
    Differentiable.
    """
    n = m.n
    safe_n = n.clamp_min(1.0)
    vx = m.sxx - m.sx * m.sx / safe_n
    vy = m.syy - m.sy * m.sy / safe_n
    cov = m.sxy - m.sx * m.sy / safe_n
    tol = _constant_tolerance(m.sxx.dtype)
    flat = (vx <= tol * m.sxx) | (vy <= tol * m.syy)
    invalid = flat | (n < min_pairs)
    denom = torch.sqrt(torch.where(invalid, torch.ones_like(vx), vx * vy))
    r = (cov / denom).clamp(-1.0, 1.0)
    return torch.where(invalid, torch.full_like(r, float("nan")), r)


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

"""Pairwise-complete Pearson correlation: batched against many columns (GEMM form) and
elementwise over broadcast tensors (for the eigengene sign alignment)."""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import Moments, masked_moments, power_of_two_scale

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
    NaN for constant inputs or fewer than 2 pairs. Each side is first divided by its
    :func:`~isograph_gpu.ops.moments.power_of_two_scale` along ``dim`` (exact; r does not
    depend on it), so values of 1e300 or 1e-300 give the same r as values near 1.
    Returns ``(r, n)`` with n int64.
    """
    a = a / power_of_two_scale(a, dim)
    b = b / power_of_two_scale(b, dim)
    a, b = torch.broadcast_tensors(a, b)
    both = torch.isfinite(a) & torch.isfinite(b)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    n = both.sum(dim=dim, keepdim=True)
    nf = n.to(a.dtype).clamp_min(1.0)
    a0 = torch.where(both, a, zero)
    b0 = torch.where(both, b, zero)
    da = torch.where(both, a0 - a0.sum(dim=dim, keepdim=True) / nf, zero)
    db = torch.where(both, b0 - b0.sum(dim=dim, keepdim=True) / nf, zero)
    cov = (da * db).sum(dim=dim)
    va = (da * da).sum(dim=dim)
    vb = (db * db).sum(dim=dim)
    inf = torch.full((), float("inf"), dtype=a.dtype, device=a.device)
    flat_a = torch.where(both, a, -inf).amax(dim=dim) == torch.where(both, a, inf).amin(dim=dim)
    flat_b = torch.where(both, b, -inf).amax(dim=dim) == torch.where(both, b, inf).amin(dim=dim)
    n = n.squeeze(dim)
    invalid = flat_a | flat_b | (n < 2)
    r = (cov / torch.sqrt(torch.where(invalid, torch.ones_like(va), va * vb))).clamp(-1.0, 1.0)
    return torch.where(invalid, torch.full_like(r, float("nan")), r), n

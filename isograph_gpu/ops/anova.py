"""One-way ANOVA F of every column of ``y`` across the levels of a categorical variable,
optionally given covariates (ANCOVA: the nested-model F test), with missing values.

For column k the complete samples are those where y_k, the level and every covariate
are present. On them the F statistic compares least squares on ``[1, Z]`` (reduced) with
``[1, Z, level dummies]`` (full)::

    F = ((RSS_0 - RSS_1) / (L_k - 1)) / (RSS_1 / (n_k - C - L_k))

with L_k the levels present among those samples. Without covariates this is the classical
one-way ANOVA (scipy.stats.f_oneway). The normal equations of every column are weighted
Gram matrices, one batched contraction for all columns; the p-value is the exact F
survival function in float64 through the regularized incomplete beta.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .partial import covariate_design
from .pvalues import betainc

_FLAT_RTOL_EPS = 1024.0


def f_pvalue(f: Tensor, df1: Tensor, df2: Tensor) -> Tensor:
    """Survival function of the F(df1, df2) distribution at ``f`` (float64):
    I_{df2 / (df2 + df1 f)}(df2 / 2, df1 / 2); +inf gives 0, NaN gives NaN."""
    f = f.to(torch.float64)
    df1 = df1.to(f)
    df2 = df2.to(f)
    bad = torch.isnan(f) | ~(df1 > 0) | ~(df2 > 0)
    safe_f = torch.where(bad | torch.isinf(f), torch.zeros_like(f), f)
    d1 = torch.where(bad, torch.ones_like(df1), df1)
    d2 = torch.where(bad, torch.ones_like(df2), df2)
    p = betainc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * safe_f))
    p = torch.where(torch.isinf(f), torch.zeros_like(p), p)
    return torch.where(bad, torch.full_like(p, float("nan")), p.clamp(0.0, 1.0))


def _rss(gram: Tensor, cross: Tensor, total: Tensor) -> Tensor:
    """Residual sum of squares [K] of weighted least squares from its normal equations:
    ``total - cross' gram^-1 cross`` (gram [K, P, P], cross [K, P], total [K])."""
    beta = torch.linalg.solve(gram, cross[..., None])[..., 0]
    return total - (cross * beta).sum(dim=-1)


def group_f_test(y: Tensor, levels: Tensor, n_levels: int, z: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """F statistic of each column of ``y`` [n, K] across ``levels`` [n] (int64 codes
    0..n_levels-1, -1 = missing), given covariates ``z`` [n, C] (None: none).

    Returns ``(f, df1, df2, n)``, each [K] on y's device: f in y's dtype (NaN where
    fewer than two levels are present, no residual degree of freedom is left, or y is
    constant on the complete samples; +inf where every level is constant), the degrees
    of freedom as y's dtype and n (complete samples) int64.
    """
    n, k = y.shape
    zc = (torch.zeros((n, 0), dtype=y.dtype, device=y.device) if z is None
          else z.to(dtype=y.dtype, device=y.device))
    c = zc.shape[1]
    design, complete = covariate_design(zc)  # [n, 1 + C]
    has_level = levels >= 0
    dummies = torch.zeros((n, max(n_levels - 1, 0)), dtype=y.dtype, device=y.device)
    coded = has_level & (levels > 0)
    dummies[coded.nonzero()[:, 0], levels[coded] - 1] = 1.0
    full = torch.cat([design, dummies], dim=1)  # [n, P1]
    weight = torch.isfinite(y).to(y.dtype) * (complete * has_level.to(y.dtype))[:, None]
    y0 = torch.where(weight > 0, y, torch.zeros_like(y))
    count = weight.sum(dim=0)
    y0 = (y0 - y0.sum(dim=0) / count.clamp_min(1.0)) * weight  # centred on its samples
    gram = torch.einsum("ni,nk,nj->kij", full, weight, full)  # [K, P1, P1]
    cross = y0.T @ full  # [K, P1]
    total = (y0 * y0).sum(dim=0)
    # levels absent from a column's samples: their dummy is zero there; a unit diagonal
    # fixes its coefficient at 0 without changing the fit
    p0 = 1 + c
    present = torch.diagonal(gram, dim1=-2, dim2=-1)[:, p0:] > 0  # [K, L - 1]
    absent = torch.diag_embed(torch.cat([torch.zeros((k, p0), dtype=torch.bool,
                                                     device=y.device), ~present], dim=1))
    gram = torch.where(absent, torch.ones_like(gram), gram)
    level_counts = torch.zeros((k, n_levels), dtype=y.dtype, device=y.device)
    first = (weight * (has_level & (levels == 0)).to(y.dtype)[:, None]).sum(dim=0)
    level_counts[:, 0] = first
    level_counts[:, 1:] = torch.diagonal(gram, dim1=-2, dim2=-1)[:, p0:] * present
    n_present = (level_counts > 0).sum(dim=1).to(y.dtype)
    df1 = n_present - 1.0
    df2 = count - c - n_present
    ok = (df1 >= 1) & (df2 >= 1)
    eye = torch.eye(full.shape[1], dtype=y.dtype, device=y.device)
    safe_gram = torch.where(ok[:, None, None], gram, eye.expand_as(gram))
    rss1 = _rss(safe_gram, cross, total)
    rss0 = _rss(safe_gram[:, :p0, :p0], cross[:, :p0], total)
    tol = _FLAT_RTOL_EPS * torch.finfo(y.dtype).eps
    flat = rss0 <= tol * total.clamp_min(torch.finfo(y.dtype).tiny)
    within = rss1.clamp_min(0.0)
    f = ((rss0 - rss1).clamp_min(0.0) / df1) / (within / df2)
    f = torch.where(within <= tol * total, torch.full_like(f, float("inf")), f)
    invalid = ~ok | flat | (total <= 0)
    return (torch.where(invalid, torch.full_like(f, float("nan")), f), df1, df2,
            count.round().to(torch.int64))

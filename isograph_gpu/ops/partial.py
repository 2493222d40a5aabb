"""Pairwise-complete partial correlation given covariates, from masked moments (GEMMs)
and one batched small solve per feature and column.

For a feature ``x_f`` and a column ``y_k`` the complete samples are those where x_f, y_k
and every covariate are finite (a sample missing a covariate drops out for every pair).
On them the partial correlation given ``[1, Z]`` is the Pearson r of the residuals of x_f
and of y_k after ordinary least squares on ``[1, Z]``; it equals the Schur complement of
the weighted Gram matrix of ``a = [1, Z, x, y]``::

    S = G_ab,ab - G_ab,d  G_d,d^-1  G_d,ab      (d = [1, Z], ab = [x, y])
    r = S_xy / sqrt(S_xx S_yy)

Every entry of G is a sum over samples of mask x products, so for all (f, k) at once it
is three GEMMs of ``Mx``, ``X0`` and ``X0^2`` (x's finite mask, centred values and their
squares, covariate-incomplete samples zeroed) against a right block of products of ``My``,
``Y0`` and the covariate columns. The p-value has n - 2 - C degrees of freedom
(:func:`partial_pvalue`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import centre_and_mask
from .pvalues import pearson_pvalue

#: a residual variance below this fraction of the raw second moment counts as zero
_FLAT_RTOL_EPS = 1024.0


def covariate_design(z: Tensor) -> tuple[Tensor, Tensor]:
    """``(d, complete)``: the design ``[1, Z]`` [n, C + 1] with the covariates centred and
    scaled over the samples where all of them are finite (exact for r: a linear change of
    the design spans the same space) and zero on the others, and ``complete`` [n] (z's
    dtype, 1.0 / 0.0) marking those samples."""
    n, c = z.shape
    complete = torch.isfinite(z).all(dim=1) if c else torch.ones(n, dtype=torch.bool,
                                                                 device=z.device)
    w = complete.to(z.dtype)
    filled = torch.where(complete[:, None], z, torch.zeros_like(z))
    count = w.sum().clamp_min(1.0)
    centred = (filled - filled.sum(dim=0) / count) * w[:, None]
    spread = centred.abs().amax(dim=0)
    centred = centred / torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.cat([w[:, None], centred], dim=1), w


def partial_moments(x: Tensor, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gram blocks of ``[1, Z, x_f, y_k]`` over each pair's complete samples.

    ``x`` [n, F], ``y`` [n, K], ``z`` [n, C] (NaN = missing; one dtype and device).
    Returns ``(dd, dab, ab)``: dd [F, K, C + 1, C + 1] (the design's Gram), dab
    [F, K, C + 1, 2] (design against x and y), ab [F, K, 2, 2] (x and y against each
    other); x and y centred by their finite means (exact for r). Three GEMMs of [F, n]
    against [n, K (C + 1)^2 + 2 K (C + 1) + 2 K] columns in all.
    """
    d, complete = covariate_design(z)
    n, f = x.shape
    k, p = y.shape[1], d.shape[1]
    mx, x0, _, _ = centre_and_mask(x)
    my, y0, _, _ = centre_and_mask(y)
    mx, x0 = mx * complete[:, None], x0 * complete[:, None]
    pairs = (d[:, :, None] * d[:, None, :]).reshape(n, p * p)  # [n, p^2]
    by_mask_right = torch.cat([
        (my[:, :, None] * pairs[:, None, :]).reshape(n, k * p * p),  # design Gram
        (y0[:, :, None] * d[:, None, :]).reshape(n, k * p),  # design x y
        y0 * y0,  # y y
    ], dim=1)
    by_value_right = torch.cat([(my[:, :, None] * d[:, None, :]).reshape(n, k * p), y0],
                               dim=1)
    by_mask = mx.T @ by_mask_right
    by_value = x0.T @ by_value_right
    by_square = (x0 * x0).T @ my  # x x
    dd = by_mask[:, :k * p * p].reshape(f, k, p, p)
    d_y = by_mask[:, k * p * p:k * p * (p + 1)].reshape(f, k, p)
    yy = by_mask[:, k * p * (p + 1):]
    d_x = by_value[:, :k * p].reshape(f, k, p)
    xy = by_value[:, k * p:]
    dab = torch.stack([d_x, d_y], dim=-1)
    ab = torch.stack([torch.stack([by_square, xy], dim=-1),
                      torch.stack([xy, yy], dim=-1)], dim=-2)
    return dd, dab, ab


def partial_correlation(x: Tensor, y: Tensor, z: Tensor, min_pairs: int = 3
                        ) -> tuple[Tensor, Tensor]:
    """Pairwise-complete partial correlation of every column of ``x`` [n, F] with every
    column of ``y`` [n, K] given the covariates ``z`` [n, C] (NaN = missing).

    Returns ``(r, n)`` [F, K]: r in x's dtype, n int64 (the pair's complete samples).
    NaN where n < ``min_pairs`` or n - 2 - C < 1, where the design is singular on the
    pair's samples (a pivot of its unit-diagonal Cholesky factor below 1024 eps: a
    covariate constant there, or in the span of the others), or where a residual is
    constant (as :func:`~.pearson.pearson_from_moments`). C = 0 gives the
    pairwise-complete Pearson r. One batched Cholesky solve of [F, K] systems of size
    C + 1 on x's device; the (rare) pairs whose Schur complement loses more digits than
    the contract allows are recomputed from their own samples (:func:`_recompute_pairs`:
    one host synchronisation to select them).
    """
    y = y.to(dtype=x.dtype, device=x.device)
    z = z.to(dtype=x.dtype, device=x.device)
    c = z.shape[1]
    dd, dab, ab = partial_moments(x, y, z)
    n = dd[..., 0, 0]
    solution, pivot = _scaled_cholesky_solve(dd, dab)
    tol = _FLAT_RTOL_EPS * torch.finfo(x.dtype).eps
    singular = ~(pivot > tol)
    residual = ab - dab.transpose(-1, -2) @ torch.where(
        singular[..., None, None], torch.zeros_like(solution), solution)
    sxx, syy, sxy = residual[..., 0, 0], residual[..., 1, 1], residual[..., 0, 1]
    flat = (sxx <= tol * ab[..., 0, 0]) | (syy <= tol * ab[..., 1, 1])
    invalid = singular | (n < min_pairs) | (n - 2 - c < 1)
    denom = torch.sqrt(torch.where(invalid | flat, torch.ones_like(sxx), sxx * syy))
    r = (sxy / denom).clamp(-1.0, 1.0)
    r = torch.where(invalid | flat, torch.full_like(r, float("nan")), r)
    # relative error of the Schur complement: eps x (raw / residual moment) x the
    # design's condition (1 / smallest pivot of the unit-diagonal factor)
    lost = torch.finfo(x.dtype).eps / pivot.clamp_min(tol) * (
        ab[..., 0, 0] / sxx.abs().clamp_min(torch.finfo(x.dtype).tiny)
        + ab[..., 1, 1] / syy.abs().clamp_min(torch.finfo(x.dtype).tiny))
    unsafe = ~invalid & (lost > _RECOMPUTE_ABOVE[x.dtype])
    if bool(unsafe.any()):
        where = unsafe.nonzero()
        r[where[:, 0], where[:, 1]] = _recompute_pairs(x, y, z, where, tol)
    return r, n.round().to(torch.int64)


#: relative error of a pair's moments above which it is recomputed from its own samples
_RECOMPUTE_ABOVE = {torch.float64: 1e-12, torch.float32: 1e-4}

#: pairs recomputed at once ([pairs, n, C + 3] values each)
_RECOMPUTE_BATCH = 4096


def _scaled_cholesky_solve(dd: Tensor, dab: Tensor) -> tuple[Tensor, Tensor]:
    """``(dd^-1 dab, pivot)`` of the batched Gram matrices ``dd`` [..., p, p] through the
    Cholesky factor of ``D^-1/2 dd D^-1/2`` (unit diagonal): ``pivot`` [...] is its smallest
    squared diagonal entry, the fraction of a design column's second moment left after
    the columns before it (0 where a column is all zero or the factorisation fails)."""
    diag = dd.diagonal(dim1=-2, dim2=-1)
    scale = torch.where(diag > 0, diag.clamp_min(torch.finfo(dd.dtype).tiny).rsqrt(),
                        torch.zeros_like(diag))
    scaled = dd * scale[..., :, None] * scale[..., None, :]
    eye = torch.eye(dd.shape[-1], dtype=dd.dtype, device=dd.device)
    factor, info = torch.linalg.cholesky_ex(torch.where((diag > 0)[..., None], scaled, eye))
    pivot = factor.diagonal(dim1=-2, dim2=-1).square().amin(dim=-1)
    failed = (info != 0) | ~(diag > 0).all(dim=-1) | ~torch.isfinite(pivot)
    factor = torch.where(failed[..., None, None], eye, factor)
    solution = scale[..., :, None] * torch.cholesky_solve(scale[..., :, None] * dab, factor)
    return solution, torch.where(failed, torch.zeros_like(pivot), pivot)


def _recompute_pairs(x: Tensor, y: Tensor, z: Tensor, where: Tensor, tol: float) -> Tensor:
    """Partial r [P] of the pairs ``where`` [P, 2] (feature, column) from their own
    complete samples: Householder QR of the design over those samples, the residuals of
    x and y, then their Pearson r (NaN where a residual is flat). Exact to the dtype's
    precision whatever the moments lost."""
    d, complete = covariate_design(z)
    out = []
    for a in range(0, len(where), _RECOMPUTE_BATCH):
        f, k = where[a:a + _RECOMPUTE_BATCH, 0], where[a:a + _RECOMPUTE_BATCH, 1]
        xs, ys = x[:, f].T, y[:, k].T  # [P, n]
        m = (torch.isfinite(xs) & torch.isfinite(ys) & (complete > 0)).to(x.dtype)
        values = torch.stack([torch.nan_to_num(xs), torch.nan_to_num(ys)], dim=-1)
        values = values * m[..., None]  # [P, n, 2]
        design = d[None] * m[..., None]  # [P, n, C + 1]: zero rows do not move the fit
        q, _ = torch.linalg.qr(design)
        resid = values - q @ (q.transpose(-1, -2) @ values)
        sxx, syy = resid[..., 0].square().sum(-1), resid[..., 1].square().sum(-1)
        sxy = (resid[..., 0] * resid[..., 1]).sum(-1)
        flat = (sxx <= tol * values[..., 0].square().sum(-1)) | (
            syy <= tol * values[..., 1].square().sum(-1))
        r = (sxy / torch.sqrt(torch.where(flat, torch.ones_like(sxx), sxx * syy))).clamp(-1, 1)
        out.append(torch.where(flat, torch.full_like(r, float("nan")), r))
    return torch.cat(out)


def partial_pvalue(r: Tensor, n: Tensor, n_covariates: int) -> Tensor:
    """Two-sided p (float64) of partial correlations ``r`` on ``n`` complete samples
    given ``n_covariates`` covariates: Student t at n - 2 - C degrees of freedom, i.e.
    :func:`~.pvalues.pearson_pvalue` at n - C pairs."""
    return pearson_pvalue(r, n.to(torch.float64) - float(n_covariates))

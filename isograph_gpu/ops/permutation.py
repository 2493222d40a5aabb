"""Permutation null of the within-gene switch strength, reduced per gene as it goes.

For a chunk of features the null of each gene's switch strength (max r - min r over its
features, :func:`~.segments.switch_strength`) is computed for B sample permutations of the
module scores, a block of permutations at a time: the permuted scores are more columns of the same moment GEMMs
(:func:`~.moments.moments_from_block`), so each null r is pairwise-complete exactly like the
observed r (the features' masks stay; the scores and their missing values move). Each
block's null r is folded at once into running per-(gene, module) maxima and minima
[B, pairs] (:func:`update_null_extremes`), so features of one gene may come in any chunks
and [features, K x B] is never materialised; the exceedance counts are taken at the end
(:func:`null_exceedances`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import RightBlock, Workspace, moments_from_block
from .partial import covariate_design, partial_correlation
from .pearson import pearson_from_moments

#: bytes per feature x null column alive in one permutation block: six moments, r and
#: the GEMM operands' share (float64), rounded up
NULL_BYTES_PER_FEATURE_COLUMN = 96


def sample_permutations(n_samples: int, n_permutations: int, seed: int) -> Tensor:
    """[B, n] int64 on the CPU: B permutations of 0..n-1 from a torch generator seeded
    with ``seed`` (the same on every device and run: draw them once, use them for every
    chunk and module)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.stack([torch.randperm(n_samples, generator=generator)
                        for _ in range(n_permutations)]) if n_permutations else torch.empty(
        (0, n_samples), dtype=torch.int64)


def permutation_block(n_features: int, n_modules: int, n_permutations: int,
                      memory_budget_bytes: int, n_covariates: int = 0) -> int:
    """Permutations per block so that one block's null statistics of ``n_features`` x
    ``n_modules`` fit ``memory_budget_bytes`` (at least 1); with covariates each null
    column also holds its (C + 3)^2 Gram entries (:mod:`.partial`), twice."""
    per_column = NULL_BYTES_PER_FEATURE_COLUMN + (16 * (n_covariates + 3) ** 2
                                                 if n_covariates else 0)
    per_permutation = max(1, n_features * n_modules * per_column)
    return max(1, min(max(n_permutations, 1), memory_budget_bytes // per_permutation))


def null_correlations(x: Tensor, scores: Tensor, orders: Tensor, *, min_pairs: int,
                      workspace: Workspace | None = None,
                      covariates: Tensor | None = None,
                      residuals: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """[F, K, b] null r of every column of ``x`` [n, F] (NaN = missing) against the
    module scores ``scores`` [n, K] (x's dtype and device) permuted by each of ``orders``
    [b, n]: more columns of the same moment GEMMs, so each null r is pairwise-complete
    exactly like the observed r (x's masks stay; the scores and their missing values
    move). With ``covariates`` [n, C] the r are partial given them and the permuted
    columns are ``fitted + residual[order]`` of ``residuals`` (:func:`score_residuals`:
    Freedman-Lane)."""
    n, k = scores.shape
    b = orders.shape[0]
    if covariates is None:
        permuted = scores[orders].permute(1, 2, 0).reshape(n, k * b)  # column k * b + j
        # scores without missing values: the packed block (n, sx, sxx shared by all
        # columns), 3 K b GEMM columns instead of 6 K b
        right = RightBlock.build(permuted, None, dtype=x.dtype, device=x.device, pack=True)
        if workspace is None:
            workspace = Workspace(n, x.shape[1], x.dtype, x.device)
        r = pearson_from_moments(moments_from_block(x, right, workspace)[0], min_pairs)
    else:
        fitted, residual = residuals if residuals is not None else score_residuals(
            scores, covariates)
        permuted = (fitted[:, :, None] + residual[orders].permute(1, 2, 0)).reshape(n, k * b)
        r = partial_correlation(x, permuted, covariates, min_pairs)[0]
    return r.reshape(x.shape[1], k, b)


def null_extremes(n_permutations: int, n_pairs: int, dtype: torch.dtype,
                  device: torch.device) -> tuple[Tensor, Tensor]:
    """``(hi, lo)`` [B, P + 1]: the running max / min of the null r of each of ``P``
    (gene, module) pairs under each permutation, before any feature (-inf / +inf); the
    last column takes the features of no pair (:func:`update_null_extremes`)."""
    hi = torch.full((n_permutations, n_pairs + 1), -float("inf"), dtype=dtype, device=device)
    return hi, torch.full_like(hi, float("inf"))


def update_null_extremes(hi: Tensor, lo: Tensor, start: int, r: Tensor, pairs: Tensor) -> None:
    """Fold the null r ``r`` [F, K, b] of permutations start..start + b into the running
    extremes ``hi`` / ``lo`` [B, P + 1] (:func:`null_extremes`) in place: ``pairs``
    [F, K] int64 the pair of each feature and module (-1: none). Non-finite r are
    skipped, so the result does not depend on how the features are chunked."""
    f, k, b = r.shape
    slot = torch.where(pairs < 0, torch.full_like(pairs, hi.shape[1] - 1), pairs)
    index = slot.reshape(1, f * k).expand(b, -1)
    values = r.reshape(f * k, b).T  # [b, F K]
    finite = torch.isfinite(values)
    hi[start:start + b].scatter_reduce_(
        1, index, torch.where(finite, values, torch.full_like(values, -float("inf"))), "amax")
    lo[start:start + b].scatter_reduce_(
        1, index, torch.where(finite, values, torch.full_like(values, float("inf"))), "amin")


def null_exceedances(hi: Tensor, lo: Tensor, observed: Tensor) -> Tensor:
    """[P] int64: per pair, how many permutations give a null switch strength (max r -
    min r of the pair's finite null r, 0 with fewer than two: as the observed) >= the
    observed ``observed`` [P] (:func:`update_null_extremes`' ``hi`` / ``lo``)."""
    hi, lo = hi[:, :-1], lo[:, :-1]
    null = torch.where(hi > lo, hi - lo, torch.zeros_like(hi))  # one finite r: hi == lo
    return (null >= observed.to(null.dtype)[None, :]).sum(dim=0)


def switch_null_exceedances(x: Tensor, scores: Tensor, segment: Tensor, n_segments: int,
                            observed: Tensor, permutations: Tensor, *, min_pairs: int,
                            block: int, covariates: Tensor | None = None) -> Tensor:
    """Per gene and module, how many permutations give a switch strength >= the observed.

    ``x`` [n, F] features (NaN = missing), ``scores`` [n, K] the module scores
    (unpermuted), ``segment`` [F] int64 gene of each feature (0..G-1), ``observed``
    [G, K] the observed switch strength, ``permutations`` [B, n] sample orders
    (:func:`sample_permutations`), ``block`` permutations per GEMM pass
    (:func:`permutation_block`). Returns [G, K] int64 on x's device. A gene with fewer
    than two finite null r has null strength 0 (as the observed). Every feature is tested
    against every module: the (gene, module) pairs are ``segment * K + k``.

    ``covariates`` [n, C] (None: none): the r are partial given them
    (:func:`~.partial.partial_correlation`) and the null permutes the scores' residuals
    on [1, Z] (Freedman-Lane: fitted values stay with their samples).
    """
    k = scores.shape[1]
    scores = scores.to(dtype=x.dtype, device=x.device)
    residuals = None
    if covariates is not None:
        covariates = covariates.to(dtype=x.dtype, device=x.device)
        residuals = score_residuals(scores, covariates)
    pairs = segment.to(x.device)[:, None] * k + torch.arange(k, device=x.device)
    hi, lo = null_extremes(permutations.shape[0], n_segments * k, x.dtype, x.device)
    fold_null(hi, lo, x, scores, pairs, permutations.to(x.device), min_pairs=min_pairs,
              block=block, covariates=covariates, residuals=residuals)
    return null_exceedances(hi, lo, observed.to(x.device).reshape(-1)).reshape(n_segments, k)


def fold_null(hi: Tensor, lo: Tensor, x: Tensor, scores: Tensor, pairs: Tensor,
              permutations: Tensor, *, min_pairs: int, block: int,
              covariates: Tensor | None = None,
              residuals: tuple[Tensor, Tensor] | None = None) -> None:
    """Fold the null r of the features ``x`` [n, F] against ``scores`` [n, K] under all
    ``permutations`` [B, n] (``block`` at a time) into ``hi`` / ``lo`` [B, P + 1]
    (:func:`update_null_extremes`; ``pairs`` [F, K]); ``covariates`` and ``residuals``
    as :func:`null_correlations`. Everything on x's device and dtype."""
    workspace = Workspace(x.shape[0], x.shape[1], x.dtype, x.device)
    for start in range(0, permutations.shape[0], block):
        r = null_correlations(x, scores, permutations[start:start + block],
                              min_pairs=min_pairs, workspace=workspace,
                              covariates=covariates, residuals=residuals)
        update_null_extremes(hi, lo, start, r, pairs)


def score_residuals(scores: Tensor, covariates: Tensor) -> tuple[Tensor, Tensor]:
    """``(fitted, residual)`` [n, K] of least squares of each score column on [1, Z]
    over the samples where it and every covariate are finite (NaN elsewhere, so a
    sample without a covariate stays out of every null r)."""
    design, complete = covariate_design(covariates)
    weight = torch.isfinite(scores).to(scores.dtype) * complete[:, None]
    filled = torch.where(weight > 0, scores, torch.zeros_like(scores))
    gram = torch.einsum("ni,nk,nj->kij", design, weight, design)
    beta = torch.linalg.lstsq(gram, (design.T @ filled).T[..., None]).solution[..., 0]
    fitted = design @ beta.T
    nan = torch.full_like(fitted, float("nan"))
    return (torch.where(complete[:, None] > 0, fitted, nan),
            torch.where(weight > 0, filled - fitted, nan))


def permutation_pvalue(exceedances: Tensor, n_permutations: int) -> Tensor:
    """(1 + #{null >= observed}) / (B + 1), float64 (never 0: the observed counts once)."""
    return (exceedances.to(torch.float64) + 1.0) / float(n_permutations + 1)

"""Permutation null of the within-gene switch strength, reduced per gene as it goes.

For one chunk of features (whole genes: every feature of a gene in the chunk) the null
of each gene's switch strength (max r - min r over its features, :func:`~.segments.switch_strength`)
is computed for B sample permutations of the module scores, a block of permutations at a
time: the permuted scores are more columns of the same moment GEMMs
(:func:`~.moments.moments_from_block`), so each null r is pairwise-complete exactly like the
observed r (the features' masks stay; the scores and their missing values move). Only
the exceedance counts [G, K] leave a block: [features, K x B] is never materialised.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import RightBlock, Workspace, moments_from_block
from .partial import covariate_design, partial_correlation
from .pearson import pearson_from_moments
from .segments import switch_strength

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


def switch_null_exceedances(x: Tensor, scores: Tensor, segment: Tensor, n_segments: int,
                            observed: Tensor, permutations: Tensor, *, min_pairs: int,
                            block: int, covariates: Tensor | None = None) -> Tensor:
    """Per gene and module, how many permutations give a switch strength >= the observed.

    ``x`` [n, F] features of whole genes (NaN = missing), ``scores`` [n, K] the module
    scores (unpermuted), ``segment`` [F] int64 gene of each feature (0..G-1),
    ``observed`` [G, K] the observed switch strength, ``permutations`` [B, n] sample
    orders (:func:`sample_permutations`), ``block`` permutations per GEMM pass
    (:func:`permutation_block`). Returns [G, K] int64 on x's device. A gene with fewer
    than two finite null r has null strength 0 (as the observed).

    ``covariates`` [n, C] (None: none): the r are partial given them
    (:func:`~.partial.partial_correlation`) and the null permutes the scores' residuals
    on [1, Z] (Freedman-Lane: fitted values stay with their samples).
    """
    n, k = scores.shape
    scores = scores.to(dtype=x.dtype, device=x.device)
    if covariates is not None:
        covariates = covariates.to(dtype=x.dtype, device=x.device)
        fitted, residual = score_residuals(scores, covariates)
    permutations = permutations.to(x.device)
    segment = segment.to(x.device)
    observed = observed.to(device=x.device, dtype=x.dtype)
    counts = torch.zeros((n_segments, k), dtype=torch.int64, device=x.device)
    workspace = Workspace(n, x.shape[1], x.dtype, x.device)
    for start in range(0, permutations.shape[0], block):
        orders = permutations[start:start + block]  # [b, n]
        b = orders.shape[0]
        if covariates is None:
            permuted = scores[orders].permute(1, 2, 0).reshape(n, k * b)  # column k * b + j
            # scores without missing values: the packed block (n, sx, sxx shared by all
            # columns), 3 K b GEMM columns instead of 6 K b
            right = RightBlock.build(permuted, None, dtype=x.dtype, device=x.device, pack=True)
            r = pearson_from_moments(moments_from_block(x, right, workspace)[0], min_pairs)
        else:
            permuted = (fitted[:, :, None] + residual[orders].permute(1, 2, 0)).reshape(
                n, k * b)
            r = partial_correlation(x, permuted, covariates, min_pairs)[0]
        null = switch_strength(r, segment, n_segments).reshape(n_segments, k, b)
        counts += (null >= observed[:, :, None]).sum(dim=2)
    return counts


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

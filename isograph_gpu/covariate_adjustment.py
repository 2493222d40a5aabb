"""Covariate-adjusted driver and polarity statistics (``--covariates``): the partial r, its
complete-sample count and exact p (n - 2 - C degrees of freedom) of chosen feature
columns against the module scores, in chunks under the memory budget, written over the
unadjusted r / n / p that the engine computed for the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .ops.partial import partial_correlation, partial_pvalue
from .switch_significance import feature_columns

#: bytes per feature x module of one chunk: the (C + 3)^2 Gram entries of
#: :mod:`isograph_gpu.ops.partial`, the solve's copy and r / p, in float64
_BYTES_PER_GRAM_ENTRY = 3 * 8


def adjust_rows(r: torch.Tensor, n: torch.Tensor, pvalue: torch.Tensor, features: Any,
                rows: np.ndarray, scores: torch.Tensor, covariates: np.ndarray, *,
                min_pairs: int, device: torch.device, dtype: torch.dtype,
                memory_budget_bytes: int) -> None:
    """Overwrite rows ``rows`` of ``r`` / ``n`` / ``pvalue`` [F, K] (device tensors) with
    the partial statistics of the columns ``rows`` of ``features`` [n, F] (an array or
    a block reader) against ``scores`` [n, K] given ``covariates`` [n, C] (host, NaN =
    missing)."""
    k, c = scores.shape[1], covariates.shape[1]
    z = torch.from_numpy(np.ascontiguousarray(covariates)).to(device=device, dtype=dtype)
    y = scores.to(device=device, dtype=dtype)
    per_feature = k * (c + 3) ** 2 * _BYTES_PER_GRAM_ENTRY + features.shape[0] * 4 * 8
    step = max(1, memory_budget_bytes // per_feature)
    for a in range(0, len(rows), step):
        chunk = rows[a:a + step]
        x = torch.from_numpy(feature_columns(features, chunk)).to(device=device, dtype=dtype)
        r_part, n_part = partial_correlation(x, y, z, min_pairs)
        index = torch.from_numpy(chunk).to(r.device)
        r[index] = r_part.to(r.dtype)
        n[index] = n_part
        pvalue[index] = partial_pvalue(r_part, n_part, c)

"""The VAE encoder input: feature_scores (samples x rows) in checkpoint order, NaNs imputed.

The reference feeds NaNs to the encoder as-is, which turns every latent, every decoded delta
and every IG attribution into NaN. Here each NaN is replaced by its feature's mean over the
samples (a feature that is NaN everywhere by 0, the centre of the z-scored channels) and a
``UserWarning`` says how many values were imputed.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..ops.moments import finite_column_means


def impute_feature_means(scores: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Replace NaN/inf by the column's finite mean over rows (0 when none is finite).

    ``scores`` is (n samples, d features) float. Returns float64 values (``scores`` itself
    when nothing needs replacing, else an imputed copy), the number of values replaced and
    the number of affected features.
    """
    x = np.asarray(scores, dtype=np.float64)
    finite_cols = np.isfinite(x).all(axis=0)
    if finite_cols.all():
        return x, 0, 0
    cols = np.flatnonzero(~finite_cols)
    x = x.copy()
    sub = x[:, cols]
    bad = ~np.isfinite(sub)
    means, _ = finite_column_means(torch.from_numpy(sub))
    means = torch.nan_to_num(means, nan=0.0).numpy()
    sub[bad] = np.broadcast_to(means, sub.shape)[bad]
    x[:, cols] = sub
    return x, int(bad.sum()), len(cols)


def encoder_input(scores: np.ndarray, order: np.ndarray, device: torch.device,
                  dtype: torch.dtype, source: str = "feature_scores.parquet") -> torch.Tensor:
    """(n, d) encoder input on ``device``: columns ``scores[:, order]``, NaNs imputed (warned)."""
    scores = np.asarray(scores)
    if not np.array_equal(order, np.arange(scores.shape[1])):
        scores = scores[:, order]
    x, n_bad, n_cols = impute_feature_means(scores)
    if n_bad:
        warnings.warn(
            f"{source} has {n_bad} missing value(s) in {n_cols} row(s); for VAE attribution "
            "and Integrated Gradients each is imputed with its feature's mean over samples "
            "(0 for an all-missing row) instead of propagating NaN as isograph 0.1.5 does",
            UserWarning, stacklevel=3,
        )
    host_dtype = _NUMPY_DTYPES.get(dtype)
    if host_dtype is not None and x.dtype != host_dtype:
        x = x.astype(host_dtype, order="C")  # on the host: faster than torch's CPU cast
    elif not x.flags.writeable or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x).copy()
    return torch.from_numpy(x).to(device=device, dtype=dtype)


_NUMPY_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}

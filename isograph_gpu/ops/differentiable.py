"""Autograd-safe pairwise-complete Pearson for training loops.

:func:`isograph_gpu.ops.moments.masked_moments` squares its centred block in place to save
memory, which autograd cannot differentiate through. This module forms the same moment
GEMMs out of place (the same centring, masks and :func:`pearson_from_moments`), so
gradients flow into both the features and the scores. Memory: one extra [n, F] block.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moments import Moments, centre_and_mask
from .pearson import pearson_from_moments

__all__ = ["differentiable_masked_moments", "differentiable_masked_pearson"]


def differentiable_masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] ([F, K] each), as
    :func:`~isograph_gpu.ops.moments.masked_moments` but without in-place updates."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"masked_moments expects [n, F] and [n, K] with equal n, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    y = y.to(dtype=x.dtype, device=x.device)
    mx, x0, _ = centre_and_mask(x)
    my, y0, _ = centre_and_mask(y)
    x0t = x0.T
    return Moments(
        n=mx.T @ my,
        sx=x0t @ my,
        sy=mx.T @ y0,
        sxx=(x0 * x0).T @ my,
        syy=mx.T @ (y0 * y0),
        sxy=x0t @ y0,
    )


def differentiable_masked_pearson(
    x: Tensor, y: Tensor, min_pairs: int = 3
) -> tuple[Tensor, Tensor]:
    """``(r, n)`` [F, K] as :func:`~isograph_gpu.ops.pearson.masked_pearson`, with r
    differentiable in both ``x`` [n, F] and ``y`` [n, K]; n int64."""
    y = y.to(dtype=x.dtype, device=x.device)
    m = differentiable_masked_moments(x, y)
    r = pearson_from_moments(m, min_pairs)
    return r, m.n.detach().round().to(torch.int64)

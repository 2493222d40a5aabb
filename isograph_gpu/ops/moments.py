"""Masked moments of every feature against every column of a second matrix, as GEMMs.

For features ``x`` (samples x F) and columns ``y`` (samples x K), both with NaN for
missing, the pairwise-complete moments over samples where both are finite are::

    n   = Mx' My          sx  = X0' My        sxx = (X0*X0)' My
    sy  = Mx' Y0          syy = Mx' (Y0*Y0)   sxy = X0' Y0

with ``M`` the finite masks and ``X0``/``Y0`` the values centred by their column nan-mean
and zero-filled. Centring first keeps float32 accurate. All six come out of one GEMM of
the stacked left block ``[Mx | X0 | X0^2]`` against ``[My | Y0 | Y0^2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Moments:
    """Pairwise-complete moments, each a tensor of shape ``[F, K]``.

    ``sx``/``sxx`` are moments of the centred x (centre ``x_centre``), ``sy``/``syy`` of the
    centred y (centre ``y_centre``).
    """

    n: Tensor
    sx: Tensor
    sy: Tensor
    sxx: Tensor
    syy: Tensor
    sxy: Tensor


def centre_and_mask(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split ``x`` [n, F] into (finite mask, centred zero-filled values, column centres).

    The mask has x's dtype (1.0 / 0.0) so it can enter GEMMs; a column with no finite
    value gets centre 0.
    """
    finite = torch.isfinite(x)
    mask = finite.to(x.dtype)
    filled = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
    count = mask.sum(dim=0)
    centre = filled.sum(dim=0) / count.clamp_min(1.0)
    centred = torch.where(finite, x - centre, torch.zeros((), dtype=x.dtype, device=x.device))
    return mask, centred, centre


def masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K].

    Both on the same device and floating dtype; NaN/inf mark missing values. One GEMM of
    shape [3F, n] x [n, 3K]; the result is on ``x``'s device and dtype.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"masked_moments expects [n, F] and [n, K] with equal n, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    y = y.to(dtype=x.dtype, device=x.device)
    mx, x0, _ = centre_and_mask(x)
    my, y0, _ = centre_and_mask(y)
    f, k = x.shape[1], y.shape[1]
    left = torch.cat([mx, x0, x0 * x0], dim=1)  # [n, 3F]
    right = torch.cat([my, y0, y0 * y0], dim=1)  # [n, 3K]
    prod = left.T @ right  # [3F, 3K]
    return Moments(
        n=prod[:f, :k],
        sx=prod[f : 2 * f, :k],
        sy=prod[:f, k : 2 * k],
        sxx=prod[2 * f :, :k],
        syy=prod[:f, 2 * k :],
        sxy=prod[f : 2 * f, k : 2 * k],
    )

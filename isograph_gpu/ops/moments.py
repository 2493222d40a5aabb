"""Masked moments of every feature against every column of a second matrix, as GEMMs.

For features ``x`` (samples x F) and columns ``y`` (samples x K), both with NaN for
missing, the pairwise-complete moments over samples where both are finite are::

    n   = Mx' My          sx  = X0' My        sxx = (X0*X0)' My
    sy  = Mx' Y0          syy = Mx' (Y0*Y0)   sxy = X0' Y0

with ``M`` the finite masks and ``X0``/``Y0`` the values centred by their column nan-mean
and zero-filled. Centring first keeps float32 accurate. All six, and the group sums of
any contrast, come out of three GEMMs of ``Mx``, ``X0`` and ``X0^2`` against the stacked
block ``[My | Y0 | Y0^2 | groups]``.
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
    value gets centre 0. Four passes over x, in place unless autograd tracks x; ``x``
    itself is never modified.
    """
    finite = torch.isfinite(x)
    mask = finite.to(x.dtype)
    centred = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
    centre = centred.sum(dim=0) / mask.sum(dim=0).clamp_min(1.0)
    if centred.requires_grad and torch.is_grad_enabled():  # autograd: out of place
        centred = (centred - centre) * mask
    else:
        centred.sub_(centre).mul_(mask)
    return mask, centred, centre


@dataclass
class GroupSums:
    """Per-feature count, sum and sum of squares of the centred values in each group,
    each [F, G]; add ``centre`` [F] back for means."""

    count: Tensor
    total: Tensor
    squares: Tensor
    centre: Tensor


def masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] (NaN = missing)."""
    return moments_and_group_sums(x, y)[0]


def moments_and_group_sums(x: Tensor, y: Tensor, groups: Tensor | None = None
                           ) -> tuple[Moments, GroupSums | None]:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K], and optionally the
    group sums of x for 0/1 ``groups`` [n, G].

    All inputs on one device; NaN/inf mark missing values. Three GEMMs of [F, n] against
    the stacked right block [n, 3K + G]; results on x's device and dtype.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"masked_moments expects [n, F] and [n, K] with equal n, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    y = y.to(dtype=x.dtype, device=x.device)
    k = y.shape[1]
    my, y0, _ = centre_and_mask(y)
    blocks = [my, y0, y0 * y0]
    if groups is not None:
        blocks.append(groups.to(dtype=x.dtype, device=x.device))
    right = torch.cat(blocks, dim=1)  # [n, 3K + G]
    mx, x0, centre = centre_and_mask(x)
    by_mask = mx.T @ right
    by_value = x0.T @ right
    # x0 is ours: square in place unless autograd needs it (training loops)
    tracked = torch.is_grad_enabled() and (x0.requires_grad or right.requires_grad)
    squared = x0 * x0 if tracked else x0.square_()  # x0 is saved for backward when tracked
    by_square = squared.T @ right
    moments = Moments(n=by_mask[:, :k], sx=by_value[:, :k], sy=by_mask[:, k : 2 * k],
                      sxx=by_square[:, :k], syy=by_mask[:, 2 * k : 3 * k],
                      sxy=by_value[:, k : 2 * k])
    if groups is None:
        return moments, None
    g = slice(3 * k, None)
    return moments, GroupSums(count=by_mask[:, g], total=by_value[:, g],
                              squares=by_square[:, g], centre=centre)

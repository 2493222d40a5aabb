"""Backend dispatch: fused CuPy kernels (``kernels/*.cu``) on CUDA when CuPy is installed,
plain torch (:mod:`isograph_gpu.ops`) everywhere else and whenever gradients are needed.

Each function takes and returns torch tensors on the input's device; results are equal
within float rounding whichever path runs (``tests/test_cuda_kernels.py``).
"""

from __future__ import annotations

from torch import Tensor

from ..ops.contrast import group_sums as torch_group_sums
from ..ops.moments import Moments, centre_and_mask
from ..ops.moments import masked_moments as torch_masked_moments
from . import cupy_kernels

__all__ = ["group_sums", "kernels_enabled", "masked_moments"]


def kernels_enabled(*tensors: Tensor) -> bool:
    """True when the fused kernels will run for these inputs: all on CUDA, float32/64,
    none needing gradients, and CuPy available."""
    return all(t.is_cuda and not t.requires_grad for t in tensors) and cupy_kernels.available()


def masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] ([F, K] each)."""
    if kernels_enabled(x, y):
        return cupy_kernels.masked_moments(x, y)
    return torch_masked_moments(x, y)


def group_sums(
    x: Tensor, high: Tensor, low: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(count_h, sum_h, sq_h, count_l, sum_l, sq_l, centre) of ``x`` [n, F] for the
    high/low memberships ``high``/``low`` bool [n, K]; sums of centred values, [F, K]."""
    if kernels_enabled(x):
        return cupy_kernels.group_sums(x, high, low)
    mask, centred, centre = centre_and_mask(x)
    ch, sh, qh = torch_group_sums(mask, centred, high)
    cl, sl, ql = torch_group_sums(mask, centred, low)
    return ch, sh, qh, cl, sl, ql, centre

"""Backend dispatch: fused CuPy kernels (``kernels/*.cu``) on CUDA when CuPy is installed,
plain torch (:mod:`isograph_gpu.ops`) everywhere else and whenever gradients are needed.

Each function takes and returns torch tensors on the input's device; results are equal
within float rounding whichever path runs (``tests/test_cuda_kernels.py``).
"""

from __future__ import annotations

import os
from dataclasses import replace

from torch import Tensor

from ..ops.moments import GroupSums, Moments, scaled_columns
from ..ops.moments import masked_moments as torch_masked_moments
from ..ops.moments import moments_and_group_sums as torch_moments_and_group_sums
from . import cupy_kernels

__all__ = ["kernels_enabled", "masked_moments", "moments_and_group_sums"]

#: set to 0 to run the torch path on CUDA too (for comparisons and debugging)
KERNELS_ENV = "ISOGRAPH_GPU_KERNELS"


def kernels_enabled(*tensors: Tensor) -> bool:
    """True when the fused kernels will run for these inputs: all on CUDA, float32/64,
    none needing gradients, CuPy available, and not switched off with
    ``ISOGRAPH_GPU_KERNELS=0``."""
    if os.environ.get(KERNELS_ENV, "1").strip() in {"0", "false", "no", "off"}:
        return False
    return all(t.is_cuda and not t.requires_grad for t in tensors) and cupy_kernels.available()


def masked_moments(x: Tensor, y: Tensor) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] ([F, K] each)."""
    if kernels_enabled(x, y):
        return cupy_kernels.masked_moments(x, y)
    return torch_masked_moments(x, y)


def moments_and_group_sums(x: Tensor, y: Tensor, groups: Tensor | None = None
                           ) -> tuple[Moments, GroupSums | None]:
    """Moments of ``x`` [n, F] against ``y`` [n, K] and group sums for 0/1 ``groups``
    [n, G], as :func:`isograph_gpu.ops.moments.moments_and_group_sums`."""
    if kernels_enabled(x, y):  # the kernels take power-of-two scaled copies (1e300 safe)
        x, scale = scaled_columns(x)
        moments, sums = cupy_kernels.moments_and_group_sums(x, scaled_columns(y)[0], groups)
        return moments, None if sums is None else replace(sums, scale=scale)
    return torch_moments_and_group_sums(x, y, groups)

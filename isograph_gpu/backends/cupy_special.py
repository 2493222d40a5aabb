"""``cupyx.scipy.special.betainc`` on torch CUDA tensors: zero-copy through DLPack, on
torch's current stream, so it composes with torch ops without host synchronisation.

CuPy is optional (``pip install 'isograph-gpu[cuda12]'`` or ``[cuda13]``, matching
``torch.version.cuda``). :func:`available` says whether this path can run;
``ISOGRAPH_GPU_CUPY=0`` switches it off (the float64 torch betainc then runs on CUDA).
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["CUPY_ENV", "available", "betainc", "cuda_major_mismatch"]

#: set to 0 to compute p-values with the torch betainc on CUDA even when CuPy is installed
CUPY_ENV = "ISOGRAPH_GPU_CUPY"


def cuda_major_mismatch(cupy_runtime_version: int, torch_cuda: str | None) -> str | None:
    """A one-line warning when CuPy's CUDA runtime major (``runtimeGetVersion()``, e.g.
    12080) differs from torch's (``torch.version.cuda``, e.g. "13.0"); None when they
    match or torch has no CUDA."""
    if not torch_cuda:
        return None
    cupy_major = int(cupy_runtime_version) // 1000
    torch_major = int(str(torch_cuda).split(".")[0])
    if cupy_major == torch_major:
        return None
    return (f"CuPy is built for CUDA {cupy_major} but torch for CUDA {torch_major}; "
            f"p-values use the torch betainc instead of CuPy's. Install the matching extra: "
            f"pip install 'isograph-gpu[cuda{torch_major}]'")


@functools.cache
def _cupy() -> tuple[Any, Any] | None:
    """(cupy, cupyx.scipy.special), or None when CuPy cannot run here. Warns once when its
    CUDA major differs from torch's (and returns None then)."""
    try:
        import cupy
        import cupyx.scipy.special as special

        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Exception:  # ImportError, or a CuPy without a usable CUDA runtime/driver
        return None
    message = cuda_major_mismatch(runtime, torch.version.cuda)
    if message is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return None
    return cupy, special


def available() -> bool:
    """True when CuPy's betainc can run: not switched off with ``ISOGRAPH_GPU_CUPY=0``,
    torch sees a CUDA device, and a CuPy for the same CUDA major imports."""
    if os.environ.get(CUPY_ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return torch.cuda.is_available() and _cupy() is not None


def betainc(a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """Regularized incomplete beta I_x(a, b) of float64 tensors of one shape on one CUDA
    device, by ``cupyx.scipy.special.betainc``; float64 result on that device, no
    gradient. Inputs and output are shared with CuPy through DLPack (no copies beyond
    making broadcast inputs contiguous) and the kernel runs on torch's current stream."""
    found = _cupy()
    if found is None:
        raise RuntimeError("CuPy is not available: use isograph_gpu.ops.betainc.betainc")
    cp, special = found
    if x.numel() == 0:
        return torch.empty(x.shape, dtype=torch.float64, device=x.device)
    on_cuda = x.device.type == "cuda"
    index = (x.device.index if x.device.index is not None else torch.cuda.current_device()
             ) if on_cuda else 0
    handle = torch.cuda.current_stream(x.device).cuda_stream if on_cuda else 0
    with cp.cuda.Device(index):
        # torch's default stream is CUDA's legacy stream 0: CuPy's null stream is the same
        stream = cp.cuda.ExternalStream(handle) if handle else cp.cuda.Stream.null
        with stream:
            out = special.betainc(*(cp.from_dlpack(t.detach().contiguous()) for t in (a, b, x)))
            return torch.from_dlpack(out)

"""Fused CUDA kernels from ``kernels/*.cu``, loaded with CuPy ``RawModule`` (compiled once
per process and cached by CuPy on disk), called on torch tensors through DLPack.

Each entry point takes and returns torch CUDA tensors and runs on torch's current stream,
so it composes with torch ops without host synchronisation. The torch implementations in
:mod:`isograph_gpu.ops` are the fallback and the test oracle
(``tests/test_cuda_kernels.py``). CuPy is optional: :func:`available` says whether the
kernels can run here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..ops.moments import GroupSums, Moments

__all__ = [
    "KERNEL_DIR",
    "available",
    "group_sums",
    "masked_moments",
    "moments_and_group_sums",
    "segment_extrema",
]

def _kernel_dir() -> Path:
    """``isograph_gpu/kernels`` in an installed wheel (setup.py copies them there), else
    ``kernels/`` at the repository root (source checkouts, editable installs)."""
    package = Path(__file__).resolve().parents[1] / "kernels"
    return package if package.is_dir() else Path(__file__).resolve().parents[2] / "kernels"


KERNEL_DIR = _kernel_dir()
_BLOCK = 128
_KT = 8  # module tile of masked_moments.cu / group_sums.cu (#define KT)
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


@functools.cache
def _cupy() -> Any | None:
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy without a usable CUDA runtime
        return None
    return cupy


@functools.cache
def available() -> bool:
    """True when CuPy imports, torch sees a CUDA device, and the kernel sources exist."""
    if not torch.cuda.is_available() or _cupy() is None:
        return False
    return all((KERNEL_DIR / f"{name}.cu").is_file() for name in _MODULES)


_MODULES = {
    "masked_moments": ("masked_moments_f32", "masked_moments_f64"),
    "segment_extrema": ("segment_extrema_f32", "segment_extrema_f64"),
    "group_sums": ("group_sums_f32", "group_sums_f64"),
}


@functools.cache
def _module(name: str, device_index: int) -> Any:
    cp = _cupy()
    if cp is None:
        raise RuntimeError("CuPy is not installed")
    source = (KERNEL_DIR / f"{name}.cu").read_text()
    with cp.cuda.Device(device_index):
        return cp.RawModule(code=source, options=("--std=c++14",), name_expressions=None)


def _kernel(name: str, dtype: torch.dtype, device: torch.device) -> Any:
    if dtype not in _SUFFIX:
        raise TypeError(f"CUDA kernels take float32 or float64 tensors, got {dtype}")
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _module(name, index).get_function(f"{name}_{_SUFFIX[dtype]}")


def _cp(t: Tensor) -> Any:
    return _cupy().from_dlpack(t.contiguous())


def _launch(
    kernel: Any, grid: tuple[int, ...], block: tuple[int, ...], args: tuple, device: torch.device
) -> None:
    cp = _cupy()
    stream = torch.cuda.current_stream(device)
    with cp.cuda.Device(device.index), cp.cuda.ExternalStream(stream.cuda_stream):
        kernel(grid, block, args)


def _column_centre(x: Tensor) -> tuple[Tensor, Tensor]:
    """(column nan-mean, finite count per column), both [F] in x's dtype."""
    finite = torch.isfinite(x)
    total = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(0)
    count = finite.sum(0).to(x.dtype)
    return total / count.clamp_min(1.0), count


def masked_moments(x: Tensor, y: Tensor, centre: Tensor | None = None) -> Moments:
    """Pairwise-complete moments of ``x`` [n, F] against ``y`` [n, K] (CUDA, float32/64),
    values centred by column nan-means (``centre`` [F] when already known): the same
    :class:`Moments` as :func:`isograph_gpu.ops.moments.masked_moments`, in one pass over
    x."""
    y = y.to(dtype=x.dtype, device=x.device).contiguous()
    x = x.contiguous()
    n, f = x.shape
    k = y.shape[1]
    outs = [torch.empty((f, k), dtype=x.dtype, device=x.device) for _ in range(6)]
    args = (
        _cp(x),
        _cp(y),
        _cp(_column_centre(x)[0] if centre is None else centre),
        _cp(_column_centre(y)[0]),
        _i32(n),
        _i32(f),
        _i32(k),
        *(_cp(o) for o in outs),
    )
    grid = ((f + _BLOCK - 1) // _BLOCK, (k + _KT - 1) // _KT)
    _launch(_kernel("masked_moments", x.dtype, x.device), grid, (_BLOCK,), args, x.device)
    cnt, sx, sy, sxx, syy, sxy = outs
    return Moments(n=cnt, sx=sx, sy=sy, sxx=sxx, syy=syy, sxy=sxy)


def csr_index(segment: Tensor, n_segments: int) -> tuple[Tensor, Tensor]:
    """(order [F], offsets [G+1]) int64 grouping feature rows by gene, rows ascending
    within a gene. Built once from the feature->gene index (no host sync)."""
    order = torch.argsort(segment, stable=True)
    counts = torch.bincount(segment, minlength=n_segments)
    offsets = torch.zeros(n_segments + 1, dtype=torch.int64, device=segment.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return order.to(torch.int64), offsets


def segment_extrema(r: Tensor, order: Tensor, offsets: Tensor) -> dict[str, Tensor]:
    """Per-gene max/min of ``r`` [F, K] with their (lowest) row indices, finite counts and
    switch strength, all [G, K], for all modules at once. ``order``/``offsets`` from
    :func:`csr_index`. Keys: max, min, argmax, argmin, count, switch_strength."""
    r = r.contiguous()
    k = r.shape[1]
    g = offsets.shape[0] - 1
    shape = (g, k)
    out = {
        "max": torch.empty(shape, dtype=r.dtype, device=r.device),
        "min": torch.empty(shape, dtype=r.dtype, device=r.device),
        "argmax": torch.empty(shape, dtype=torch.int64, device=r.device),
        "argmin": torch.empty(shape, dtype=torch.int64, device=r.device),
        "count": torch.empty(shape, dtype=torch.int64, device=r.device),
        "switch_strength": torch.empty(shape, dtype=r.dtype, device=r.device),
    }
    args = (
        _cp(r),
        _cp(order.to(torch.int64)),
        _cp(offsets.to(torch.int64)),
        _i32(g),
        _i32(k),
        *(_cp(v) for v in out.values()),
    )
    block = min(_BLOCK, max(32, k))
    grid = ((k + block - 1) // block, g)
    if g > 0:
        _launch(_kernel("segment_extrema", r.dtype, r.device), grid, (block,), args, r.device)
    return out


def group_sums(
    x: Tensor, high: Tensor, low: Tensor, centre: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per feature and split: (count, sum, sum of squares) of the centred finite values of
    ``x`` [n, F] in the high and in the low group (``high``/``low`` bool [n, K]); values
    centred by the column nan-means (``centre`` [F] when already known).

    Returns ``count_h, sum_h, sq_h, count_l, sum_l, sq_l`` (each [F, K]) and the centre
    [F], ready for :func:`isograph_gpu.ops.contrast.welch_from_sums`.
    """
    x = x.contiguous()
    n, f = x.shape
    k = high.shape[1]
    if centre is None:
        centre = _column_centre(x)[0]
    outs = [torch.empty((f, k), dtype=x.dtype, device=x.device) for _ in range(6)]
    args = (
        _cp(x),
        _cp(high.to(torch.uint8)),
        _cp(low.to(torch.uint8)),
        _cp(centre),
        _i32(n),
        _i32(f),
        _i32(k),
        *(_cp(o) for o in outs),
    )
    grid = ((f + _BLOCK - 1) // _BLOCK, (k + _KT - 1) // _KT)
    _launch(_kernel("group_sums", x.dtype, x.device), grid, (_BLOCK,), args, x.device)
    return (*outs, centre)


def moments_and_group_sums(x: Tensor, y: Tensor, groups: Tensor | None = None
                           ) -> tuple[Moments, GroupSums | None]:
    """The kernels' form of :func:`isograph_gpu.ops.moments.moments_and_group_sums`: the
    moments kernel, then the group kernel over the 0/1 ``groups`` [n, G] (its two
    membership inputs take the two halves of the columns), and the finite counts."""
    x = x.contiguous()  # the kernels read row-major [n, F]: one copy for both
    centre, finite = _column_centre(x)
    moments = masked_moments(x, y, centre)
    if groups is None:
        return moments, None
    n, f = x.shape
    member = groups.to(device=x.device, dtype=torch.bool)
    n_groups = member.shape[1]
    if n_groups == 0:
        empty = torch.zeros((f, 0), dtype=x.dtype, device=x.device)
        count, total, squares = empty, empty, empty
    else:
        if n_groups % 2:
            member = torch.cat([member, member.new_zeros((n, 1))], dim=1)
        half = member.shape[1] // 2
        ch, sh, qh, cl, sl, ql, _ = group_sums(x, member[:, :half], member[:, half:], centre)
        count = torch.cat([ch, cl], dim=1)[:, :n_groups]
        total = torch.cat([sh, sl], dim=1)[:, :n_groups]
        squares = torch.cat([qh, ql], dim=1)[:, :n_groups]
    return moments, GroupSums(count=count, total=total, squares=squares, centre=centre,
                              finite=finite)


def _i32(v: int) -> Any:
    import numpy as np

    if v >= 2**31:
        raise ValueError(f"dimension {v} exceeds the kernels' int32 index range")
    return np.int32(v)

"""Exact two-sided p-values in float64: Student t tails.

Pearson: t = r sqrt(df / (1 - r^2)) at df = n - 2; Welch: its t at its df. p = 2 F(-|t|;
df), the lower tail itself (no 1-CDF cancellation, so tiny p-values keep their digits until
they underflow to 0). On the CPU through scipy.special.stdtr (Boost's Student t, which keeps
every digit of p near 1 too: measured to 1e-16 relative where the incomplete beta of
x = df / (df + t^2) loses up to 3e-8, near t = 0 and at df of 1e6); on CUDA as the
regularized incomplete beta p = I_x(df/2, 1/2) (:func:`betainc`).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

#: below this many values per thread a scipy ufunc (the Student t tail, the incomplete
#: beta) runs on the calling thread
_VALUES_PER_THREAD = 1 << 16


def betainc_route(device: torch.device, needs_grad: bool = False) -> str:
    """Which implementation :func:`betainc` uses: "scipy" on the CPU, "cupy"
    (``cupyx.scipy.special.betainc``) on CUDA when CuPy is installed for torch's CUDA major,
    "torch" (the float64 :mod:`isograph_gpu.ops.betainc`) otherwise and whenever a gradient
    is needed."""
    if needs_grad:
        return "torch"
    if device.type == "cpu":
        return "scipy"
    if device.type == "cuda":
        from ..backends import cupy_special  # optional CuPy, imported only on CUDA

        if cupy_special.available():
            return "cupy"
    return "torch"


def betainc(a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """Regularized incomplete beta I_x(a, b), float64, broadcast, on the inputs' device.

    Dispatch by :func:`betainc_route`: CPU: scipy.special.betainc (zero-copy; large
    inputs split along their first dimension over torch's intra-op thread count, as the
    ufunc releases the GIL; each value is computed alike whatever the split). CUDA:
    CuPy's betainc on torch's current stream when CuPy is installed, else the float64 torch
    implementation in :mod:`isograph_gpu.ops.betainc`; neither synchronises with the host.
    """
    a, b, x = torch.broadcast_tensors(
        a.to(torch.float64), b.to(torch.float64).to(a.device), x.to(torch.float64).to(a.device)
    )
    route = betainc_route(a.device, a.requires_grad or x.requires_grad)
    if route == "scipy":
        return _scipy_betainc(a, b, x)
    if route == "cupy":
        from ..backends import cupy_special

        return cupy_special.betainc(a, b, x)
    from .betainc import betainc as torch_betainc

    return torch_betainc(a, b, x)


def _scipy_betainc(a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """scipy.special.betainc of CPU float64 tensors of one shape, over up to torch's
    intra-op thread count of row ranges (each at least :data:`_VALUES_PER_THREAD`).

    At a = b = 1/2 and x > 1/2 (the p of n = 3 pairs or df = 1 as r, t -> 0) scipy 1.17
    loses up to ~3e-9 relative; there the value is 1 - I_{1-x}(1/2, 1/2) (1 - x exact)."""
    from scipy import special

    out = _scipy_betainc_parts(a, b, x)
    # in numpy: torch's intra-op threads hang in a forked child (test_betainc)
    an, bn, xn = a.numpy(), b.numpy(), x.numpy()
    arcsine = (an == 0.5) & (bn == 0.5) & (xn > 0.5)
    if arcsine.any():
        out.numpy()[arcsine] = 1.0 - special.betainc(0.5, 0.5, 1.0 - xn[arcsine])
    return out


def _scipy_betainc_parts(a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """scipy.special.betainc of CPU float64 tensors over row ranges, one per thread."""
    from scipy import special

    return _ufunc_parts(special.betainc, a, b, x)


def _ufunc_parts(ufunc: object, *args: Tensor) -> Tensor:
    """A scipy ufunc of CPU float64 tensors of one shape, over up to torch's intra-op
    thread count of row ranges (each at least :data:`_VALUES_PER_THREAD`; the ufunc
    releases the GIL; each value is computed alike whatever the split). Column-major
    [F, K] arguments (the CPU's statistics) are split along their memory, as one flat
    range, and give a column-major result."""
    if all(t.ndim == 2 and t.shape[1] > 1 and not t.is_contiguous() and t.T.is_contiguous()
           for t in args):
        k, f = args[0].T.shape
        return _ufunc_parts(ufunc, *(t.T.reshape(-1) for t in args)).view(k, f).T
    first = args[0]
    rows = first.shape[0] if first.ndim else 1
    parts = min(torch.get_num_threads(), rows, first.numel() // _VALUES_PER_THREAD)
    if parts < 2:
        return torch.as_tensor(ufunc(*(t.numpy() for t in args)))  # type: ignore[operator]
    out = torch.empty(first.shape, dtype=torch.float64)
    bounds = [rows * i // parts for i in range(parts + 1)]

    def part(i: int) -> None:
        rs = slice(bounds[i], bounds[i + 1])
        ufunc(*(t[rs].numpy() for t in args), out=out[rs].numpy())  # type: ignore[operator]

    list(_pool().map(part, range(parts)))
    return out


def _student_t_two_sided(t: Tensor, df: Tensor) -> Tensor:
    """2 F(-|t|; df) of CPU float64 tensors of one shape (df > 0, NaN gives NaN):
    scipy.special.stdtr on row ranges over threads as :func:`betainc`. At df = 1 (Cauchy)
    the closed form (2 / pi) atan(1 / |t|), which Boost's Student t loses digits of near
    t = 0."""
    from scipy import special

    lower = _ufunc_parts(special.stdtr, df, torch.abs(t).neg_())
    p = lower.mul_(2.0)
    cauchy = df == 1.0
    if bool(cauchy.any()):
        p = torch.where(cauchy, torch.atan(1.0 / t.abs()).mul_(2.0 / math.pi), p)
    return p


_pool_lock = threading.Lock()
_pool_of: dict[int, ThreadPoolExecutor] = {}  # the one pool, by its thread count


def _pool() -> ThreadPoolExecutor:
    """The process's one betainc thread pool, of ``torch.get_num_threads()`` workers
    (replaced when that count changes; a forked child starts without it)."""
    workers = torch.get_num_threads()
    with _pool_lock:
        pool = _pool_of.get(workers)
        if pool is None:
            for old in _pool_of.values():
                old.shutdown(wait=False)
            _pool_of.clear()
            pool = _pool_of[workers] = ThreadPoolExecutor(max_workers=workers,
                                                          thread_name_prefix="betainc")
        return pool


def _forget_pool_in_child() -> None:
    """A forked child has the parent's pool object but none of its threads (a submit
    would wait forever): drop it, and the lock a parent's thread may have held."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _pool_of.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def pearson_pvalue(r: Tensor, n: Tensor) -> Tensor:
    """Two-sided p of Pearson ``r`` with ``n`` complete pairs (float64, r's shape).

    As scipy.stats.pearsonr: |r| = 1 gives 0, n = 2 gives 1, NaN r gives NaN.
    """
    r = r.detach().to(torch.float64)
    n = n.to(device=r.device, dtype=torch.float64)
    r, n = torch.broadcast_tensors(r, n)
    one_minus_r2 = ((1.0 - r) * (1.0 + r)).clamp(0.0, 1.0)
    a = ((n - 2.0) / 2.0).clamp_min(0.5)
    if betainc_route(r.device) == "scipy":  # |r| = 1: t = ±inf, p = 0
        df = 2.0 * a
        t = r * torch.sqrt(df / one_minus_r2)  # NaN r: NaN, set to NaN p below
        p = _student_t_two_sided(t.masked_fill_(torch.isnan(t), 0.0), df)
    else:
        p = betainc(a, torch.full_like(a, 0.5), torch.nan_to_num(one_minus_r2, nan=1.0))
    p = torch.where(n <= 2.0, torch.ones_like(p), p)
    return torch.where(torch.isnan(r), torch.full_like(p, float("nan")), p.clamp(0.0, 1.0))


def welch_pvalue(t: Tensor, df: Tensor) -> Tensor:
    """Two-sided p of Welch ``t`` with real-valued ``df`` (float64, t's shape).

    ±inf t gives 0 whatever df is (the limit for every df > 0); df = +inf gives the normal
    tail erfc(|t| / sqrt 2) (the limit as df grows); otherwise a NaN t, a NaN df or df <= 0
    gives NaN."""
    t = t.detach().to(torch.float64)
    df = df.detach().to(device=t.device, dtype=torch.float64)
    t, df = torch.broadcast_tensors(t, df)
    finite_df = torch.nan_to_num(df, nan=1.0, posinf=1.0).clamp_min_(1e-300)
    undefined = torch.isnan(t)
    normal = torch.isposinf(df)
    bad_df = (torch.isnan(df) | (df <= 0.0)) & ~torch.isinf(t)
    if betainc_route(t.device) == "scipy":  # ±inf t: stdtr's lower tail is 0
        p = _student_t_two_sided(t.masked_fill(undefined, 0.0), finite_df)
        return _welch_limits(p, t, normal, undefined | bad_df)
    infinite = torch.isinf(t)  # (nan_to_num would turn inf t^2 into the largest float)
    t2 = (t * t).masked_fill_(infinite | undefined, 0.0)
    x = torch.div(finite_df, t2.add_(finite_df, alpha=1.0), out=t2).masked_fill_(infinite, 0.0)
    p = betainc(finite_df.div_(2.0), torch.full_like(x, 0.5), x)
    return _welch_limits(p, t, normal, undefined | bad_df)


def _welch_limits(p: Tensor, t: Tensor, normal: Tensor, undefined: Tensor) -> Tensor:
    """``p`` clamped to [0, 1], the normal tail where ``normal`` (df = +inf), NaN where
    ``undefined``."""
    p = p.clamp_(0.0, 1.0)
    if p.device.type != "cpu" or bool(normal.any()):  # CUDA: always (asking would sync)
        p = torch.where(normal, torch.special.erfc(t.abs() / math.sqrt(2.0)), p)
    return p.masked_fill_(undefined, float("nan"))

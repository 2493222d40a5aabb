"""One runner for the tensor ops (torchmetrics' ``_helpers/testers.py`` shape): run an op
on a device, in a dtype, with a p-value backend, on the whole feature matrix or chunk by
chunk, and compare what it returns with an oracle from :mod:`_helpers.oracles` at the
dtype's tolerance.

    @pytest.mark.parametrize("case", op_cases())
    def test_x(case):
        got = run_op(lambda x, y: {...tensors [F, ...]...}, x, y, case=case)
        assert_matches(got, oracle_dict, case)

CUDA cases carry the ``cuda`` marker and skip without a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
import torch


@dataclass(frozen=True)
class Tolerance:
    """How close a dtype gets to the float64 oracle: absolute for r, means, deltas and se;
    relative for t; absolute in log10 for p/q-values (p-values are float64 always, but
    computed from statistics of the op's dtype)."""

    atol: float
    rtol: float
    log10: float


TOLERANCES = {
    torch.float64: Tolerance(atol=1e-9, rtol=1e-7, log10=1e-8),
    torch.float32: Tolerance(atol=2e-5, rtol=2e-4, log10=2e-3),
}
#: columns compared exactly (counts, degrees of freedom), in log10 (p- and q-values) and
#: relatively with the absolute floor (test statistics: t, F)
EXACT = frozenset({"n", "n_high", "n_low", "count", "argmax", "high", "low", "df1", "df2",
                   "exceedances"})
LOG10 = frozenset({"pvalue", "qvalue"})
RELATIVE = frozenset({"tstat", "fstat"})
#: p-values below this are compared as "both tiny" (the float64 tail underflows)
TINY_P = 1e-280


@dataclass(frozen=True)
class OpCase:
    device: str
    dtype: torch.dtype
    chunk: int | None  # features per chunk; None: all at once
    #: incomplete-beta backend of the p-values: "default" (ops.pvalues.betainc_route:
    #: scipy on the CPU, CuPy or torch on CUDA) or a forced "torch" / "scipy" / "cupy"
    pvalue_route: str = "default"

    @property
    def tol(self) -> Tolerance:
        return TOLERANCES[self.dtype]


def device_marks(device: str) -> list:
    if device == "cuda":
        return [pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
    return []


def op_cases(devices: Iterable[str] = ("cpu", "cuda"),
             dtypes: Iterable[torch.dtype] = (torch.float64, torch.float32),
             chunks: Iterable[int | None] = (None, 3),
             pvalue_routes: Iterable[str] = ("default",)) -> list:
    """pytest params for every device x dtype x chunking x p-value backend (ids like
    ``cpu-float32-chunk3`` or ``cpu-float64-whole-torch``)."""
    params = []
    for device in devices:
        for dtype in dtypes:
            for chunk in chunks:
                for route in pvalue_routes:
                    label = f"{device}-{str(dtype).removeprefix('torch.')}-" + (
                        "whole" if chunk is None else f"chunk{chunk}") + (
                        "" if route == "default" else f"-{route}")
                    params.append(pytest.param(OpCase(device, dtype, chunk, route), id=label,
                                               marks=device_marks(device)))
    return params


def _tensor(a: np.ndarray | torch.Tensor, case: OpCase) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    t = t.to(case.device)
    return t.to(case.dtype) if t.is_floating_point() else t


def run_op(op: Callable[..., Mapping[str, torch.Tensor]], x: np.ndarray, *args,
           case: OpCase) -> dict[str, np.ndarray]:
    """``op(x_part, *args)`` on ``case.device`` in ``case.dtype``: x [n, F] whole or in
    column chunks of ``case.chunk`` (the other args whole each time); each output [F, ...]
    is concatenated over chunks and returned on the host as numpy."""
    f = x.shape[1]
    step = f if case.chunk is None else case.chunk
    tensors = [_tensor(a, case) for a in args]
    parts: dict[str, list[np.ndarray]] = {}
    with _pvalue_route(case.pvalue_route):
        for a in range(0, max(f, 1), max(step, 1)):
            out = op(_tensor(x[:, a : a + step], case), *tensors)
            for name, value in out.items():
                assert value.device.type == case.device, (name, value.device)
                parts.setdefault(name, []).append(value.detach().cpu().numpy())
    return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


def _pvalue_route(route: str):
    """Force ``ops.pvalues.betainc_route`` to ``route`` for the block (not for "default")."""
    from isograph_gpu.ops import pvalues

    if route == "default":
        return mock.patch.object(pvalues, "betainc_route", pvalues.betainc_route)
    return mock.patch.object(pvalues, "betainc_route",
                             lambda device, needs_grad=False: route)


def assert_matches(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
                   case: OpCase | Tolerance, names: Iterable[str] | None = None) -> None:
    """Every named output equals the oracle: same NaN pattern and infinities; counts
    exactly; p/q-values in log10 (both below :data:`TINY_P` count as equal); t relative;
    the rest absolute, at the case's tolerance."""
    tol = case.tol if isinstance(case, OpCase) else case
    for name in (want.keys() if names is None else names):
        g = np.asarray(got[name], dtype=float)
        w = np.asarray(want[name], dtype=float)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        msg = f"{name}"
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"NaN pattern of {msg}")
        np.testing.assert_array_equal(np.isinf(g) * np.sign(g), np.isinf(w) * np.sign(w),
                                      err_msg=f"infinities of {msg}")
        fin = np.isfinite(w) & np.isfinite(g)
        g, w = g[fin], w[fin]
        if name in EXACT:
            np.testing.assert_array_equal(g, w, err_msg=msg)
        elif name in LOG10:
            tiny = (g < TINY_P) & (w < TINY_P)
            g, w = g[~tiny], w[~tiny]
            np.testing.assert_array_equal(g > 0, w > 0, err_msg=f"zero p of {msg}")
            pos = w > 0
            np.testing.assert_allclose(np.log10(g[pos]), np.log10(w[pos]), rtol=0,
                                       atol=tol.log10, err_msg=msg)
        elif name in RELATIVE:
            # relative, with the means' absolute floor: a t near 0 comes from a delta that
            # cancels, whose error is absolute (hypothesis found t = 1.3e-4 off by 1.4e-11)
            np.testing.assert_allclose(g, w, rtol=tol.rtol, atol=tol.atol, err_msg=msg)
        else:
            np.testing.assert_allclose(g, w, rtol=0, atol=tol.atol, err_msg=msg)

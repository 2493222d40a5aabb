"""ops.betainc against scipy.special.betainc (and mpmath where scipy itself is inexact)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.special as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.ops.betainc import betainc, log_beta

REL_TOL = 1e-12
#: below this scipy itself flushes to 0 or returns subnormals with few significant bits
TINY = 1e-300


def _ours(a, b, x) -> np.ndarray:
    t = [torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (a, b, x)]
    return betainc(*t).numpy()


def _assert_close_to_scipy(a, b, x) -> None:
    got = _ours(a, b, x)
    want = sp.betainc(a, b, x)
    assert got.dtype == np.float64
    big = want > TINY
    rel = np.abs(got[big] - want[big]) / want[big]
    assert rel.size == 0 or rel.max() <= REL_TOL, (rel.max(), np.asarray(a)[big][rel.argmax()])
    # where the true value underflows we may return 0 but never a nonzero value
    assert np.all(got[~big] <= 1e-299)


def test_pearson_grid_matches_scipy() -> None:
    """p = I_{1-r^2}((n-2)/2, 1/2) over n = 3..1e6 and r across [-1, 1] incl. endpoints."""
    n = np.array([3, 4, 5, 10, 30, 100, 1_000, 10_000, 100_000, 1_000_000], dtype=float)
    r = np.concatenate([[0.0, 1e-9, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9, 0.99, 1.0]])
    nn, rr = np.meshgrid(n, r)
    x = 1.0 - rr**2
    _assert_close_to_scipy((nn - 2) / 2, np.full_like(nn, 0.5), x)


def test_near_one_large_a_region() -> None:
    """x within a few multiples of 1/a of 1: where the plain continued fraction cancels."""
    rng = np.random.default_rng(7)
    a = np.exp(rng.uniform(np.log(15), np.log(5e5), 4000))
    x = 1.0 - np.exp(rng.uniform(np.log(1e-6), np.log(40.0), a.size)) / a
    _assert_close_to_scipy(a, np.full_like(a, 0.5), np.clip(x, 0, 1))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=1_000_000),
    r=st.floats(min_value=-1.0, max_value=1.0, allow_nan=False),
)
def test_pearson_pvalue_property(n: int, r: float) -> None:
    _assert_close_to_scipy(np.array([(n - 2) / 2]), np.array([0.5]), np.array([1.0 - r * r]))


@settings(max_examples=60, deadline=None)
@given(
    df=st.floats(min_value=1.0, max_value=2e6, allow_nan=False),
    t=st.floats(min_value=0.0, max_value=1e3, allow_nan=False),
)
def test_welch_pvalue_property(df: float, t: float) -> None:
    """Welch: I_{v/(v+t^2)}(v/2, 1/2) with real-valued v."""
    x = df / (df + t * t)
    _assert_close_to_scipy(np.array([df / 2]), np.array([0.5]), np.array([x]))


def test_tiny_pvalues_underflow_to_zero_never_wrong() -> None:
    """Strong correlations at large n: p far below 1e-300 must come back as 0."""
    n = np.array([1_000, 10_000, 1_000_000, 1_000_000, 500])
    r = np.array([0.999, 0.9, 0.5, 0.99, 0.99999])
    got = _ours((n - 2) / 2, np.full(n.shape, 0.5), 1 - r**2)
    assert np.all(got == 0.0)
    # just above the underflow limit the value is still exact
    a = np.array([1900.0])
    x = np.array([0.7])
    want = sp.betainc(a, 0.5, x)
    assert 1e-300 < want[0] < 1e-250
    np.testing.assert_allclose(_ours(a, 0.5 * np.ones(1), x), want, rtol=REL_TOL)


def test_general_parameters_against_mpmath() -> None:
    rng = np.random.default_rng(3)
    a = np.exp(rng.uniform(np.log(0.1), np.log(500), 40))
    b = np.exp(rng.uniform(np.log(0.1), np.log(500), 40))
    x = rng.uniform(0, 1, 40)
    got = _ours(a, b, x)
    mpmath.mp.dps = 30
    want = np.array(
        [
            float(mpmath.betainc(ai, bi, 0, xi, regularized=True))
            for ai, bi, xi in zip(a, b, x, strict=True)
        ]
    )
    big = want > TINY
    np.testing.assert_allclose(got[big], want[big], rtol=1e-12, atol=0)
    assert np.all(got[~big] <= 1e-299)


def test_edge_conventions_match_scipy() -> None:
    a = np.array([0.0, 0.5, 2.0, 2.0, 0.0, 3.0, -1.0, 2.0, np.nan, 2.0, 0.0])
    b = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0])
    x = np.array([0.3, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5, 1.5, 0.5, np.nan, 0.5])
    np.testing.assert_array_equal(_ours(a, b, x), sp.betainc(a, b, x))


def test_log_beta_large_arguments() -> None:
    a = np.array([0.5, 3.0, 20.0, 1e3, 5e5, 1e6, 12.0])
    b = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 30.0])
    got = log_beta(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    mpmath.mp.dps = 40
    want = np.array([float(mpmath.log(mpmath.beta(ai, bi))) for ai, bi in zip(a, b, strict=True)])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-14)


def test_broadcast_dtype_and_device() -> None:
    a = torch.tensor([[3.0], [40.0]], dtype=torch.float32)
    x = torch.tensor([0.2, 0.6, 0.99], dtype=torch.float64)
    out = betainc(a, torch.tensor(0.5), x)
    assert out.shape == (2, 3) and out.dtype == torch.float64 and out.device == x.device
    want = sp.betainc(a.double().numpy(), 0.5, x.numpy())
    np.testing.assert_allclose(out.numpy(), want, rtol=REL_TOL)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_without_host_sync() -> None:
    rng = np.random.default_rng(5)
    a = torch.as_tensor(np.exp(rng.uniform(0, np.log(5e5), 10_000)))
    x = torch.as_tensor(rng.uniform(0, 1, 10_000))
    cpu = betainc(a, torch.tensor(0.5, dtype=torch.float64), x)
    a_c, x_c = a.cuda(), x.cuda()
    b_c = torch.full_like(a_c, 0.5)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu = betainc(a_c, b_c, x_c)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), rtol=1e-13, atol=1e-300)

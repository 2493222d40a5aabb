"""ops.betainc against scipy.special.betainc (and mpmath where scipy itself is inexact)."""

from __future__ import annotations

import os

import mpmath
import numpy as np
import pytest
import scipy.special as sp
import torch
from _helpers import oracles, paths
from _helpers.cuda import no_host_sync
from hypothesis import example, given, settings
from hypothesis import strategies as st

from isograph_gpu.ops.betainc import betainc, log_beta

REL_TOL = 1e-12
#: below this scipy itself flushes to 0 or returns subnormals with few significant bits
TINY = 1e-300


def _ours(a, b, x) -> np.ndarray:
    t = [torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (a, b, x)]
    return betainc(*t).numpy()


#: below this a the oracle is mpmath (scipy 1.17 loses ~2e-9 relative at a = b = 1/2, x
#: near 1: the Pearson p of n = 3 pairs or the Welch p of df = 1 at r, t -> 0); above it
#: scipy (mpmath's hypergeometric series itself loses digits for a ~ 1e5 at 50 digits)
MPMATH_MAX_A = 100.0


def _exact(a: float, b: float, x: float) -> float:
    """I_x(a, b) to 50 digits: mpmath, from the nearer end (1 - x is exact there)."""
    with mpmath.workdps(50):
        a, b, x = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x)
        if x <= 0.5:
            return float(mpmath.betainc(a, b, 0, x, regularized=True))
        return float(1 - mpmath.betainc(b, a, 0, 1 - x, regularized=True))


def _oracle(a, b, x) -> np.ndarray:
    """scipy.special.betainc, and :func:`_exact` where a < :data:`MPMATH_MAX_A`."""
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, x)))
    want = sp.betainc(a, b, x)
    small = (a < MPMATH_MAX_A) & (x > 0) & (x < 1) & (a > 0) & (b > 0)
    want[small] = [_exact(*v) for v in zip(a[small], b[small], x[small], strict=True)]
    return want


def _assert_close_to_scipy(a, b, x) -> None:
    got = _ours(a, b, x)
    want = _oracle(a, b, x)
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
@example(n=3, r=2.0**-26.5)  # x = 1 - 2^-53: scipy 2.8e-9 off, taken for ours being off
@example(n=3, r=1e-7)
def test_pearson_pvalue_property(n: int, r: float) -> None:
    _assert_close_to_scipy(np.array([(n - 2) / 2]), np.array([0.5]), np.array([1.0 - r * r]))


@settings(max_examples=60, deadline=None)
@given(
    df=st.floats(min_value=1.0, max_value=2e6, allow_nan=False),
    t=st.floats(min_value=0.0, max_value=1e3, allow_nan=False),
)
@example(df=1.0, t=1e-8)
def test_welch_pvalue_property(df: float, t: float) -> None:
    """Welch: I_{v/(v+t^2)}(v/2, 1/2) with real-valued v."""
    x = df / (df + t * t)
    _assert_close_to_scipy(np.array([df / 2]), np.array([0.5]), np.array([x]))


@settings(max_examples=80, deadline=None)
@given(
    a=st.one_of(st.integers(1, 200).map(lambda k: k / 2.0),
                st.floats(min_value=0.5, max_value=5e5, allow_nan=False)),
    y=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    near_one=st.booleans(),
)
@example(a=0.5, y=2.0**-53, near_one=True)
@example(a=0.5, y=2.0**-52, near_one=True)
@example(a=0.5, y=5e-324, near_one=False)
def test_pvalue_domain_to_1e12_on_both_cpu_routes(a: float, y: float, near_one: bool) -> None:
    """The whole domain of the p-values (b = 1/2, a = (n-2)/2 or df/2 from 1/2 to 5e5, x
    anywhere in [0, 1], x near 1 included) to 1e-12 relative, for the torch betainc and
    for the CPU route (scipy, with a = b = 1/2 near x = 1 taken from the symmetry)."""
    from isograph_gpu.ops import pvalues

    x = np.array([1.0 - y if near_one else y])
    a_ = np.array([a])
    _assert_close_to_scipy(a_, np.array([0.5]), x)
    want = _oracle(a_, 0.5, x)
    got = pvalues.betainc(torch.from_numpy(a_), torch.tensor(0.5), torch.from_numpy(x)).numpy()
    if want[0] > TINY:
        assert abs(got[0] - want[0]) <= REL_TOL * want[0], (got, want)
    else:
        assert got[0] <= 1e-299


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


class _FakeCupy:
    """Stands in for (cupy, cupyx.scipy.special) on the CPU: records the stream and the
    inputs the dispatch hands over and computes with scipy."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.streams: list[object] = []
        fake = self

        class _Stream:
            def __init__(self, handle: int) -> None:
                self.handle = handle

            def __enter__(self):
                fake.streams.append(self.handle)
                return self

            def __exit__(self, *exc) -> None:
                return None

        class _Cuda:
            ExternalStream = _Stream
            Stream = type("Stream", (), {"null": _Stream(0)})

            @staticmethod
            def Device(index: int) -> _Stream:
                return _Stream(-1 - index)

        self.cuda = _Cuda()

    @staticmethod
    def from_dlpack(t: torch.Tensor) -> np.ndarray:
        return np.from_dlpack(t)

    def betainc(self, a, b, x):
        self.calls.append((a.dtype, a.shape, b.shape, x.shape))
        return sp.betainc(a, b, x)


def test_pvalues_route_to_cupy_betainc_on_cuda(monkeypatch) -> None:
    """With CuPy available, CUDA p-values go through cupyx.scipy.special.betainc via
    DLPack; the results are scipy's p-values (here with a fake CuPy that calls scipy)."""
    from scipy import stats

    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops import pvalues

    fake = _FakeCupy()
    monkeypatch.setattr(cupy_special, "_cupy", lambda: (fake, fake))
    monkeypatch.setattr(pvalues, "betainc_route", lambda device, needs_grad=False: "cupy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = rng.normal(size=(40, 2)) + x[:, :2]
    r, want, _ = oracles.pearson(x, y)
    got = pvalues.pearson_pvalue(torch.as_tensor(r), torch.full((6, 2), 40))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert fake.calls == [(np.float64, (6, 2), (6, 2), (6, 2))]
    assert fake.streams == [-1, 0]  # device 0, then the stream torch is on (CPU: null)
    t = torch.tensor([0.5, -2.0, 30.0])
    df = torch.tensor([3.0, 10.5, 100.0])
    np.testing.assert_allclose(pvalues.welch_pvalue(t, df).numpy(),
                               2 * stats.t.sf(np.abs(t.numpy()), df.numpy()), rtol=1e-12)
    assert len(fake.calls) == 2


def test_betainc_route() -> None:
    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops.pvalues import betainc_route

    cuda = torch.device("cuda")
    assert betainc_route(torch.device("cpu")) == "scipy"
    assert betainc_route(torch.device("cpu"), needs_grad=True) == "torch"
    assert betainc_route(cuda, needs_grad=True) == "torch"
    want = "cupy" if cupy_special.available() else "torch"
    assert betainc_route(cuda) == want


def test_cupy_route_follows_availability_and_switch(monkeypatch) -> None:
    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops.pvalues import betainc_route

    monkeypatch.setattr(cupy_special, "_cupy", lambda: (object(), object()))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert betainc_route(torch.device("cuda")) == "cupy"
    monkeypatch.setenv(cupy_special.CUPY_ENV, "0")
    assert betainc_route(torch.device("cuda")) == "torch"
    monkeypatch.delenv(cupy_special.CUPY_ENV)
    monkeypatch.setattr(cupy_special, "_cupy", lambda: None)
    assert betainc_route(torch.device("cuda")) == "torch"


def test_cuda_major_mismatch_message() -> None:
    from isograph_gpu.backends.cupy_special import cuda_major_mismatch

    assert cuda_major_mismatch(13000, "13.0") is None
    assert cuda_major_mismatch(12080, None) is None
    message = cuda_major_mismatch(12080, "13.0")
    assert "CUDA 12" in message and "CUDA 13" in message
    assert "isograph-gpu[cuda13]" in message


def _pvalue_inputs(size: int = 20_000, seed: int = 5):
    """(a, x) of Pearson and Welch p-values: a = (n-2)/2 or df/2 up to 5e5, b = 1/2."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.uniform(np.log(0.5), np.log(5e5), size))
    x = rng.uniform(0, 1, size)
    x[:50] = [0.0, 1.0] * 25
    return a, x


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("route", ["torch", "cupy"])
def test_cuda_betainc_matches_scipy_without_host_sync(route: str, monkeypatch) -> None:
    """Each CUDA betainc against scipy at the CPU tests' accuracy, with no host sync."""
    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops import pvalues

    if route == "cupy" and not cupy_special.available():
        pytest.skip("CuPy (for torch's CUDA major) is not installed")
    monkeypatch.setattr(pvalues, "betainc_route", lambda device, needs_grad=False: route)
    a, x = _pvalue_inputs()
    a_c, x_c = torch.as_tensor(a).cuda(), torch.as_tensor(x).cuda()
    b_c = torch.full_like(a_c, 0.5)
    with no_host_sync():
        gpu = pvalues.betainc(a_c, b_c, x_c)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float64
    got = gpu.cpu().numpy()
    want = sp.betainc(a, 0.5, x)
    big = want > TINY
    rel = np.abs(got[big] - want[big]) / want[big]
    assert rel.max() <= REL_TOL, rel.max()
    assert np.all(got[~big] <= 1e-299)


def test_cupy_for_another_cuda_major_warns_once_and_is_not_used(monkeypatch) -> None:
    """A CuPy built for CUDA 12 next to a torch for CUDA 13: one warning naming the extra
    to install, and the torch betainc runs on CUDA."""
    import sys
    import types
    import warnings

    from isograph_gpu.backends import cupy_special

    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(runtimeGetVersion=lambda: 12080))
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    special = types.ModuleType("cupyx.scipy.special")
    cupyx.scipy, cupyx_scipy.special = cupyx_scipy, special
    for name, module in (("cupy", cupy), ("cupyx", cupyx), ("cupyx.scipy", cupyx_scipy),
                         ("cupyx.scipy.special", special)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cupy_special._cupy.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert cupy_special.available() is False
            assert cupy_special.available() is False
        messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
        assert len(messages) == 1 and "isograph-gpu[cuda13]" in messages[0]
        from isograph_gpu.ops.pvalues import betainc_route

        assert betainc_route(torch.device("cuda")) == "torch"
        # the same CuPy next to a torch for CUDA 12 is used
        cupy_special._cupy.cache_clear()
        monkeypatch.setattr(torch.version, "cuda", "12.8")
        assert cupy_special.available() is True
    finally:
        cupy_special._cupy.cache_clear()


def test_cupy_route_with_no_elements(monkeypatch) -> None:
    """An empty selection (no p-value wanted in a chunk) returns an empty float64 tensor
    without calling CuPy."""
    from isograph_gpu.backends import cupy_special
    from isograph_gpu.ops import pvalues

    fake = _FakeCupy()
    monkeypatch.setattr(cupy_special, "_cupy", lambda: (fake, fake))
    monkeypatch.setattr(pvalues, "betainc_route", lambda device, needs_grad=False: "cupy")
    out = pvalues.pearson_pvalue(torch.zeros(0, dtype=torch.float64),
                                 torch.zeros(0, dtype=torch.int64))
    assert out.shape == (0,) and out.dtype == torch.float64 and fake.calls == []


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("threads", [2, 3, 16])
@pytest.mark.parametrize("shape", [(300_001,), (70_001, 3), (200_000, 1), (5, 200_000)])
def test_cpu_route_split_over_threads_equals_one_scipy_call(threads, shape, order) -> None:
    """The CPU route runs large inputs as row ranges (column-major [F, K]: ranges of its
    memory) on a thread pool: every value equals one scipy.special.betainc call on the
    whole array (broadcast b, NaN x, x at 0 and 1), in the inputs' memory order."""
    from unittest import mock

    from isograph_gpu.ops import pvalues

    rng = np.random.default_rng(threads)
    a = rng.uniform(0.5, 600.0, size=shape)
    x = rng.random(shape)
    x.flat[::97] = np.nan
    x.flat[1::101] = 0.0
    x.flat[2::103] = 1.0
    a, x = np.asarray(a, order=order), np.asarray(x, order=order)
    want = sp.betainc(a, 0.5, x)
    with mock.patch.object(torch, "get_num_threads", return_value=threads):
        got = pvalues.betainc(torch.from_numpy(a), torch.tensor(0.5), torch.from_numpy(x))
    assert got.shape == shape and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), want)
    with mock.patch.object(torch, "get_num_threads", return_value=threads):
        t = pvalues.welch_pvalue(torch.from_numpy(x) * 3.0 - 1.5, torch.from_numpy(a))
    np.testing.assert_array_equal(t.numpy(), np.where(np.isnan(x), np.nan, np.clip(
        2.0 * sp.stdtr(a, -np.abs(x * 3.0 - 1.5)), 0.0, 1.0)))


_FORK_SCRIPT = """
import os, sys, time
import numpy as np, scipy.special as sp, torch
from isograph_gpu.ops import pvalues

torch.set_num_threads(2)
rng = np.random.default_rng(1)
a, x = rng.uniform(0.5, 600.0, 200_000), rng.random(200_000)
want = sp.betainc(a, 0.5, x)
assert np.array_equal(pvalues.betainc(torch.from_numpy(a), torch.tensor(0.5),
                                      torch.from_numpy(x)).numpy(), want)  # pool started
pid = os.fork()
if pid == 0:  # the child: the same threaded call must finish and agree
    got = pvalues.betainc(torch.from_numpy(a), torch.tensor(0.5), torch.from_numpy(x))
    os._exit(0 if np.array_equal(got.numpy(), want) else 1)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
os.waitpid(pid, 0)
sys.exit(3)  # the child hung
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_computes_betainc_on_threads() -> None:
    """A child forked after a threaded betainc (its pool's threads are not in the child)
    computes the same values as scipy instead of waiting forever on the parent's pool
    (exit 3: hung; 1: wrong values)."""
    import subprocess
    import sys

    root = paths.REPO
    done = subprocess.run([sys.executable, "-c", _FORK_SCRIPT], cwd=root, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_one_betainc_pool_of_torch_thread_count() -> None:
    """One pool for the process, of torch's thread count, replaced when it changes."""
    from unittest import mock

    from isograph_gpu.ops import pvalues

    with mock.patch.object(torch, "get_num_threads", return_value=3):
        first = pvalues._pool()
        assert pvalues._pool() is first and first._max_workers == 3
    with mock.patch.object(torch, "get_num_threads", return_value=2):
        second = pvalues._pool()
    assert second is not first and second._max_workers == 2
    assert list(pvalues._pool_of.values()) == [second]


def _exact_two_sided_t(t: float, df: float) -> float:
    """2 F(-|t|; df) to 50 digits, from t itself: I_x(df/2, 1/2) at x = df / (df + t^2)
    where p is small, else 1 - I_{1-x}(1/2, df/2) with 1 - x = t^2 / (df + t^2) exact."""
    if (df + 1.0) / 2.0 * np.log1p(float(t) ** 2 / df) > 800.0:
        return 0.0  # below e^-790 (the density's decay; its constant is below df): underflow
    with mpmath.workdps(50):
        t, df = mpmath.mpf(t), mpmath.mpf(df)
        if t == 0:
            return 1.0
        if mpmath.isinf(t):
            return 0.0
        x, y = df / (df + t * t), t * t / (df + t * t)
        if 2.0 * sp.stdtr(float(df), -abs(float(t))) < 0.5:  # from the end where p is small
            return float(mpmath.betainc(df / 2, 0.5, 0, x, regularized=True))
        return float(1 - mpmath.betainc(0.5, df / 2, 0, y, regularized=True))


def _pvalue_tolerance(t: float, df: float) -> float:
    """Relative error allowed in p = 2 F(-|t|; df): 64 ulp times the tail's condition
    number in t, 1 + (df + 1) t^2 / (df + t^2) (one ulp of t, or of x = df / (df + t^2)
    inside the tail, moves p that many ulp: ~1 near p = 1, up to df + 1 where p is
    tiny)."""
    t2 = float(t) ** 2 if np.isfinite(float(t)) else np.inf
    cond = 1.0 + (df + 1.0) * (1.0 if np.isinf(t2) else t2 / (df + t2))
    return 64.0 * np.finfo(np.float64).eps * cond


@settings(max_examples=80, deadline=None)
@given(df=st.one_of(st.sampled_from([1.0, 1.5, 2.0, 3.7, 57.3, 998.0, 1e4, 1e6]),
                    st.floats(min_value=1.0, max_value=2e6, allow_nan=False)),
       t=st.one_of(st.sampled_from([0.0, 1e-12, 1e-8, 1e-4, 1e-2, 0.3, 2.0, 10.0]),
                   st.floats(min_value=0.0, max_value=1e3, allow_nan=False)))
@example(df=1e6, t=1e-4)  # the incomplete beta of x = df / (df + t^2): 3e-8 off
@example(df=998.0, t=1e-4)
@example(df=1.0, t=1e-8)  # Boost's Student t at df = 1 near t = 0: 3e-9 off
def test_welch_pvalue_is_the_exact_student_t_tail_on_the_cpu(df: float, t: float) -> None:
    """p near 1 (t -> 0, the bulk of a null's p-values) keeps its digits: the CPU route
    takes the tail of t itself, not of 1 - x rounded near x = 1."""
    from isograph_gpu.ops.pvalues import welch_pvalue

    got = welch_pvalue(torch.tensor([t, -t], dtype=torch.float64),
                       torch.tensor([df, df], dtype=torch.float64)).numpy()
    want = _exact_two_sided_t(t, df)
    if want > TINY:
        np.testing.assert_allclose(got, want, rtol=_pvalue_tolerance(t, df), atol=0)
    else:
        assert np.all(got <= 1e-299)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=3, max_value=1_000_000),
       r=st.floats(min_value=-1.0, max_value=1.0, allow_nan=False))
@example(n=1_000, r=1.4492737998e-4)  # a p of 0.998 that was 4e-12 off
@example(n=3, r=1e-9)
@example(n=1_000_000, r=1e-5)
@example(n=50, r=1.0)
def test_pearson_pvalue_is_the_exact_student_t_tail_on_the_cpu(n: int, r: float) -> None:
    """Pearson p from t = r sqrt(df / (1 - r^2)) at df = n - 2, against the exact tail of
    that r."""
    from isograph_gpu.ops.pvalues import pearson_pvalue

    got = pearson_pvalue(torch.tensor([r], dtype=torch.float64), torch.tensor([n])).numpy()[0]
    with mpmath.workdps(50):
        rr = mpmath.mpf(r)
        t = float("inf") if abs(r) == 1 else rr * mpmath.sqrt((n - 2) / ((1 - rr) * (1 + rr)))
    want = _exact_two_sided_t(t, n - 2.0)
    if want > TINY:
        assert abs(got - want) <= _pvalue_tolerance(t, n - 2.0) * want, (got, want)
    else:
        assert got <= 1e-299


@pytest.mark.parametrize("route", ["scipy", "torch"])
def test_welch_pvalue_limits_of_df(route, monkeypatch) -> None:
    """df = +inf is the normal tail (it was a Cauchy p: df mapped to 1); df <= 0 and NaN df
    give NaN; ±inf t gives 0 whatever df is; on the CPU route and the torch one."""
    from scipy import stats

    from isograph_gpu.ops import pvalues

    monkeypatch.setattr(pvalues, "betainc_route", lambda device, needs_grad=False: route)
    inf, nan = float("inf"), float("nan")
    t = torch.tensor([1.0, -2.0, 0.0, inf, 1.0, 1.0, 1.0, -inf, 2.5], dtype=torch.float64)
    df = torch.tensor([inf, inf, inf, inf, 0.0, -3.0, nan, -1.0, 12.0], dtype=torch.float64)
    got = pvalues.welch_pvalue(t, df).numpy()
    want = [2 * stats.norm.sf(1.0), 2 * stats.norm.sf(2.0), 1.0, 0.0, nan, nan, nan, 0.0,
            2 * stats.t.sf(2.5, 12.0)]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)

"""Fused CuPy kernels against the torch ops (the oracle). Needs CUDA and CuPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from isograph_gpu.backends import cupy_kernels
from isograph_gpu.ops.contrast import percentile_split, welch_from_sums
from isograph_gpu.ops.moments import masked_moments, moments_and_group_sums
from isograph_gpu.ops.pearson import pearson_from_moments
from isograph_gpu.ops.segments import segment_argmax, switch_strength

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not cupy_kernels.available(), reason="needs CUDA and CuPy"),
]


def _data(n: int = 300, f: int = 2000, k: int = 11, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=(n, f)).astype(np.float32) * 5.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.normal(size=(n, k)).astype(np.float32)
    y[rng.random(y.shape) < 0.05] = np.nan
    return torch.as_tensor(x).cuda(), torch.as_tensor(y).cuda()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_moments_kernel_matches_torch(dtype: torch.dtype) -> None:
    x, y = _data()
    x, y = x.to(dtype), y.to(dtype)
    got = cupy_kernels.masked_moments(x, y)
    want = masked_moments(x.double(), y.double())
    assert torch.equal(got.n.double(), want.n)
    r_got = pearson_from_moments(got)
    r_want = pearson_from_moments(want)
    assert torch.nanmax((r_got.double() - r_want).abs()).item() <= 1e-5
    assert torch.equal(r_got.isnan(), r_want.isnan())


def test_segment_kernel_matches_torch() -> None:
    rng = np.random.default_rng(1)
    f, k, g = 5000, 9, 1400
    segment = torch.as_tensor(rng.integers(0, g, f)).cuda()
    r = torch.as_tensor(rng.uniform(-1, 1, (f, k)).astype(np.float32)).cuda()
    r[torch.as_tensor(rng.random((f, k)) < 0.2).cuda()] = float("nan")
    order, offsets = cupy_kernels.csr_index(segment, g)
    out = cupy_kernels.segment_extrema(r, order, offsets)
    torch.testing.assert_close(out["switch_strength"], switch_strength(r, segment, g))
    keyed = torch.where(r.isfinite(), r, torch.full_like(r, -float("inf")))
    arg = segment_argmax(keyed, segment, g)
    has = out["count"] > 0
    assert torch.equal(out["argmax"][has], arg[has])


def test_group_kernel_matches_torch() -> None:
    x, y = _data(seed=2)
    high, low = percentile_split(y, 50.0)
    ch, sh, qh, cl, sl, ql, centre = cupy_kernels.group_sums(x, high, low)
    got = welch_from_sums(ch, sh, qh, cl, sl, ql, centre)
    _, sums = moments_and_group_sums(x.double(), y.double(), torch.cat([high, low], dim=1))
    k = high.shape[1]
    hi, lo = slice(0, k), slice(k, 2 * k)
    want = welch_from_sums(sums.count[:, hi], sums.total[:, hi], sums.squares[:, hi],
                           sums.count[:, lo], sums.total[:, lo], sums.squares[:, lo],
                           sums.centre)
    assert torch.equal(got.n_high, want.n_high) and torch.equal(got.n_low, want.n_low)
    torch.testing.assert_close(got.delta, want.delta, rtol=1e-5, atol=1e-4, equal_nan=True)
    torch.testing.assert_close(got.tstat, want.tstat, rtol=1e-4, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("n_groups", [0, 5, 22])
def test_composite_kernel_path_matches_torch(n_groups: int) -> None:
    x, y = _data(seed=3)
    groups = torch.as_tensor(np.random.default_rng(4).random((x.shape[0], n_groups)) < 0.4)
    got_m, got = cupy_kernels.moments_and_group_sums(x, y, groups.cuda())
    want_m, want = moments_and_group_sums(x.double(), y.double(), groups.cuda())
    assert torch.equal(got_m.n.double(), want_m.n)
    assert torch.equal(got.count.double(), want.count)
    assert torch.equal(got.finite.double(), want.finite)
    torch.testing.assert_close(got.total.double(), want.total, rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(got.centre.double(), want.centre, rtol=1e-5, atol=1e-5)


def test_engine_on_cuda_kernels_equal_torch_path(monkeypatch) -> None:
    from isograph_gpu import backends
    from isograph_gpu.engine import feature_statistics

    x, y = _data(n=200, f=3000, k=6, seed=5)
    host = x.double().cpu().numpy()
    scores = y.double().cpu().nan_to_num(0.0)
    splits = {"split": percentile_split(scores, 50.0)}
    common = dict(min_pairs=3, splits=splits, device=torch.device("cuda"),
                  dtype=torch.float32, memory_budget_bytes=1 << 22)
    from test_engine_and_contrasts import host_statistics

    with_kernels = host_statistics(feature_statistics(host, scores, **common))
    monkeypatch.setenv(backends.KERNELS_ENV, "0")
    torch_path = host_statistics(feature_statistics(host, scores, **common))
    np.testing.assert_array_equal(with_kernels.n, torch_path.n)
    np.testing.assert_array_equal(with_kernels.n_finite, torch_path.n_finite)
    assert np.nanmax(np.abs(with_kernels.r - torch_path.r)) <= 1e-5
    a, b = with_kernels.contrasts["split"], torch_path.contrasts["split"]
    np.testing.assert_array_equal(a.n_high, b.n_high)
    np.testing.assert_allclose(a.delta, b.delta, rtol=1e-4, atol=1e-4)

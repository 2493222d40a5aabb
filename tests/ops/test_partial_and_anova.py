"""Partial correlation given covariates and the group F test against plain numpy/scipy
oracles: per feature OLS of x and of y on [1, Z] over that pair's complete samples, then
Pearson of the residuals (within 1e-10, float64, NaNs in features, scores and
covariates); scipy.stats.f_oneway and a nested-OLS F with covariates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers.oracles import complete
from _helpers.oracles import partial_pearson as oracle_partial  # ci examples hash this name
from _helpers.testers import OpCase, Tolerance, assert_matches, op_cases, run_op
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from isograph_gpu.ops.anova import f_pvalue, group_f_test
from isograph_gpu.ops.partial import partial_correlation, partial_pvalue

SETTINGS = settings(max_examples=30, deadline=None)


def _data(seed: int, n: int, f: int, k: int, c: int, nan_x: float, nan_z: float):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * rng.uniform(0.1, 100.0, size=c)
    x = rng.normal(size=(n, f)) + z @ rng.normal(size=(c, f)) / 10 + 5.0
    y = rng.normal(size=(n, k)) + (z[:, :1] if c else 0.0)
    x[rng.random(x.shape) < nan_x] = np.nan
    y[rng.random(y.shape) < 0.05] = np.nan
    z[rng.random(z.shape) < nan_z] = np.nan
    return x, y, z


@given(st.integers(0, 10_000), st.integers(12, 60), st.integers(1, 6), st.integers(1, 3),
       st.integers(0, 4), st.sampled_from([0.0, 0.1, 0.3]), st.sampled_from([0.0, 0.05]))
@example(seed=0, n=12, f=1, k=1, c=4, nan_x=0.3, nan_z=0.05)
# 6 complete pairs, C = 3: the Schur complement of the moments lost 6.5e-10 of r (fixed by
# the recompute of pairs whose moments lose more digits than the contract allows)
@example(seed=3, n=14, f=4, k=3, c=3, nan_x=0.3, nan_z=0.0)
@SETTINGS
def test_partial_correlation_equals_ols_residual_pearson(seed, n, f, k, c, nan_x, nan_z):
    x, y, z = _data(seed, n, f, k, c, nan_x, nan_z)
    r, count = partial_correlation(torch.from_numpy(x), torch.from_numpy(y),
                                   torch.from_numpy(z))
    for i in range(f):
        for j in range(k):
            expected, pairs = oracle_partial(x[:, i], y[:, j], z)
            assert count[i, j].item() == pairs
            if pairs - 2 - c < 1 or pairs < 3:
                assert np.isnan(r[i, j].item())
                continue
            assert r[i, j].item() == pytest.approx(expected, abs=1e-10)


def test_no_covariates_is_pearson_and_pvalue_has_n_minus_2_minus_c_df():
    x, y, z = _data(1, 40, 5, 2, 3, 0.1, 0.05)
    r0, n0 = partial_correlation(torch.from_numpy(x), torch.from_numpy(y),
                                 torch.zeros((40, 0), dtype=torch.float64))
    for i in range(5):
        ok = complete(x[:, i], y[:, 0])
        res = stats.pearsonr(x[ok, i], y[ok, 0])
        assert r0[i, 0].item() == pytest.approx(res.statistic, abs=1e-12)
        assert partial_pvalue(r0, n0, 0)[i, 0].item() == pytest.approx(res.pvalue, rel=1e-10)
    r, n = partial_correlation(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(z))
    p = partial_pvalue(r, n, 3).numpy()
    df = n.numpy() - 2 - 3
    t = r.numpy() * np.sqrt(df / (1 - r.numpy() ** 2))
    np.testing.assert_allclose(p, 2 * stats.t.sf(np.abs(t), df), rtol=1e-10)


def test_constant_residual_and_singular_design_are_nan():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(20, 1))
    x = np.column_stack([3.0 * z[:, 0] + 1.0, rng.normal(size=20)])  # x exactly in [1, z]
    y = rng.normal(size=(20, 1))
    r, _ = partial_correlation(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(z))
    assert np.isnan(r[0, 0].item()) and np.isfinite(r[1, 0].item())
    x2 = rng.normal(size=(20, 1))
    x2[np.arange(20) % 2 == 0] = np.nan  # on x2's samples the covariate is constant
    z2 = np.where(np.arange(20) % 2 == 0, rng.normal(size=20), 1.0)[:, None]
    r2, _ = partial_correlation(torch.from_numpy(x2), torch.from_numpy(y), torch.from_numpy(z2))
    assert np.isnan(r2[0, 0].item())


@given(st.integers(0, 10_000), st.integers(2, 5), st.sampled_from([0.0, 0.15]))
@SETTINGS
def test_group_f_test_equals_f_oneway(seed, n_levels, nan):
    rng = np.random.default_rng(seed)
    n, k = 40, 3
    levels = rng.integers(0, n_levels, n)
    y = rng.normal(size=(n, k)) + 0.4 * levels[:, None]
    y[rng.random(y.shape) < nan] = np.nan
    levels[rng.random(n) < nan] = -1
    f, df1, df2, count = group_f_test(torch.from_numpy(y), torch.from_numpy(levels), n_levels)
    p = f_pvalue(f, df1, df2)
    for j in range(k):
        ok = np.isfinite(y[:, j]) & (levels >= 0)
        groups = [y[ok & (levels == g), j] for g in range(n_levels)]
        groups = [g for g in groups if len(g)]
        assert count[j].item() == ok.sum()
        if len(groups) < 2:
            assert np.isnan(f[j].item())
            continue
        res = stats.f_oneway(*groups)
        assert f[j].item() == pytest.approx(res.statistic, rel=1e-10)
        assert p[j].item() == pytest.approx(res.pvalue, rel=1e-10)


def test_group_f_test_with_covariates_is_the_nested_ols_f():
    rng = np.random.default_rng(5)
    n, k, n_levels = 50, 2, 3
    levels = rng.integers(0, n_levels, n)
    z = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, k)) + z[:, :1] + 0.5 * levels[:, None]
    z[4, 1] = np.nan
    y[7, 0] = np.nan
    f, df1, df2, _ = group_f_test(torch.from_numpy(y), torch.from_numpy(levels), n_levels,
                                  torch.from_numpy(z))
    for j in range(k):
        ok = np.isfinite(y[:, j]) & np.isfinite(z).all(axis=1)
        reduced = np.column_stack([np.ones(ok.sum()), z[ok]])
        full = np.column_stack([reduced, np.eye(n_levels)[levels[ok]][:, 1:]])

        def rss(design, j=j, ok=ok):
            return np.sum((y[ok, j] - design @ np.linalg.lstsq(design, y[ok, j],
                                                                rcond=None)[0]) ** 2)

        d1, d2 = n_levels - 1, ok.sum() - 2 - n_levels
        expected = ((rss(reduced) - rss(full)) / d1) / (rss(full) / d2)
        assert (df1[j].item(), df2[j].item()) == (d1, d2)
        assert f[j].item() == pytest.approx(expected, rel=1e-10)
        assert f_pvalue(f, df1, df2)[j].item() == pytest.approx(stats.f.sf(expected, d1, d2),
                                                                  rel=1e-9)


def test_f_pvalue_matches_scipy_including_tails():
    f = torch.tensor([0.0, 0.5, 3.0, 50.0, 1e4, float("inf"), float("nan")],
                     dtype=torch.float64)
    df1 = torch.full_like(f, 3.0)
    df2 = torch.full_like(f, 17.0)
    p = f_pvalue(f, df1, df2).numpy()
    np.testing.assert_allclose(p[:6], stats.f.sf(f.numpy()[:6], 3, 17), rtol=1e-10)
    assert np.isnan(p[6])


def _partial_oracle(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """r, n and p [F, K] of :func:`oracle_partial` per pair; r and p NaN where fewer than
    3 samples or no residual degree of freedom is left (as ``partial_correlation``)."""
    f, k, c = x.shape[1], y.shape[1], z.shape[1]
    r, n = np.full((f, k), np.nan), np.zeros((f, k), dtype=np.int64)
    for i in range(f):
        for j in range(k):
            value, n[i, j] = oracle_partial(x[:, i], y[:, j], z)
            if n[i, j] >= 3 and n[i, j] - 2 - c >= 1:
                r[i, j] = value
    df = n - 2 - c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(df / (1 - r**2))
    return {"r": r, "n": n, "pvalue": 2 * stats.t.sf(np.abs(t), df)}


#: the bound of the float64 edge-case test above; float32 at the runner's tolerance
PARTIAL_FLOAT64 = Tolerance(atol=1e-10, rtol=1e-10, log10=1e-8)


def _partial_cases() -> list:
    """The runner's cases with covariates of unit scale, and float64's also with the
    covariates of :func:`_data` (scale 0.1..100: y's residual is then below float32's
    flat threshold, 1024 eps of its raw second moment, and r is NaN by design)."""
    params = []
    for wide in (False, True):
        dtypes = (torch.float64,) if wide else (torch.float64, torch.float32)
        for p in op_cases(dtypes=dtypes, pvalue_routes=("default", "torch")):
            params.append(pytest.param(p.values[0], wide, marks=p.marks,
                                       id=f"{p.id}-{'wide' if wide else 'unit'}-covariates"))
    return params


@pytest.mark.parametrize(("case", "wide"), _partial_cases())
def test_partial_correlation_on_every_device_dtype_and_chunking(case: OpCase,
                                                                wide: bool) -> None:
    if wide:
        x, y, z = _data(3, 80, 8, 3, 2, 0.1, 0.05)
    else:
        rng = np.random.default_rng(3)
        z = rng.normal(size=(80, 2))
        x = rng.normal(size=(80, 8)) + z @ rng.normal(size=(2, 8)) / 2 + 5.0
        y = rng.normal(size=(80, 3)) + z[:, :1]
        x[rng.random(x.shape) < 0.1] = np.nan
        z[rng.random(z.shape) < 0.05] = np.nan

    def op(xc, yt, zt):
        r, n = partial_correlation(xc, yt, zt)
        return {"r": r, "n": n, "pvalue": partial_pvalue(r, n, zt.shape[1])}

    got = run_op(op, x, y, z, case=case)
    tol = PARTIAL_FLOAT64 if case.dtype == torch.float64 else case.tol
    assert_matches(got, _partial_oracle(x, y, z), tol)


def _f_oracle(y: np.ndarray, levels: np.ndarray, n_levels: int,
              z: np.ndarray | None) -> dict[str, np.ndarray]:
    """F, its degrees of freedom, n and p per column of y: ``scipy.stats.f_oneway``
    without covariates, the nested-OLS F (levels added to [1, z]) with them."""
    k = y.shape[1]
    out = {"fstat": np.full(k, np.nan), "df1": np.zeros(k), "df2": np.zeros(k),
           "n": np.zeros(k, dtype=np.int64), "pvalue": np.full(k, np.nan)}
    for j in range(k):
        ok = np.isfinite(y[:, j]) & (levels >= 0)
        if z is not None:
            ok &= np.isfinite(z).all(axis=1)
        out["n"][j] = ok.sum()
        present = np.unique(levels[ok])
        reduced = np.column_stack([np.ones(ok.sum()), *([] if z is None else [z[ok]])])
        full = np.column_stack([reduced, (levels[ok][:, None] == present[1:]).astype(float)])
        d1, d2 = len(present) - 1, ok.sum() - full.shape[1]
        out["df1"][j], out["df2"][j] = d1, d2

        def rss(design, j=j, ok=ok):
            return np.sum((y[ok, j] - design @ np.linalg.lstsq(design, y[ok, j],
                                                                rcond=None)[0]) ** 2)

        if z is None:
            res = stats.f_oneway(*(y[ok & (levels == g), j] for g in present))
            out["fstat"][j], out["pvalue"][j] = res.statistic, res.pvalue
        else:
            out["fstat"][j] = ((rss(reduced) - rss(full)) / d1) / (rss(full) / d2)
            out["pvalue"][j] = stats.f.sf(out["fstat"][j], d1, d2)
    return out


#: the bounds of the float64 tests above (rel 1e-10 on F, 1e-9 on p)
F_FLOAT64 = Tolerance(atol=1e-10, rtol=1e-10, log10=1e-9 / np.log(10))


@pytest.mark.parametrize("covariates", [False, True], ids=["plain", "covariates"])
@pytest.mark.parametrize("case", op_cases(chunks=(None, 2), pvalue_routes=("default", "torch")))
def test_group_f_test_on_every_device_dtype_and_chunking(case: OpCase, covariates: bool) -> None:
    """Chunks are score columns here (the F test runs per column of y)."""
    rng = np.random.default_rng(5)
    n, k, n_levels = 50, 5, 3
    levels = rng.integers(0, n_levels, n)
    levels[[3, 17]] = -1
    z = rng.normal(size=(n, 2)) if covariates else None
    y = rng.normal(size=(n, k)) + 0.5 * levels[:, None] + (z[:, :1] if covariates else 0.0)
    y[rng.random(y.shape) < 0.1] = np.nan

    def op(yc, lv, *zt):
        f, df1, df2, count = group_f_test(yc, lv, n_levels, *zt)
        return {"fstat": f, "df1": df1, "df2": df2, "n": count,
                "pvalue": f_pvalue(f, df1, df2)}

    got = run_op(op, y, levels, *([z] if covariates else []), case=case)
    tol = F_FLOAT64 if case.dtype == torch.float64 else case.tol
    assert_matches(got, _f_oracle(y, levels, n_levels, z), tol)

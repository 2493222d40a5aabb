"""The benchmark's numpy/scipy baseline reproduces isograph 0.1.5 (so comparing against it is fair):
every table of the fixture's api_run, and the primitives against scipy on edge cases."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

ROOT = paths.REPO
FIXTURE = ROOT / "tests" / "data" / "isograph-0.1.5"
INPUTS = FIXTURE / "inputs"
EXPECTED = FIXTURE / "expected" / "api_run"
MODULES = ["M000", "M001", "M002", "M003", "M004"]
TABLES = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]


def _load_baseline():
    spec = importlib.util.spec_from_file_location("numpy_baseline", ROOT / "bench" / "numpy_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nb = _load_baseline()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline") / "explain"
    rc = nb.main([
        "--artifact-dir", str(INPUTS / "artifact"),
        "--feature-table", str(INPUTS / "feature_table.parquet"),
        "--feature-meta", str(INPUTS / "feature_meta.parquet"),
        "--output-dir", str(out),
    ])
    assert rc == 0
    return out


def _close_log10(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> None:
    assert (np.isnan(a) == np.isnan(b)).all()
    ok = np.isfinite(a)
    tiny = (a[ok] < 1e-290) & (b[ok] < 1e-290)
    with np.errstate(divide="ignore"):
        diff = np.abs(np.log10(a[ok]) - np.log10(b[ok]))
    assert np.all(tiny | (diff <= tol)), float(np.max(diff[~tiny], initial=0.0))


@pytest.mark.parametrize("module_id", MODULES)
@pytest.mark.parametrize("table", TABLES)
def test_tables_match_the_reference_fixture(written, module_id, table):
    expected = pd.read_parquet(EXPECTED / module_id / f"{table}.parquet")
    got = pd.read_parquet(written / module_id / f"{table}.parquet")
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:
        e, g = expected[column], got[column]
        if e.dtype.kind == "f":
            if column in ("pvalue", "qvalue"):
                _close_log10(e.to_numpy(), g.to_numpy(dtype=float))
            elif column == "tstat":
                np.testing.assert_allclose(g.to_numpy(dtype=float), e.to_numpy(), rtol=1e-6, atol=0)
            else:
                np.testing.assert_allclose(g.to_numpy(dtype=float), e.to_numpy(), rtol=0, atol=1e-6)
        elif e.dtype.kind == "i":
            assert g.dtype == np.int64
            assert (g.to_numpy() == e.to_numpy()).all()
        else:
            assert g.astype(str).tolist() == e.astype(str).tolist(), column


def test_eigengenes_match_the_reference_fixture():
    results = nb.explain(INPUTS / "artifact", INPUTS / "feature_table.parquet", INPUTS / "feature_meta.parquet")
    ours = results["__eigengenes__"]["eigengenes"]
    theirs = pd.read_parquet(EXPECTED / "eigengenes.parquet").set_index("sample_id")
    assert ours.index.tolist() == theirs.index.tolist()
    np.testing.assert_allclose(ours[MODULES].to_numpy(), theirs[MODULES].to_numpy(), rtol=0, atol=1e-12)


def test_manifest_lists_modules_and_tables(written):
    manifest = json.loads((written / "module_explanation_manifest.json").read_text())
    assert manifest["module_ids"] == MODULES
    assert manifest["tables_per_module"] == [f"{t}.parquet" for t in TABLES]


def test_unknown_module_raises():
    with pytest.raises(ValueError, match="Unknown module"):
        nb.explain(INPUTS / "artifact", INPUTS / "feature_table.parquet", INPUTS / "feature_meta.parquet", ["M999"])


# The baseline is numpy written plainly (no power-of-two scaling as in the package): values
# of magnitude 1e-300 underflow in its sums of squares, so its domain starts at 1e-100.
plain_floats = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-100)
finite_or_nan = st.one_of(plain_floats, st.just(float("nan")))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite_or_nan, finite_or_nan), min_size=1, max_size=30))
def test_masked_pearson_equals_scipy_pearsonr(pairs):
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    r, p, n = nb.masked_pearson(x[None, :], y, min_pairs=3)
    mask = np.isfinite(x) & np.isfinite(y)
    assert n[0] == mask.sum()
    xs, ys = x[mask], y[mask]
    if mask.sum() < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        assert np.isnan(r[0]) and np.isnan(p[0])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = stats.pearsonr(xs, ys)
    if not np.isfinite(expected.statistic):
        return  # scipy underflow on near-degenerate input; nothing to compare
    assert r[0] == pytest.approx(expected.statistic, abs=1e-9)
    # p is ill-conditioned near |r| = 1 (with n = 3, a 1e-16 change of r moves p by ~1e-8),
    # so compare with scipy's own null distribution of r evaluated at our r, not with
    # scipy's p of its (equally rounded) r
    k = mask.sum() / 2 - 1
    expected_p = 2 * stats.beta(k, k, loc=-1, scale=2).cdf(-abs(r[0]))
    if expected_p > 1e-12:
        assert p[0] == pytest.approx(expected_p, rel=1e-6, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(6, 40),
    st.floats(10.0, 90.0),
    st.integers(0, 2**31 - 1),
)
def test_welch_equals_scipy_ttest_ind(n_samples, percentile, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_samples, 4))
    values[rng.random(values.shape) < 0.15] = np.nan
    eig = rng.normal(size=(n_samples, 2))
    eig[0, 1] = np.nan  # a NaN eigengene sample falls into the low group (§7)
    out = nb.welch_all(values, eig, percentile)
    for k in range(2):
        threshold = np.nanpercentile(eig[:, k], percentile)
        high = eig[:, k] >= threshold
        for f in range(values.shape[1]):
            v = values[:, f]
            h, lo = v[high & np.isfinite(v)], v[~high & np.isfinite(v)]
            assert out["n_high"][f, k] == h.size and out["n_low"][f, k] == lo.size
            if h.size < 2 or lo.size < 2:
                assert np.isnan(out["tstat"][f, k])
                continue
            res = stats.ttest_ind(h, lo, equal_var=False)
            assert out["delta"][f, k] == pytest.approx(h.mean() - lo.mean(), abs=1e-12)
            assert out["tstat"][f, k] == pytest.approx(res.statistic, rel=1e-9)
            assert out["pvalue"][f, k] == pytest.approx(res.pvalue, rel=1e-7, abs=1e-15)


def test_fdr_leaves_nan_out_of_the_family():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    q = nb.fdr(p, "bh")
    assert np.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], stats.false_discovery_control([0.01, 0.04, 0.03]))

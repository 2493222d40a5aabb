"""NaN handling of the encoder input (DESIGN difference 5): per-feature mean imputation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from isograph_gpu.attribution.encoder_input import encoder_input, impute_feature_means

values = st.one_of(st.floats(-5, 5, allow_nan=False), st.just(float("nan")),
                   st.just(float("inf")))


@settings(max_examples=80, deadline=None)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 6)), elements=values))
def test_imputation_matches_numpy_oracle(x):
    got, n_bad, n_cols = impute_feature_means(x)
    bad = ~np.isfinite(x)
    expect = x.copy()
    for j in range(x.shape[1]):
        ok = np.isfinite(x[:, j])
        fill = x[ok, j].mean() if ok.any() else 0.0
        expect[~ok, j] = fill
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
    assert n_bad == int(bad.sum()) and n_cols == int(bad.any(axis=0).sum())
    assert np.isfinite(got).all()


def test_finite_input_is_used_without_copy_and_without_warning():
    x = np.random.default_rng(0).normal(size=(5, 4))
    got, n_bad, _ = impute_feature_means(x)
    assert got is x and n_bad == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = encoder_input(x, np.arange(4), torch.device("cpu"), torch.float64)
    assert np.shares_memory(t.numpy(), x)


def test_encoder_input_reorders_then_imputes_and_warns():
    x = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, np.nan], [3.0, 7.0, np.nan]])
    with pytest.warns(UserWarning, match=r"3 missing value\(s\) in 2 row\(s\)"):
        t = encoder_input(x, np.array([2, 0, 1]), torch.device("cpu"), torch.float32)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), [[3.0, 1.0, 6.0], [3.0, 2.0, 5.0], [3.0, 3.0, 7.0]])
    assert np.isnan(x[0, 1])  # the caller's matrix is not modified

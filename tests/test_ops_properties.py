"""The tensor core against plain per-feature scipy/numpy oracles on generated inputs:
NaNs, constant features, fewer pairs than min_complete_pairs, single-transcript genes,
tied eigengenes, tiny n."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from isograph_gpu.ops.contrast import percentile_split, tail_split, welch_from_sums
from isograph_gpu.ops.eigengene import module_eigengenes
from isograph_gpu.ops.fdr import fdr_adjust
from isograph_gpu.ops.moments import moments_and_group_sums, power_of_two_scale
from isograph_gpu.ops.pearson import masked_pearson
from isograph_gpu.ops.pvalues import pearson_pvalue, welch_pvalue
from isograph_gpu.ops.segments import segment_argmax, switch_strength

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def matrices(draw, max_n=30, max_f=6, max_k=3):
    """Samples x features and samples x scores with NaNs, constant columns, ties."""
    n = draw(st.integers(2, max_n))
    f = draw(st.integers(1, max_f))
    k = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) * rng.choice([1e-3, 1.0, 50.0]) + rng.choice([0.0, 100.0])
    y = rng.normal(size=(n, k))
    if draw(st.booleans()):  # constant feature
        x[:, 0] = 3.25
    if draw(st.booleans()):  # tied scores
        y[:, 0] = np.round(y[:, 0])
    x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))] = np.nan
    y[rng.random(y.shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))] = np.nan
    return x, y


def oracle_pearson(x, y, min_pairs):
    f, k = x.shape[1], y.shape[1]
    r = np.full((f, k), np.nan)
    p = np.full((f, k), np.nan)
    n = np.zeros((f, k), dtype=int)
    for i in range(f):
        for j in range(k):
            m = np.isfinite(x[:, i]) & np.isfinite(y[:, j])
            n[i, j] = m.sum()
            if n[i, j] < min_pairs:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.pearsonr(x[m, i], y[m, j])
            r[i, j], p[i, j] = res.statistic, res.pvalue
    return r, p, n


@SETTINGS
@given(matrices(), st.integers(2, 5))
def test_masked_pearson_matches_scipy(data, min_pairs):
    x, y = data
    r, n = masked_pearson(torch.from_numpy(x), torch.from_numpy(y), min_pairs)
    p = pearson_pvalue(r, n)
    r_o, p_o, n_o = oracle_pearson(x, y, min_pairs)
    np.testing.assert_array_equal(n.numpy(), n_o)
    np.testing.assert_array_equal(np.isnan(r.numpy()), np.isnan(r_o))
    np.testing.assert_allclose(r.numpy(), r_o, atol=1e-9, equal_nan=True)
    ok = np.isfinite(p_o) & (p_o > 1e-280)
    np.testing.assert_allclose(np.log10(p.numpy()[ok]), np.log10(p_o[ok]), atol=1e-8)
    np.testing.assert_array_equal(np.isnan(p.numpy()), np.isnan(p_o))


def test_pearson_float32_centred_is_accurate():
    rng = np.random.default_rng(1)
    x = 1000.0 + rng.normal(size=(500, 40))  # large offset: uncentred float32 would fail
    y = rng.normal(size=(500, 4)) + 0.3 * x[:, :4]
    r64, _ = masked_pearson(torch.from_numpy(x), torch.from_numpy(y))
    r32, _ = masked_pearson(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert np.abs(r64.numpy() - r32.double().numpy()).max() < 1e-5


@SETTINGS
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=1, max_size=40),
       st.sampled_from(["bh", "by"]))
def test_fdr_matches_scipy(pvals, method):
    p = np.asarray(pvals, dtype=float)
    q = fdr_adjust(torch.from_numpy(p), method=method).numpy()
    expected = np.full_like(p, np.nan)
    fin = np.isfinite(p)
    if fin.any():
        expected[fin] = stats.false_discovery_control(p[fin], method=method)
    np.testing.assert_allclose(q, expected, rtol=1e-12, equal_nan=True)


def test_fdr_families_per_column():
    rng = np.random.default_rng(3)
    p = rng.random((50, 3))
    family = rng.random((50, 3)) < 0.4
    q = fdr_adjust(torch.from_numpy(p), torch.from_numpy(family)).numpy()
    for k in range(3):
        expected = np.full(50, np.nan)
        expected[family[:, k]] = stats.false_discovery_control(p[family[:, k], k])
        np.testing.assert_allclose(q[:, k], expected, rtol=1e-12, equal_nan=True)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.integers(1, 3))
def test_switch_strength_and_argmax_match_loops(seed, n_genes, k):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, n_genes, size=rng.integers(1, 25))  # includes single-transcript genes
    r = rng.uniform(-1, 1, size=(len(seg), k))
    r[rng.random(r.shape) < 0.3] = np.nan
    r[rng.random(r.shape) < 0.2] = 0.5  # ties
    got = switch_strength(torch.from_numpy(r), torch.from_numpy(seg), n_genes).numpy()
    arg = segment_argmax(torch.from_numpy(np.nan_to_num(r, nan=-2.0)), torch.from_numpy(seg),
                         n_genes).numpy()
    for g in range(n_genes):
        rows = np.flatnonzero(seg == g)
        for j in range(k):
            vals = [v for v in r[rows, j] if np.isfinite(v)]
            expected = max(vals) - min(vals) if len(vals) >= 2 else 0.0
            assert got[g, j] == pytest.approx(expected, abs=1e-15)
            if len(rows) == 0:
                assert arg[g, j] == -1
            else:
                key = np.nan_to_num(r[rows, j], nan=-2.0)
                assert arg[g, j] == rows[int(np.argmax(key))]  # first maximum


@SETTINGS
@given(matrices(max_n=40, max_f=5, max_k=3), st.floats(1.0, 99.0))
def test_welch_matches_scipy(data, percentile):
    x, y = data
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    high, low = percentile_split(yt, percentile)
    k = y.shape[1]
    _, g = moments_and_group_sums(xt, yt, torch.cat([high, low], dim=1))
    cnt, s1, s2 = g.count, g.total, g.squares
    w = welch_from_sums(cnt[:, :k], s1[:, :k], s2[:, :k], cnt[:, k:], s1[:, k:], s2[:, k:],
                        g.centre, g.scale)
    p = welch_pvalue(w.tstat, w.df).numpy()
    for j in range(k):
        e = y[:, j]
        thr = np.nanpercentile(e, percentile) if np.isfinite(e).any() else np.nan
        hi, lo = np.isfinite(e) & (e >= thr), np.isfinite(e) & ~(e >= thr)
        np.testing.assert_array_equal(high[:, j].numpy(), hi)
        for i in range(x.shape[1]):
            a, b = x[hi, i], x[lo, i]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            assert w.n_high[i, j] == len(a) and w.n_low[i, j] == len(b)
            if len(a) < 2 or len(b) < 2:
                assert np.isnan(w.tstat[i, j].item()) and np.isnan(w.delta[i, j].item())
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = stats.ttest_ind(a, b, equal_var=False)
            assert w.mean_high[i, j].item() == pytest.approx(a.mean(), abs=1e-9)
            assert w.mean_low[i, j].item() == pytest.approx(b.mean(), abs=1e-9)
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            assert w.se[i, j].item() == pytest.approx(se, abs=1e-9)
            t = w.tstat[i, j].item()
            if np.isnan(res.statistic):
                assert np.isnan(t)
            elif np.isinf(res.statistic):
                assert t == res.statistic and p[i, j] == 0.0
            else:
                assert t == pytest.approx(res.statistic, rel=1e-7)
                if res.pvalue > 1e-280:
                    assert np.log10(p[i, j]) == pytest.approx(np.log10(res.pvalue), abs=1e-7)


def test_tail_split_selects_top_and_bottom():
    e = np.arange(100, dtype=float)
    e[5] = np.nan
    high, low = tail_split(torch.from_numpy(e[:, None]), 10.0)
    upper, lower = np.nanpercentile(e, 90), np.nanpercentile(e, 10)
    np.testing.assert_array_equal(high[:, 0].numpy(), np.isfinite(e) & (e >= upper))
    np.testing.assert_array_equal(low[:, 0].numpy(), np.isfinite(e) & (e <= lower))
    assert not (high & low).any()


def oracle_eigengene(matrix):
    """isograph 0.1.5's compute_eigengene, written plainly (rows x samples)."""
    if len(matrix) == 1:
        return matrix[0]
    signs = np.ones(len(matrix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(1, len(matrix)):
            m = np.isfinite(matrix[i]) & np.isfinite(matrix[0])
            if m.sum() >= 3 and np.corrcoef(matrix[i][m], matrix[0][m])[0, 1] < 0:
                signs[i] = -1.0
        for _ in range(5):
            e = np.nanmean(matrix * signs[:, None], axis=0)
            new = signs.copy()
            for i in range(len(matrix)):
                m = np.isfinite(matrix[i]) & np.isfinite(e)
                if m.sum() >= 3:
                    new[i] = 1.0 if np.corrcoef(matrix[i][m], e[m])[0, 1] >= 0 else -1.0
            if np.all(new == signs):
                break
            signs = new
        return np.nanmean(matrix * signs[:, None], axis=0)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(3, 25), st.integers(1, 4),
       st.sampled_from([1.0, 1e300, 1e-300, 2.0**1020]))
def test_eigengenes_match_reference_algorithm(seed, n, k, magnitude):
    """Also for feature_scores of 1e300 / 1e-300 / 2^1020 (whose sums over rows would
    overflow); the oracle runs on the unscaled rows: the eigengene scales with them, the
    signs do not change."""
    rng = np.random.default_rng(seed)
    n_rows = 10
    latent = rng.normal(size=(k, n))
    scores = rng.normal(size=(n, n_rows)) * 0.5
    modules = [rng.choice(n_rows, size=rng.integers(1, 6), replace=False) for _ in range(k)]
    for j, rows in enumerate(modules):
        for r in rows:
            scores[:, r] += rng.choice([-1, 1]) * latent[j]
    scores[:, 0] = 1.0  # a constant row (NaN correlation -> sign -1 in refinement)
    scores[rng.random(scores.shape) < 0.1] = np.nan
    width = max(len(r) for r in modules)
    idx = np.full((k, width), -1)
    for j, rows in enumerate(modules):
        idx[j, : len(rows)] = np.sort(rows)
    got = module_eigengenes(torch.from_numpy(scores * magnitude), torch.from_numpy(idx))
    got = got.numpy() / magnitude
    for j, rows in enumerate(modules):
        expected = oracle_eigengene(scores[:, np.sort(rows)].T)
        np.testing.assert_allclose(got[:, j], expected, atol=1e-12, equal_nan=True)


def test_power_of_two_scale_is_exact_and_bounds_values():
    x = np.array([[1e300, 1e-300, 3.0, 0.0, 1.7e308, 5e-324, 2.0**255, 2.0**257],
                  [-2e300, np.nan, -0.5, 0.0, -1.0, np.inf, 1.0, -1.0]])
    scale = power_of_two_scale(torch.from_numpy(x)).numpy()[0]
    # 1 for columns whose largest |value| is below 2^256 (and not tiny), and for a column
    # without a nonzero finite value
    np.testing.assert_array_equal(scale[[2, 3, 6]], 1.0)
    assert np.all(np.log2(scale) == np.round(np.log2(scale)))  # powers of two
    finite = np.isfinite(x)
    scaled = x / scale
    peak = np.nanmax(np.where(finite, np.abs(scaled), np.nan), axis=0)
    extreme = [0, 1, 4, 5, 7]  # the largest |value| lands in [1, 2)
    assert np.all((peak[extreme] >= 1.0) & (peak[extreme] < 2.0)), peak
    np.testing.assert_array_equal((scaled * scale)[finite], x[finite])  # exact
    got32 = power_of_two_scale(torch.tensor([[1e30], [1e-3]], dtype=torch.float32))
    assert got32.dtype == torch.float32 and 2**98 < got32.item() < 2**100


MAGNITUDES = [1e300, 1e-300, 1e-310, 1.0, 1e150, 2.0**-600]


@SETTINGS
@given(matrices(max_n=40, max_f=6, max_k=3), st.integers(0, 2**31 - 1), st.floats(5.0, 95.0))
def test_pearson_and_welch_at_extreme_magnitudes(data, seed, percentile):
    """Each feature and score column multiplied by a magnitude from 1e-310 to 1e300: r, n,
    p and t equal scipy on the unscaled values; means, deltas and se scale with them."""
    x, y = data
    rng = np.random.default_rng(seed)
    fx = rng.choice(MAGNITUDES, size=x.shape[1])
    fy = rng.choice(MAGNITUDES, size=y.shape[1])
    xt, yt = torch.from_numpy(x * fx), torch.from_numpy(y * fy)
    r, n = masked_pearson(xt, yt, 3)
    r_o, p_o, n_o = oracle_pearson(x, y, 3)
    np.testing.assert_array_equal(n.numpy(), n_o)
    np.testing.assert_array_equal(np.isnan(r.numpy()), np.isnan(r_o))
    np.testing.assert_allclose(r.numpy(), r_o, atol=1e-9, equal_nan=True)
    p = pearson_pvalue(r, n).numpy()
    ok = np.isfinite(p_o) & (p_o > 1e-280)
    np.testing.assert_allclose(np.log10(p[ok]), np.log10(p_o[ok]), atol=1e-7)

    high, low = percentile_split(torch.from_numpy(y), percentile)
    k = y.shape[1]
    _, g = moments_and_group_sums(xt, yt, torch.cat([high, low], dim=1))
    w = welch_from_sums(g.count[:, :k], g.total[:, :k], g.squares[:, :k], g.count[:, k:],
                        g.total[:, k:], g.squares[:, k:], g.centre, g.scale)
    for j in range(k):
        for i in range(x.shape[1]):
            a = x[high[:, j].numpy(), i]
            b = x[low[:, j].numpy(), i]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if len(a) < 2 or len(b) < 2:
                assert np.isnan(w.tstat[i, j].item())
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = stats.ttest_ind(a, b, equal_var=False)
            unit = fx[i]
            assert w.mean_high[i, j].item() / unit == pytest.approx(a.mean(), abs=1e-9)
            assert w.mean_low[i, j].item() / unit == pytest.approx(b.mean(), abs=1e-9)
            assert w.delta[i, j].item() / unit == pytest.approx(a.mean() - b.mean(), abs=1e-9)
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            assert w.se[i, j].item() / unit == pytest.approx(se, abs=1e-9)
            t = w.tstat[i, j].item()
            if np.isfinite(want.statistic):
                assert t == pytest.approx(want.statistic, rel=1e-7)
            else:
                np.testing.assert_array_equal(t, want.statistic)


#: (high values, low values) of one feature: the degenerate Welch cases of real usage data
#: (exact 0/1), each checked against scipy.stats.ttest_ind(equal_var=False)
DEGENERATE_WELCH = {
    "both constant, different means": ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
    "both constant, low above high": ([0.0, 0.0], [1.0, 1.0, 1.0, 1.0]),
    "both constant, equal means": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "high constant": ([1.0, 1.0, 1.0], [0.0, 0.5, 1.0]),
    "low constant": ([0.2, 0.4, 0.9], [0.0, 0.0, 0.0]),
    "two per group, constant": ([1.0, 1.0], [0.0, 0.0]),
    "two per group": ([1.0, 2.0], [3.0, 5.0]),
    "one in high": ([1.0], [0.0, 0.0, 0.0]),
}


def test_degenerate_welch_cases_match_scipy_through_the_engine():
    """Each case is one feature; its high/low samples are given as the split. Both groups
    constant with different means is t = ±inf, p = 0 (was p = NaN: df was NaN)."""
    from isograph_gpu.engine import feature_statistics

    cases = list(DEGENERATE_WELCH.values())
    n = sum(len(a) + len(b) for a, b in cases)
    x = np.full((n, len(cases)), np.nan)
    high = torch.zeros((n, 1), dtype=torch.bool)
    low = torch.zeros((n, 1), dtype=torch.bool)
    at = 0
    for i, (a, b) in enumerate(cases):  # each feature finite only on its own samples
        x[at : at + len(a), i] = a
        high[at : at + len(a), 0] = True
        at += len(a)
        x[at : at + len(b), i] = b
        low[at : at + len(b), 0] = True
        at += len(b)
    y = torch.from_numpy(np.arange(n, dtype=np.float64)[:, None])
    got = feature_statistics(x, y, min_pairs=3, splits={"split": (high, low)},
                             device=torch.device("cpu"), dtype=torch.float64,
                             memory_budget_bytes=1 << 20).contrasts["split"]
    for i, (name, (a, b)) in enumerate(DEGENERATE_WELCH.items()):
        assert (got.n_high[i, 0], got.n_low[i, 0]) == (len(a), len(b)), name
        if min(len(a), len(b)) < 2:
            assert np.isnan([got.tstat[i, 0], got.pvalue[i, 0], got.se[i, 0]]).all(), name
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = stats.ttest_ind(a, b, equal_var=False)
        t, p = got.tstat[i, 0], got.pvalue[i, 0]
        np.testing.assert_array_equal([np.isnan(t), np.isnan(p)],
                                      [np.isnan(want.statistic), np.isnan(want.pvalue)],
                                      err_msg=name)
        if np.isinf(want.statistic):
            assert t == want.statistic and p == want.pvalue == 0.0, name
        elif np.isfinite(want.statistic):
            assert t == pytest.approx(want.statistic, rel=1e-12), name
            assert p == pytest.approx(want.pvalue, rel=1e-10), name
        assert got.delta[i, 0] == pytest.approx(np.mean(a) - np.mean(b), abs=1e-15), name


def test_welch_pvalue_of_infinite_t_is_zero_whatever_df():
    t = torch.tensor([np.inf, -np.inf, np.inf, np.nan, 2.0])
    df = torch.tensor([np.nan, np.nan, 3.0, 1.0, np.nan])
    p = welch_pvalue(t, df).numpy()
    np.testing.assert_array_equal(p[:3], [0.0, 0.0, 0.0])
    assert np.isnan(p[3:]).all()


@pytest.mark.parametrize("min_pairs", [2, 3])
def test_degenerate_pearson_cases_match_scipy(min_pairs):
    """Constant column -> NaN r and p; n = 2 -> r = ±1, p = 1 (only with min_pairs <= 2);
    fewer pairs than min_pairs -> NaN; 0/1 usage against a score."""
    y = np.array([0.3, 1.2, -0.7, 2.2, 0.1, -1.5])
    x = np.full((6, 5), np.nan)
    x[:, 0] = 1.0  # constant
    x[:2, 1] = [0.0, 1.0]  # two pairs
    x[:2, 2] = [1.0, 0.0]  # two pairs, negative
    x[:, 3] = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # exact 0/1 usage
    x[:3, 4] = [1.0, 1.0, 0.0]  # three pairs
    r, n = masked_pearson(torch.from_numpy(x), torch.from_numpy(y[:, None]), min_pairs)
    p = pearson_pvalue(r, n)
    r_o, p_o, n_o = oracle_pearson(x, y[:, None], min_pairs)
    np.testing.assert_array_equal(n.numpy(), n_o)
    np.testing.assert_array_equal(np.isnan(r.numpy()), np.isnan(r_o))
    np.testing.assert_allclose(r.numpy(), r_o, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(p.numpy(), p_o, rtol=1e-10, equal_nan=True)
    if min_pairs == 2:
        assert r[1, 0] == 1.0 and r[2, 0] == -1.0 and p[1, 0] == p[2, 0] == 1.0


def test_degenerate_tails_of_two_samples_match_scipy_through_the_engine():
    """The tail contrast with 2 samples per tail (10 samples, 20 % tails) on exact 0/1
    usage: constant tails with different means give t = ±inf, p = 0; equal ones NaN."""
    from isograph_gpu.engine import feature_statistics

    score = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.4, 0.6, 0.3, 0.95, 0.05])
    order = np.argsort(score)
    low_rows, high_rows = order[:2], order[-2:]
    x = np.full((10, 4), 0.5)
    x[high_rows, 0], x[low_rows, 0] = 1.0, 0.0  # constant, different
    x[high_rows, 1], x[low_rows, 1] = 0.0, 1.0  # constant, low above high
    x[:, 2] = 1.0  # constant everywhere
    x[high_rows, 3], x[low_rows, 3] = [1.0, 0.0], [0.0, 0.0]  # one tail constant
    y = torch.from_numpy(score[:, None])
    high, low = tail_split(y, 20.0)
    assert sorted(np.flatnonzero(high[:, 0].numpy())) == sorted(high_rows)
    got = feature_statistics(x, y, min_pairs=3, splits={"tails": (high, low)},
                             device=torch.device("cpu"), dtype=torch.float64,
                             memory_budget_bytes=1 << 20).contrasts["tails"]
    for i in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = stats.ttest_ind(x[high_rows, i], x[low_rows, i], equal_var=False)
        t, p = got.tstat[i, 0], got.pvalue[i, 0]
        if np.isnan(want.statistic):
            assert np.isnan(t) and np.isnan(p), i
        elif np.isinf(want.statistic):
            assert t == want.statistic and p == want.pvalue == 0.0, i
        else:
            assert t == pytest.approx(want.statistic, rel=1e-12)
            assert p == pytest.approx(want.pvalue, rel=1e-10)

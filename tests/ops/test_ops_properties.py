"""The tensor core against the scipy/numpy oracles of ``_helpers.oracles`` through the
runner of ``_helpers.testers``: every statistic on each device x dtype x chunked/whole, and
in float64 on generated edge cases (NaNs, constant features, fewer pairs than
min_complete_pairs, single-transcript genes, tied eigengenes, tiny n, extreme
magnitudes)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from _helpers import oracles
from _helpers.testers import OpCase, Tolerance, assert_matches, op_cases, run_op
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.compute.step import chunk_statistics, prepare_scores
from isograph_gpu.ops import fdr as fdr_module
from isograph_gpu.ops.contrast import percentile_split, tail_split, welch_from_sums
from isograph_gpu.ops.eigengene import module_eigengenes
from isograph_gpu.ops.fdr import fdr_adjust
from isograph_gpu.ops.moments import (
    RightBlock,
    Workspace,
    centre_and_mask,
    finite_column_means,
    moments_and_group_sums,
    moments_from_block,
    power_of_two_scale,
)
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


def _pearson(x, y, min_pairs=3):
    r, n = masked_pearson(x, y, min_pairs)
    return {"r": r, "n": n, "pvalue": pearson_pvalue(r, n)}


def _oracle_pearson(x, y, min_pairs=3):
    r, p, n = oracles.pearson(x, y, min_pairs)
    return {"r": r, "n": n, "pvalue": p}


def _welch(x, y, high, low):
    k = y.shape[1]
    _, g = moments_and_group_sums(x, y, torch.cat([high, low], dim=1))
    w = welch_from_sums(g.count[:, :k], g.total[:, :k], g.squares[:, :k], g.count[:, k:],
                        g.total[:, k:], g.squares[:, k:], g.centre, g.scale)
    out = {name: getattr(w, name) for name in
           ("mean_high", "mean_low", "delta", "se", "tstat", "n_high", "n_low")}
    out["pvalue"] = welch_pvalue(w.tstat, w.df)
    return out


def _oracle_welch(x, high, low):
    return vars(oracles.welch(x, high, low))


@SETTINGS
@given(matrices(max_n=40, max_f=5, max_k=3), st.booleans(), st.integers(2, 4))
def test_engine_right_block_packed_when_scores_complete_matches_scipy(data, complete,
                                                                      min_pairs):
    """The engine's y block (built once per run) is packed (one ones column for every
    module's mask) exactly when the scores have no missing value; either way the chunk's
    r, n, p and Welch statistics equal scipy's, and n_finite counts each feature."""
    x, y = data
    if complete:
        y = np.where(np.isfinite(y), y, 0.25)
    yt = torch.from_numpy(y)
    splits = {"split": percentile_split(yt, 50.0), "tails": tail_split(yt, 20.0)}
    prepared = prepare_scores(yt, splits, min_pairs=min_pairs, dtype=torch.float64,
                              device=torch.device("cpu"))
    right, layout = prepared.right, prepared.layout
    assert right.packed == bool(np.isfinite(y).all())
    # the percentile split's low groups are derived (complements): not block columns
    assert right.n_block_groups == layout.n_groups - y.shape[1] == layout.gemm_matrix.shape[1]
    assert right.block.shape[1] == (2 if right.packed else 3) * y.shape[1] + \
        right.n_block_groups + 1
    out = chunk_statistics(torch.from_numpy(x), prepared)
    tol = Tolerance(1e-9, 1e-7, 1e-8)
    assert_matches({"r": out.r, "n": out.n, "pvalue": out.pvalue},
                   _oracle_pearson(x, y, min_pairs), tol)
    np.testing.assert_array_equal(out.n_finite.numpy(), np.isfinite(x).sum(axis=0))
    for name in layout.names:
        high, low = (m.numpy() for m in layout.masks(name))
        assert_matches(vars(out.contrasts[name]), _oracle_welch(x, high, low), tol)


@SETTINGS
@given(matrices(), st.integers(2, 5), st.sampled_from([None, 2]))
def test_masked_pearson_matches_scipy(data, min_pairs, chunk):
    x, y = data
    got = run_op(lambda a, b: _pearson(a, b, min_pairs), x, y,
                 case=OpCase("cpu", torch.float64, chunk))
    assert_matches(got, _oracle_pearson(x, y, min_pairs), Tolerance(1e-9, 1e-7, 1e-8))


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
    np.testing.assert_allclose(q, oracles.fdr(p, method=method), rtol=1e-12, equal_nan=True)


def test_fdr_families_per_column():
    rng = np.random.default_rng(3)
    p = rng.random((50, 3))
    family = rng.random((50, 3)) < 0.4
    q = fdr_adjust(torch.from_numpy(p), torch.from_numpy(family)).numpy()
    np.testing.assert_allclose(q, oracles.fdr(p, family), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("f, k", [(5, 0), (0, 0), (0, 3)])
@pytest.mark.parametrize("with_family", [False, True])
def test_fdr_of_no_columns_or_no_rows_is_empty(f, k, with_family):
    """F > 0 with K = 0 modules, and F = 0: an empty [F, K] q, family or not (the CPU's
    largest-family look-up took the max of an empty [1, 0] count)."""
    p = torch.rand(f, k, dtype=torch.float64)
    family = torch.ones(f, k, dtype=torch.bool) if with_family else None
    q = fdr_adjust(p, family)
    assert q.shape == (f, k) and q.dtype == torch.float64


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(0, 80), st.integers(1, 4),
       st.sampled_from(["bh", "by"]))
def test_fdr_top_members_match_scipy_per_family(seed, f, k, method):
    """Families with tied p, NaN p, empty families, all-member columns and no rows at all:
    the q of the members gathered column by column (tie order arbitrary) and of the full
    sort both equal scipy's false_discovery_control over each column's finite members, and
    each other bit for bit, whatever the memory order of p."""
    rng = np.random.default_rng(seed)
    levels = rng.random(rng.integers(1, 6))  # few distinct values: many ties
    p = np.where(rng.random((f, k)) < 0.5, rng.choice(levels, (f, k)), rng.random((f, k)))
    p[rng.random((f, k)) < 0.1] = np.nan
    family = rng.random((f, k)) < rng.choice([0.02, 0.1, 0.5])
    family[:, 0] = False  # an empty family
    if k > 1:
        family[:, 1] = True  # every row a member (its NaN p still not)
    expected = oracles.fdr(p, family, method)
    got = []
    for share in (0.0, 1.0):  # 0: always sort every row; 1: always gather the members
        for pt in (torch.from_numpy(p), torch.from_numpy(np.asfortranarray(p))):
            with mock.patch.object(fdr_module, "_GATHER_SHARE", share):
                q = fdr_adjust(pt, torch.from_numpy(family), method).numpy()
            np.testing.assert_allclose(q, expected, rtol=1e-12, equal_nan=True)
            assert np.array_equal(np.isnan(q), np.isnan(expected))
            got.append(q)
    for q in got[1:]:
        np.testing.assert_array_equal(q, got[0])


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.integers(1, 3))
def test_switch_strength_and_argmax_match_loops(seed, n_genes, k):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, n_genes, size=rng.integers(1, 25))  # includes single-transcript genes
    r = rng.uniform(-1, 1, size=(len(seg), k))
    r[rng.random(r.shape) < 0.3] = np.nan
    r[rng.random(r.shape) < 0.2] = 0.5  # ties
    got = switch_strength(torch.from_numpy(r), torch.from_numpy(seg), n_genes).numpy()
    key = np.nan_to_num(r, nan=-2.0)
    arg = segment_argmax(torch.from_numpy(key), torch.from_numpy(seg), n_genes).numpy()
    np.testing.assert_allclose(got, oracles.switch_strength(r, seg, n_genes), rtol=0,
                               atol=1e-15)
    # over member entries only: the dense reduction with every other entry NaN, same bits,
    # whatever r's memory order
    member = rng.random(r.shape) < rng.choice([0.0, 0.3, 0.8, 1.0])
    want = oracles.switch_strength(np.where(member, r, np.nan), seg, n_genes)
    for values in (r, np.asfortranarray(r)):
        only = switch_strength(torch.from_numpy(values), torch.from_numpy(seg), n_genes,
                               member=torch.from_numpy(member)).numpy()
        np.testing.assert_array_equal(only, want)
    np.testing.assert_array_equal(arg, oracles.segment_argmax(key, seg, n_genes))


@SETTINGS
@given(matrices(max_n=40, max_f=5, max_k=3), st.floats(1.0, 99.0), st.sampled_from([None, 2]))
def test_welch_matches_scipy(data, percentile, chunk):
    x, y = data
    high, low = percentile_split(torch.from_numpy(y), percentile)
    want_high, want_low = oracles.percentile_split(y, percentile)
    np.testing.assert_array_equal(high.numpy(), want_high)
    np.testing.assert_array_equal(low.numpy(), want_low)
    got = run_op(_welch, x, y, high, low, case=OpCase("cpu", torch.float64, chunk))
    assert_matches(got, _oracle_welch(x, want_high, want_low), Tolerance(1e-9, 1e-7, 1e-7))
    # +-inf t (both groups constant, different means) has p = 0, as scipy
    assert np.all(got["pvalue"][np.isinf(got["tstat"])] == 0.0)


def test_tail_split_selects_top_and_bottom():
    e = np.arange(100, dtype=float)
    e[5] = np.nan
    high, low = tail_split(torch.from_numpy(e[:, None]), 10.0)
    want_high, want_low = oracles.tail_split(e, 10.0)
    np.testing.assert_array_equal(high.numpy(), want_high)
    np.testing.assert_array_equal(low.numpy(), want_low)
    assert high.sum() == low.sum() == 10 and not (high & low).any()


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
        expected = oracles.eigengene(scores[:, np.sort(rows)].T)
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
    case = OpCase("cpu", torch.float64, None)
    got = run_op(_pearson, x * fx, y * fy, case=case)
    assert_matches(got, _oracle_pearson(x, y), Tolerance(1e-9, 1e-7, 1e-7))

    high, low = percentile_split(torch.from_numpy(y), percentile)
    got = run_op(_welch, x * fx, y * fy, high, low, case=case)
    for name in ("mean_high", "mean_low", "delta", "se"):  # in the feature's units
        got[name] = got[name] / fx[:, None]
    want = _oracle_welch(x, high.numpy(), low.numpy())
    assert_matches(got, want, Tolerance(1e-9, 1e-7, 1e-7),
                   names=("mean_high", "mean_low", "delta", "se", "tstat", "n_high", "n_low"))


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
    want = _oracle_welch(x, high.numpy(), low.numpy())
    assert_matches(vars(got), want, Tolerance(1e-15, 1e-12, 4e-11))
    assert np.isinf(got.tstat[:2, 0]).all() and (got.pvalue[:2, 0] == 0.0).all()


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
    got = run_op(lambda a, b: _pearson(a, b, min_pairs), x, y[:, None],
                 case=OpCase("cpu", torch.float64, None))
    r_o, p_o, n_o = oracles.pearson(x, y[:, None], min_pairs)
    np.testing.assert_array_equal(got["n"], n_o)
    np.testing.assert_allclose(got["r"], r_o, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got["pvalue"], p_o, rtol=1e-10, equal_nan=True)
    r, p = got["r"], got["pvalue"]
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
    want = _oracle_welch(x, high.numpy(), low.numpy())
    np.testing.assert_array_equal(want["n_high"], 2)
    assert_matches(vars(got), want, Tolerance(1e-15, 1e-12, 4e-11))
    assert np.isinf(got.tstat[:2, 0]).all() and np.isnan(got.tstat[2, 0])


def _well_conditioned(seed=21, n=60, f=7, k=3):
    """Inputs every dtype can take: NaNs, a constant feature, one with 2 pairs only."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, k))
    x = 0.5 * y[:, [0] * f] + rng.normal(size=(n, f))
    x[rng.random(x.shape) < 0.15] = np.nan
    y[rng.random(y.shape) < 0.05] = np.nan
    x[:, 1] = 2.5
    x[2:, 4] = np.nan
    return x, y


@pytest.mark.parametrize("case", op_cases(pvalue_routes=("default", "torch")))
def test_pearson_on_every_device_dtype_and_chunking(case):
    x, y = _well_conditioned()
    got = run_op(_pearson, x, y, case=case)
    assert got["r"].dtype == (np.float32 if case.dtype == torch.float32 else np.float64)
    assert got["pvalue"].dtype == np.float64
    assert_matches(got, _oracle_pearson(x, y), case)


@pytest.mark.parametrize("case", op_cases(pvalue_routes=("default", "torch")))
def test_welch_on_every_device_dtype_and_chunking(case):
    x, y = _well_conditioned(seed=22)
    high, low = oracles.percentile_split(y, 60.0)
    got = run_op(_welch, x, y, high, low, case=case)
    assert_matches(got, _oracle_welch(x, high, low), case)


@pytest.mark.parametrize("case", op_cases(chunks=(None, 2)))
def test_splits_fdr_and_segments_on_every_device_dtype_and_chunking(case):
    """Ops over columns: chunking splits the K score columns (each column is one family,
    one split, one set of segment reductions); outputs transposed to [K, ...]."""
    rng = np.random.default_rng(23)
    scores = rng.normal(size=(40, 5))
    scores[rng.random(scores.shape) < 0.1] = np.nan
    got = run_op(lambda s: dict(zip(("high", "low"),
                                    (m.T for m in percentile_split(s, 30.0)), strict=True)),
                 scores, case=case)
    high, low = oracles.percentile_split(scores, 30.0)
    assert_matches(got, {"high": high.T, "low": low.T}, case)
    got = run_op(lambda s: dict(zip(("high", "low"),
                                    (m.T for m in tail_split(s, 20.0)), strict=True)),
                 scores, case=case)
    high, low = oracles.tail_split(scores, 20.0)
    assert_matches(got, {"high": high.T, "low": low.T}, case)

    p = rng.random((30, 5)) ** 3
    p[rng.random(p.shape) < 0.1] = np.nan
    got = run_op(lambda q: {"qvalue": fdr_adjust(q, method="by").T}, p, case=case)
    assert_matches(got, {"qvalue": oracles.fdr(p, method="by").T}, case)

    seg = rng.integers(0, 6, size=30)
    r = rng.uniform(-1, 1, size=(30, 5))
    r[rng.random(r.shape) < 0.2] = np.nan
    segment = torch.from_numpy(seg)
    got = run_op(lambda v, s: {"switch": switch_strength(v, s, 7).T,
                               "argmax": segment_argmax(v.nan_to_num(nan=-2.0), s, 7).T},
                 r, segment, case=case)
    want = {"switch": oracles.switch_strength(r, seg, 7).T,
            "argmax": oracles.segment_argmax(np.nan_to_num(r, nan=-2.0), seg, 7).T}
    assert_matches(got, want, case)


@pytest.mark.parametrize("orient_to_mean", [False, True])
@pytest.mark.parametrize("case", op_cases(chunks=(None,)))
def test_eigengenes_on_every_device_and_dtype(case, orient_to_mean):
    """Both sign rules (orient_to_mean: the canonical eigengene_sign)."""
    rng = np.random.default_rng(24)
    latent = rng.normal(size=(3, 30))
    scores = rng.normal(size=(30, 9)) * 0.5
    modules = [np.array([0, 2, 5]), np.array([1, 3]), np.array([4, 6, 7, 8])]
    for j, rows in enumerate(modules):
        for row in rows:
            scores[:, row] += (-1.0) ** row * latent[j]
    scores[rng.random(scores.shape) < 0.1] = np.nan
    idx = np.full((3, 4), -1)
    for j, rows in enumerate(modules):
        idx[j, : len(rows)] = rows
    got = run_op(lambda s, rows: {"eigengene": module_eigengenes(s, rows, orient_to_mean)},
                 scores, torch.from_numpy(idx), case=case)
    oracle = oracles.canonical_eigengene if orient_to_mean else oracles.eigengene
    want = np.stack([oracle(scores[:, rows].T) for rows in modules], axis=1)
    assert_matches(got, {"eigengene": want}, case)


@pytest.mark.parametrize("case", op_cases())
def test_finite_column_means_on_every_device_dtype_and_chunking(case):
    """NaN and +-inf skipped; NaN for a column without a finite value; 1e300 columns
    (float64 only: float32 cannot hold them) do not overflow the sum."""
    rng = np.random.default_rng(25)
    x = rng.normal(size=(30, 7))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[3, 2], x[4, 5] = np.inf, -np.inf
    x[:, 6] = np.nan
    unit = np.ones(7) if case.dtype == torch.float32 else np.array([1e300, 1, 1e-300, 1] * 2)[:7]
    got = run_op(lambda v: dict(zip(("mean", "count"), finite_column_means(v), strict=True)),
                 x * unit, case=case)
    finite = np.isfinite(x)
    want_mean = np.array([x[finite[:, j], j].mean() if finite[:, j].any() else np.nan
                          for j in range(7)])
    assert_matches({"mean": got["mean"] / unit, "n": got["count"]},
                   {"mean": want_mean, "n": finite.sum(axis=0)}, case)


@SETTINGS
@given(matrices(max_n=30, max_f=8, max_k=2), st.sampled_from([1.0, 1e300, 1e-300]))
def test_workspace_reused_across_chunks_gives_the_same_moments(data, magnitude):
    """Moments and group sums of consecutive chunks written through one reused Workspace
    equal those computed with fresh tensors, bit for bit (NaN/inf x, extreme scales), for
    column-major chunks as the engine's (the workspace is column-major; a row-major x's
    fresh temporaries would be summed in another order)."""
    x, y = data
    x = np.asfortranarray(x * magnitude)
    x[0, -1] = np.inf
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    groups = torch.cat(percentile_split(yt, 50.0), dim=1)
    right = RightBlock.build(yt, groups, dtype=torch.float64, device="cpu", pack=True)
    workspace = Workspace(x.shape[0], 3, torch.float64, "cpu")
    for a in range(0, x.shape[1], 3):
        chunk = xt[:, a:a + 3]
        fresh = moments_from_block(chunk, right)
        reused = moments_from_block(chunk, right, workspace)
        for want, got in zip((*fresh, fresh[1].centred), (*reused, reused[1].centred),
                             strict=True):
            assert (want is None) == (got is None)
            for name in vars(want) if want is not None else ():
                if name == "centred":  # compared as the last pair
                    continue
                assert torch.equal(getattr(want, name).nan_to_num(7.0),
                                   getattr(got, name).nan_to_num(7.0)), name
    assert torch.equal(xt.nan_to_num(7.0), torch.from_numpy(x).nan_to_num(7.0))


def test_block_x_orientation_for_every_block_on_the_cpu():
    """Every block on the CPU, packed (the engine's) or not (a training loop's, the public
    moments), runs its GEMMs as block' x, so all callers get the same bits; CUDA keeps x'
    block (tests/ops/test_cuda_path.py)."""
    y = torch.from_numpy(np.random.default_rng(2).normal(size=(8, 40)))
    assert RightBlock.build(y, dtype=torch.float64, device="cpu", pack=True).outer
    assert RightBlock.build(y, dtype=torch.float64, device="cpu").outer


def test_a_tracked_right_block_keeps_its_gradient_with_a_reused_workspace():
    """y that autograd tracks: the GEMMs save x's mask and values for backward, so a
    workspace reused by the next chunk must not hold them; the gradient of chunk 1's
    moments equals the one computed with fresh tensors."""
    rng = np.random.default_rng(4)
    x = torch.from_numpy(np.asfortranarray(rng.normal(size=(9, 6))))
    y = torch.from_numpy(rng.normal(size=(9, 2)))
    grads = []
    for reuse in (False, True):
        leaf = y.clone().requires_grad_(True)
        right = RightBlock.build(leaf, None, dtype=torch.float64, device="cpu")
        workspace = Workspace(9, 3, torch.float64, "cpu") if reuse else None
        first, _ = moments_from_block(x[:, :3], right, workspace)
        moments_from_block(x[:, 3:] * 5.0 + 1.0, right, workspace)  # the next chunk
        (first.sxy.sum() + first.sy.sum()).backward()
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


def test_scores_autograd_tracks_give_the_untracked_statistics():
    """feature_statistics of scores that require grad: the same statistics, none of them
    tracked (to_host works), through the reused workspace."""
    from isograph_gpu.engine import feature_statistics

    rng = np.random.default_rng(6)
    x = np.asfortranarray(rng.normal(size=(30, 50)))
    scores = torch.from_numpy(rng.normal(size=(30, 3)))
    high = scores > 0
    common = dict(min_pairs=3, splits={"m": (high, ~high)}, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=0, chunk_features=7)
    want = feature_statistics(x, scores, **common).to_host()
    got_stats = feature_statistics(x, scores.clone().requires_grad_(True), **common)
    assert not any(t.requires_grad for t in got_stats.named_tensors().values())
    got = got_stats.to_host()
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_workspace_is_not_used_for_tracked_or_unfitting_inputs():
    """An x autograd tracks, or one wider than the workspace, gets fresh tensors (the
    gradient still flows); a fitting one is written into the workspace's buffers."""
    workspace = Workspace(5, 2, torch.float64, "cpu")
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    _, centred, _, _ = centre_and_mask(x, workspace)
    assert centred.requires_grad
    centred.sum().backward()
    assert x.grad is not None
    assert workspace.buffers(torch.zeros(5, 3, dtype=torch.float64)) is None
    assert workspace.buffers(torch.zeros(4, 2, dtype=torch.float64)) is None
    assert workspace.buffers(torch.zeros(5, 2, dtype=torch.float32)) is None
    values, _ = workspace.buffers(x.detach())
    _, centred, _, _ = centre_and_mask(x.detach(), workspace)
    assert centred.data_ptr() == values.data_ptr()

"""Masked Pearson and Welch where sums around a feature's centre cancel (issue 21, items 18
and 19), against exact arithmetic: a feature offset by 1e2..1e8 only on the samples whose
score is NaN, groups 1e2..1e8 apart, single outliers of 1e10, 1e20 and 1e300, and ordinary
data (where nothing is recomputed). The oracle sums with fractions.Fraction (exact on
float64 inputs) and takes roots and the incomplete beta with mpmath at 50 digits; the ops
run in float64 on each device through ``_helpers.testers``."""

from __future__ import annotations

import math
from fractions import Fraction
from unittest import mock

import mpmath
import numpy as np
import pytest
import torch
from _helpers.testers import Tolerance, assert_matches, op_cases, run_op

from isograph_gpu.compute.results import FeatureStatistics
from isograph_gpu.compute.step import chunk_statistics, prepare_scores
from isograph_gpu.ops import moments as moments_module
from isograph_gpu.ops.contrast import percentile_split, tail_split
from isograph_gpu.ops.groups import GroupLayout
from isograph_gpu.ops.moments import moments_and_group_sums
from isograph_gpu.ops.pearson import masked_pearson, pearson_from_moments
from isograph_gpu.ops.pvalues import pearson_pvalue, welch_pvalue

#: the float64 contract the property tests hold (testers.TOLERANCES[float64], p to 1e-8)
TOL = Tolerance(atol=1e-9, rtol=1e-7, log10=1e-8)
OFFSETS = [1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
OUTLIERS = [1e10, 1e12, 1e20, 1e300]
CASES = op_cases(dtypes=(torch.float64,), chunks=(None, 3))


def _mp(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


def _betainc_exact(a: mpmath.mpf, x: mpmath.mpf) -> float:
    """I_x(a, 1/2) at 50 digits from the nearer end."""
    with mpmath.workdps(50):
        if x <= 0.5:
            return float(mpmath.betainc(a, 0.5, 0, x, regularized=True))
        return float(1 - mpmath.betainc(0.5, a, 0, 1 - x, regularized=True))


def _exact_pearson(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """r, p and n of every column of x [n, F] against every column of y [n, K], exactly."""
    f, k = x.shape[1], y.shape[1]
    out = {"r": np.full((f, k), np.nan), "pvalue": np.full((f, k), np.nan),
           "n": np.zeros((f, k), dtype=np.int64)}
    for i in range(f):
        for j in range(k):
            both = np.isfinite(x[:, i]) & np.isfinite(y[:, j])
            a = [Fraction(v) for v in x[both, i]]
            b = [Fraction(v) for v in y[both, j]]
            n = len(a)
            out["n"][i, j] = n
            if n < 3:
                continue
            ma, mb = sum(a) / n, sum(b) / n
            cov = sum((u - ma) * (v - mb) for u, v in zip(a, b, strict=True))
            va = sum((u - ma) ** 2 for u in a)
            vb = sum((v - mb) ** 2 for v in b)
            if va == 0 or vb == 0:
                continue
            with mpmath.workdps(50):
                r = _mp(cov) / mpmath.sqrt(_mp(va) * _mp(vb))
                out["r"][i, j] = float(r)
                out["pvalue"][i, j] = _betainc_exact(mpmath.mpf(n - 2) / 2, 1 - r * r)
    return out


def _exact_welch(x: np.ndarray, high: np.ndarray, low: np.ndarray) -> dict[str, np.ndarray]:
    """Welch statistics of each column of x [n, F], high vs low (bool [n, K]), exactly."""
    f, k = x.shape[1], high.shape[1]
    names = ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue")
    out = {name: np.full((f, k), np.nan) for name in names}
    out["n_high"] = np.zeros((f, k), dtype=np.int64)
    out["n_low"] = np.zeros((f, k), dtype=np.int64)
    out["size_high"] = np.zeros((f, k))  # the largest |value| of each group
    out["size_low"] = np.zeros((f, k))
    for i in range(f):
        for j in range(k):
            groups = []
            for member in (high[:, j], low[:, j]):
                v = [Fraction(t) for t in x[member & np.isfinite(x[:, i]), i]]
                groups.append(v)
            (a, b) = groups
            out["n_high"][i, j], out["n_low"][i, j] = len(a), len(b)
            out["size_high"][i, j] = max((abs(float(t)) for t in a), default=0.0)
            out["size_low"][i, j] = max((abs(float(t)) for t in b), default=0.0)
            if len(a) < 2 or len(b) < 2:
                continue
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            ea = sum((t - ma) ** 2 for t in a) / (len(a) - 1) / len(a)  # var / n
            eb = sum((t - mb) ** 2 for t in b) / (len(b) - 1) / len(b)
            out["mean_high"][i, j], out["mean_low"][i, j] = float(ma), float(mb)
            out["delta"][i, j] = float(ma - mb)
            assert ea + eb > 0, "the cases here have a nonzero se"
            with mpmath.workdps(50):
                se = mpmath.sqrt(_mp(ea + eb))
                t = _mp(ma - mb) / se
                df = _mp((ea + eb) ** 2 / (ea**2 / (len(a) - 1) + eb**2 / (len(b) - 1)))
                out["se"][i, j], out["tstat"][i, j] = float(se), float(t)
                out["pvalue"][i, j] = _betainc_exact(df / 2, df / (df + t * t))
    return out


def _assert_welch(got: dict, want: dict) -> None:
    """Counts exactly; t relative 1e-7; p 1e-8 in log10; se relative 1e-9; means and delta
    to 1e-9 absolute plus the float64 floor of a sum of their groups' values (1e-14 of the
    largest |value|: a group mixing 1e8 and 1 has its mean to ~1e-8 in any float64 sum)."""
    size = {"mean_high": want["size_high"], "mean_low": want["size_low"],
            "delta": np.maximum(want["size_high"], want["size_low"])}
    for name in ("mean_high", "mean_low", "delta", "se"):
        g, w = np.asarray(got[name], dtype=float), want[name]
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=name)
        fin = np.isfinite(w)
        if name == "se":
            np.testing.assert_allclose(g[fin], w[fin], rtol=1e-9, atol=0, err_msg=name)
            continue
        error = np.abs(g[fin] - w[fin])
        allowed = TOL.atol + 1e-14 * size[name][fin]
        assert np.all(error <= allowed), (name, np.max(error / allowed))
    assert_matches(got, want, TOL, names=("tstat", "pvalue", "n_high", "n_low"))


def _offset_on_missing_scores(seed: int = 0, n: int = 60):
    """Features 0.4 y + noise, feature i offset by OFFSETS[i] on the first half of the
    samples, where both scores are NaN (column 1 also on every fifth sample); the last two
    features ordinary."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    y = np.stack([latent, latent + rng.normal(size=n)], axis=1)
    y[: n // 2] = np.nan
    y[::5, 1] = np.nan
    x = 0.4 * latent[:, None] + rng.normal(size=(n, len(OFFSETS) + 2))
    x[: n // 2, : len(OFFSETS)] += OFFSETS
    x[5, -1] = np.nan
    return x, y


def _pearson(x, y):
    r, n = masked_pearson(x, y)
    return {"r": r, "n": n, "pvalue": pearson_pvalue(r, n)}


@pytest.mark.parametrize("case", CASES)
def test_pearson_with_offsets_on_missing_score_samples_is_exact(case):
    """From 1e4 the fast sums gave r = NaN where the exact r is ~0.4; at 1e3 r was 1e-4
    off."""
    x, y = _offset_on_missing_scores()
    got = run_op(_pearson, x, y, case=case)
    want = _exact_pearson(x, y)
    assert np.isfinite(want["r"]).all()
    assert_matches(got, want, TOL)


@pytest.mark.parametrize("where", ["paired", "unpaired"])
@pytest.mark.parametrize("case", CASES)
def test_pearson_with_one_huge_outlier_is_exact(case, where):
    """One value of 1e10 .. 1e300 in each feature, on a sample with a score ("paired") or
    on one whose score is NaN ("unpaired": the pairs then sit far below the centre)."""
    rng = np.random.default_rng(1)
    n = 40
    y = rng.normal(size=(n, 1))
    y[:4] = np.nan
    x = 0.5 * y + rng.normal(size=(n, len(OUTLIERS)))
    x[:4] = rng.normal(size=(4, len(OUTLIERS)))
    at = 10 if where == "paired" else 2
    x[at] = OUTLIERS
    got = run_op(_pearson, x, y, case=case)
    assert_matches(got, _exact_pearson(x, y), TOL)


def _welch(x, y, high, low):
    layout = GroupLayout.from_splits({"split": (high, low)}, *high.shape, device=x.device)
    _, sums = moments_and_group_sums(x, y, layout.matrix)
    w = layout.welch(sums, "split")
    out = {name: getattr(w, name) for name in
           ("mean_high", "mean_low", "delta", "se", "tstat", "n_high", "n_low")}
    out["pvalue"] = welch_pvalue(w.tstat, w.df)
    return out


def _far_apart_groups(seed: int = 2, n: int = 50):
    """Score column 0 (median split) and 1 (tails); feature i: noise of sd 1 plus
    OFFSETS[i] on the high half of score 0; then features with one outlier in the high
    group, the low group, or in neither (a sample with a NaN score)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 2))
    y[0] = np.nan
    high, low = percentile_split(torch.from_numpy(y), 50.0)
    high, low = high.numpy(), low.numpy()
    columns = [rng.normal(size=n) + offset * high[:, 0] for offset in OFFSETS]
    for outlier in (1e10, 1e12, 1e20, 1e300):
        for sample in (int(np.flatnonzero(high[:, 0])[0]), int(np.flatnonzero(low[:, 0])[0]), 0):
            v = rng.normal(size=n)
            v[sample] = outlier
            columns.append(v)
    columns.append(rng.normal(size=n))  # ordinary
    return np.stack(columns, axis=1), y


@pytest.mark.parametrize("case", CASES)
def test_welch_of_far_apart_groups_and_outliers_is_exact(case):
    """At 1e2 apart t was 1e-5 off, from 1e3 se = 0 and t = inf (exact se ~0.14); an
    outlier of 1e12 moved mean_low by 1e-6, one of 1e300 made it ~1e282."""
    x, y = _far_apart_groups()
    for split in (percentile_split(torch.from_numpy(y), 50.0), tail_split(torch.from_numpy(y),
                                                                            20.0)):
        high, low = (m.numpy() for m in split)
        got = run_op(_welch, x, y, torch.from_numpy(high), torch.from_numpy(low), case=case)
        _assert_welch(got, _exact_welch(x, high, low))


@pytest.mark.parametrize("complete", [False, True])
def test_engine_chunk_step_is_exact_on_every_case(complete):
    """The engine's chunk step (its packed block when the scores are complete) on the
    offsets, far groups and outliers together, chunk by chunk."""
    x1, y1 = _offset_on_missing_scores(n=50)
    x2, _ = _far_apart_groups(n=50)
    x = np.concatenate([x1, x2], axis=1)
    y = np.where(np.isfinite(y1), y1, 0.3) if complete else y1
    yt = torch.from_numpy(y)
    prepared = prepare_scores(yt, {"split": percentile_split(yt, 50.0),
                                   "tails": tail_split(yt, 20.0)}, min_pairs=3,
                              dtype=torch.float64, device=torch.device("cpu"))
    layout = prepared.layout
    assert prepared.right.packed == complete
    out = FeatureStatistics.empty(x.shape[1], y.shape[1], list(layout.names),
                                  torch.device("cpu"))
    for a in range(0, x.shape[1], 5):
        b = min(a + 5, x.shape[1])
        out.store(a, b, chunk_statistics(torch.from_numpy(np.asfortranarray(x[:, a:b])),
                                         prepared))
    assert_matches({"r": out.r, "n": out.n, "pvalue": out.pvalue}, _exact_pearson(x, y), TOL)
    for name in layout.names:
        high, low = (m.numpy() for m in layout.masks(name))
        _assert_welch(vars(out.contrasts[name]), _exact_welch(x, high, low))


def test_ordinary_data_recomputes_nothing():
    """Usage-like features with NaNs against eigengenes, median and tail splits: no pair
    or group cancels, so the recompute never runs (and r, Welch match the exact values)."""
    rng = np.random.default_rng(4)
    n, f, k = 80, 30, 3
    y = rng.normal(size=(n, k))
    x = 1.0 / (1.0 + np.exp(-(0.8 * y[:, [0] * f] + rng.normal(size=(n, f)))))
    x[rng.random(x.shape) < 0.05] = np.nan
    y[rng.random(y.shape) < 0.03] = np.nan
    x[:, 0] = 1.0  # a single-transcript gene: usage 1 everywhere
    yt = torch.from_numpy(y)
    layout = GroupLayout.from_splits({"split": percentile_split(yt, 50.0),
                                      "tails": tail_split(yt, 20.0)}, n, k)
    with mock.patch.object(moments_module, "_recompute_entries",
                           side_effect=AssertionError("recomputed on ordinary data")):
        m, sums = moments_and_group_sums(torch.from_numpy(x), yt, layout.matrix)
    assert sums.centred is None
    r = pearson_from_moments(m)
    want = _exact_pearson(x, y)
    assert_matches({"r": r, "n": m.n.round().long()}, want, TOL, names=("r", "n"))


def test_sync_free_limit_recomputes_up_to_it_and_never_gives_a_wrong_value():
    """recompute_limit (torch.nonzero_static: no host synchronisation): with room for
    every cancelling entry the statistics are those of the exact selection; with less,
    the entries left out are NaN and the rest still exact."""
    x, y = _offset_on_missing_scores()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    exact = masked_pearson(xt, yt)[0]
    m, _ = moments_and_group_sums(xt, yt, recompute_limit=64)
    np.testing.assert_array_equal(pearson_from_moments(m).numpy(), exact.numpy())
    m, _ = moments_and_group_sums(xt, yt, recompute_limit=3)
    r = pearson_from_moments(m).numpy()
    fast = ~np.isnan(r)
    assert np.isnan(r).sum() >= 2 * (len(OFFSETS) - 1) - 3  # no room: NaN
    np.testing.assert_array_equal(r[fast], exact.numpy()[fast])
    # groups likewise: Welch NaN where a cancelling group found no room
    xg, yg = _far_apart_groups()
    high, low = percentile_split(torch.from_numpy(yg), 50.0)
    layout = GroupLayout.from_splits({"split": (high, low)}, *high.shape)
    full = layout.welch(moments_and_group_sums(torch.from_numpy(xg), torch.from_numpy(yg),
                                               layout.matrix)[1], "split")
    _, sums = moments_and_group_sums(torch.from_numpy(xg), torch.from_numpy(yg),
                                     layout.matrix, recompute_limit=2)
    some = layout.welch(sums, "split")
    left_out = torch.isnan(some.se) & ~torch.isnan(full.se)
    assert left_out.any()
    kept = ~torch.isnan(some.se)
    assert torch.equal(some.se[kept], full.se[kept])


def test_recompute_keeps_gradients():
    """The training API's autograd path: a recomputed pair's r has the gradient of the
    exact r (the offset features' r against y, by finite differences of the exact r)."""
    x, y = _offset_on_missing_scores(n=30)
    x = x[:, [2]]  # offset 1e4: recomputed
    yt = torch.from_numpy(y[:, :1]).requires_grad_(True)
    m, _ = moments_and_group_sums(torch.from_numpy(x), yt)
    r = pearson_from_moments(m)
    r.sum().backward()
    assert yt.grad is not None
    i = len(y) - 1  # a sample with a score
    h = 1e-6
    bumped = y[:, :1].copy()
    bumped[i, 0] += h
    numeric = (_exact_pearson(x, bumped)["r"] - _exact_pearson(x, y[:, :1])["r"]) / h
    assert math.isclose(yt.grad[i, 0].item(), numeric[0, 0], rel_tol=1e-4)


def _chunk_welch(x: np.ndarray, yt: torch.Tensor, split: tuple, **kwargs) -> dict:
    """The chunk step's Welch statistics of one split, its block's group columns."""
    prepared = prepare_scores(yt, {"split": split}, min_pairs=3, dtype=torch.float64,
                              device=torch.device("cpu"))
    out = chunk_statistics(torch.from_numpy(np.asfortranarray(x)), prepared, **kwargs)
    return vars(out.contrasts["split"]) | {"block_groups": prepared.right.n_block_groups}


@pytest.mark.parametrize("recompute_limit", [None, 4096])
@pytest.mark.parametrize("complete", [False, True])
def test_complement_low_groups_are_exact_on_every_case(complete, recompute_limit):
    """The percentile split's low groups come from the pairs' sums less the high group's
    (no GEMM columns of their own): on far-apart groups, offsets and outliers of 1e10 ..
    1e300 in the high group, the low group or neither, they are exact, as the same split
    summed column by column (a plain tuple); with the host-synchronising selection of
    the groups to recompute and with the sync-free one."""
    x1, y1 = _offset_on_missing_scores(n=50)
    x2, _ = _far_apart_groups(n=50)
    x = np.concatenate([x1, x2], axis=1)
    y = np.where(np.isfinite(y1), y1, 0.3) if complete else y1
    yt = torch.from_numpy(y)
    split = percentile_split(yt, 50.0)
    high, low = (m.numpy() for m in split)
    derived = _chunk_welch(x, yt, split, recompute_limit=recompute_limit)
    summed = _chunk_welch(x, yt, tuple(split), recompute_limit=recompute_limit)
    assert derived["block_groups"] == y.shape[1] and summed["block_groups"] == 2 * y.shape[1]
    want = _exact_welch(x, high, low)
    _assert_welch(derived, want)
    _assert_welch(summed, want)


def test_complement_low_group_under_a_wide_high_group_is_recomputed():
    """A high group spread over +-1e6 .. 1e8 around the centre, a low group of sd 1 at it:
    the low group's squares are the pairs' less the high group's, which cancels to the
    high group's rounding while the low group's own sums look ordinary. Flagged against
    the pairs' squares, it is recomputed (its stderr exact); its fast variance from the
    sums is off, so without that flag it would be kept."""
    rng = np.random.default_rng(5)
    n = 60
    yt = torch.from_numpy(rng.normal(size=(n, 1)))
    layout = GroupLayout.from_splits({"split": percentile_split(yt, 50.0)}, n, 1)
    high = layout.masks("split")[0][:, 0].numpy()
    x = rng.normal(size=(n, 3))
    rows = np.flatnonzero(high)
    pairs = rows.size // 2  # +v and -v: the centre stays at the low group's
    v = np.array([1e6, 1e7, 1e8]) * (1.0 + 0.1 * rng.random((pairs, 1)))
    x[rows[:pairs]], x[rows[pairs:2 * pairs]] = v, -v
    x[rows[2 * pairs:]] = 0.0
    right = moments_module.RightBlock.build(yt, layout.gemm_matrix, dtype=torch.float64,
                                            device="cpu", segments=layout.segments)
    _, sums = moments_module.moments_from_block(torch.from_numpy(x), right)
    low = x[~high]
    exact = low.std(axis=0, ddof=1) / np.sqrt(low.shape[0])
    assert sums.centred is not None
    at = sums.centred.at.numpy()
    recomputed = at[:, 1] == 1  # group column 1: the derived low group
    assert sorted(at[recomputed, 0].tolist()) == [0, 1, 2]
    order = at[recomputed, 0]
    np.testing.assert_allclose(sums.centred.stderr.numpy()[recomputed], exact[order],
                               rtol=1e-12)
    count, total, squares = (t[:, 1].numpy() for t in (sums.count, sums.total,
                                                        sums.squares))
    fast = np.sqrt(np.maximum(squares - total**2 / count, 0.0) / (count - 1) / count)
    assert np.all(np.abs(fast - exact) > 1e-6 * exact)  # the sums alone: wrong


def test_complement_splits_are_summed_outside_float64():
    """float32 sums every group: a score that overflows the cast (1e39) is high in the
    float64 split but no pair of the block, and the subtraction would flag well separated
    groups a summed one keeps; float64 derives the low groups."""
    rng = np.random.default_rng(6)
    n = 40
    y = rng.normal(size=(n, 2))
    y[3, 0] = 1e39  # finite in float64, inf in float32
    yt = torch.from_numpy(y)
    split = percentile_split(yt, 50.0)
    x = rng.normal(size=(n, 5))
    for dtype, block_groups in ((torch.float64, 2), (torch.float32, 4)):
        prepared = prepare_scores(yt, {"split": split}, min_pairs=3, dtype=dtype,
                                  device=torch.device("cpu"))
        assert prepared.right.n_block_groups == block_groups
        got = chunk_statistics(torch.from_numpy(x).to(dtype), prepared).contrasts["split"]
        high, low = (m.numpy() for m in split)
        finite = np.isfinite(x).T.astype(np.int64)
        np.testing.assert_array_equal(got.n_high.numpy(), finite @ high.astype(np.int64))
        np.testing.assert_array_equal(got.n_low.numpy(), finite @ low.astype(np.int64))


def test_sync_free_recompute_of_derived_groups_copies_nothing_to_the_device():
    """The sync-free selection (the training loop's on CUDA) with derived low groups: no
    tensor is made from host values, in the block's build or in the chunk step (on CUDA
    each would be a synchronising copy; a training loop builds the block every call)."""
    x, y = _far_apart_groups(n=50)
    yt = torch.from_numpy(y)
    split = percentile_split(yt, 50.0)
    made = []
    real = torch.tensor

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    with mock.patch.object(torch, "tensor", counting):
        prepared = prepare_scores(yt, {"split": split}, min_pairs=3, dtype=torch.float64,
                                  device=torch.device("cpu"))
        assert prepared.right.segments
        out = chunk_statistics(torch.from_numpy(np.asfortranarray(x)), prepared,
                               recompute_limit=256)
    assert made == []
    _assert_welch(vars(out.contrasts["split"]),
                  _exact_welch(x, *(m.numpy() for m in prepared.layout.masks("split"))))


@pytest.mark.parametrize("f, k", [(0, 3), (4, 0), (0, 0)])
def test_sync_free_limit_with_no_features_or_no_modules(f, k):
    """recompute_limit with F = 0 or K = 0 (no entry to select): empty statistics of the
    right shapes, not an index error."""
    x = torch.zeros((10, f), dtype=torch.float64)
    y = torch.from_numpy(np.random.default_rng(0).normal(size=(10, k)))
    m, _ = moments_and_group_sums(x, y, recompute_limit=4)
    assert m.sxy.shape == (f, k) and m.centred is None
    r = pearson_from_moments(m)
    assert r.shape == (f, k)


@pytest.mark.parametrize("complete", [False, True])
def test_derived_low_groups_carry_gradients(complete):
    """Autograd through the derived low groups (a training loop's path): d sum(mean_low)
    / dx is 1 / n_low on each finite low value and 0 elsewhere (the closed form), and the
    se's gradient is that of the same split summed column by column."""
    rng = np.random.default_rng(7)
    n, f, k = 30, 4, 2
    x = rng.normal(size=(n, f)) + 3.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.normal(size=(n, k))
    if not complete:
        y[2, 0] = np.nan
    yt = torch.from_numpy(y)
    split = percentile_split(yt, 50.0)
    grads = []
    for kind in (split, tuple(split)):
        xt = torch.from_numpy(x).requires_grad_()
        prepared = prepare_scores(yt, {"split": kind}, min_pairs=3, dtype=torch.float64,
                                  device=torch.device("cpu"), differentiable=True)
        assert bool(prepared.right.segments) == (kind is split)
        w = chunk_statistics(xt, prepared, with_pvalues=False).contrasts["split"]
        g_mean, = torch.autograd.grad(w.mean_low.sum(), xt, retain_graph=True)
        g_se, = torch.autograd.grad(w.se.sum(), xt)
        grads.append((g_mean.numpy(), g_se.numpy()))
    low = split[1].numpy().astype(np.float64)
    finite = np.isfinite(x).astype(np.float64)
    n_low = finite.T @ low  # [f, k]
    want = sum(low[:, [j]] * finite / n_low[:, j] for j in range(k))
    np.testing.assert_allclose(grads[0][0], want, rtol=0, atol=1e-14)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-14)

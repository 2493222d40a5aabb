"""GroupLayout with OVERLAPPING splits (the tails split overlaps the median split) against
numpy/scipy written plainly: group counts, sums and Welch statistics of every group column.

The old fused group kernel paired columns j and j + G/2 in one membership test
(``if high ... else if low``) and counted a sample in both groups once: every tails count
past the first half of the columns came out wrong. These tests compute each column on its
own in numpy, so that pairing fails them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import oracles
from _helpers.testers import OpCase, Tolerance, assert_matches, op_cases, run_op
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.contrast import percentile_split, tail_split
from isograph_gpu.ops.groups import GroupLayout
from isograph_gpu.ops.moments import moments_and_group_sums


def _data(n: int = 120, f: int = 40, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) * 3.0 + 10.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.normal(size=(n, k))
    y[rng.random(y.shape) < 0.05] = np.nan
    return x, y


def _overlapping_layout(y: torch.Tensor, device: str = "cpu") -> GroupLayout:
    splits = {"split": percentile_split(y, 50.0), "tails": tail_split(y, 20.0)}
    return GroupLayout.from_splits(splits, *y.shape, device=device)


def test_layout_columns_are_the_split_masks() -> None:
    _, y = _data()
    yt = torch.from_numpy(y)
    layout = _overlapping_layout(yt)
    assert layout.names == ("split", "tails") and layout.n_groups == 12
    assert layout.matrix.shape == (120, 12) and layout.matrix.dtype == torch.bool
    for name, (high, low) in (("split", percentile_split(yt, 50.0)),
                              ("tails", tail_split(yt, 20.0))):
        got_high, got_low = layout.masks(name)
        assert torch.equal(got_high, high) and torch.equal(got_low, low)
    # the layouts overlap: tails-high samples are median-high samples too
    split_high, _ = layout.masks("split")
    tails_high, _ = layout.masks("tails")
    assert (split_high & tails_high).sum() > 0


def test_layout_rejects_mis_shaped_masks() -> None:
    high = torch.zeros((10, 2), dtype=torch.bool)
    with pytest.raises(ValueError, match="split 'tails': low mask has shape"):
        GroupLayout.from_splits({"tails": (high, torch.zeros((10, 3), dtype=torch.bool))}, 10, 2)


def _wide_lognormal_data():
    """Skewed values, 2,000 features: the shape the CUDA GEMMs tile."""
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(300, 2000)) * 5.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.normal(size=(300, 11))
    y[rng.random(y.shape) < 0.05] = np.nan
    return x, y


#: relative error allowed in the group totals (of sum |deviation| + 1) and squares
_GROUP_SUM_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _group_sums(x: torch.Tensor, y: torch.Tensor, member: torch.Tensor
                ) -> dict[str, torch.Tensor]:
    _, sums = moments_and_group_sums(x, y, member)
    return {"count": sums.count, "total": sums.total, "squares": sums.squares}


@pytest.mark.parametrize("data", [_data, _wide_lognormal_data], ids=["normal", "lognormal"])
@pytest.mark.parametrize("case", op_cases(chunks=(None, 16)))
def test_overlapping_group_sums_match_numpy(data, case: OpCase) -> None:
    """Median and tails splits overlap; every group column counted on its own (the old
    group kernel got the tails columns wrong here), on each device, dtype and chunking."""
    x, y = data()
    member = _overlapping_layout(torch.from_numpy(y)).matrix
    sums = run_op(_group_sums, x, y, member, case=case)
    member = member.numpy()
    want = oracles.group_sums(x, member)
    np.testing.assert_array_equal(sums["count"].astype(np.float64), want.count)
    total = sums["total"].astype(np.float64)
    squares = sums["squares"].astype(np.float64)
    tol = _GROUP_SUM_TOL[case.dtype]
    deviation = np.nan_to_num(np.abs(x - np.nanmean(x, axis=0)))
    scale = (member.T.astype(np.float64) @ deviation).T + 1.0  # sum |deviation| + 1 [F, G]
    assert np.max(np.abs(total - want.total) / scale) <= tol
    if case.device == "cpu" and case.dtype == torch.float64:  # the CPU float64 bounds as they were
        np.testing.assert_allclose(total, want.total, atol=1e-10)
    np.testing.assert_allclose(squares, want.squares, rtol=tol)


@pytest.mark.parametrize("name,split", [("split", lambda y: percentile_split(y, 50.0)),
                                        ("tails", lambda y: tail_split(y, 20.0))])
def test_engine_welch_of_each_overlapping_split_matches_scipy(name, split) -> None:
    x, y = _data(seed=1)
    yt = torch.from_numpy(y)
    splits = {"split": percentile_split(yt, 50.0), "tails": tail_split(yt, 20.0)}
    got = feature_statistics(x, yt, min_pairs=3, splits=splits, device=torch.device("cpu"),
                             dtype=torch.float64, memory_budget_bytes=1 << 30,
                             chunk_features=7).contrasts[name]
    high, low = (m.numpy() for m in split(yt))
    want = vars(oracles.welch(x, high, low))
    assert_matches(vars(got), want, Tolerance(atol=1e-10, rtol=1e-10, log10=4e-11),
                   ("n_high", "n_low", "delta", "tstat", "pvalue"))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 30), f=st.integers(1, 6), k=st.integers(1, 4),
       n_splits=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_any_overlapping_groups_count_each_column_independently(n, f, k, n_splits,
                                                                seed) -> None:
    """Arbitrary (possibly overlapping, empty or full) high/low masks for any number of
    splits: each group column's count and sum equal numpy's over that column alone."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[rng.random(x.shape) < 0.2] = np.nan
    density = rng.uniform(0.0, 1.0)
    splits = {f"s{i}": (torch.as_tensor(rng.random((n, k)) < density),
                        torch.as_tensor(rng.random((n, k)) < density))
              for i in range(n_splits)}
    layout = GroupLayout.from_splits(splits, n, k)
    _, sums = moments_and_group_sums(torch.as_tensor(x), torch.as_tensor(rng.normal(size=(n, k))),
                                     layout.matrix)
    for name, (high, low) in splits.items():
        hi, lo = layout.columns(name)
        for cols, masks in ((hi, high), (lo, low)):
            want = oracles.group_sums(x, masks.numpy())  # [F, k], each column on its own
            np.testing.assert_array_equal(sums.count[:, cols].numpy(), want.count)
            np.testing.assert_allclose(sums.total[:, cols].numpy(), want.total, atol=1e-12)

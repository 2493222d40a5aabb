"""The one chunk step (isograph_gpu.compute.step): the engine's chunk loop, a Dask task's
block and the training API's ModuleStatistics all call it, so on the same chunk they give
the same tensors bit for bit; and its statistics are scipy's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import oracles

from isograph_gpu import distributed
from isograph_gpu.compute.step import chunk_statistics, prepare_scores
from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.contrast import WelchResult, percentile_split
from isograph_gpu.training import ModuleStatistics


def _chunk(seed: int = 5, n: int = 60, f: int = 45, k: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    x[rng.random(x.shape) < 0.05] = np.nan
    y = rng.normal(size=(n, k))
    y[4, 1] = np.nan  # a missing score: every caller's block is the unpacked one
    return x, y


def test_engine_dask_task_and_module_statistics_give_identical_tensors():
    x, y = _chunk()
    scores = torch.from_numpy(y)
    splits = {"split": percentile_split(scores, 50.0)}
    cpu, f = torch.device("cpu"), x.shape[1]
    engine = feature_statistics(x, scores, min_pairs=3, splits=splits, device=cpu,
                                dtype=torch.float64, memory_budget_bytes=1 << 30,
                                chunk_features=f)
    task = distributed._block_task(
        x, 0, f, y, {"split": tuple(m.numpy() for m in splits["split"])}, 3, None, "cpu",
        torch.float64, f)
    training = ModuleStatistics([f"g{i // 3}" for i in range(f)], min_pairs=3,
                                with_pvalues=True, with_contrast=True)(
        torch.from_numpy(np.ascontiguousarray(x)), scores)
    for name in ("r", "n", "pvalue"):
        want = getattr(engine, name)
        assert torch.equal(getattr(task, name), want), name
        assert torch.equal(getattr(training, name), want), name
    assert isinstance(training.contrast, WelchResult)
    for name in ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue", "n_high", "n_low"):
        want = getattr(engine.contrasts["split"], name)
        assert torch.equal(getattr(task.contrasts["split"], name), want), name
        assert torch.equal(getattr(training.contrast, name), want), name


@pytest.mark.parametrize("complete", [True, False])
def test_chunk_step_matches_scipy(complete):
    """r, n, p against scipy.stats.pearsonr on the complete pairs; Welch against
    scipy.stats.ttest_ind(equal_var=False) on the split's groups."""
    x, y = _chunk(seed=9, f=12)
    if complete:
        y = np.where(np.isfinite(y), y, 0.5)
    yt = torch.from_numpy(y)
    high, low = percentile_split(yt, 50.0)
    prepared = prepare_scores(yt, {"split": (high, low)}, min_pairs=3,
                              dtype=torch.float64, device=torch.device("cpu"))
    assert prepared.right.packed == complete
    out = chunk_statistics(torch.from_numpy(x), prepared)
    r, p, n = oracles.pearson(x, y)
    np.testing.assert_array_equal(out.n.numpy(), n)
    np.testing.assert_allclose(out.r.numpy(), r, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.pvalue.numpy(), p, rtol=1e-9)
    want = oracles.welch(x, high.numpy(), low.numpy())
    w = out.contrasts["split"]
    for name in ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue"):
        np.testing.assert_allclose(getattr(w, name).numpy(), getattr(want, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(w.n_high.numpy(), want.n_high)
    np.testing.assert_array_equal(out.n_finite.numpy(), np.isfinite(x).sum(axis=0))

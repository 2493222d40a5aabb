"""The one chunk step (isograph_gpu.compute.step): the engine's chunk loop, a Dask task's
block and the training API's ModuleStatistics all call it, so on the same chunk they give
the same tensors bit for bit; and its statistics are scipy's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import oracles

from isograph_gpu import distributed
from isograph_gpu.compute.companions import (
    NullScores,
    PartialScores,
    SwitchNull,
    switch_pairs,
    switch_pvalues,
)
from isograph_gpu.compute.step import chunk_statistics, prepare_scores
from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.contrast import WelchResult, percentile_split, split_like
from isograph_gpu.ops.permutation import sample_permutations
from isograph_gpu.ops.segments import switch_strength
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
    task, null = distributed._block_task(
        x, 0, f, y, {"split": split_like(splits["split"],
                                         *(m.numpy() for m in splits["split"]))},
        None, None, 3, None,
        "cpu", torch.float64, f)
    assert null is None
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


@pytest.mark.parametrize("with_covariates", [False, True])
def test_the_companions_give_identical_tensors_to_engine_dask_task_and_module_statistics(
        with_covariates):
    """With covariates (partial r / n / p) and switch permutations (the running null),
    the engine's chunk loop, a Dask task and ModuleStatistics give the same tensors on
    the same chunk; in chunks of 7 features (which split genes: a gene's features are
    scattered over the columns) the engine's switch p are the same still. The partial r
    is the numpy OLS residuals' Pearson r (_helpers.oracles.partial_pearson) and the
    switch p is the plain numpy loop of _helpers.oracles.switch_permutation_pvalues."""
    x, y = _chunk(seed=3, n=40, f=21, k=2)
    rng = np.random.default_rng(8)
    z = rng.normal(size=(40, 2))
    z[6, 0] = np.nan
    gene_ids = [f"g{(7 * i) % 9}" for i in range(21)]  # genes scattered over the columns
    gene_ids[20] = "single"  # a one-feature gene: no null, NaN p
    b, seed, cpu, f = 30, 4, torch.device("cpu"), x.shape[1]
    training_api = ModuleStatistics(gene_ids, min_pairs=3, with_pvalues=True,
                                    switch_permutations=b, seed=seed)
    segments = training_api.segment().numpy()
    scores, zt = torch.from_numpy(y), torch.from_numpy(z) if with_covariates else None
    training = training_api(torch.from_numpy(np.ascontiguousarray(x)), scores,
                            covariates=zt)
    pairs, genes, modules = switch_pairs(segments, np.ones((f, 2), dtype=bool),
                                         training_api.n_genes)
    shared = NullScores.build(scores, sample_permutations(40, b, seed), zt, min_pairs=3,
                              block_bytes=20_000, dtype=torch.float64, device=cpu)
    partial = None if zt is None else PartialScores(scores=scores, covariates=zt,
                                                    min_pairs=3, step=f)
    null, chunked = SwitchNull(shared, pairs, len(genes)), SwitchNull(shared, pairs, len(genes))
    engine = feature_statistics(x, scores, min_pairs=3, device=cpu, dtype=torch.float64,
                                memory_budget_bytes=1 << 30, chunk_features=f,
                                partial=partial, switch_null=null)
    feature_statistics(x, scores, min_pairs=3, device=cpu, dtype=torch.float64,
                       memory_budget_bytes=1 << 30, chunk_features=7, switch_null=chunked)
    ids, task_pairs = null.part(0, f)
    task, extremes = distributed._block_task(x, 0, f, y, {}, partial, shared, 3, None, "cpu",
                                             torch.float64, f, None, task_pairs)
    from_task = SwitchNull(shared, pairs, len(genes))
    from_task.merge(ids, *extremes)
    for name in ("r", "n", "pvalue"):
        want = getattr(training, name)
        assert torch.equal(getattr(engine, name), want), name
        assert torch.equal(getattr(task, name), want), name
    observed = switch_strength(training.r, training_api.segment(), training_api.n_genes)
    for run in (null, from_task, chunked):
        p, q = switch_pvalues(run, observed, genes, modules, "bh")
        torch.testing.assert_close(p, training.switch_pvalue, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(q, training.switch_qvalue, rtol=0, atol=0, equal_nan=True)
    single = training_api.gene_names.index("single")
    assert torch.isnan(training.switch_pvalue[single]).all()
    if with_covariates:
        for j in (0, 5, 13):
            want, n = oracles.partial_pearson(x[:, j], y[:, 1], z)
            assert training.r[j, 1].item() == pytest.approx(want, abs=1e-10)
            assert training.n[j, 1].item() == n
    else:
        perms = sample_permutations(40, b, seed).numpy()
        want = oracles.switch_permutation_pvalues(x, y, segments, perms)
        keep = np.arange(training_api.n_genes) != single
        np.testing.assert_array_equal(training.switch_pvalue.numpy()[keep], want[keep])


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

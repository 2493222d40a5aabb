"""The training-loop API takes the options of the explain run on tensors: covariates
(partial r against numpy OLS residuals, differentiable), traits (scipy.stats.pearsonr) and
switch permutations (a plain numpy loop over the same permutations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers.oracles import partial_pearson, switch_permutation_pvalues
from scipy import stats

from isograph_gpu.ops.permutation import sample_permutations
from isograph_gpu.training import ModuleStatistics


def _data(seed=0, n=30, genes=5, per_gene=3, k=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, genes * per_gene))
    x[rng.random(x.shape) < 0.1] = np.nan
    gene_ids = [f"G{i // per_gene}" for i in range(genes * per_gene)]
    return x, rng.normal(size=(n, k)), gene_ids, rng


def test_switch_pvalues_equal_a_numpy_loop():
    x, scores, gene_ids, _ = _data()
    gene_ids[-1] = "single"  # a one-feature gene: NaN p
    stats_ = ModuleStatistics(gene_ids, switch_permutations=40, seed=4)
    out = stats_(torch.from_numpy(x), torch.from_numpy(scores))
    segments = np.array([stats_.gene_names.index(g) for g in gene_ids])
    expected = switch_permutation_pvalues(x, scores, segments, sample_permutations(30, 40, 4).numpy())
    p = out.switch_pvalue.numpy()
    assert np.isnan(p[-1]).all()
    np.testing.assert_array_equal(p[:-1], expected[:-1])
    assert np.isfinite(out.switch_qvalue.numpy()[:-1]).all()


def test_covariates_and_traits_on_tensors():
    x, scores, gene_ids, rng = _data(1)
    z = rng.normal(size=(30, 2))
    z[3, 1] = np.nan
    traits = rng.normal(size=(30, 2))
    traits[5, 0] = np.nan
    latent = torch.from_numpy(scores).requires_grad_(True)
    out = ModuleStatistics(gene_ids, with_pvalues=True)(
        torch.from_numpy(x), latent, covariates=torch.from_numpy(z),
        traits=torch.from_numpy(traits))
    for f in range(x.shape[1]):
        expected, n = partial_pearson(x[:, f], scores[:, 0], z)
        assert out.r[f, 0].item() == pytest.approx(expected, abs=1e-10)
        t = expected * np.sqrt((n - 4) / (1 - expected**2))
        assert out.pvalue[f, 0].item() == pytest.approx(2 * stats.t.sf(abs(t), n - 4), rel=1e-9)
    expected, _ = partial_pearson(traits[:, 0], scores[:, 1], z)
    assert out.trait_r[0, 1].item() == pytest.approx(expected, abs=1e-10)
    (-out.switch_strength.mean()).backward()
    assert latent.grad is not None and torch.isfinite(latent.grad).all()
    plain = ModuleStatistics(gene_ids)(torch.from_numpy(x), torch.from_numpy(scores),
                                       traits=torch.from_numpy(traits))
    ok = np.isfinite(traits[:, 0])
    res = stats.pearsonr(traits[ok, 0], scores[ok, 0])
    assert plain.trait_r[0, 0].item() == pytest.approx(res.statistic, abs=1e-12)
    assert plain.trait_pvalue[0, 0].item() == pytest.approx(res.pvalue, rel=1e-10)

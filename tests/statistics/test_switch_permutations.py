"""Switch significance: the permutation p of every gene's switch strength equals a plain
numpy loop over the same permutations (pairwise-complete null r: masks stay, scores
move), does not depend on chunking (a gene's features in any chunks) or permutation
blocks, is calibrated on null data, and reaches the demo's planted switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers.oracles import partial_pearson, switch_permutation_pvalues
from _helpers.testers import OpCase, op_cases, run_op
from scipy import stats

from isograph_gpu.compute.companions import NullScores, SwitchNull, switch_pairs, switch_pvalues
from isograph_gpu.engine import feature_statistics
from isograph_gpu.ops.permutation import (
    permutation_pvalue,
    sample_permutations,
    switch_null_exceedances,
)
from isograph_gpu.ops.segments import switch_strength


def _null_data(seed, n, genes, transcripts, k, nan=0.1):
    rng = np.random.default_rng(seed)
    segments = np.repeat(np.arange(genes), transcripts)
    x = rng.normal(size=(n, len(segments)))
    x[rng.random(x.shape) < nan] = np.nan
    scores = rng.normal(size=(n, k))
    return x, scores, segments


def _null_counts(case: OpCase, got: np.ndarray, want: np.ndarray) -> None:
    """Exceedance counts: exactly the oracle's on the CPU; on CUDA (another GEMM
    summation order) a near-tie of a null strength with the observed may round apart."""
    if case.device == "cpu":
        np.testing.assert_array_equal(got, want)
    else:
        assert np.abs(got - want).max() <= 1


def _exceedance_op(segments: np.ndarray, n_genes: int, perms: torch.Tensor, block: int):
    """The switch null on the chunk's device: observed strength from masked Pearson (or
    partial r given covariates), then the exceedances and permutation p of each gene."""
    from isograph_gpu.ops.partial import partial_correlation
    from isograph_gpu.ops.pearson import masked_pearson

    def op(x, scores, *covariates):
        seg = torch.as_tensor(segments, device=x.device)
        r = (partial_correlation(x, scores, covariates[0])[0] if covariates
             else masked_pearson(x, scores)[0])
        observed = switch_strength(r, seg, n_genes)
        counts = switch_null_exceedances(x, scores, seg, n_genes, observed, perms,
                                         min_pairs=3, block=block,
                                         covariates=covariates[0] if covariates else None)
        return {"observed": observed, "exceedances": counts,
                "pvalue": permutation_pvalue(counts, len(perms))}

    return op


@pytest.mark.parametrize("case", op_cases(chunks=(None,)))
def test_pvalue_equals_a_plain_numpy_loop_over_the_same_permutations(case: OpCase) -> None:
    x, scores, segments = _null_data(0, 25, 6, 3, 2)
    x[:, 0] += 2.0 * scores[:, 0]  # one planted switch: T1 up with module 0
    x[:, 1] -= 2.0 * scores[:, 0]
    scores[3, 1] = np.nan  # a missing score moves with its sample
    perms = sample_permutations(25, 60, seed=7)
    assert torch.equal(perms, sample_permutations(25, 60, seed=7))
    got = run_op(_exceedance_op(segments, 6, perms, block=7), x, scores, case=case)
    p = switch_permutation_pvalues(x, scores, segments, perms.numpy())
    _null_counts(case, got["exceedances"], np.rint(p * 61).astype(np.int64) - 1)
    if case.device == "cpu":
        np.testing.assert_array_equal(got["pvalue"], p)
    assert got["pvalue"][0, 0] == 1 / 61


def engine_pvalues(x, scores, segments, member, n_genes, *, n_permutations, seed,
                   block_bytes=256 << 20, chunk_features=None):
    """(p, q) [G, K] of the run's path: the engine's chunk loop with the running switch
    null (compute.companions), the observed strength from the same loop's r."""
    cpu = torch.device("cpu")
    scores_t = torch.from_numpy(scores)
    pairs, genes, modules = switch_pairs(segments, member, n_genes)
    shared = NullScores.build(scores_t, sample_permutations(len(scores), n_permutations, seed),
                              None, min_pairs=3, block_bytes=block_bytes,
                              dtype=torch.float64, device=cpu)
    null = SwitchNull(shared, pairs, len(genes))
    stats = feature_statistics(x, scores_t, min_pairs=3, device=cpu, dtype=torch.float64,
                               memory_budget_bytes=1 << 30, chunk_features=chunk_features,
                               switch_null=null)
    observed = switch_strength(stats.r, torch.from_numpy(segments), n_genes)
    return switch_pvalues(null, observed, genes, modules, "bh")


def test_the_chunk_pass_does_not_depend_on_chunks_blocks_or_feature_order():
    x, scores, segments = _null_data(1, 30, 40, 3, 2)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(segments))  # features not sorted by gene
    x, segments = x[:, order], segments[order]
    member = np.ones((len(segments), 2), dtype=bool)
    member[segments < 5, 1] = False
    common = dict(n_permutations=50, seed=3)
    whole = engine_pvalues(x, scores, segments, member, 40, **common)
    small = engine_pvalues(x, scores, segments, member, 40, block_bytes=5_000,
                           chunk_features=7, **common)  # 7 features: genes split
    torch.testing.assert_close(whole[0], small[0], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(whole[1], small[1], rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(whole[0][:5, 1]).all() and torch.isfinite(whole[0][:, 0]).all()
    from isograph_gpu.ops.fdr import fdr_adjust

    family = torch.isfinite(whole[0])
    torch.testing.assert_close(whole[1], fdr_adjust(whole[0], family), equal_nan=True)
    sorted_order = np.argsort(segments, kind="stable")
    by_gene = engine_pvalues(x[:, sorted_order], scores, segments[sorted_order],
                             member[sorted_order], 40, **common)
    torch.testing.assert_close(by_gene[0], whole[0], rtol=0, atol=0, equal_nan=True)
    perms = sample_permutations(30, 50, 3).numpy()
    np.testing.assert_array_equal(whole[0][:, 0].numpy(),
                                  switch_permutation_pvalues(x, scores, segments, perms)[:, 0])


def test_single_transcript_genes_get_no_pair():
    segments = np.array([0, 0, 1, 2, 2, 2])
    member = np.ones((6, 2), dtype=bool)
    member[3:, 1] = False  # gene 2 is not in module 1
    pairs, genes, modules = switch_pairs(segments, member, 3)
    assert list(zip(genes.tolist(), modules.tolist(), strict=True)) == [(0, 0), (0, 1), (2, 0)]
    assert pairs[:, 0].tolist() == [0, 0, -1, 2, 2, 2]
    assert pairs[:, 1].tolist() == [1, 1, -1, -1, -1, -1]


def test_null_pvalues_are_uniform():
    """4,000 two-transcript genes independent of the module score: KS p > 0.01 and the
    rate at 0.05 within [0.04, 0.06]."""
    x, scores, segments = _null_data(11, 40, 4000, 2, 1, nan=0.05)
    member = np.ones((len(segments), 1), dtype=bool)
    p, _ = engine_pvalues(x, scores, segments, member, 4000, n_permutations=999, seed=5)
    p = p[:, 0].numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.04 <= np.mean(p <= 0.05) <= 0.06


@pytest.mark.parametrize("seed", [0])
def test_power_on_the_demo_planted_switches(seed, tmp_path):
    """The demo's planted switching genes of a module reach p <= 0.05 far more often than
    its genes without a switch (the power is printed for the report)."""
    from isograph_gpu import ExplainConfig, explain_module
    from isograph_gpu.synthetic import make_synthetic_dataset

    ds = make_synthetic_dataset(n_samples=100, n_genes=150, n_modules=3, genes_per_module=20,
                                seed=seed)
    paths = ds.write(tmp_path)
    results = explain_module(paths["artifact_dir"], paths["feature_table"],
                             paths["feature_meta"],
                             config=ExplainConfig(switch_permutations=199, seed=1))
    truth = ds.truth.set_index("gene_id")
    hits, misses = [], []
    for module_id, result in results.items():
        table = result.transcript_polarity_table.drop_duplicates("gene_id").set_index("gene_id")
        planted = truth.loc[table.index]
        switching = planted["module_id"].eq(module_id) & planted["switches"].astype(bool)
        hits.extend((table["switch_pvalue"][switching] <= 0.05).tolist())
        misses.extend((table["switch_pvalue"][~switching] <= 0.05).tolist())
    power, false_rate = np.mean(hits), np.mean(misses) if misses else 0.0
    print(f"power {power:.3f} over {len(hits)} planted switches; "
          f"{false_rate:.3f} over {len(misses)} others")
    assert power >= 0.8 and power > false_rate


@pytest.mark.parametrize("case", op_cases(dtypes=(torch.float64,), chunks=(None,)))
def test_covariate_null_permutes_residuals_as_a_numpy_loop(case: OpCase) -> None:
    """With covariates: observed and null r are partial; the null permutes the scores'
    OLS residuals on [1, Z] (Freedman-Lane), as a plain numpy loop does."""
    x, scores, segments = _null_data(4, 24, 4, 3, 1)
    rng = np.random.default_rng(9)
    z = rng.normal(size=(24, 2))
    z[5, 0] = np.nan
    scores[:, 0] += z[:, 1]
    perms = sample_permutations(24, 40, seed=2)
    got = run_op(_exceedance_op(segments, 4, perms, block=9), x, scores, z, case=case)
    observed, counts = got["observed"], got["exceedances"]
    ok = np.isfinite(scores[:, 0]) & np.isfinite(z).all(axis=1)
    design = np.column_stack([np.ones(24), np.nan_to_num(z)])
    beta = np.linalg.lstsq(design[ok], scores[ok, 0], rcond=None)[0]
    fitted = np.where(np.isfinite(z).all(axis=1), design @ beta, np.nan)
    residual = np.where(ok, scores[:, 0] - fitted, np.nan)

    def strength(y, gene):
        rs = [partial_pearson(x[:, f], y, z) for f in np.flatnonzero(segments == gene)]
        rs = np.array([v for v, n in rs if n >= 3 and np.isfinite(v)])
        return rs.max() - rs.min() if len(rs) >= 2 else 0.0

    want = np.zeros((4, 1), dtype=np.int64)
    for gene in range(4):
        obs = strength(scores[:, 0], gene)
        assert obs == pytest.approx(observed[gene, 0].item(), abs=1e-12)
        null = [strength(fitted + residual[order], gene) for order in perms.numpy()]
        want[gene, 0] = sum(v >= obs for v in null)
    _null_counts(case, counts, want)


def test_explain_appends_switch_columns_and_records_them(ref_inputs, tmp_path):
    """--switch-permutations appends switch_pvalue / switch_qvalue after the reference's
    columns of both tables (the rest unchanged), the driver table's per gene equal to the
    polarity table's, and the manifest records B and the seed."""
    import json

    import pandas as pd
    from _helpers.explain import explain_api

    from isograph_gpu import ExplainConfig

    inputs = {"artifact": ref_inputs["artifact"], "feature_table": ref_inputs["feature_table"],
              "feature_meta": ref_inputs["feature_meta"]}
    explain_api(inputs, output_dir=tmp_path / "plain")
    explain_api(inputs, output_dir=tmp_path / "perm",
                config=ExplainConfig(switch_permutations=30, seed=5))
    manifest = json.loads((tmp_path / "perm" / "module_explanation_manifest.json").read_text())
    assert manifest["switch_permutations"]["permutations"] == 30
    assert manifest["switch_permutations"]["seed"] == 5
    assert manifest["config"]["switch_permutations"] == 30
    for name in ("transcript_polarity_table", "gene_driver_table"):
        plain = pd.read_parquet(tmp_path / "plain" / "M000" / f"{name}.parquet")
        perm = pd.read_parquet(tmp_path / "perm" / "M000" / f"{name}.parquet")
        assert list(perm.columns) == [*plain.columns, "switch_pvalue", "switch_qvalue"]
        pd.testing.assert_frame_equal(perm[plain.columns], plain)
    polarity = pd.read_parquet(tmp_path / "perm" / "M000" / "transcript_polarity_table.parquet")
    drivers = pd.read_parquet(tmp_path / "perm" / "M000" / "gene_driver_table.parquet")
    per_gene = polarity.groupby("gene_id")["switch_pvalue"].first()
    shared = drivers[drivers["gene_id"].isin(per_gene.index)]
    np.testing.assert_array_equal(shared["switch_pvalue"], per_gene[shared["gene_id"]])
    single = polarity.groupby("gene_id")["feature_id"].transform("size") == 1
    assert polarity.loc[single, "switch_pvalue"].isna().all()
    assert polarity.loc[~single, "switch_pvalue"].between(1 / 31, 1).all()

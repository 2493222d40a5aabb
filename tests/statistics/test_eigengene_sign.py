"""``eigengene_sign`` (issue 21.20): ``reference`` stays isograph 0.1.5's eigengene (the
fixtures); ``canonical`` (rows in feature_id order, sign agreeing with the module's mean
row) does not depend on the row order of feature_scores."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import oracles
from _helpers.explain import invoke_explain
from _helpers.files import writable_copy
from conftest import EXPECTED
from hypothesis import example, given, settings
from hypothesis import strategies as st

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.errors import InputError
from isograph_gpu.io.explain_inputs import ExplainInputs
from isograph_gpu.statistics import eigengenes

MODULES = ["M000", "M001", "M002", "M003", "M004"]


def run(ref_inputs, artifact=None, **config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return explain_module(artifact or ref_inputs["artifact"], ref_inputs["feature_table"],
                              ref_inputs["feature_meta"],
                              config=ExplainConfig(device="cpu", **config))


def eigengene_matrix(results) -> np.ndarray:
    return np.stack([results[m].eigengene for m in MODULES], axis=1)


@pytest.fixture(scope="module")
def shuffled_artifact(ref_inputs, tmp_path_factory) -> Path:
    """The fixture artifact with its feature_scores rows in a random order."""
    art = writable_copy(ref_inputs["artifact"], tmp_path_factory.mktemp("shuffled") / "artifact")
    scores = pd.read_parquet(art / "feature_scores.parquet")
    order = np.random.default_rng(21).permutation(len(scores))
    scores.iloc[order].reset_index(drop=True).to_parquet(art / "feature_scores.parquet",
                                                         index=False)
    return art


@pytest.mark.parametrize("config", [{}, {"eigengene_sign": "reference"}])
def test_reference_sign_is_the_default_and_equals_the_fixture(ref_inputs, config):
    expected = pd.read_parquet(EXPECTED / "api_run" / "eigengenes.parquet")
    got = run(ref_inputs, **config)
    assert got["M000"].sample_ids == expected["sample_id"].astype(str).tolist()
    np.testing.assert_allclose(eigengene_matrix(got), expected[MODULES].to_numpy(),
                               rtol=0, atol=1e-12)


def test_reference_sign_depends_on_the_row_order(ref_inputs, shuffled_artifact):
    """Why canonical exists: the fixture's rows shuffled change reference eigengenes."""
    base = eigengene_matrix(run(ref_inputs))
    moved = eigengene_matrix(run(ref_inputs, shuffled_artifact))
    assert not np.allclose(base, moved, atol=1e-6)


def test_canonical_is_the_same_for_shuffled_feature_scores(ref_inputs, shuffled_artifact):
    base = run(ref_inputs, eigengene_sign="canonical")
    moved = run(ref_inputs, shuffled_artifact, eigengene_sign="canonical")
    np.testing.assert_array_equal(eigengene_matrix(base), eigengene_matrix(moved))
    for m in MODULES:
        for name in ("gene_driver_table", "high_vs_low_table"):
            a = getattr(base[m], name).sort_values("feature_id", ignore_index=True)
            b = getattr(moved[m], name).sort_values("feature_id", ignore_index=True)
            pd.testing.assert_frame_equal(a, b)


def test_canonical_equals_the_oracle_on_the_fixture(ref_inputs):
    """Oracle: isograph 0.1.5's algorithm (written plainly) on each module's rows sorted
    by feature_id, negated when it disagrees with the module's mean row."""
    got = run(ref_inputs, eigengene_sign="canonical")
    scores = pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet")
    modules = pd.read_parquet(ref_inputs["artifact"] / "modules.parquet")
    samples = got["M000"].sample_ids
    for m in MODULES:
        genes = set(modules.loc[modules["module_id"] == m, "gene_id"])
        rows = scores[scores["gene_id"].isin(genes)].sort_values("feature_id")
        want = oracles.canonical_eigengene(rows[samples].to_numpy(dtype=float))
        np.testing.assert_allclose(got[m].eigengene, want, rtol=0, atol=1e-12)
        mean = np.nanmean(rows[samples].to_numpy(dtype=float), axis=0)
        assert np.corrcoef(got[m].eigengene, mean)[0, 1] >= 0


def _inputs(scores: np.ndarray, feature_ids: list[str]) -> ExplainInputs:
    n = scores.shape[0]
    ids = np.array(feature_ids, dtype=object)
    return ExplainInputs(
        artifact_dir=Path("artifact"), sample_ids=[f"S{i}" for i in range(n)],
        module_ids=[], module_genes={}, n_module_genes={}, scores=scores,
        score_feature_ids=ids, score_gene_ids=ids, score_feature_types=ids,
        features=np.zeros((n, 0)), feature_ids=np.array([], dtype=object),
        feature_gene_ids=np.array([], dtype=object), feature_types=np.array([], dtype=object),
        feature_transcript_ids=None, checkpoint_path=None)


def _module_data(seed: int, n: int, n_rows: int, k: int):
    """Scores [n, n_rows] of k modules of mixed-sign rows (NaNs, a constant row, a tied
    pair), their membership [n_rows, k] and feature ids."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(k, n))
    scores = rng.normal(size=(n, n_rows)) * 0.7
    membership = np.zeros((n_rows, k), dtype=bool)
    for j in range(k):
        rows = rng.choice(n_rows, size=rng.integers(1, n_rows + 1), replace=False)
        membership[rows, j] = True
        scores[:, rows] += rng.choice([-1.0, 1.0], size=len(rows)) * latent[j][:, None]
    scores[:, 0] = 2.0
    if n_rows > 2:
        scores[:, 2] = -scores[:, 1]  # a row and its mirror
    scores[rng.random(scores.shape) < 0.1] = np.nan
    ids = [f"G{rng.integers(0, 10**6):06d}::{i}" for i in range(n_rows)]
    return scores, membership, ids


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 30), n_rows=st.integers(1, 9),
       k=st.integers(1, 4), data=st.data())
@example(seed=0, n=3, n_rows=1, k=1, data=None)
def test_canonical_eigengenes_do_not_depend_on_row_order(seed, n, n_rows, k, data):
    """Any permutation of feature_scores' rows (ids and memberships moved with them)
    gives bitwise the same canonical eigengenes, which equal the oracle."""
    scores, membership, ids = _module_data(seed, n, n_rows, k)
    perm = (list(reversed(range(n_rows))) if data is None
            else data.draw(st.permutations(range(n_rows))))
    device, dtype = torch.device("cpu"), torch.float64
    base = eigengenes(_inputs(scores, ids), membership, device, dtype, "canonical")
    moved = eigengenes(_inputs(scores[:, perm], [ids[i] for i in perm]), membership[perm],
                       device, dtype, "canonical")
    np.testing.assert_array_equal(base, moved)
    for j in range(k):
        rows = sorted(np.flatnonzero(membership[:, j]), key=lambda i: ids[i])
        want = oracles.canonical_eigengene(scores[:, rows].T)
        np.testing.assert_allclose(base[:, j], want, rtol=0, atol=1e-12, equal_nan=True)
    reference = eigengenes(_inputs(scores, ids), membership, device, dtype)
    for j in range(k):
        want = oracles.eigengene(scores[:, np.flatnonzero(membership[:, j])].T)
        np.testing.assert_allclose(reference[:, j], want, rtol=0, atol=1e-12, equal_nan=True)


def test_ties_keep_the_anchored_sign():
    """An eigengene uncorrelated with its module's mean row (r = 0 exactly), or with fewer
    than 3 complete samples, keeps the sign of its first row in feature_id order.
    Closed form: rows a = x + y and b = y - x with x = (2, -2, 2, -2), y = (1, 1, -1, -1)
    correlate negatively, so the row after the anchor is flipped and the eigengene is
    x (anchor a) or -x (anchor b), while the mean row is y, orthogonal to x."""
    x = np.array([2.0, -2.0, 2.0, -2.0])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    scores = np.stack([y - x, x + y], axis=1)  # file order: b, a
    both = np.ones((2, 1), dtype=bool)
    cpu = torch.device("cpu"), torch.float64
    got = eigengenes(_inputs(scores, ["b", "a"]), both, *cpu, "canonical")
    np.testing.assert_array_equal(got[:, 0], x)  # anchored to a, which sorts first
    got = eigengenes(_inputs(scores, ["a", "b"]), both, *cpu, "canonical")
    np.testing.assert_array_equal(got[:, 0], -x)  # now b sorts first
    short = np.array([[1.0, np.nan], [2.0, 5.0], [np.nan, 4.0]])  # one complete pair
    got = eigengenes(_inputs(short, ["a", "b"]), both, *cpu, "canonical")
    np.testing.assert_array_equal(got[:, 0], oracles.eigengene(short.T))


def test_config_and_cli(ref_inputs, tmp_path):
    with pytest.raises(InputError, match="eigengene_sign"):
        ExplainConfig(eigengene_sign="sorted")
    out = tmp_path / "out"
    result = invoke_explain(ref_inputs, out, "--eigengene-sign", "canonical")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert manifest["config"]["eigengene_sign"] == "canonical"
    written = pd.read_parquet(out / "eigengenes.parquet")
    api = run(ref_inputs, eigengene_sign="canonical")
    np.testing.assert_array_equal(written[MODULES].to_numpy(), eigengene_matrix(api))
    bad = invoke_explain(ref_inputs, tmp_path / "bad", "--eigengene-sign", "sorted")
    assert bad.exit_code == 2 and "--eigengene-sign" in bad.output

"""Chunked streaming equals one pass; the tail contrast and progress output behave."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from scipy import stats

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.cli import main
from isograph_gpu.engine import chunk_size, feature_statistics
from isograph_gpu.ops.contrast import percentile_split
from isograph_gpu.progress import Progress


def test_chunked_equals_single_pass():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 101))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = torch.from_numpy(rng.normal(size=(60, 3)))
    splits = {"split": percentile_split(y, 50.0)}
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30)
    one = feature_statistics(x, y, **common)
    buf = io.StringIO()
    many = feature_statistics(x, y, chunk_features=7, progress=Progress(True, buf), **common)
    for name in ("r", "n", "pvalue", "n_finite"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-12,
                                   equal_nan=True)
    for name in ("tstat", "pvalue", "se", "n_high"):
        np.testing.assert_allclose(getattr(many.contrasts["split"], name),
                                   getattr(one.contrasts["split"], name), rtol=1e-12,
                                   equal_nan=True)
    assert "features: chunk 15/15" in buf.getvalue()


def test_chunk_size_follows_memory_budget():
    assert chunk_size(1000, 250_000, 8, 2 * 1024**3) == 2 * 1024**3 // (1000 * 8 * 8)
    assert chunk_size(1000, 10, 8, 2 * 1024**3) == 10
    assert chunk_size(1000, 250_000, 8, 1) == 1
    assert chunk_size(10, 100, 8, 1 << 30, chunk_features=33) == 33


def test_contrast_tails_table(ref_inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = explain_module(ref_inputs["artifact"], ref_inputs["feature_table"],
                             ref_inputs["feature_meta"], module_ids=["M001"],
                             config=ExplainConfig(contrast_tails=20.0))["M001"]
    tails = res.tails_contrast_table
    assert list(tails.columns) == list(res.high_vs_low_table.columns)
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    table = table.loc[res.sample_ids]
    e = res.eigengene
    hi = e >= np.nanpercentile(e, 80)
    lo = e <= np.nanpercentile(e, 20)
    for fid in ["G00001.T1", tails["feature_id"].iloc[500]]:
        v = table[fid].to_numpy()
        a, b = v[hi & np.isfinite(v)], v[lo & np.isfinite(v)]
        row = tails.set_index("feature_id").loc[fid]
        expected = stats.ttest_ind(a, b, equal_var=False)
        assert row["n_high"] == len(a) and row["n_low"] == len(b)
        assert row["tstat"] == pytest.approx(expected.statistic, rel=1e-9)
        assert row["pvalue"] == pytest.approx(expected.pvalue, rel=1e-7)
        assert row["delta"] == pytest.approx(a.mean() - b.mean(), abs=1e-12)


def test_cli_writes_tails_table_and_progress(ref_inputs, tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(main, [
        "explain-module", "--artifact-dir", str(ref_inputs["artifact"]),
        "--feature-table", str(ref_inputs["feature_table"]),
        "--feature-meta", str(ref_inputs["feature_meta"]), "--module-ids", "M004",
        "--output-dir", str(out), "--contrast-tails", "10", "--memory-budget", "64K",
    ])
    assert result.exit_code == 0, result.output
    assert (out / "M004" / "high_vs_low_tails_table.parquet").exists()
    assert "[isograph-gpu] feature statistics:" in result.output  # stderr is mixed in
    assert "chunk" in result.output  # 64K budget forces several chunks

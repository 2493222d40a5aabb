"""The three core tables and the eigengenes equal isograph 0.1.5's stored outputs, through
the Python API (paths and DataFrames) and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from _helpers.explain import explain_api, invoke_explain
from conftest import EXPECTED, assert_table_matches

from isograph_gpu import ExplainConfig

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]


def _run(ref_inputs, artifact="artifact", **kw):
    return explain_api({**ref_inputs, "artifact": ref_inputs[artifact]}, **kw)


@pytest.fixture(scope="module")
def api_results(ref_inputs):
    return _run(ref_inputs)


def test_api_run_all_modules(api_results):
    assert list(api_results) == ["M000", "M001", "M002", "M003", "M004"]
    for module_id, res in api_results.items():
        for name in CORE:
            expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(res, name))
        assert res.n_module_genes == 20


def test_api_run_eigengenes(api_results):
    expected = pd.read_parquet(EXPECTED / "api_run" / "eigengenes.parquet")
    for module_id, res in api_results.items():
        assert res.sample_ids == expected["sample_id"].tolist()
        assert_table_matches(expected[[module_id]],
                             pd.DataFrame({module_id: res.eigengene}))


def test_dataframe_inputs_equal_path_inputs(ref_inputs, api_results):
    table = pd.read_parquet(ref_inputs["feature_table"])
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    res = _run({**ref_inputs, "feature_table": table, "feature_meta": meta}, module_ids=["M003"])
    for name in CORE:
        pd.testing.assert_frame_equal(getattr(res["M003"], name),
                                      getattr(api_results["M003"], name))


def test_module_score_table_run(ref_inputs):
    res = _run(ref_inputs, module_ids=["M000", "M001"],
               module_score_table=ref_inputs["module_score_table"],
               config=ExplainConfig(split_percentile=75.0, min_complete_pairs=150))
    scores = pd.read_parquet(ref_inputs["module_score_table"]).set_index("sample_id")
    for module_id in ("M000", "M001"):
        for name in CORE:
            expected = pd.read_parquet(
                EXPECTED / "module_score_table_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(res[module_id], name))
        eig = scores.loc[res[module_id].sample_ids, module_id].to_numpy()
        assert (res[module_id].eigengene == eig).all()


def test_nan_feature_scores_run(ref_inputs):
    res = _run(ref_inputs, artifact="artifact_with_nans", module_ids=["M000"])
    for name in CORE:
        expected = pd.read_parquet(EXPECTED / "nan_feature_scores_run" / "M000" / f"{name}.parquet")
        assert_table_matches(expected, getattr(res["M000"], name))


@pytest.mark.parametrize("reading", [[], ["--stream-features", "--memory-budget", "64K"]],
                         ids=["loaded", "streamed-in-chunks"])
def test_cli_core_tables_and_manifest(ref_inputs, tmp_path, reading):
    out = tmp_path / "explain"
    result = invoke_explain(ref_inputs, out, "--module-ids", "M000", "M002", *reading)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("module_explanation_manifest.json")
    for module_id in ("M000", "M002"):
        for name in CORE:
            expected = pd.read_parquet(EXPECTED / "cli_run" / module_id / f"{name}.parquet")
            got = pd.read_parquet(out / module_id / f"{name}.parquet")
            core_cols = [c for c in expected.columns
                         if c in pd.read_parquet(EXPECTED / "api_run" / module_id /
                                                 f"{name}.parquet").columns]
            assert_table_matches(expected, got, columns=core_cols)
            assert list(got.columns) == core_cols
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    reference = json.loads((EXPECTED / "cli_run" / "module_explanation_manifest.json").read_text())
    for key in ("module_ids", "n_modules", "tables_per_module", "isograph_version", "plot_files"):
        assert manifest[key] == reference[key], key
    assert set(reference) <= set(manifest)
    assert manifest["precision"] == "float64" and manifest["device"] == "cpu"
    assert manifest["attribution_precision"] is None  # no attribution asked for
    assert manifest["feature_table_streamed"] is bool(reading)
    assert "M000/gene_driver_table.parquet" in manifest["files"]
    eig = pd.read_parquet(out / "eigengenes.parquet")
    expected_eig = pd.read_parquet(EXPECTED / "api_run" / "eigengenes.parquet")
    assert_table_matches(expected_eig[["sample_id", "M000", "M002"]], eig)


def test_integer_like_sample_ids(ref_inputs, tmp_path):
    """Deliberate difference 5: integer sample IDs work (the reference raises KeyError)."""
    scores = pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet")
    table = pd.read_parquet(ref_inputs["feature_table"])
    ids = {s: str(i) for i, s in enumerate(sorted(table["sample_id"]))}
    art = tmp_path / "artifact"
    art.mkdir()
    pd.read_parquet(ref_inputs["artifact"] / "modules.parquet").to_parquet(art / "modules.parquet")
    scores.rename(columns=ids).to_parquet(art / "feature_scores.parquet")
    table = table.assign(sample_id=table["sample_id"].map(ids).astype(int)).set_index("sample_id")
    res = _run({**ref_inputs, "artifact": art, "feature_table": table}, module_ids=["M001"])
    base = _run(ref_inputs, module_ids=["M001"])
    # same samples, new names: identical statistics (sample order differs: sorted strings)
    got = res["M001"].gene_driver_table.set_index("gene_id").sort_index()
    exp = base["M001"].gene_driver_table.set_index("gene_id").sort_index()
    pd.testing.assert_series_equal(got["r"], exp["r"], check_exact=False, atol=1e-12)

"""Attribution end to end: ``explain_module`` and ``isograph-gpu explain-module`` write
vae_drivers / ig_attributions equal to the isograph 0.1.5 fixture outputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from _helpers.explain import invoke_explain

from isograph_gpu import ExplainConfig, explain_module

# these tests run the encoder through Captum (optional extra `explain`)
captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed")

DATA = paths.DATA / "isograph-0.1.5"
INPUTS = DATA / "inputs"
EXPECTED = DATA / "expected"
IG_VALUES = ["ig_score", "ig_score_corrected", "ig_score_abs_mean"]


def check_vae(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    for col in ["gene_id", "feature_id", "latent_dim_idx", "sign_agreement", "passes_filter"]:
        assert got[col].tolist() == ref[col].tolist(), col
    for col in ["decoded_delta", "latent_r", "decoded_delta_percentile"]:
        np.testing.assert_allclose(got[col], ref[col], rtol=0, atol=1e-6, err_msg=col)


def check_ig(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    """By feature_id: we sort by |ig_score| (DESIGN difference 3), the reference does not."""
    assert list(got.columns) == list(ref.columns)
    assert (np.diff(got["ig_score"].abs().to_numpy()) <= 0).all()
    got = got.sort_values("feature_id").reset_index(drop=True)
    ref = ref.sort_values("feature_id").reset_index(drop=True)
    assert got["feature_id"].tolist() == ref["feature_id"].tolist()
    assert got["latent_dim_idx"].tolist() == ref["latent_dim_idx"].tolist()
    for col in IG_VALUES:
        assert np.abs(got[col] - ref[col]).max() <= 1e-4 * np.abs(ref[col]).max(), col


def test_explain_module_api_run(tmp_path):
    out = tmp_path / "explain"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = explain_module(
            INPUTS / "artifact", INPUTS / "feature_table.parquet", INPUTS / "feature_meta.parquet",
            config=ExplainConfig(vae_attribution=True, integrated_gradients=True, ig_n_steps=50,
                                 ig_baseline="zero", device="cpu"),
            output_dir=out)
    assert list(results) == ["M000", "M001", "M002", "M003", "M004"]
    for module_id, res in results.items():
        ref_dir = EXPECTED / "api_run" / module_id
        check_vae(pd.read_parquet(out / module_id / "vae_drivers.parquet"),
                  pd.read_parquet(ref_dir / "vae_drivers.parquet"))
        check_ig(pd.read_parquet(out / module_id / "ig_attributions.parquet"),
                 pd.read_parquet(ref_dir / "ig_attributions.parquet"))
        check_vae(res.vae_drivers, pd.read_parquet(ref_dir / "vae_drivers.parquet"))
        assert res.ig_convergence_delta is not None and 0 <= res.ig_convergence_delta < 1e-2
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert manifest["vae_attribution_available"] is True
    assert manifest["ig_attribution_available"] is True
    assert manifest["precision"] == manifest["attribution_precision"] == "float64"


def test_cli_run_with_attribution_flags(tmp_path):
    """The reference cli_run call; its `--ig-baseline mean` is our `feature-mean`."""
    out = tmp_path / "explain"
    inputs = {"artifact": INPUTS / "artifact", "feature_table": INPUTS / "feature_table.parquet",
              "feature_meta": INPUTS / "feature_meta.parquet"}
    result = invoke_explain(
        inputs, out,
        "--annotation-table", str(DATA / "structure" / "transcript_structure_annotations.tsv"),
        "--vae-attribution", "--module-ids", "M000", "M002", "--integrated-gradients",
        "--ig-n-steps", "20", "--ig-baseline", "feature-mean")
    assert result.exit_code == 0, result.output
    for module_id in ("M000", "M002"):
        ref_dir = EXPECTED / "cli_run" / module_id
        check_vae(pd.read_parquet(out / module_id / "vae_drivers.parquet"),
                  pd.read_parquet(ref_dir / "vae_drivers.parquet"))
        check_ig(pd.read_parquet(out / module_id / "ig_attributions.parquet"),
                 pd.read_parquet(ref_dir / "ig_attributions.parquet"))
    assert not (out / "M001").exists()


def test_nan_artifact_end_to_end_warns_and_is_finite(tmp_path):
    with pytest.warns(UserWarning, match=r"missing value\(s\).*imputed"):
        results = explain_module(
            INPUTS / "artifact_with_nans", INPUTS / "feature_table.parquet",
            INPUTS / "feature_meta.parquet", module_ids=["M000"],
            config=ExplainConfig(vae_attribution=True, device="cpu"))
    table = results["M000"].vae_drivers
    ref = pd.read_parquet(EXPECTED / "nan_feature_scores_run" / "M000" / "vae_drivers.parquet")
    assert ref["decoded_delta"].isna().all()  # the reference's defect
    assert np.isfinite(table["decoded_delta"]).all()
    assert sorted(table["gene_id"]) == sorted(ref["gene_id"])
    clean = pd.read_parquet(EXPECTED / "api_run" / "M000" / "vae_drivers.parquet")
    assert table["latent_dim_idx"].iloc[0] == clean["latent_dim_idx"].iloc[0]

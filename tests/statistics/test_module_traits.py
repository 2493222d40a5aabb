"""Module-trait association (--sample-traits, --covariates) end to end on the reference
inputs: module_trait_table against scipy.stats.pearsonr / f_oneway and
false_discovery_control, covariate-adjusted r against numpy OLS residuals, the samples
tables' checks (one-line CLI errors naming file and column, nothing written), the core
tables unchanged byte for byte, the heatmap's deterministic bytes and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _helpers.cli import assert_no_output, assert_one_line_error
from _helpers.explain import explain_api, invoke_explain
from _helpers.oracles import partial_pearson
from scipy import stats

from isograph_gpu import ExplainConfig
from isograph_gpu.errors import InputError
from isograph_gpu.io.sample_tables import load_covariates, load_sample_traits

CORE = ("gene_driver_table.parquet", "transcript_polarity_table.parquet",
        "high_vs_low_table.parquet")


@pytest.fixture(scope="module")
def sample_ids(ref_inputs):
    return pd.read_parquet(ref_inputs["feature_table"], columns=["sample_id"])[
        "sample_id"].tolist()


def _tables(sample_ids, tmp_path):
    rng = np.random.default_rng(4)
    n = len(sample_ids)
    traits = pd.DataFrame({
        "sample_id": sample_ids,
        "age": rng.normal(50, 10, n),
        "sex": rng.choice(["F", "M"], n),
        "tissue": rng.choice(["liver", "lung", "brain", "gut"], n),
    })
    traits.loc[[3, 8], "age"] = np.nan
    traits.loc[5, "tissue"] = None
    traits = traits.iloc[5:]  # samples the table lacks are missing
    covariates = pd.DataFrame({"sample_id": sample_ids,
                               "depth": rng.normal(size=n),
                               "batch": rng.choice(["b1", "b2", "b3"], n)})
    covariates.loc[11, "depth"] = np.nan
    traits_path, cov_path = tmp_path / "traits.csv", tmp_path / "cov.tsv"
    traits.to_csv(traits_path, index=False)
    covariates.to_csv(cov_path, sep="\t", index=False)
    return traits_path, cov_path, traits, covariates


@pytest.fixture(scope="module")
def runs(ref_inputs, sample_ids, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("traits")
    inputs = {"artifact": ref_inputs["artifact"], "feature_table": ref_inputs["feature_table"],
              "feature_meta": ref_inputs["feature_meta"]}
    traits_path, cov_path, traits, covariates = _tables(sample_ids, tmp)
    plain = tmp / "plain"
    explain_api(inputs, output_dir=plain)
    with_traits = tmp / "traits"
    explain_api(inputs, output_dir=with_traits,
                config=ExplainConfig(sample_traits=str(traits_path)))
    adjusted = tmp / "adjusted"
    explain_api(inputs, output_dir=adjusted,
                config=ExplainConfig(sample_traits=str(traits_path), covariates=str(cov_path),
                                     plot=True))
    return {"plain": plain, "traits": with_traits, "adjusted": adjusted, "inputs": inputs,
            "trait_frame": traits, "cov_frame": covariates, "traits_path": traits_path,
            "cov_path": cov_path, "tmp": tmp}


def _eigengenes(out):
    return pd.read_parquet(out / "eigengenes.parquet").set_index("sample_id")


def test_module_trait_table_equals_scipy(runs):
    table = pd.read_parquet(runs["traits"] / "module_trait_table.parquet")
    eig = _eigengenes(runs["traits"])
    traits = runs["trait_frame"].set_index("sample_id").reindex(eig.index)
    assert list(table.columns) == ["module_id", "trait", "kind", "statistic", "r", "pvalue",
                                   "qvalue", "n_samples"]
    assert table["module_id"].tolist() == [m for m in eig.columns for _ in range(3)]
    for row in table.itertuples():
        e = eig[row.module_id].to_numpy()
        if row.trait == "tissue":
            assert row.kind == "categorical" and np.isnan(row.r)
            t = traits["tissue"]
            ok = np.isfinite(e) & t.notna().to_numpy()
            res = stats.f_oneway(*[e[ok & (t == g).to_numpy()] for g in sorted(t.dropna().unique())])
        else:
            values = (traits["sex"] == "M").astype(float).where(traits["sex"].notna()) \
                if row.trait == "sex" else traits["age"]
            assert row.kind == ("binary" if row.trait == "sex" else "numeric")
            v = values.to_numpy(np.float64)
            ok = np.isfinite(e) & np.isfinite(v)
            res = stats.pearsonr(e[ok], v[ok])
            assert row.r == pytest.approx(res.statistic, abs=1e-12)
        assert row.n_samples == ok.sum()
        assert row.statistic == pytest.approx(res.statistic if row.trait == "tissue" else
                                              row.r * np.sqrt((ok.sum() - 2) / (1 - row.r**2)),
                                              rel=1e-10)
        assert row.pvalue == pytest.approx(res.pvalue, rel=1e-9)
    np.testing.assert_allclose(table["qvalue"], stats.false_discovery_control(table["pvalue"]),
                               rtol=1e-12)


def test_covariate_adjusted_r_equals_ols_residuals(runs):
    table = pd.read_parquet(runs["adjusted"] / "module_trait_table.parquet")
    eig = _eigengenes(runs["adjusted"])
    age = runs["trait_frame"].set_index("sample_id")["age"].reindex(eig.index).to_numpy()
    cov = runs["cov_frame"].set_index("sample_id").reindex(eig.index)
    z = np.column_stack([cov["depth"], cov["batch"] == "b2", cov["batch"] == "b3"]).astype(float)
    for row in table[table["trait"] == "age"].itertuples():
        expected, n = partial_pearson(age, eig[row.module_id].to_numpy(), z)
        assert row.r == pytest.approx(expected, abs=1e-10)
        assert row.n_samples == n
        t = expected * np.sqrt((n - 5) / (1 - expected**2))
        assert row.pvalue == pytest.approx(2 * stats.t.sf(abs(t), n - 5), rel=1e-9)


def test_core_tables_are_unchanged_byte_for_byte(runs):
    """Traits leave every core table as it was; covariates leave high_vs_low as it was."""
    plain = runs["plain"]
    assert not (plain / "module_trait_table.parquet").exists()
    for module_dir in sorted(p for p in plain.iterdir() if p.is_dir()):
        for name in CORE:
            assert (runs["traits"] / module_dir.name / name).read_bytes() == \
                (module_dir / name).read_bytes()
        assert (runs["adjusted"] / module_dir.name / CORE[2]).read_bytes() == \
            (module_dir / CORE[2]).read_bytes()


def test_driver_and_polarity_tables_are_partial_given_covariates(runs, ref_inputs):
    from isograph_gpu.ops.fdr import fdr_adjust

    eig = _eigengenes(runs["adjusted"])
    cov = runs["cov_frame"].set_index("sample_id").reindex(eig.index)
    z = np.column_stack([cov["depth"], cov["batch"] == "b2", cov["batch"] == "b3"]).astype(float)
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id").loc[eig.index]
    scores = pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet").set_index(
        "feature_id")[list(eig.index)]
    module = eig.columns[0]
    e = eig[module].to_numpy()
    polarity = pd.read_parquet(runs["adjusted"] / module / CORE[1])
    plain = pd.read_parquet(runs["plain"] / module / CORE[1])
    assert list(polarity.columns) == list(plain.columns)
    for row in polarity.head(12).itertuples():
        expected, n = partial_pearson(table[row.feature_id].to_numpy(np.float64), e, z)
        if n - 5 < 1:  # too few complete samples for the 3 covariates
            assert np.isnan(row.r) and row.n_samples == n
            continue
        assert row.r == pytest.approx(expected, abs=1e-10) and row.n_samples == n
        t = expected * np.sqrt((n - 5) / (1 - expected**2))
        assert row.pvalue == pytest.approx(2 * stats.t.sf(abs(t), n - 5), rel=1e-9)
    import torch

    q = fdr_adjust(torch.from_numpy(polarity["pvalue"].to_numpy())).numpy()
    np.testing.assert_allclose(polarity["qvalue"], q, rtol=1e-12)
    spread = polarity.groupby("gene_id")["r"].agg(lambda r: r.max() - r.min() if r.notna().sum()
                                                  >= 2 else 0.0)
    np.testing.assert_allclose(polarity["switch_strength"], spread[polarity["gene_id"]].to_numpy(),
                               atol=1e-15)
    drivers = pd.read_parquet(runs["adjusted"] / module / CORE[0])
    for row in drivers.head(8).itertuples():
        expected, n = partial_pearson(scores.loc[row.feature_id].to_numpy(np.float64), e, z)
        assert row.r == pytest.approx(expected, abs=1e-10) and row.n_samples == n


def test_manifest_records_traits_and_covariates(runs):
    manifest = json.loads((runs["adjusted"] / "module_explanation_manifest.json").read_text())
    assert manifest["module_traits"]["traits"]["tissue"] == {
        "kind": "categorical", "levels": ["brain", "gut", "liver", "lung"]}
    assert manifest["covariates"]["design_columns"] == ["depth", "batch=b2", "batch=b3"]
    assert "high_vs_low_table" in manifest["covariates"]["unadjusted_tables"]
    assert manifest["config"]["covariates"] == str(runs["cov_path"])
    assert "module_trait_table.parquet" in manifest["files"]
    assert "module_trait_heatmap.png" in manifest["plot_files"]
    plain = json.loads((runs["plain"] / "module_explanation_manifest.json").read_text())
    assert "module_traits" not in plain and "covariates" not in plain


def test_heatmap_bytes_are_deterministic(runs, tmp_path):
    import pyarrow.parquet as pq

    from isograph_gpu.beyond_reference import trait_heatmap

    table = pq.read_table(runs["adjusted"] / "module_trait_table.parquet")
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        assert trait_heatmap(table, tmp_path / folder, ("png", "svg")) == [
            "module_trait_heatmap.png", "module_trait_heatmap.svg"]
    for fmt in ("png", "svg"):
        assert (tmp_path / "one" / f"module_trait_heatmap.{fmt}").read_bytes() == \
            (tmp_path / "two" / f"module_trait_heatmap.{fmt}").read_bytes()
    assert (tmp_path / "one" / "module_trait_heatmap.png").read_bytes() == \
        (runs["adjusted"] / "module_trait_heatmap.png").read_bytes()


def test_ids_stay_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sample_id,score\n010262,1.0\n010263,2.5\n010264,0.5\n")
    traits = load_sample_traits(path, ["010262", "010263", "010264", "10262"])
    assert traits[0].kind == "numeric"
    np.testing.assert_array_equal(traits[0].values, [1.0, 2.5, 0.5, np.nan])


def test_covariates_one_hot_drops_the_first_level(tmp_path):
    ids = [f"S{i}" for i in range(12)]
    frame = pd.DataFrame({"sample_id": ids, "site": ["c", "a", "b"] * 4,
                          "depth": np.arange(12.0) ** 1.5})
    cov = load_covariates(frame, ids)
    assert cov.names == ["site=b", "site=c", "depth"]
    np.testing.assert_array_equal(cov.matrix[:3, :2], [[0, 1], [0, 0], [1, 0]])


@pytest.mark.parametrize(("frame", "columns", "needles"), [
    (lambda ids: pd.DataFrame({"sample_id": ids, "a": 1.0, "b": np.arange(len(ids))}),
     None, ["column 'a'", "constant"]),
    (lambda ids: pd.DataFrame({"sample_id": ids, "a": np.arange(len(ids)) * 1.0,
                               "b": np.arange(len(ids)) * 2.0 + 1}), None,
     ["column 'b'", "collinear"]),
    (lambda ids: pd.DataFrame({"sample_id": ids, "a": np.arange(len(ids)) * 1.0}), ["zzz"],
     ["no column 'zzz'"]),
    (lambda ids: pd.DataFrame({"sample_id": [f"X{i}" for i in range(len(ids))],
                               "a": np.arange(len(ids)) * 1.0}), None, ["no sample in common"]),
    (lambda ids: pd.DataFrame({"sample_id": ids[:6], "a": np.arange(6) * 1.0,
                               "b": np.arange(6.0) ** 2}), None, ["degrees of freedom"]),
])
def test_bad_covariates_are_one_line_errors(frame, columns, needles):
    ids = [f"S{i}" for i in range(10)]
    with pytest.raises(InputError) as info:
        load_covariates(frame(ids), ids, columns)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize(("which", "extra", "needles"), [
    ("traits", ["--trait-columns", "nope"], ["traits.csv", "no column 'nope'"]),
    ("cov", ["--covariate-columns", "depth depth2"], ["cov.tsv", "no column 'depth2'"]),
    ("traits", ["--trait-columns", "age", "--covariate-columns", "x"], ["--covariates"]),
])
def test_cli_errors_name_the_file_and_column(runs, which, extra, needles):
    out = runs["tmp"] / f"bad-{which}-{len(extra)}"
    flags = (["--sample-traits", str(runs["traits_path"])] if which == "traits" else
             ["--sample-traits", str(runs["traits_path"]), "--covariates",
              str(runs["cov_path"])])
    result = invoke_explain(runs["inputs"], out, *flags, *extra)
    assert_one_line_error(result, *needles)
    assert_no_output(out)


def test_cli_writes_the_trait_table(runs):
    out = runs["tmp"] / "cli"
    result = invoke_explain(runs["inputs"], out, "--sample-traits", str(runs["traits_path"]),
                            "--trait-columns", "age sex")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "module_trait_table.parquet")
    assert table["trait"].unique().tolist() == ["age", "sex"]
    expected = pd.read_parquet(runs["traits"] / "module_trait_table.parquet")
    expected = expected[expected["trait"] != "tissue"]
    np.testing.assert_array_equal(table["r"], expected["r"])


def test_trait_kinds_and_an_index_of_ids(tmp_path):
    ids = [f"S{i}" for i in range(8)]
    frame = pd.DataFrame({"flag": [True, False] * 4, "dose": [0.0, 1.0] * 4,
                          "grade": ["lo", "mid", "hi", "lo", "mid", "hi", "lo", None],
                          "level": np.arange(8.0)}, index=pd.Index(ids, name="sample"))
    traits = {t.name: t for t in load_sample_traits(frame, ids)}
    assert [traits[n].kind for n in ("flag", "dose", "grade", "level")] == [
        "binary", "binary", "categorical", "numeric"]
    assert traits["grade"].levels == ["hi", "lo", "mid"]
    assert traits["grade"].codes.tolist() == [1, 2, 0, 1, 2, 0, 1, -1]
    np.testing.assert_array_equal(traits["flag"].values, [1.0, 0.0] * 4)  # "True" > "False"
    path = tmp_path / "ints.parquet"
    pd.DataFrame({"sample_id": [10262, 10263, 10264], "x": [1.0, 2.0, 4.0]}).to_parquet(path)
    assert load_sample_traits(path, ["10262", "10263", "10264"])[0].values.tolist() == [
        1.0, 2.0, 4.0]
    with pytest.raises(InputError, match="column 'x' has 1 distinct"):
        load_sample_traits(pd.DataFrame({"sample_id": ids, "x": 1.0}), ids)


def test_trait_switch_puts_the_polarity_table_against_the_trait(runs, ref_inputs):
    out = runs["tmp"] / "trait_switch"
    explain_api(runs["inputs"], output_dir=out,
                config=ExplainConfig(sample_traits=str(runs["traits_path"]),
                                     trait_switch="age"))
    eig = _eigengenes(out)
    age = runs["trait_frame"].set_index("sample_id")["age"].reindex(eig.index).to_numpy()
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id").loc[eig.index]
    polarity = pd.read_parquet(out / "M001" / CORE[1])
    plain = pd.read_parquet(runs["plain"] / "M001" / CORE[1])
    assert list(polarity.columns) == list(plain.columns)
    checked = 0
    for row in polarity.itertuples():
        x = table[row.feature_id].to_numpy(np.float64)
        ok = np.isfinite(x) & np.isfinite(age)
        if ok.sum() < 3 or np.ptp(x[ok]) == 0:
            assert np.isnan(row.r)
            continue
        res = stats.pearsonr(x[ok], age[ok])
        assert row.r == pytest.approx(res.statistic, abs=1e-12)
        assert row.pvalue == pytest.approx(res.pvalue, rel=1e-9)
        checked += 1
    assert checked > 10
    spread = polarity.groupby("gene_id")["r"].agg(
        lambda r: r.max() - r.min() if r.notna().sum() >= 2 else 0.0)
    np.testing.assert_allclose(polarity["switch_strength"],
                               spread[polarity["gene_id"]].to_numpy(), atol=1e-15)
    assert (out / "M001" / CORE[0]).read_bytes() == (runs["plain"] / "M001" / CORE[0]).read_bytes()
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert manifest["trait_switch"]["trait"] == "age"


@pytest.mark.parametrize(("trait", "needle"), [("tissue", "categorical"), ("zzz", "no trait")])
def test_trait_switch_errors(runs, trait, needle):
    out = runs["tmp"] / f"bad-switch-{trait}"
    result = invoke_explain(runs["inputs"], out, "--sample-traits", str(runs["traits_path"]),
                            "--trait-switch", trait)
    assert_one_line_error(result, needle, "traits.csv")
    assert_no_output(out)


def test_module_blocks_give_the_one_block_tables(runs, tmp_path):
    """Covariates and the permutations computed in several module blocks (a small memory
    budget) give the one-block tables (to GEMM rounding: a block's width changes the
    moment sums' last bits, with or without the new options)."""
    config = dict(sample_traits=str(runs["traits_path"]), covariates=str(runs["cov_path"]),
                  switch_permutations=20, seed=2)
    explain_api(runs["inputs"], output_dir=tmp_path / "one", config=ExplainConfig(**config))
    explain_api(runs["inputs"], output_dir=tmp_path / "many",
                config=ExplainConfig(**config, memory_budget_bytes=600_000))
    manifest = json.loads((tmp_path / "many" / "module_explanation_manifest.json").read_text())
    tables = [rel for rel in manifest["files"] if rel.endswith(".parquet")]
    assert "M004/transcript_polarity_table.parquet" in tables
    for rel in tables:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "many" / rel),
                                      pd.read_parquet(tmp_path / "one" / rel),
                                      check_exact=False, rtol=1e-9, atol=1e-12)

"""Inputs that used to give silently wrong results or unclear messages (issue 12.6, 12.7,
the 'missing key' messages) and the feature_meta warning that appeared on every run
(issue 13.3). Each test failed on the code before the fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _helpers.explain import invoke_explain
from _helpers.files import writable_copy
from conftest import assert_table_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.errors import InputError
from isograph_gpu.io.table_readers import read_table

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]


def _quiet_run(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return explain_module(*args, config=ExplainConfig(device="cpu"), **kw)


@pytest.fixture(scope="module")
def m000(ref_inputs):
    return _quiet_run(ref_inputs["artifact"], ref_inputs["feature_table"],
                      ref_inputs["feature_meta"], module_ids=["M000"])["M000"]


def _renamed_artifact(ref_inputs, root: Path, gene=None, sample=None) -> Path:
    """A copy of the reference artifact with gene ids and/or sample ids renamed."""
    gene = gene or (lambda g: g)
    sample = sample or (lambda s: s)
    art = writable_copy(ref_inputs["artifact"], root / "artifact")
    modules = pd.read_parquet(art / "modules.parquet")
    modules["gene_id"] = modules["gene_id"].map(gene)
    modules.to_parquet(art / "modules.parquet", index=False)
    scores = pd.read_parquet(art / "feature_scores.parquet")
    scores["gene_id"] = scores["gene_id"].map(gene)
    scores = scores.rename(columns={c: sample(c) for c in scores.columns if c.startswith("S")})
    scores.to_parquet(art / "feature_scores.parquet", index=False)
    return art


def test_zero_padded_gene_ids_in_csv_feature_meta_stay_text(ref_inputs, tmp_path, m000):
    """'G00010' -> '00010': pandas read it as the integer 10 and every polarity table was
    empty. The tables equal the reference run's with the same renaming."""
    def strip(g: str) -> str:
        return g[1:]
    art = _renamed_artifact(ref_inputs, tmp_path, gene=strip)
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    meta["gene_id"] = meta["gene_id"].map(strip)
    meta.to_csv(tmp_path / "meta.csv", index=False)
    got = _quiet_run(art, ref_inputs["feature_table"], tmp_path / "meta.csv",
                     module_ids=["M000"])["M000"]
    assert len(got.transcript_polarity_table) == len(m000.transcript_polarity_table) > 0
    for name in CORE:
        want = getattr(m000, name).copy()
        want["gene_id"] = want["gene_id"].map(strip)
        assert_table_matches(want, getattr(got, name))
    assert got.gene_driver_table["gene_id"].str.match(r"^0\d{4}$").all()


def test_zero_padded_sample_ids_in_csv_feature_table(ref_inputs, tmp_path, m000):
    """'S0000' -> '0000': the CSV reader made them integers and no sample overlapped."""
    def strip(s: str) -> str:
        return s[1:]
    art = _renamed_artifact(ref_inputs, tmp_path, sample=strip)
    table = pd.read_parquet(ref_inputs["feature_table"])
    table = table[table["sample_id"].str.match(r"^S\d+$")]  # every id now looks numeric
    table["sample_id"] = table["sample_id"].map(strip)
    table.to_csv(tmp_path / "table.csv.gz", index=False)
    got = _quiet_run(art, tmp_path / "table.csv.gz", ref_inputs["feature_meta"],
                     module_ids=["M000"])["M000"]
    assert got.sample_ids == [strip(s) for s in m000.sample_ids]
    for name in CORE:
        assert_table_matches(getattr(m000, name), getattr(got, name))


@pytest.mark.parametrize("sep,suffix", [(",", "csv"), ("\t", "tsv")])
def test_every_id_column_of_a_csv_is_text(tmp_path, sep, suffix):
    path = tmp_path / f"t.{suffix}"
    path.write_text(sep.join(["sample_id", "feature_id", "gene_id", "module_id", "value"])
                    + "\n" + sep.join(["010262", "0001", "007", "00", "1.5"]) + "\n")
    df = read_table(path, "table")
    assert df.iloc[0, :4].tolist() == ["010262", "0001", "007", "00"]
    assert df["value"].dtype.kind == "f"


def test_duplicated_csv_column_is_an_error(ref_inputs, tmp_path):
    """pandas renamed the second 'G00000.T1' to 'G00000.T1.1' and dropped its data."""
    table = pd.read_parquet(ref_inputs["feature_table"]).iloc[:, :6]
    path = tmp_path / "table.csv"
    with path.open("w") as fh:
        fh.write(",".join([*table.columns, "G00000.T1"]) + "\n")
        for row in table.itertuples(index=False):
            fh.write(",".join(map(str, [*row, 0.5])) + "\n")
    with pytest.raises(InputError, match=r"table\.csv has the column 'G00000\.T1' more than"):
        _quiet_run(ref_inputs["artifact"], path, ref_inputs["feature_meta"])


def test_duplicated_parquet_column_is_named(ref_inputs, tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array(["S0000"]), pa.array([1.0]), pa.array([2.0])],
                            names=["sample_id", "G00000.T1", "G00000.T1"]), path)
    with pytest.raises(InputError, match=r"dup\.parquet.*'G00000\.T1'"):
        _quiet_run(ref_inputs["artifact"], path, ref_inputs["feature_meta"])


def test_table_with_only_sample_ids_is_a_clear_error(ref_inputs, tmp_path):
    path = tmp_path / "ids.parquet"
    pd.read_parquet(ref_inputs["feature_table"])[["sample_id"]].to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"ids\.parquet has no feature columns"):
        _quiet_run(ref_inputs["artifact"], path, ref_inputs["feature_meta"])


def test_table_columns_absent_from_meta_is_a_clear_error(ref_inputs, tmp_path):
    path = tmp_path / "meta.parquet"
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    meta.assign(feature_id="X" + meta["feature_id"]).to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"none of the 1234 feature_table columns .* "
                                         r"feature_id of feature_meta .*meta\.parquet"):
        _quiet_run(ref_inputs["artifact"], ref_inputs["feature_table"], path)


def test_empty_feature_meta_is_a_clear_error(ref_inputs, tmp_path):
    path = tmp_path / "meta.parquet"
    pd.read_parquet(ref_inputs["feature_meta"]).iloc[:0].to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"feature_meta \(.*meta\.parquet\) has no rows"):
        _quiet_run(ref_inputs["artifact"], ref_inputs["feature_table"], path)


@pytest.mark.parametrize("column", ["module_id", "gene_id"])
def test_null_module_or_gene_id_is_a_clear_error(ref_inputs, tmp_path, column):
    """A null module_id became a module named 'None' (or the message "missing key nan")."""
    art = _renamed_artifact(ref_inputs, tmp_path)
    modules = pd.read_parquet(art / "modules.parquet")
    modules.loc[3, column] = None
    modules.to_parquet(art / "modules.parquet", index=False)
    with pytest.raises(InputError, match=rf"modules\.parquet .* has 1 null {column} value\(s\) "
                                         r"\(first at row 3\)"):
        _quiet_run(art, ref_inputs["feature_table"], ref_inputs["feature_meta"])


def test_null_feature_meta_gene_id_is_a_clear_error(ref_inputs, tmp_path):
    path = tmp_path / "meta.parquet"
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    meta.loc[5, "gene_id"] = None
    meta.to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"feature_meta .* 1 null gene_id value"):
        _quiet_run(ref_inputs["artifact"], ref_inputs["feature_table"], path)


def _warnings_of(ref_inputs, meta_path, plot=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from isograph_gpu.io.inputs import load_explain_inputs
        load_explain_inputs(ref_inputs["artifact"], ref_inputs["feature_table"], meta_path,
                            ["M000"], for_plots=plot)
    # the warnings about feature_meta's own columns ("feature_meta (<where>) has no ...")
    return [str(w.message) for w in caught if str(w.message).startswith("feature_meta (")]


def test_feature_meta_warns_only_when_an_output_needs_the_column(ref_inputs, tmp_path):
    """The reference fixtures lack exon_id/event_id/source_coordinate, which no output uses:
    no warning. transcript_id is needed by the polarity table; gene_name by figures."""
    assert _warnings_of(ref_inputs, ref_inputs["feature_meta"]) == []
    assert _warnings_of(ref_inputs, ref_inputs["feature_meta"], plot=True) == []
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    no_names = tmp_path / "no_names.parquet"
    meta.drop(columns="gene_name").to_parquet(no_names, index=False)
    assert _warnings_of(ref_inputs, no_names) == []
    (msg,) = _warnings_of(ref_inputs, no_names, plot=True)
    assert "no gene_name column" in msg and "no_names.parquet" in msg
    no_tx = tmp_path / "no_tx.parquet"
    meta.drop(columns="transcript_id").to_parquet(no_tx, index=False)
    (msg,) = _warnings_of(ref_inputs, no_tx)
    assert "no transcript_id column" in msg and "transcript_polarity_table" in msg


def test_cli_without_feature_meta_for_a_plain_table_is_one_clear_line(ref_inputs, tmp_path):
    out = tmp_path / "out"
    result = invoke_explain({**ref_inputs, "feature_meta": None}, out)
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: feature_meta is required: "
                                                   "feature_table "), result.output
    assert "feature_table.parquet carries no feature metadata" in lines[0]
    assert not out.exists()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.text("0123456789", min_size=1, max_size=8), min_size=1, max_size=12,
                    unique=True),
       column=st.sampled_from(["sample_id", "feature_id", "gene_id", "transcript_id",
                               "module_id"]),
       suffix=st.sampled_from(["csv", "tsv", "csv.gz"]))
def test_numeric_looking_ids_survive_any_csv_exactly(tmp_path_factory, ids, column, suffix):
    """Property: every id column of a CSV/TSV(.gz) comes back as the exact text written."""
    path = tmp_path_factory.mktemp("ids") / f"t.{suffix}"
    frame = pd.DataFrame({column: ids, "value": range(len(ids))})
    frame.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False)
    assert read_table(path, "table")[column].tolist() == ids


def test_table_features_missing_from_feature_meta_are_warned_with_examples(ref_inputs):
    """Issue 23.4: they were left out silently (697 of 1,393 kept, unsaid)."""
    from isograph_gpu.io.inputs import load_explain_inputs

    columns = [c for c in pq.read_schema(ref_inputs["feature_table"]).names if c != "sample_id"]
    meta_ids = set(pd.read_parquet(ref_inputs["feature_meta"])["feature_id"])
    missing = [c for c in columns if c not in meta_ids]
    assert missing  # the fixture has an unannotated column
    with pytest.warns(UserWarning) as caught:
        inputs = load_explain_inputs(ref_inputs["artifact"], ref_inputs["feature_table"],
                                     ref_inputs["feature_meta"], ["M000"])
    expected = (f"{len(missing)} of the {len(columns)} feature_table columns are not in "
                f"feature_meta and are left out (e.g. {missing[:3]}); "
                f"{len(columns) - len(missing)} features are used")
    assert expected in [str(w.message) for w in caught]
    assert len(inputs.feature_ids) == len(columns) - len(missing)


def test_no_sample_overlap_names_example_ids_of_both_sides(ref_inputs, tmp_path):
    """Issue 23.4: 'Only 0 samples overlap' named no id of either side."""
    table = pd.read_parquet(ref_inputs["feature_table"])
    table = table.assign(sample_id="X" + table["sample_id"].astype(str))
    path = tmp_path / "renamed.parquet"
    table.to_parquet(path, index=False)
    scores = pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet")
    score_samples = [c for c in scores.columns
                     if c not in ("feature_id", "gene_id", "feature_type", "n_transcripts")]
    with pytest.raises(InputError) as caught:
        _quiet_run(ref_inputs["artifact"], path, ref_inputs["feature_meta"])
    message = str(caught.value)
    assert message.startswith("Only 0 samples overlap between feature_scores and "
                              "feature_table")
    assert f"feature_scores has e.g. {score_samples[:3]}" in message
    assert f"feature_table has e.g. {table['sample_id'].tolist()[:3]}" in message

"""Hostile and malformed tables (issue 21.12, 21.13): an empty modules.parquet is an error,
feature_scores' id faults are refused as feature_meta's are, and ids that are pandas NA
tokens (``NA``, ``null``, ``None``, ``nan``, ``N/A``) stay text in every CSV/TSV reader.
Each test failed on the code before the fix."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.explain import invoke_explain
from _helpers.files import writable_copy, write_gtf
from conftest import assert_table_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.errors import InputError
from isograph_gpu.io.table_readers import PANDAS_NA_TOKENS, read_table
from isograph_gpu.structure.annotation_merge import load_annotation_table
from isograph_gpu.structure.gtf import read_gtf
from isograph_gpu.structure.switch_pair_labels import read_switch_pairs

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]
#: the NA tokens of the issue, each a real id here
NA_IDS = ["NA", "null", "None", "nan", "N/A"]


def quiet_run(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return explain_module(*args, config=ExplainConfig(device="cpu"), **kw)


@pytest.fixture()
def artifact(ref_inputs, tmp_path):
    art = writable_copy(ref_inputs["artifact"], tmp_path / "artifact")
    return art


@pytest.fixture(scope="module")
def m000(ref_inputs):
    return quiet_run(ref_inputs["artifact"], ref_inputs["feature_table"],
                     ref_inputs["feature_meta"], module_ids=["M000"])["M000"]


# --- 12: empty modules, feature_scores id faults ------------------------------------


def test_modules_without_rows_is_an_error_that_keeps_an_earlier_output(ref_inputs, artifact,
                                                                       tmp_path):
    out = tmp_path / "out"
    assert invoke_explain(ref_inputs, out).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    modules = pd.read_parquet(artifact / "modules.parquet")
    modules.iloc[:0].to_parquet(artifact / "modules.parquet", index=False)
    result = invoke_explain({**ref_inputs, "artifact": artifact}, out)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "modules.parquet" in lines[0] and "no rows" in lines[0]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_duplicate_feature_scores_feature_id_is_refused(ref_inputs, artifact):
    path = artifact / "feature_scores.parquet"
    scores = pd.read_parquet(path)
    pd.concat([scores, scores.iloc[[7]]], ignore_index=True).to_parquet(path, index=False)
    duplicate = scores["feature_id"].iloc[7]
    with pytest.raises(InputError, match=rf"feature_scores\.parquet .*duplicate feature_id "
                                         rf"values: \['{duplicate}'\]"):
        quiet_run(artifact, ref_inputs["feature_table"], ref_inputs["feature_meta"])


@pytest.mark.parametrize("column", ["gene_id", "feature_id", "feature_type"])
def test_null_feature_scores_id_is_refused(ref_inputs, artifact, column):
    """A null gene_id became the gene 'None' (pandas' str of a null)."""
    path = artifact / "feature_scores.parquet"
    scores = pd.read_parquet(path)
    scores[column] = scores[column].astype(object)
    scores.loc[4, column] = None
    scores.to_parquet(path, index=False)
    with pytest.raises(InputError, match=rf"feature_scores\.parquet .*1 null {column} "
                                         r"value\(s\) \(first at row 4\)"):
        quiet_run(artifact, ref_inputs["feature_table"], ref_inputs["feature_meta"])


def test_cli_refuses_feature_scores_faults_in_one_line(ref_inputs, artifact, tmp_path):
    path = artifact / "feature_scores.parquet"
    scores = pd.read_parquet(path)
    scores.loc[2, "gene_id"] = None
    scores.to_parquet(path, index=False)
    result = invoke_explain({**ref_inputs, "artifact": artifact}, tmp_path / "out")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "null gene_id" in lines[0], result.output
    assert not (tmp_path / "out").exists()


# --- 13: NA tokens are ids ------------------------------------------------------------


def test_na_tokens_are_pandas_defaults():
    """The numeric columns keep pandas' default NA tokens (its STR_NA_VALUES)."""
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(PANDAS_NA_TOKENS) == set(STR_NA_VALUES)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "csv.gz", "txt"])
def test_na_token_ids_stay_text_and_numbers_keep_their_na(tmp_path, suffix):
    sep = "," if suffix.startswith("csv") else "\t"
    frame = pd.DataFrame({"sample_id": NA_IDS, "gene_id": ["NA", "nan", "n/a", "<NA>", "#N/A"],
                          "value": ["NA", "0.1", "nan", "", "1.0000000000000002"],
                          "other": ["null", "N/A", "None", "-nan", "3"]})
    path = tmp_path / f"t.{suffix}"
    frame.to_csv(path, sep=sep, index=False)
    got = read_table(path, "table")
    assert got["sample_id"].tolist() == NA_IDS
    assert got["gene_id"].tolist() == ["NA", "nan", "n/a", "<NA>", "#N/A"]
    values = got["value"].to_numpy(dtype=float)
    assert np.isnan(values[[0, 2, 3]]).all()
    assert values[1] == 0.1 and values[4] == 1.0000000000000002  # exact
    assert got["other"].dtype.kind == "f"
    assert np.isnan(got["other"].to_numpy()[:4]).all() and got["other"].iloc[4] == 3.0


def test_empty_id_field_is_still_missing(tmp_path):
    """Only the empty field is a missing id: the null checks name it."""
    path = tmp_path / "t.csv"
    path.write_text("sample_id,value\nNA,1\n,2\n")
    got = read_table(path, "table")
    assert got["sample_id"].iloc[0] == "NA" and pd.isna(got["sample_id"].iloc[1])


def test_non_numeric_text_column_is_left_as_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sample_id,label,value\nA,yes,1\nB,NA,2\n")
    got = read_table(path, "table")
    assert got["label"].tolist() == ["yes", "NA"]
    assert got["value"].tolist() == [1, 2]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.sampled_from([*PANDAS_NA_TOKENS[1:], "0", "007", "1e5", "inf"]),
                    min_size=1, max_size=10, unique=True),
       column=st.sampled_from(["sample_id", "feature_id", "gene_id", "transcript_id",
                               "module_id", "gene_name"]),
       suffix=st.sampled_from(["csv", "tsv", "csv.gz"]),
       values=st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                 st.sampled_from(["NA", "nan", "null", ""])),
                       min_size=10, max_size=10))
def test_any_na_token_id_survives_any_csv(tmp_path_factory, ids, column, suffix, values):
    """Property: every id column comes back as the exact text written; a number column
    as the exact doubles written, an NA token as NaN."""
    path = tmp_path_factory.mktemp("ids") / f"t.{suffix}"
    numbers = values[:len(ids)]
    frame = pd.DataFrame({column: ids, "value": [repr(v) if isinstance(v, float) else v
                                                 for v in numbers]})
    frame.to_csv(path, sep="\t" if suffix == "tsv" else ",", index=False)
    got = read_table(path, "table")
    assert got[column].tolist() == ids
    for want, have in zip(numbers, got["value"].to_numpy(dtype=float), strict=True):
        assert math.isnan(have) if isinstance(want, str) else have == want


def _rename_samples(artifact: Path, table: pd.DataFrame, names: dict[str, str]) -> None:
    path = artifact / "feature_scores.parquet"
    pd.read_parquet(path).rename(columns=names).to_parquet(path, index=False)
    table["sample_id"] = table["sample_id"].replace(names)


def test_na_token_sample_ids_of_a_csv_feature_table(ref_inputs, artifact, tmp_path, m000):
    """Five samples named NA, null, None, nan and N/A: all five are used (they became
    missing sample ids) and the tables equal the reference run's."""
    table = pd.read_parquet(ref_inputs["feature_table"])
    names = dict(zip(table["sample_id"].iloc[:5], NA_IDS, strict=True))
    _rename_samples(artifact, table, names)
    table.to_csv(tmp_path / "table.csv", index=False)
    got = quiet_run(artifact, tmp_path / "table.csv", ref_inputs["feature_meta"],
                    module_ids=["M000"])["M000"]
    assert set(NA_IDS) <= set(got.sample_ids)
    assert len(got.sample_ids) == len(m000.sample_ids)
    for name in CORE:
        assert_table_matches(getattr(m000, name), getattr(got, name))


def test_na_token_sample_ids_of_a_csv_module_score_table(ref_inputs, artifact, tmp_path):
    table = pd.read_parquet(ref_inputs["feature_table"])
    scores = pd.read_parquet(ref_inputs["module_score_table"])
    names = dict(zip(table["sample_id"].iloc[:5], NA_IDS, strict=True))
    _rename_samples(artifact, table, names)
    table.to_parquet(tmp_path / "table.parquet", index=False)
    scores["sample_id"] = scores["sample_id"].replace(names)
    scores.to_csv(tmp_path / "scores.tsv", sep="\t", index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        got = explain_module(artifact, tmp_path / "table.parquet", ref_inputs["feature_meta"],
                             module_ids=["M000"], module_score_table=tmp_path / "scores.tsv",
                             config=ExplainConfig(device="cpu"))["M000"]
    assert not [w for w in caught if "module_score_table lacks" in str(w.message)]
    expected = scores.set_index("sample_id")["M000"].reindex(got.sample_ids).to_numpy()
    np.testing.assert_array_equal(got.eigengene, expected)
    assert not np.isnan(got.eigengene).any()


def test_gene_named_na_in_a_csv_feature_meta(ref_inputs, artifact, tmp_path, m000):
    """A gene literally named NA (modules, feature_scores and a CSV feature_meta)."""
    gene = m000.gene_driver_table["gene_id"].iloc[0]
    for name in ("modules.parquet", "feature_scores.parquet"):
        frame = pd.read_parquet(artifact / name)
        frame["gene_id"] = frame["gene_id"].replace({gene: "NA"})
        frame.to_parquet(artifact / name, index=False)
    meta = pd.read_parquet(ref_inputs["feature_meta"])
    meta["gene_id"] = meta["gene_id"].replace({gene: "NA"})
    meta["gene_name"] = meta["gene_name"].where(meta["gene_id"] != "NA", "NA")
    meta.to_csv(tmp_path / "meta.csv", index=False)
    got = quiet_run(artifact, ref_inputs["feature_table"], tmp_path / "meta.csv",
                    module_ids=["M000"])["M000"]
    assert got.n_module_genes == m000.n_module_genes
    for name in CORE:
        want = getattr(m000, name).copy()
        want["gene_id"] = want["gene_id"].replace({gene: "NA"})
        assert_table_matches(want, getattr(got, name))
    assert "NA" in got.gene_driver_table["gene_id"].tolist()


def test_annotation_table_ids_that_are_na_tokens(tmp_path):
    path = tmp_path / "annotation.tsv"
    pd.DataFrame({"transcript_id": NA_IDS, "gene_id": ["NA"] * 5,
                  "cds_changed": ["True", "False", "NA", "1", "0"]}).to_csv(
        path, sep="\t", index=False)
    frame = load_annotation_table(path)
    assert frame["feature_id"].tolist() == NA_IDS
    assert frame["gene_id"].tolist() == ["NA"] * 5
    assert frame["cds_changed"].tolist() == [True, False, pd.NA, True, False]


def test_switch_pairs_ids_that_are_na_tokens(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("gene_id\ttranscript_id_1\ttranscript_id_2\n"
                    "NA\tnull\tNone\nnan\tN/A\tNA\n")
    pairs = read_switch_pairs(path)
    assert pairs.values.tolist() == [["NA", "null", "None"], ["nan", "N/A", "NA"]]


def test_gtf_ids_that_are_na_tokens(tmp_path):
    lines = []
    for i, (gene, tx) in enumerate(zip(["NA", "null", "None"], ["nan", "N/A", "NA"],
                                       strict=True)):
        attrs = f'gene_id "{gene}"; transcript_id "{tx}"; gene_type "NA";'
        lines += [f"NA\tX\ttranscript\t{100 * i + 1}\t{100 * i + 50}\t.\t+\t.\t{attrs}",
                  f"NA\tX\texon\t{100 * i + 1}\t{100 * i + 50}\t.\t+\t.\t{attrs}"]
    models = read_gtf(write_gtf(tmp_path / "a.gtf", lines))
    assert sorted(models.transcript_id.tolist()) == sorted(["nan", "N/A", "NA"])
    assert sorted(models.gene_id.tolist()) == sorted(["NA", "null", "None"])
    assert models.chrom.tolist() == ["NA"] * 3

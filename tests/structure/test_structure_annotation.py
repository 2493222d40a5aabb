"""Annotation-table normalisation and merge (§8) against the reference's cli_run tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import paths

from isograph_gpu.structure import (
    CANONICAL_LABELS,
    annotate_driver_table,
    annotate_switch_pairs,
    annotate_transcript_table,
    fill_annotation_gene_ids,
    load_annotation_table,
    present_annotation_columns,
    read_switch_pairs,
)

REF = paths.DATA / "isograph-0.1.5"
STRUCTURE_TSV = REF / "structure" / "transcript_structure_annotations.tsv"
CLI_RUN = REF / "expected" / "cli_run"
BOOLS = list(CANONICAL_LABELS[:7])


@pytest.mark.parametrize("module", ["M000", "M002"])
@pytest.mark.parametrize("source", ["reference_tsv", "our_output"])
def test_merge_reproduces_reference_tables(module: str, source: str, tmp_path: Path) -> None:
    if source == "reference_tsv":
        annotation = load_annotation_table(STRUCTURE_TSV)
    else:  # our own annotate-structure output (with extra columns) written as TSV
        table = annotate_switch_pairs(read_switch_pairs(REF / "structure" / "switch_pairs.tsv"),
                                      REF / "structure" / "synthetic.gtf")
        path = tmp_path / "ours.tsv"
        table.to_csv(path, sep="\t", index=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            annotation = load_annotation_table(path)
    driver = pd.read_parquet(CLI_RUN / module / "gene_driver_table.parquet")
    polarity = pd.read_parquet(CLI_RUN / module / "transcript_polarity_table.parquet")
    core_driver = driver.drop(columns=list(CANONICAL_LABELS))
    core_polarity = polarity.drop(columns=list(CANONICAL_LABELS))
    got_driver = annotate_driver_table(core_driver, annotation)
    got_polarity = annotate_transcript_table(core_polarity, annotation)
    _assert_same(got_driver, driver)
    _assert_same(got_polarity, polarity)
    assert present_annotation_columns([got_driver, got_polarity]) == list(CANONICAL_LABELS)
    assert present_annotation_columns([core_driver, core_polarity]) == []


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Columns, dtypes, booleans and NA patterns exactly; floats exactly, except that the
    reference read one TSV value (3/7 written as 0.42857142857142855) one ulp low with the
    older pandas float parser it ran under; we parse the written text exactly."""
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_series_equal(got.dtypes, expected.dtypes)
    for name in expected.columns:
        e, g = expected[name], got[name]
        if e.dtype == "float64":
            ev, gv = e.to_numpy(), g.to_numpy()
            np.testing.assert_array_equal(np.isnan(ev), np.isnan(gv), err_msg=name)
            ok = ~np.isnan(ev)
            assert np.all(np.abs(ev[ok] - gv[ok]) <= np.spacing(np.abs(ev[ok]))), name
            assert set(gv[ok][ev[ok] != gv[ok]]) <= {3 / 7}, name
        else:
            pd.testing.assert_series_equal(g, e, check_exact=True)


def test_gene_level_rules_by_hand() -> None:
    annotation = pd.DataFrame({
        "feature_id": ["a1", "a2", "b1", "c1"],
        "gene_id": ["A", "A", "B", "C"],
        "cds_changed": pd.array([pd.NA, True, pd.NA, False], dtype="boolean"),
        "shared_exon_fraction": [0.5, np.nan, np.nan, 0.25],
        "transcript_length_delta": [3.0, 7.0, np.nan, 1.0],
    })
    driver = pd.DataFrame({"gene_id": ["C", "A", "Z", "B"], "r": [0.1, 0.2, 0.3, 0.4]})
    got = annotate_driver_table(driver, annotation)
    assert list(got.columns) == ["gene_id", "r", "cds_changed", "transcript_length_delta",
                                 "shared_exon_fraction"]
    # B: all NA (its transcripts missing from the GTF) -> NA, unknown, as Z (not
    # annotated); isograph 0.1.5 wrote False for B
    assert got["cds_changed"].astype(object).tolist() == [False, True, pd.NA, pd.NA]
    np.testing.assert_array_equal(got["transcript_length_delta"], [1.0, 7.0, np.nan, np.nan])
    np.testing.assert_array_equal(got["shared_exon_fraction"], [0.25, 0.5, np.nan, np.nan])
    assert str(got["cds_changed"].dtype) == "boolean"


def test_normalisation_aliases_and_boolean_coercion() -> None:
    raw = pd.DataFrame({
        "isoform_id": ["t1", "t2", "t3", "t4"],
        "First_Exon_Changed": ["true", " FALSE", "1", "maybe"],
        "Exon_Skipping": [1.0, 0.0, np.nan, 2.0],
        "coding_change": [True, False, True, False],
        "utr_changed": ["0", "", None, "TRUE"],
    })
    got = load_annotation_table(raw)
    assert list(got.columns) == ["feature_id", "first_exon_changed",
                                 "internal_exon_difference", "cds_changed", "utr_changed"]
    as_list = {c: got[c].astype(object).where(got[c].notna(), None).tolist()
               for c in got.columns[1:]}
    assert as_list == {
        "first_exon_changed": [True, False, True, None],
        "internal_exon_difference": [True, False, None, True],
        "cds_changed": [True, False, True, False],
        "utr_changed": [False, None, None, True],
    }
    assert all(str(got[c].dtype) == "boolean" for c in got.columns[1:])
    assert raw.columns[0] == "isoform_id"  # the caller's frame is not modified


def test_id_column_preference_and_errors(tmp_path: Path) -> None:
    both = pd.DataFrame({"transcript_id": ["t"], "feature_id": ["f"], "cds_changed": [1]})
    assert load_annotation_table(both)["feature_id"].tolist() == ["f"]
    with pytest.raises(ValueError, match=r"no ID column .*found \['name', 'cds_changed'\]"):
        load_annotation_table(pd.DataFrame({"name": ["t"], "cds_changed": [1]}))
    with pytest.raises(FileNotFoundError, match="annotation table not found"):
        load_annotation_table(tmp_path / "missing.tsv")
    with pytest.warns(UserWarning, match="no recognised annotation columns"):
        load_annotation_table(pd.DataFrame({"feature_id": ["t"], "score": [1]}))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv.gz"])
def test_file_formats(tmp_path: Path, suffix: str) -> None:
    """Through the one table reader: ids stay text (010262 was read as 10262)."""
    frame = pd.DataFrame({"transcript_id": ["010262", "t2"], "gene_id": ["0042", "0042"],
                          "cds_changed": [True, False], "cds_length_delta": [3.0, 4.0],
                          "shared_exon_fraction": [1 / 6, 3 / 7]})
    path = tmp_path / f"ann{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if ".tsv" in suffix else ",", index=False)
    got = load_annotation_table(path)
    assert got["feature_id"].tolist() == ["010262", "t2"]
    assert got["gene_id"].tolist() == ["0042", "0042"]
    assert got["cds_changed"].astype(bool).tolist() == [True, False]
    assert got["cds_length_delta"].tolist() == [3.0, 4.0]
    # written as 17 digits; read back as the same doubles (not one ulp off)
    assert got["shared_exon_fraction"].tolist() == [1 / 6, 3 / 7]


def test_transcript_merge_duplicates_and_empty() -> None:
    annotation = load_annotation_table(pd.DataFrame({
        "feature_id": ["t1", "t1", "t2"], "cds_changed": [True, False, False]}))
    polarity = pd.DataFrame({"feature_id": ["t2", "t1", "t3"], "r": [0.1, 0.2, 0.3]})
    with pytest.warns(UserWarning, match="1 duplicate feature_id.*'t1'.*keeping the first"):
        got = annotate_transcript_table(polarity, annotation)
    assert got["cds_changed"].astype(object).tolist() == [False, True, pd.NA]
    empty = polarity.iloc[:0]
    assert list(annotate_transcript_table(empty, annotation).columns) == ["feature_id", "r"]


def test_fill_gene_ids_from_feature_meta() -> None:
    meta = pd.read_parquet(REF / "inputs" / "feature_meta.parquet")
    annotation = load_annotation_table(STRUCTURE_TSV).drop(columns=["gene_id"])
    filled = fill_annotation_gene_ids(annotation, meta)
    expected = dict(zip(meta["feature_id"], meta["gene_id"], strict=False))
    got = filled["gene_id"].astype(object)
    assert got.where(got.notna(), None).tolist() == [expected.get(f)
                                                     for f in filled["feature_id"]]
    assert filled["gene_id"].isna().sum() == 1  # NOT_IN_GTF.T9 is not in feature_meta
    unmatched = annotation.assign(feature_id=["nope"] * len(annotation))
    with pytest.warns(UserWarning, match="none of its feature_ids is in feature_meta"):
        same = fill_annotation_gene_ids(unmatched, meta)
    assert "gene_id" not in same.columns
    with pytest.raises(ValueError, match="no gene_id column"):
        annotate_driver_table(pd.DataFrame({"gene_id": ["G00010"]}), same)

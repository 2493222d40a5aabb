"""The one table reader (io/table_readers.py): its registry by format, and the parts that
read tables through it (annotation table, switch pairs, the figures' feature usage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from isograph_gpu.errors import InputError, MissingInputError
from isograph_gpu.io import table_readers
from isograph_gpu.io.table_readers import read_column_names, read_table, table_format
from isograph_gpu.plots.load import read_feature_usage
from isograph_gpu.result import ExplainResult
from isograph_gpu.structure import load_annotation_table, read_switch_pairs


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.tsv.gz", "tsv"), ("a.txt", "tsv"),
    ("a.csv.gz", "csv"), ("a.dat", "csv")])
def test_format_follows_the_file_name(name, fmt):
    assert table_format(Path(name)) == fmt


def test_a_registered_format_is_read_by_its_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(table_readers, "TABLE_FORMATS", dict(table_readers.TABLE_FORMATS))

    def read(path, what, options):
        rows = [line.split("|") for line in path.read_text().splitlines()]
        return pa.table({name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])})

    table_readers.register_table_format(
        "psv", (".psv",), read, lambda path: path.read_text().splitlines()[0].split("|"))
    path = tmp_path / "t.psv"
    path.write_text("feature_id|x\n010262|1\n")
    assert table_format(path) == "psv"
    assert read_column_names(path, "t") == ["feature_id", "x"]
    assert read_table(path, "t").to_dict("list") == {"feature_id": ["010262"], "x": ["1"]}


def test_annotation_table_errors_name_the_file(tmp_path):
    path = tmp_path / "ann.csv"
    path.write_text("feature_id,cds_changed,cds_changed\nT1,1,0\n")
    with pytest.raises(InputError, match=r"annotation table .*ann\.csv has the column "
                                         r"'cds_changed' more than once"):
        load_annotation_table(path)
    with pytest.raises(MissingInputError, match=r"annotation table not found: .*gone\.tsv"):
        load_annotation_table(tmp_path / "gone.tsv")


def test_switch_pairs_are_text_with_empty_as_missing(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("gene_id\ttranscript_id_1\ttranscript_id_2\n0001\t010\t\nNA\tT1\tT2\n")
    got = read_switch_pairs(path)
    assert got["gene_id"].tolist() == ["0001", "NA"]  # "NA" is an id, not a missing value
    assert got["transcript_id_1"].tolist() == ["010", "T1"]
    assert got["transcript_id_2"].isna().tolist() == [True, False]
    path.write_text("gene_id\ttranscript_id_1\ttranscript_id_1\nG\tT1\tT2\n")
    with pytest.raises(InputError, match=r"pairs\.tsv has the column 'transcript_id_1' more"):
        read_switch_pairs(path)


def _result(feature_ids: list[str]) -> ExplainResult:
    polarity = pd.DataFrame({"feature_id": feature_ids, "r": np.zeros(len(feature_ids))})
    return ExplainResult("M0", pd.DataFrame(), polarity, pd.DataFrame(),
                         np.zeros(0), [], 0)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv.gz"])
def test_feature_usage_reads_only_the_polarity_transcripts(tmp_path, suffix):
    """Any format: only sample_id and the results' transcripts come back (CSV/TSV tables
    were read whole before the one reader)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 5))
    frame = pd.DataFrame(values, columns=[f"T{i}" for i in range(5)])
    frame.insert(0, "sample_id", ["001", "002", "003"])
    path = tmp_path / f"usage{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if ".tsv" in suffix else ",", index=False)
    got = read_feature_usage(path, {"M0": _result(["T3", "absent", "T1"])})
    assert list(got.columns) == ["sample_id", "T3", "T1"]
    assert got["sample_id"].tolist() == ["001", "002", "003"]
    np.testing.assert_array_equal(got[["T3", "T1"]].to_numpy(), values[:, [3, 1]])

"""plots.load: the explain run's recorded inputs are reused only while unchanged, and a
feature table that is not the run's is refused (check_usage_matches)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from isograph_gpu.errors import InputError
from isograph_gpu.plots.load import check_usage_matches, manifest_input_path
from isograph_gpu.result import ExplainResult


def _manifest(path, size):
    return {"inputs": {"feature_table": {"path": str(path), "size": size}}}


def test_recorded_input_of_the_recorded_size_is_used(tmp_path):
    table = tmp_path / "feature_table.parquet"
    table.write_bytes(b"x" * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manifest_input_path(_manifest(table, 10), "feature_table") == table
        assert manifest_input_path({}, "feature_table") is None  # not recorded: silent
        assert manifest_input_path(_manifest(table, 10), "feature_meta") is None


def test_recorded_input_that_changed_since_the_run_is_not_used(tmp_path):
    table = tmp_path / "feature_table.parquet"
    table.write_bytes(b"x" * 12)
    with pytest.warns(UserWarning, match=r"is not the file the run read \(its size or "
                                         r"content fingerprint differs"):
        assert manifest_input_path(_manifest(table, 10), "feature_table") is None


def test_recorded_input_that_is_gone_is_not_used(tmp_path):
    gone = tmp_path / "moved.parquet"
    with pytest.warns(UserWarning, match="no longer exists; give --feature-table"):
        assert manifest_input_path(_manifest(gone, 10), "feature_table") is None


def _results() -> dict[str, ExplainResult]:
    polarity = pd.DataFrame({"feature_id": ["T1", "T2"], "gene_id": ["G", "G"],
                             "r": [0.5, -0.5]})
    empty = pd.DataFrame({"gene_id": pd.Series([], dtype=object)})
    return {"M1": ExplainResult(module_id="M1", gene_driver_table=empty,
                                transcript_polarity_table=polarity,
                                high_vs_low_table=empty, eigengene=np.zeros(2),
                                sample_ids=["S1", "S2"], n_module_genes=1)}


@pytest.mark.parametrize("sample_ids_as", ["column", "index"])
def test_one_shared_sample_and_transcript_make_the_table_the_runs(sample_ids_as):
    """Accepted (returns None, raises nothing) with one sample and one transcript of the
    run; the same table without that sample, or without that transcript, is refused."""
    usage = pd.DataFrame({"sample_id": ["S2", "S9"], "T2": [0.1, 0.2], "T7": [0.3, 0.4]})

    def check(table: pd.DataFrame) -> None:
        if sample_ids_as == "index":
            table = table.set_index("sample_id")
        return check_usage_matches(table, _results(), "ft.parquet")

    assert check(usage) is None
    with pytest.raises(InputError, match="shares no sample id"):
        check(usage.assign(sample_id=["S8", "S9"]))
    with pytest.raises(InputError, match="has no column for any transcript"):
        check(usage.drop(columns="T2"))


def test_a_table_without_the_runs_samples_is_refused():
    usage = pd.DataFrame({"sample_id": ["X1", "X2"], "T1": [0.1, 0.2]})
    with pytest.raises(InputError, match=r"feature table other\.parquet shares no sample "
                                         r"id with the explain run \(2 rows\)") as error:
        check_usage_matches(usage, _results(), "other.parquet")
    assert "X1" not in str(error.value)  # a foreign file's content is never quoted


def test_a_table_without_the_runs_transcripts_is_refused():
    usage = pd.DataFrame({"sample_id": ["S1", "S2"], "T8": [0.1, 0.2]})
    with pytest.raises(InputError, match=r"feature table other\.parquet has no column "
                                         "for any transcript of the explain run"):
        check_usage_matches(usage, _results(), "other.parquet")

"""feature_scores.parquet read by polars into one float64 matrix: the values, ids and
legacy-layout fixes equal a plain pandas read (the oracle), for all rows and for a row
subset, with ids kept as text and bad columns named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isograph_gpu.errors import InputError
from isograph_gpu.io import feature_tables
from isograph_gpu.io.feature_scores import FeatureScores


def _frame(rng: np.random.Generator, n_rows: int = 40, n_samples: int = 30) -> pd.DataFrame:
    genes = [f"{i // 2:06d}" for i in range(n_rows)]  # zero-padded: must stay text
    frame = pd.DataFrame({"feature_id": [f"{g}::c{i % 2}" for i, g in enumerate(genes)],
                          "gene_id": genes, "feature_type": ["switch"] * n_rows,
                          "n_transcripts": rng.integers(1, 5, n_rows)})
    values = rng.normal(size=(n_rows, n_samples))
    values[rng.random(values.shape) < 0.1] = np.nan
    for j in range(n_samples):
        frame[f"S{j:03d}"] = values[:, j]
    frame["S000"] = rng.integers(-3, 3, n_rows)  # an integer sample column is cast
    return frame


@pytest.mark.parametrize("block_bytes", [8 * 40 * 7, 2**20])  # 7 samples a block, or all
def test_matrix_and_ids_equal_pandas(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(feature_tables, "LOAD_BLOCK_BYTES", block_bytes)
    frame = _frame(np.random.default_rng(0))
    path = tmp_path / "feature_scores.parquet"
    frame.to_parquet(path, index=False)
    scores = FeatureScores(path)
    samples = [c for c in frame.columns if c.startswith("S")]
    assert scores.sample_ids == samples
    assert scores.gene_ids.tolist() == frame["gene_id"].tolist()  # '000000', not 0
    wanted = sorted(samples)[::-1][:25]
    got = scores.matrix(wanted)
    expected = frame[wanted].to_numpy(dtype=np.float64).T
    assert got.shape == expected.shape and got.flags.f_contiguous
    np.testing.assert_array_equal(got, expected)

    rows = np.array([1, 2, 7, 30, 39])
    scores.keep_rows(rows)
    assert scores.feature_ids.tolist() == frame["feature_id"].iloc[rows].tolist()
    np.testing.assert_array_equal(scores.matrix(wanted), expected[:, rows])


def test_legacy_layout_and_pandas_index(tmp_path):
    frame = _frame(np.random.default_rng(1)).drop(columns=["feature_id", "feature_type"])
    frame = frame.drop_duplicates("gene_id")  # one switch row per gene, as legacy files have
    frame.index = pd.Index([f"r{i}" for i in range(len(frame))], name="row")
    path = tmp_path / "feature_scores.parquet"
    frame.to_parquet(path)  # the index is stored as a column: not a sample
    scores = FeatureScores(path)
    assert "row" not in scores.sample_ids
    assert scores.feature_ids.tolist() == [g + "::switch" for g in frame["gene_id"]]
    assert set(scores.feature_types) == {"switch"}


def test_errors_name_the_file_and_column(tmp_path):
    frame = _frame(np.random.default_rng(2))
    frame["S001"] = frame["S001"].astype(str)
    path = tmp_path / "feature_scores.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"non-numeric sample values: column 'S001'"):
        FeatureScores(path).matrix(["S000", "S001"])
    frame.drop(columns=["gene_id"]).to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"feature_scores.parquet .* missing required "
                                         r"columns: \['gene_id'\]"):
        FeatureScores(path)


def test_legacy_layout_with_a_gene_twice_is_refused(tmp_path):
    """Issue 21.12: the derived feature ids repeat (gene_id + '::switch')."""
    frame = _frame(np.random.default_rng(1)).drop(columns=["feature_id", "feature_type"])
    path = tmp_path / "feature_scores.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"duplicate feature_id values: \['000000::switch'"):
        FeatureScores(path)

"""feature_scores.parquet (one row per gene channel, one column per sample) read with
polars straight into one float64 matrix.

The file is the second largest input (62,500 rows x 1,000 samples = 0.5 GB of values at
250,000 features). It is never materialised as a DataFrame: the id columns are read as
text, and the sample columns the run uses are decoded in column blocks into the one
samples x rows matrix by the loaded path of a feature table
(:meth:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks.to_matrix`: column groups on
two threads; peak: the matrix plus the groups in flight).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .feature_tables import (
    _PARQUET_ERRORS,
    ParquetFeatureBlocks,
    _pandas_index_columns,
    _read_error,
    _scan_parquet,
    non_numeric_column,
)
from .table_readers import check_unique_names, duplicate_values

WHAT = "feature_scores.parquet"
#: feature_scores columns that describe a row; every other column is a sample
SCORE_METADATA_COLUMNS = ("feature_id", "gene_id", "feature_type", "n_transcripts")


def _check_ids(ids: pl.DataFrame, path: Path) -> None:
    """InputError naming the file and column when an id column has a null (it would become
    the id 'None'), as feature_meta's check does."""
    for column in ids.columns:
        nulls = ids.get_column(column).is_null()
        if nulls.any():
            first = int(nulls.arg_true()[0])
            raise InputError(f"{WHAT} ({path}) has {int(nulls.sum())} null {column} value(s) "
                             f"(first at row {first}); every {column} must be set")


def _text(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column as an object array of str."""
    return np.asarray([str(v) for v in frame.get_column(column).to_list()], dtype=object)


class FeatureScores:
    """The rows' ids (object arrays of str, [R]) and the sample columns of
    feature_scores.parquet, whose values :meth:`matrix` reads on demand.

    Legacy layouts are completed as the reference does: no ``feature_id`` -> gene_id +
    ``::switch``; no ``feature_type`` -> ``switch``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        scan = _scan_parquet(self.path, WHAT)
        try:
            schema = scan.collect_schema()
            names = schema.names()
            index_columns = set(_pandas_index_columns(self.path))
            check_unique_names(names, WHAT, self.path)
            if "gene_id" not in names:
                raise InputError(f"{WHAT} ({self.path}) is missing required columns: "
                                 "['gene_id']")
            ids = scan.select([c for c in ("feature_id", "gene_id", "feature_type")
                               if c in names]).collect()
        except _PARQUET_ERRORS as exc:
            raise _read_error(WHAT, self.path, exc) from exc
        _check_ids(ids, self.path)
        self.gene_ids = _text(ids, "gene_id")
        self.feature_ids = (_text(ids, "feature_id") if "feature_id" in names else
                            np.asarray([g + "::switch" for g in self.gene_ids], dtype=object))
        self.feature_types = (_text(ids, "feature_type") if "feature_type" in names else
                              np.full(len(self.gene_ids), "switch", dtype=object))
        dupes = duplicate_values(self.feature_ids)
        if dupes:
            derived = "" if "feature_id" in names else (
                " (it has no feature_id column: each row's is its gene_id + '::switch')")
            raise InputError(f"{WHAT} ({self.path}) has duplicate feature_id values: "
                             f"{dupes}{derived}")
        self.sample_ids = [c for c in names if c not in SCORE_METADATA_COLUMNS
                           and c not in index_columns and not c.startswith("__index_level_")]
        self._scan, self._schema = scan, schema
        self._n_file_rows = len(self.gene_ids)
        self._rows: np.ndarray | None = None  # all rows

    def __len__(self) -> int:
        return len(self.gene_ids)

    def keep_rows(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending row numbers): ids and :meth:`matrix` then cover
        those rows only."""
        rows = np.asarray(rows, dtype=np.int64)
        self.gene_ids, self.feature_ids, self.feature_types = (
            ids[rows] for ids in (self.gene_ids, self.feature_ids, self.feature_types))
        self._rows = None if len(rows) == self._n_file_rows and np.array_equal(
            rows, np.arange(self._n_file_rows)) else rows

    def matrix(self, sample_ids: Sequence[str]) -> np.ndarray:
        """float64 [len(sample_ids), R], Fortran order (each row's values contiguous),
        decoded in groups of sample columns. A non-numeric sample column is an InputError
        naming it (checked from the schema before any value is read)."""
        bad = non_numeric_column(self._schema, sample_ids)
        if bad is not None:
            raise InputError(f"{WHAT} ({self.path}) has non-numeric sample values: "
                             f"column {bad[0]!r} has type {bad[1]}")
        rows = np.arange(self._n_file_rows) if self._rows is None else self._rows
        blocks = ParquetFeatureBlocks(self._scan, self.path, WHAT, self._n_file_rows,
                                      sample_ids, rows)
        return blocks.to_matrix(order="C").T  # [R, n] C order = [n, R] Fortran

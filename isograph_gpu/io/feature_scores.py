"""feature_scores.parquet (one row per gene channel, one column per sample) read with
polars straight into one float64 matrix.

The file is the second largest input (62,500 rows x 1,000 samples = 0.5 GB of values at
250,000 features). It is never materialised as a DataFrame: the id columns are read as
text, and the sample columns the run uses are decoded in column blocks into the one
samples x rows matrix (peak: the matrix plus one block of
:data:`~isograph_gpu.io.feature_tables.LOAD_BLOCK_BYTES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .feature_tables import (
    _PARQUET_ERRORS,
    LOAD_BLOCK_BYTES,
    _float64_matrix,
    _pandas_index_columns,
    _read_error,
    _scan_parquet,
)
from .table_readers import check_unique_names

WHAT = "feature_scores.parquet"
#: feature_scores columns that describe a row; every other column is a sample
SCORE_METADATA_COLUMNS = ("feature_id", "gene_id", "feature_type", "n_transcripts")


def _text(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column as an object array of str (a null becomes 'None', as pandas' astype(str))."""
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
        self.gene_ids = _text(ids, "gene_id")
        self.feature_ids = (_text(ids, "feature_id") if "feature_id" in names else
                            np.asarray([g + "::switch" for g in self.gene_ids], dtype=object))
        self.feature_types = (_text(ids, "feature_type") if "feature_type" in names else
                              np.full(len(self.gene_ids), "switch", dtype=object))
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
        decoded in blocks of sample columns. A non-numeric sample column is an InputError
        naming it (checked from the schema before any value is read)."""
        for name in sample_ids:
            dtype = self._schema[name]
            if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
                raise InputError(f"{WHAT} ({self.path}) has non-numeric sample values: "
                                 f"column {name!r} has type {dtype}")
        out = np.empty((len(self), len(sample_ids)), dtype=np.float64)  # [R, n], C order
        step = max(1, LOAD_BLOCK_BYTES // max(1, 8 * self._n_file_rows))
        for a in range(0, len(sample_ids), step):
            names = list(sample_ids[a:a + step])
            try:
                block = self._scan.select(pl.col(names)).collect()
            except _PARQUET_ERRORS as exc:
                raise _read_error(WHAT, self.path, exc) from exc
            out[:, a:a + len(names)] = _float64_matrix(block, self._rows,
                                                       f"{WHAT} {self.path}")
        return out.T

"""Feature-table readers, one per layout and format, and :func:`open_feature_table`, which
picks the reader for a source.

Every reader gives ``sample_ids``, ``columns`` (feature ids), ``matrix(columns, rows)`` (a
Fortran-ordered float64 samples x features matrix, or for a streamed table a
:class:`~isograph_gpu.io.feature_blocks.FeatureBlocks` reader that reads it in column
blocks; the engine reads a loaded matrix as
:class:`~isograph_gpu.io.feature_blocks.MatrixBlocks`) and ``feature_meta()`` (feature
metadata the table carries itself, or ``None``):

* :class:`SamplesByFeaturesTable`: one row per sample (the reference's layout), parquet,
  CSV/TSV(.gz) or a DataFrame; a parquet that does not fit in memory is streamed;
* :class:`FeaturesBySamplesTable`: one row per feature (a ``feature_id`` column), one
  column per sample, parquet, CSV/TSV(.gz) or a DataFrame; always loaded (narrow, fast);
* :class:`~isograph_gpu.io.anndata.AnnDataFeatureTable`: an AnnData object or ``.h5ad``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from ..config import FEATURE_LAYOUTS
from ..errors import InputError, first_line
from ..progress import Progress
from .feature_blocks import FeatureBlocks
from .memory import LOAD_BLOCK_BYTES, stream_read_columns, table_fits_in_memory
from .table_readers import (
    ID_COLUMNS,
    TableSource,
    check_unique_names,
    describe_source,
    duplicate_values,
    existing_file,
    own_feature_meta,
    read_polars,
    table_format,
)

#: Layouts are :data:`isograph_gpu.config.FEATURE_LAYOUTS`. ``auto`` takes the layout from
#: the table's id column: ``sample_id`` -> one row per sample, ``feature_id`` -> one row per
#: feature; both is an error (neither: the reference's samples x features layout with the
#: samples in a pandas index).
FeatureLayout = Literal["auto", "samples-by-features", "features-by-samples"]


class FeatureTable(Protocol):
    """What the explain loader needs from a feature table."""

    what: str
    where: str
    sample_ids: np.ndarray
    columns: list[str]

    def matrix(self, columns: Sequence[str], rows: np.ndarray
               ) -> np.ndarray | FeatureBlocks: ...

    def feature_meta(self) -> pd.DataFrame | None: ...


def non_numeric_column(schema: Mapping[str, pl.DataType],
                       names: Iterable[str] | None = None) -> tuple[str, pl.DataType] | None:
    """The first of ``names`` (default: all) whose ``schema`` type is not a number (bool
    and all-null count as numbers), with its type; ``None`` when all are numbers."""
    for name in schema if names is None else names:
        dtype = schema[name]
        if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
            return name, dtype
    return None


def check_numeric(schema: Mapping[str, pl.DataType], names: Iterable[str] | None,
                  source: str) -> None:
    """InputError naming ``source`` and the first non-numeric column of ``names``."""
    bad = non_numeric_column(schema, names)
    if bad is not None:
        raise InputError(f"{source}: column {bad[0]!r} is not numeric (type {bad[1]}); "
                         "feature values must be numbers")


def _float64_matrix(frame: pl.DataFrame, rows: np.ndarray | None, source: str,
                    order: Literal["F", "C"] = "F") -> np.ndarray:
    """All columns of ``frame`` as a float64 matrix (``order`` F or C), rows gathered in
    the order ``rows`` (``None``: as they are). Only the columns that are not float64
    already are checked and cast (selected in polars: a Python schema of 50,000 columns
    costs more than the check); a non-numeric one is an InputError naming ``source`` and
    the column. The check reads the schema, not the data."""
    others = frame.select(pl.all().exclude(pl.Float64)).schema
    check_numeric(others, None, source)
    if others:
        frame = frame.with_columns([pl.col(name).cast(pl.Float64) for name in others])
    if rows is not None:
        frame = frame[rows]
    out = frame.to_numpy(order="fortran" if order == "F" else "c")
    if order == "F" and (out.dtype != np.float64 or not out.flags.f_contiguous):
        out = np.asfortranarray(out, dtype=np.float64)
    elif order == "C" and (out.dtype != np.float64 or not out.flags.c_contiguous):
        out = np.ascontiguousarray(out, dtype=np.float64)
    return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // max(1, b))


#: the column of a pandas-written parquet that holds its first unnamed index level
PANDAS_FIRST_INDEX = "__index_level_0__"


def _read_error(what: str, path: Path, exc: BaseException) -> InputError:
    return InputError(f"cannot read {what} {path} as parquet: {first_line(exc)}")


_PARQUET_ERRORS = (pl.exceptions.PolarsError, pa.ArrowException, OSError)

#: Threads that read column groups of a parquet table loaded whole at once.
LOAD_READERS = 2


class ParquetFeatureBlocks(FeatureBlocks):
    """The float64 samples x features matrix of a parquet feature table, read one block of
    columns at a time (host memory bounded by the block, not the table); see
    :class:`FeatureBlocks`. Blocks are read through one polars scan of the file: polars
    keeps the parsed footer after the first read; each read then has a fixed cost (large
    for a wide file: docs/input_formats.md) and decodes the block's columns on about one
    core.
    """

    def __init__(self, scan: pl.LazyFrame, path: Path, what: str, n_rows: int,
                 columns: Sequence[str], rows: np.ndarray) -> None:
        self._scan, self._path, self._what = scan, path, what
        self._columns = list(columns)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._n_file_rows = int(n_rows)
        self._identity = bool(np.array_equal(self._rows, np.arange(n_rows)))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self._rows), len(self._columns)

    @property
    def read_columns(self) -> int:
        """Columns per read block that :data:`LOAD_BLOCK_BYTES` allows: engine chunks no
        wider than it never cross a multiple of it; wider ones (a large memory budget)
        do, and are then read one chunk at a time (:func:`isograph_gpu.engine.chunk_spans`,
        :func:`isograph_gpu.engine.device_chunks`; the chunk plan, hence the tables)."""
        return max(1, LOAD_BLOCK_BYTES // max(1, 8 * len(self._rows)))

    @property
    def read_ahead_columns(self) -> int:
        """Columns one read may take when the next read runs ahead of the engine
        (:func:`~isograph_gpu.io.memory.stream_read_columns`): each read of a very wide
        file has a fixed cost, so reads take as many whole chunks as this allows."""
        return stream_read_columns(self._n_file_rows)  # polars decodes every file row

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        return self._read([self._columns[int(i)] for i in positions])

    def to_matrix(self, workers: int = LOAD_READERS, order: Literal["F", "C"] = "F",
                  progress: Progress | None = None) -> np.ndarray:
        """The whole float64 matrix (``order`` F or C), filled in column groups read by
        ``workers`` threads at once (one polars read uses little more than one core), each
        group copied into its slice: the peak is the matrix plus ``workers`` groups of
        ``LOAD_BLOCK_BYTES / workers`` of the file's rows decoded twice (columns, then
        block), not twice the matrix. ``progress`` counts the groups decoded."""
        n, f = self.shape
        out = np.empty((n, f), dtype=np.float64, order=order)
        workers = max(1, int(workers))
        per_group = max(1, LOAD_BLOCK_BYTES // workers // max(1, 8 * self._n_file_rows))
        n_groups = _ceil_div(_ceil_div(f, per_group), workers) * workers  # all read alike
        step = max(1, _ceil_div(f, n_groups))

        def fill(a: int) -> None:
            out[:, a:a + step] = self._read(self._columns[a:a + step])

        starts = range(0, f, step)

        def report(done: int) -> None:
            if progress is not None:
                progress.chunk("decode feature table", done, len(starts), unit="group")

        if workers == 1 or f <= step:
            for i, a in enumerate(starts, start=1):
                fill(a)
                report(i)
            return out
        with ThreadPoolExecutor(workers, thread_name_prefix="isograph-load") as pool:
            groups = [pool.submit(fill, a) for a in starts]
            try:
                for i, done in enumerate(groups, start=1):
                    done.result()  # a read's InputError, raised here
                    report(i)
            except BaseException:
                for pending in groups:
                    pending.cancel()  # no further group is read after a failure
                raise
        return out

    def read_parts(self, a: int, b: int
                   ) -> tuple[Callable[[], pl.DataFrame], Callable[[pl.DataFrame], np.ndarray]]:
        """Columns a:b read in two parts: ``decode()`` (the file's columns, decoded by
        polars; any thread) and ``finish(decoded)`` (the Fortran float64 block, rows in
        sample order). A streamed reader decodes the next block ahead and finishes it
        after freeing the last (:class:`isograph_gpu.engine._BlockReads`)."""
        names = self._columns[a:b]
        return (lambda: self._decode(names)), self._finish

    def _decode(self, names: list[str]) -> pl.DataFrame:
        try:
            return self._scan.select(pl.col(names)).collect()  # one expression, not F
        except _PARQUET_ERRORS as exc:
            raise _read_error(self._what, self._path, exc) from exc

    def _finish(self, frame: pl.DataFrame) -> np.ndarray:
        if not frame.width:
            return np.empty((len(self._rows), 0), dtype=np.float64, order="F")
        return _float64_matrix(frame, None if self._identity else self._rows,
                               f"{self._what} {self._path}")

    def _read(self, names: list[str]) -> np.ndarray:
        if not names:
            return np.empty((len(self._rows), 0), dtype=np.float64, order="F")
        return self._finish(self._decode(names))


class SamplesByFeaturesTable:
    """A samples x features table, kept columnar (polars for files, pandas for DataFrames)
    until the needed columns are gathered into one float64 matrix.

    Files go through polars: it reads a wide parquet (tens of thousands of columns) several
    times faster than ``pyarrow.parquet.read_table`` and writes the Fortran-ordered matrix
    in one multi-threaded pass.
    """

    def __init__(self, source: TableSource, what: str, stream: bool | None = False,
                 opened: pl.LazyFrame | pl.DataFrame | None = None,
                 schema: pl.Schema | None = None, progress: Progress | None = None) -> None:
        """``opened``: the file's polars scan (parquet) or frame (CSV) when the caller has
        one already, ``schema``: the scan's schema when the caller has resolved it (the
        footer, the file or the schema is then not read twice). ``progress`` counts the
        column groups of a loaded parquet as they are decoded."""
        self.what = what
        self._progress = progress
        self.where = describe_source(source)
        self._frame: pd.DataFrame | None = None
        self._polars: pl.DataFrame | None = None
        self._scan: pl.LazyFrame | None = None  # a parquet file, read in column blocks
        self._schema: pl.Schema | None = None
        self._streamed = False
        self._n_rows = 0
        if isinstance(source, pd.DataFrame):
            self._load_frame(source)
        elif table_format(Path(source)) == "parquet":
            self._open_parquet(Path(source), stream,
                               opened if isinstance(opened, pl.LazyFrame) else None, schema)
        else:
            frame = opened if isinstance(opened, pl.DataFrame) else read_polars(source, what)
            self._use_frame(frame, source)
        check_unique_names(self.columns, what, self.where)
        dupes = duplicate_values(pd.Index(self.sample_ids))
        if dupes:
            raise InputError(f"{what} has duplicate sample IDs: {dupes} (in {self.where})")

    def _load_frame(self, df: pd.DataFrame) -> None:
        if "sample_id" in df.columns:
            self.sample_ids = df["sample_id"].astype(str).to_numpy()
            df = df.drop(columns=["sample_id"])
        else:
            self.sample_ids = np.asarray(df.index.astype(str))
        self._frame = df
        self.columns = [str(c) for c in df.columns]

    def _id_column(self, names: Sequence[str], source: str | os.PathLike[str]) -> str:
        """``sample_id``, else the first index column a pandas-written parquet stores."""
        if "sample_id" in names:
            return "sample_id"
        if PANDAS_FIRST_INDEX in names:  # an unnamed pandas index: no second footer parse
            return PANDAS_FIRST_INDEX
        index_cols = _pandas_index_columns(source)
        if not index_cols or index_cols[0] not in names:
            raise InputError(f"{self.what} {self.where} has no sample_id column (or pandas "
                             "index) naming the samples")
        return index_cols[0]

    def _use_frame(self, frame: pl.DataFrame, source: str | os.PathLike[str]) -> None:
        id_column = self._id_column(frame.columns, source)
        self.sample_ids = np.asarray(
            [str(v) for v in frame.get_column(id_column).to_list()], dtype=object)
        self._polars = frame.drop(
            [c for c in frame.columns if c == id_column or c.startswith("__index_level_")])
        self.columns = list(self._polars.columns)

    def _open_parquet(self, path: Path, stream: bool | None,
                      scan: pl.LazyFrame | None = None,
                      schema: pl.Schema | None = None) -> None:
        """One polars scan of the file (polars keeps its parsed footer for every later
        read): the sample ids now, feature columns later, each read decoded on about one
        core. Loaded: :meth:`matrix` fills one matrix in column groups read on
        :data:`LOAD_READERS` threads (:meth:`ParquetFeatureBlocks.to_matrix`). Streamed: it returns a
        :class:`ParquetFeatureBlocks`. ``stream=None``: stream only when the table
        does not fit in memory (:func:`~isograph_gpu.io.memory.table_fits_in_memory`,
        from the footer's row and column counts)."""
        if scan is None:
            scan, schema = _scan_parquet(path, self.what), None
        try:
            # resolving the schema of a wide scan is costly each time: once per run
            self._schema = schema if schema is not None else scan.collect_schema()
            names = self._schema.names()
            id_column = self._id_column(names, path)
            ids = scan.select(id_column).collect().get_column(id_column).to_list()
        except _PARQUET_ERRORS as exc:
            raise _read_error(self.what, path, exc) from exc
        if stream is None:
            stream = not table_fits_in_memory(len(ids), len(names))
        self._streamed = bool(stream)
        self._scan, self._n_rows = scan, len(ids)
        self.sample_ids = np.asarray([str(v) for v in ids], dtype=object)
        self.columns = [c for c in names
                        if c != id_column and not c.startswith("__index_level_")]

    def matrix(self, columns: Sequence[str], rows: np.ndarray
               ) -> np.ndarray | ParquetFeatureBlocks:
        """float64 [len(rows), len(columns)] (Fortran order: feature chunks are contiguous);
        for a streamed parquet, a :class:`ParquetFeatureBlocks` that reads column blocks
        on demand. A parquet's column types are checked here, from the schema, not by a
        pass over the data."""
        if self._scan is not None:
            assert self._schema is not None
            check_numeric(self._schema, columns, f"{self.what} {self.where}")
            blocks = ParquetFeatureBlocks(self._scan, Path(self.where), self.what,
                                          self._n_rows, columns, rows)
            return blocks if self._streamed else blocks.to_matrix(progress=self._progress)
        if self._polars is not None:
            return self._polars_matrix(self._polars, columns, rows)
        out = np.empty((len(rows), len(columns)), dtype=np.float64, order="F")
        for j, name in enumerate(columns):
            out[:, j] = self._frame_column(name)[rows]
        return out

    def feature_meta(self) -> pd.DataFrame | None:
        """A samples x features table carries no feature metadata."""
        return None

    def _polars_matrix(self, frame: pl.DataFrame, columns: Sequence[str],
                       rows: np.ndarray) -> np.ndarray:
        if not len(columns):
            return np.empty((len(rows), 0), dtype=np.float64, order="F")
        sub = frame if list(columns) == frame.columns else frame.select(columns)
        identity = np.array_equal(rows, np.arange(frame.height))
        return _float64_matrix(sub, None if identity else rows, f"{self.what} {self.where}")

    def _frame_column(self, name: str) -> np.ndarray:
        assert self._frame is not None
        values = self._frame[name]
        try:
            return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{self.what} {self.where}: column {name!r} is not numeric "
                f"({exc}); feature values must be numbers"
            ) from exc


def _pandas_index_columns(source: str | os.PathLike[str]) -> list[str]:
    """Index columns a pandas-written parquet stores (empty for other files), from the
    footer's key-value metadata (polars parses a wide footer faster than pyarrow, in
    less memory)."""
    if table_format(Path(source)) != "parquet":
        return []
    meta = json.loads(pl.read_parquet_metadata(source).get("pandas") or "{}")
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]


def _scan_parquet(path: Path, what: str) -> pl.LazyFrame:
    """A polars scan of a parquet file that exists and is a file."""
    return pl.scan_parquet(existing_file(path, what))


class FeaturesBySamplesTable:
    """A features x samples table: one row per feature (ids in ``feature_id``), one column
    per sample. Columns named in :data:`~isograph_gpu.io.table_readers.ID_COLUMNS` (``gene_id``,
    ``feature_type``, ``transcript_id``, ...) are feature metadata, not samples."""

    def __init__(self, frame: pl.DataFrame, what: str, where: str) -> None:
        self.what, self.where = what, where
        if "feature_id" not in frame.columns:
            raise InputError(f"{what} {where} has no feature_id column; a features x samples "
                             "table names its features in a feature_id column")
        ids = frame.get_column("feature_id")
        if ids.null_count():
            raise InputError(f"{what} {where} has {ids.null_count()} null feature_id value(s)")
        self.columns = [str(v) for v in ids.to_list()]
        dupes = duplicate_values(pd.Index(self.columns))
        if dupes:
            raise InputError(f"{what} {where} has duplicate feature_id values: {dupes}")
        self._meta_columns = [c for c in frame.columns if c in ID_COLUMNS]
        samples = [c for c in frame.columns if c not in ID_COLUMNS]
        self.sample_ids = np.asarray(samples, dtype=object)
        self._meta = frame.select(self._meta_columns)
        self._values = frame.select(samples)

    def feature_meta(self) -> pd.DataFrame | None:
        """The table's own metadata columns (with feature_id) when it has gene_id and
        feature_type; else ``None``. Rows without gene_id or feature_type are left out
        (those features are not annotated, like table columns absent from a feature_meta)."""
        if not {"gene_id", "feature_type"} <= set(self._meta_columns):
            return None
        return own_feature_meta(self._meta.to_pandas())

    def matrix(self, columns: Sequence[str], rows: np.ndarray) -> np.ndarray:
        """float64 [len(rows), len(columns)], Fortran order: the C-ordered features x
        samples matrix of the requested rows, transposed (no further copy)."""
        positions = pd.Index(self.columns).get_indexer(list(columns))
        if not len(positions):
            return np.empty((len(rows), 0), dtype=np.float64, order="F")
        samples = self._values.select([self._values.columns[int(i)] for i in rows])
        return _float64_matrix(samples, positions, f"{self.what} {self.where}", order="C").T


def _resolve_layout(names: Sequence[str], layout: str, what: str, where: str) -> str:
    """The layout of a table with column ``names``: the one asked for, or from its id
    column (``sample_id`` or ``feature_id``) under ``auto``; never a silent guess."""
    if layout not in FEATURE_LAYOUTS:
        raise InputError(f"feature layout must be one of {list(FEATURE_LAYOUTS)}, "
                         f"got {layout!r}")
    if layout != "auto":
        return layout
    by_sample, by_feature = "sample_id" in names, "feature_id" in names
    if by_sample and by_feature:
        raise InputError(f"{what} {where} has both a sample_id and a feature_id column, so "
                         "its layout is ambiguous; pass --feature-layout "
                         "samples-by-features or features-by-samples")
    return "features-by-samples" if by_feature else "samples-by-features"


def check_streamable(source: Any, stream: bool | None,
                     cache: str | os.PathLike[str] | None) -> None:
    """InputError when ``stream`` is True (``--stream-features``) for a CSV/TSV feature
    table without a ``cache``: a delimited text file is parsed whole, it cannot be read in
    column blocks (with a feature cache the parsed matrix is streamed from the cache)."""
    from .anndata import is_anndata

    if stream is not True or cache is not None or not isinstance(source, str | os.PathLike):
        return
    fmt = table_format(Path(source))
    if fmt == "parquet" or is_anndata(source):
        return
    raise InputError(
        f"--stream-features: feature_table {source} is a {fmt.upper()} file, which is parsed "
        "whole (text cannot be read in column blocks); convert it to parquet or .h5ad, "
        "or add --feature-cache PATH (the parsed matrix is written there once and "
        "streamed from it), or drop --stream-features")


def open_feature_table(source: Any, what: str = "feature_table",
                       layout: FeatureLayout | str = "auto",
                       stream: bool | None = None,
                       cache: str | os.PathLike[str] | None = None,
                       progress: Progress | None = None) -> FeatureTable:
    """The reader for ``source`` (a path, a DataFrame or an AnnData object).

    ``layout``: see :data:`FEATURE_LAYOUTS` (an AnnData is always samples x features).
    ``stream``: read a samples x features parquet or an ``.h5ad`` in column blocks; ``None``
    streams only when the table does not fit in memory. ``cache``: a feature-matrix cache
    file (:mod:`isograph_gpu.io.feature_cache`): mapped when it was built from the same
    file, else written from it; any layout or format can then be streamed.
    ``progress`` reports the decode.
    """
    from .anndata import AnnDataFeatureTable, is_anndata

    if cache is not None:
        from .feature_cache import open_cached_feature_table

        return open_cached_feature_table(
            source, cache, what, str(layout), stream,
            lambda s: open_feature_table(source, what, layout, s, progress=progress),
            progress)

    if is_anndata(source):
        if layout == "features-by-samples":
            raise InputError(f"{what} {describe_source(source)} is an AnnData, whose layout "
                             "is samples (obs) x features (var); drop features-by-samples")
        return AnnDataFeatureTable(source, what, stream=stream)
    where = describe_source(source)
    if isinstance(source, pd.DataFrame):
        names = [str(c) for c in source.columns]
        if source.index.name in ("sample_id", "feature_id"):
            names.append(str(source.index.name))
        if _resolve_layout(names, layout, what, where) == "samples-by-features":
            return SamplesByFeaturesTable(source, what)
        frame = source.reset_index() if source.index.name == "feature_id" else source
        return FeaturesBySamplesTable(pl.from_pandas(frame), what, where)
    path = Path(source)
    if table_format(path) == "parquet":
        scan = _scan_parquet(path, what)
        try:
            schema = scan.collect_schema()
            names = schema.names()
            by_feature = _resolve_layout(names, layout, what, where) == "features-by-samples"
            frame = scan.collect() if by_feature else None
        except _PARQUET_ERRORS as exc:
            raise _read_error(what, path, exc) from exc
        if frame is not None:
            return FeaturesBySamplesTable(frame, what, where)
        return SamplesByFeaturesTable(path, what, stream=stream, opened=scan, schema=schema,
                                      progress=progress)
    frame = _parse_text_table(path, what, progress or Progress())
    if _resolve_layout(frame.columns, layout, what, where) == "features-by-samples":
        return FeaturesBySamplesTable(frame, what, where)
    return SamplesByFeaturesTable(path, what, opened=frame)


#: a CSV/TSV feature table at least this large is announced before it is parsed, with the
#: faster forms of the same table (docs/input_formats.md)
ANNOUNCED_TEXT_BYTES = 64 * 1024**2
#: what reads faster than a CSV/TSV feature table (bench/results/read_cpu.json)
TEXT_TABLE_ADVICE = (
    "the same table as parquet or .h5ad reads 5-14x faster (measured at 1,000 x 10,000: "
    "CSV 10.1 s, parquet 1.8 s, .h5ad 0.7 s), and --feature-cache PATH parses it once "
    "for every later run (docs/input_formats.md)")


def _parse_text_table(path: Path, what: str, progress: Progress) -> pl.DataFrame:
    """A CSV/TSV feature table parsed whole (:func:`read_polars`); a large one is announced
    first, saying once what reads faster."""
    size = path.stat().st_size if path.is_file() else 0
    if size < ANNOUNCED_TEXT_BYTES:
        return read_polars(path, what)
    progress.message(
        f"parsing {what} {path} ({size / 1e6:,.0f} MB of {table_format(path).upper()}); "
        f"{TEXT_TABLE_ADVICE}")
    with progress.stage(f"parse {table_format(path).upper()} {what}"):
        return read_polars(path, what)

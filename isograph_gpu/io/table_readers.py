"""The one table reader: parquet, CSV or TSV (optionally gzip-compressed), chosen by file
name from a small registry of formats (as anndata keeps its readers and writers), with
errors that name the file.

Every part that reads a table file (explain inputs, the annotation table, the switch
pairs, the figures' result tables and feature usage) goes through :func:`read_arrow` /
:func:`read_table`; a new format is one :func:`register_table_format` call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, MissingInputError, first_line

TableSource = str | os.PathLike[str] | pd.DataFrame

#: Columns that hold identifiers. A CSV/TSV reader keeps them as text, so that a
#: zero-padded id such as ``010262`` stays ``010262`` (ids are strings everywhere).
ID_COLUMNS = ("sample_id", "feature_id", "gene_id", "transcript_id", "module_id",
              "gene_name", "exon_id", "event_id", "feature_type", "source_coordinate",
              "isoform_id", "transcript_id_1", "transcript_id_2")


@dataclass(frozen=True)
class ReadOptions:
    """How to read one table: ``columns`` (None: all; names the file lacks are an
    InputError), ``all_text`` (every column as text, an empty field as missing: for tables
    of ids only, such as the switch pairs)."""

    columns: Sequence[str] | None = None
    all_text: bool = False


#: reads ``path`` (a file of this format) into Arrow; raises InputError for a bad header
TableReader = Callable[[Path, str, ReadOptions], pa.Table]
#: the column names of ``path`` (a file of this format) without reading its data
ColumnLister = Callable[[Path], list[str]]


@dataclass(frozen=True)
class TableFormat:
    """A registered format: its name, the file name endings that select it (a trailing
    ``.gz`` is ignored), its reader and its header reader."""

    name: str
    suffixes: tuple[str, ...]
    read: TableReader
    column_names: ColumnLister


#: format name -> format, in registration order (the first whose suffix matches wins)
TABLE_FORMATS: dict[str, TableFormat] = {}
#: the format of a file name no registered suffix matches
DEFAULT_FORMAT = "csv"


def register_table_format(name: str, suffixes: Sequence[str], read: TableReader,
                          column_names: ColumnLister) -> None:
    """Register (or replace) the reader of format ``name`` for files ending in
    ``suffixes`` (lower case, with the dot)."""
    TABLE_FORMATS[name] = TableFormat(name, tuple(suffixes), read, column_names)


def table_format(path: Path) -> str:
    """The registered format of ``path`` from its name (a trailing .gz is ignored):
    'parquet', 'tsv', or 'csv' (also for an unknown ending)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for fmt in TABLE_FORMATS.values():
        if name.endswith(fmt.suffixes):
            return fmt.name
    return DEFAULT_FORMAT


def check_unique_names(names: list[str], what: str, where: object) -> None:
    """InputError naming the first repeated column name (a repeat would silently shadow
    the first column's data)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{what} {where} has the column {name!r} more than once; "
                             "column names must be unique")
        seen.add(name)


def duplicate_values(values: pd.Index | pd.Series | Sequence[object], distinct: bool = False
                     ) -> list[str]:
    """The first five values that occur more than once (their repeats, in order; each
    value once with ``distinct``)."""
    s = pd.Series(np.asarray(values, dtype=object))
    repeats = s[s.duplicated()]
    if distinct:
        repeats = repeats.drop_duplicates()
    return [str(v) for v in repeats.tolist()[:5]]


def own_feature_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """Feature metadata a table carries itself, as text, without the rows that lack
    gene_id or feature_type (unannotated features)."""
    meta = meta.dropna(subset=["gene_id", "feature_type"]).reset_index(drop=True)
    for col in meta.columns:
        meta[col] = [None if pd.isna(v) else str(v) for v in meta[col]]
    return meta


def _check_columns(names: Sequence[str], options: ReadOptions, what: str, path: Path) -> None:
    missing = [c for c in options.columns or () if c not in set(names)]
    if missing:
        raise InputError(f"{what} {path} has no column {missing[0]!r}")


def _parquet_column_names(path: Path) -> list[str]:
    return list(pq.read_schema(path).names)


def _read_parquet(path: Path, what: str, options: ReadOptions) -> pa.Table:
    parquet = pq.ParquetFile(path)  # one footer parse for the checks and the read
    names = list(parquet.schema_arrow.names)
    check_unique_names(names, what, path)
    _check_columns(names, options, what, path)
    columns = None if options.columns is None else list(options.columns)
    table = parquet.read(columns=columns)
    if options.all_text:
        table = table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names]))
    return table


def _delimited_column_names(sep: str) -> ColumnLister:
    def column_names(path: Path) -> list[str]:
        header = pd.read_csv(path, sep=sep, compression="infer", header=None, nrows=1,
                             dtype=str, keep_default_na=False)
        return [str(v) for v in header.iloc[0].tolist()] if len(header) else []

    return column_names


#: ``pd.read_csv`` options that parse every number to the exact double its text names:
#: pandas 2's default C parser can land 1 ulp off a 17-digit value, so it needs
#: ``float_precision="round_trip"``; pandas 3 parses exactly by default and deprecates it
EXACT_CSV_FLOATS: dict[str, str] = (
    {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {})


def _delimited_reader(sep: str) -> TableReader:
    def read(path: Path, what: str, options: ReadOptions) -> pa.Table:
        """A CSV/TSV(.gz) file with its header checked for repeats (pandas would rename
        the second ``x`` to ``x.1``), every :data:`ID_COLUMNS` column (or, with
        ``all_text``, every column) read as text and numbers parsed exactly."""
        names = _delimited_column_names(sep)(path)
        check_unique_names(names, what, path)
        _check_columns(names, options, what, path)
        usecols = None if options.columns is None else list(options.columns)
        if options.all_text:
            frame = pd.read_csv(path, sep=sep, compression="infer", dtype=str, usecols=usecols,
                                keep_default_na=False, na_values=[""])
        else:
            text = {name: str for name in names if name in ID_COLUMNS}
            frame = pd.read_csv(path, sep=sep, compression="infer", dtype=text, usecols=usecols,
                                **EXACT_CSV_FLOATS)
        if usecols is not None:
            frame = frame[usecols]
        return pa.Table.from_pandas(frame, preserve_index=False)

    return read


register_table_format("parquet", (".parquet", ".pq"), _read_parquet, _parquet_column_names)
register_table_format("tsv", (".tsv", ".tab", ".txt"), _delimited_reader("\t"),
                      _delimited_column_names("\t"))
register_table_format("csv", (".csv",), _delimited_reader(","), _delimited_column_names(","))


def existing_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path; MissingInputError when it does not exist, InputError when it
    is a directory or another non-file."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, expected a table file")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a file, expected a table file")
    return path


def read_column_names(path: str | os.PathLike[str], what: str, *,
                      fmt: str | None = None) -> list[str]:
    """The column names of the table file ``path`` (its header or parquet schema only)."""
    path = existing_file(path, what)
    fmt = fmt or table_format(path)
    try:
        return TABLE_FORMATS[fmt].column_names(path)
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"cannot read {what} {path} as {fmt}: {first_line(exc)}") from exc


def read_arrow(path: str | os.PathLike[str], what: str, *, fmt: str | None = None,
               columns: Sequence[str] | None = None, all_text: bool = False) -> pa.Table:
    """Read the table file ``path`` as an Arrow table with the reader of its format
    (``fmt`` or the one its name selects). ``what`` names the table in errors:
    MissingInputError when the file does not exist, InputError when it cannot be read."""
    path = existing_file(path, what)
    fmt = fmt or table_format(path)
    options = ReadOptions(columns=columns, all_text=all_text)
    try:
        return TABLE_FORMATS[fmt].read(path, what, options)
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"cannot read {what} {path} as {fmt}: {first_line(exc)}") from exc


def read_table(source: TableSource, what: str, *, fmt: str | None = None,
               columns: Sequence[str] | None = None, all_text: bool = False) -> pd.DataFrame:
    """A DataFrame from a DataFrame (returned as it is) or a table file (see
    :func:`read_arrow`)."""
    if isinstance(source, pd.DataFrame):
        return source
    return read_arrow(source, what, fmt=fmt, columns=columns, all_text=all_text).to_pandas()


#: the text pandas' CSV reader takes as a missing value (``pandas._libs.parsers.STR_NA_VALUES``)
PANDAS_NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                    "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                    "nan", "null")


def _read_delimited_polars(path: Path, what: str, sep: str) -> pl.DataFrame | None:
    """A CSV/TSV(.gz) of numbers and :data:`ID_COLUMNS` read by polars' multi-threaded
    reader: id columns as text, every other column parsed straight to float64 (correctly
    rounded), pandas' missing-value text as missing. ``None`` when the file is not of that
    plain form (a text or boolean value column, a blank or repeated header name, a ragged
    row): :func:`read_arrow` then reads it, with its own messages."""
    names = _delimited_column_names(sep)(path)
    check_unique_names(names, what, path)
    if not names or any(not name for name in names):
        return None
    schema = {name: pl.String if name in ID_COLUMNS else pl.Float64 for name in names}
    try:
        return pl.read_csv(path, separator=sep, schema=schema,
                           null_values=list(PANDAS_NA_VALUES))
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None


def read_polars(path: str | os.PathLike[str], what: str) -> pl.DataFrame:
    """Read a table file as a polars DataFrame: parquet natively (multi-threaded, fast on
    very wide files), CSV/TSV of numbers and ids with polars' multi-threaded reader
    (:func:`_read_delimited_polars`), any other CSV/TSV through :func:`read_arrow`
    (pandas' parsing)."""
    path = Path(path)
    if table_format(path) != "parquet" or not path.is_file():
        fmt = table_format(path)
        if fmt in ("csv", "tsv") and path.is_file():
            frame = _read_delimited_polars(path, what, "\t" if fmt == "tsv" else ",")
            if frame is not None:
                return frame
        return pl.from_arrow(read_arrow(path, what))  # type: ignore[return-value]
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(f"cannot read {what} {path} as parquet: {first_line(exc)}") from exc


def describe_source(source: object) -> str:
    """How to name a source in messages: the path, or the in-memory object's type
    ('DataFrame', 'AnnData')."""
    return str(source) if isinstance(source, str | os.PathLike) else type(source).__name__

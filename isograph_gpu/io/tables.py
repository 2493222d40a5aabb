"""Reading tables from parquet, CSV or TSV (optionally gzip-compressed), with errors that
name the file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, MissingInputError

TableSource = str | os.PathLike[str] | pd.DataFrame

#: Columns that hold identifiers. A CSV/TSV reader keeps them as text, so that a
#: zero-padded id such as ``010262`` stays ``010262`` (ids are strings everywhere).
ID_COLUMNS = ("sample_id", "feature_id", "gene_id", "transcript_id", "module_id",
              "gene_name", "exon_id", "event_id", "feature_type", "source_coordinate")


def table_format(path: Path) -> str:
    """'parquet', 'tsv' or 'csv' from the file name (a trailing .gz is ignored)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tsv", ".tab", ".txt")):
        return "tsv"
    return "csv"


def read_arrow(path: str | os.PathLike[str], what: str) -> pa.Table:
    """Read a table file as an Arrow table (parquet, or CSV/TSV through pandas)."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, expected a table file")
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
            check_unique_names(table.column_names, what, path)
            return table
        return pa.Table.from_pandas(_read_delimited(path, fmt, what), preserve_index=False)
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {what} {path} as {fmt}: {detail}") from exc


def check_unique_names(names: list[str], what: str, where: object) -> None:
    """InputError naming the first repeated column name (a repeat would silently shadow
    the first column's data)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{what} {where} has the column {name!r} more than once; "
                             "column names must be unique")
        seen.add(name)


def _read_delimited(path: Path, fmt: str, what: str) -> pd.DataFrame:
    """A CSV/TSV(.gz) file with its header checked for repeats (pandas would rename the
    second ``x`` to ``x.1``) and every :data:`ID_COLUMNS` column read as text."""
    sep = "\t" if fmt == "tsv" else ","
    header = pd.read_csv(path, sep=sep, compression="infer", header=None, nrows=1, dtype=str,
                         keep_default_na=False)
    names = [str(v) for v in header.iloc[0].tolist()] if len(header) else []
    check_unique_names(names, what, path)
    text = {name: str for name in names if name in ID_COLUMNS}
    return pd.read_csv(path, sep=sep, compression="infer", dtype=text)


def read_polars(path: str | os.PathLike[str], what: str) -> pl.DataFrame:
    """Read a table file as a polars DataFrame: parquet natively (multi-threaded, fast on
    very wide files), CSV/TSV through :func:`read_arrow` (pandas' NA parsing)."""
    path = Path(path)
    if table_format(path) != "parquet" or not path.is_file():
        return pl.from_arrow(read_arrow(path, what))  # type: ignore[return-value]
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {what} {path} as parquet: {detail}") from exc


def read_table(source: TableSource, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame or a parquet/CSV/TSV(.gz) path."""
    if isinstance(source, pd.DataFrame):
        return source
    return read_arrow(source, what).to_pandas()


def describe_source(source: object) -> str:
    """How to name a source in messages: the path, or the in-memory object's type
    ('DataFrame', 'AnnData')."""
    return str(source) if isinstance(source, str | os.PathLike) else type(source).__name__

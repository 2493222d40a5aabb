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
            return pq.read_table(path)
        df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", compression="infer")
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError, EOFError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {what} {path} as {fmt}: {detail}") from exc


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


def describe_source(source: TableSource) -> str:
    """How to name a source in messages: the path, or 'DataFrame'."""
    return "DataFrame" if isinstance(source, pd.DataFrame) else str(source)

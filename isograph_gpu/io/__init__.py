"""The I/O edge: files -> host arrays, and tables -> files (pandas, pyarrow and polars live
here, never in :mod:`isograph_gpu.ops`).

A thin public namespace over the modules that do each job, as scanpy's ``preprocessing``
re-exports its functions:

- Tables of any kind: :func:`read_table`, :func:`read_arrow`, :func:`read_polars`,
  :func:`read_column_names`, :func:`table_format` and the registry by format
  (:func:`register_table_format`, :data:`TABLE_FORMATS`) (:mod:`.table_readers`).
- Feature tables: :func:`open_feature_table`, :class:`ParquetFeatureBlocks` (a streamed
  parquet table, read in column blocks) (:mod:`.feature_tables`); AnnData sources and
  :func:`add_results` (:mod:`.anndata`); the load-or-stream rule
  :func:`table_fits_in_memory` (:mod:`.memory`).
- Explain inputs: :func:`load_explain_inputs` -> :class:`ExplainInputs` (aligned host
  float64 matrices, string ids) (:mod:`.inputs`, :mod:`.explain_inputs`).
- Outputs: :func:`staged_output` / :class:`StagedOutput` (atomic output directory, parquet
  writer threads), :class:`WrittenTable`, :func:`write_parquet`,
  :func:`atomic_write_bytes`, :func:`refuse_output_over_inputs` (no output over an input)
  (:mod:`.output`).
"""

from __future__ import annotations

from .anndata import AnnDataFeatureBlocks, AnnDataFeatureTable, add_results, is_anndata
from .explain_inputs import ExplainInputs
from .feature_tables import ParquetFeatureBlocks, open_feature_table
from .inputs import load_explain_inputs, validate_feature_meta
from .memory import available_memory_bytes, table_fits_in_memory
from .output import (
    StagedOutput,
    WrittenTable,
    atomic_write_bytes,
    refuse_output_over_inputs,
    staged_output,
    write_parquet,
)
from .table_readers import (
    ID_COLUMNS,
    TABLE_FORMATS,
    TableFormat,
    read_arrow,
    read_column_names,
    read_polars,
    read_table,
    register_table_format,
    table_format,
)

__all__ = [
    "ID_COLUMNS",
    "TABLE_FORMATS",
    "AnnDataFeatureBlocks",
    "AnnDataFeatureTable",
    "ExplainInputs",
    "ParquetFeatureBlocks",
    "StagedOutput",
    "TableFormat",
    "WrittenTable",
    "add_results",
    "atomic_write_bytes",
    "available_memory_bytes",
    "is_anndata",
    "load_explain_inputs",
    "open_feature_table",
    "read_arrow",
    "read_column_names",
    "read_polars",
    "read_table",
    "refuse_output_over_inputs",
    "register_table_format",
    "staged_output",
    "table_fits_in_memory",
    "table_format",
    "validate_feature_meta",
    "write_parquet",
]

"""The I/O edge: files -> host arrays, and tables -> files (pandas, pyarrow and polars live
here, never in :mod:`isograph_gpu.ops`).

A thin public namespace of what a user calls, as scanpy's ``preprocessing`` re-exports its
functions; the machinery behind it (the staging object and written-table handles of
:mod:`.output`, the concrete block readers of :mod:`.feature_tables` and :mod:`.anndata`,
the memory rule of :mod:`.memory`) stays in its own modules:

- Tables of any kind: :func:`read_table`, :func:`read_arrow`, :func:`read_polars`,
  :func:`read_column_names`, :func:`table_format` and the registry by format
  (:func:`register_table_format`, :class:`TableFormat`, :data:`TABLE_FORMATS`)
  (:mod:`.table_readers`).
- Feature tables: :func:`open_feature_table`; a streamed table is read through the
  :class:`FeatureBlocks` protocol (:mod:`.feature_blocks`, :mod:`.feature_tables`);
  AnnData results: :func:`add_results` (:mod:`.anndata`).
- Explain inputs: :func:`load_explain_inputs` -> :class:`ExplainInputs` (aligned host
  float64 matrices, string ids) (:mod:`.inputs`, :mod:`.explain_inputs`).
- Outputs: :func:`staged_output` (atomic output directory, parquet writer threads),
  :func:`write_parquet` (:mod:`.output`).
"""

from __future__ import annotations

from .anndata import add_results
from .explain_inputs import ExplainInputs
from .feature_blocks import FeatureBlocks
from .feature_tables import open_feature_table
from .inputs import load_explain_inputs
from .output import staged_output, write_parquet
from .table_readers import (
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
    "TABLE_FORMATS",
    "ExplainInputs",
    "FeatureBlocks",
    "TableFormat",
    "add_results",
    "load_explain_inputs",
    "open_feature_table",
    "read_arrow",
    "read_column_names",
    "read_polars",
    "read_table",
    "register_table_format",
    "staged_output",
    "table_format",
    "write_parquet",
]

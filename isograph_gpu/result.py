"""ExplainResult: everything explain computed for one module (tables built as pandas on
access, from Arrow or read back from the written files)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

#: a result table as held by :class:`ExplainResult`: a DataFrame, an Arrow table (made a
#: DataFrame on first access), or a loader that reads the written file on each access
TableValue = pd.DataFrame | pa.Table | Callable[[], pd.DataFrame] | None


class _ResultTable:
    """Descriptor of one table of :class:`ExplainResult`; pandas is built on access only."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: ExplainResult | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj._tables.get(self.name)
        if value is None or isinstance(value, pd.DataFrame):
            return value
        if isinstance(value, pa.Table):
            frame = value.to_pandas()
            obj._tables[self.name] = frame  # the caller asked for it: keep it
            return frame
        return value()  # lazily loaded from the written file: not kept

    def __set__(self, obj: ExplainResult, value: TableValue) -> None:
        obj._tables[self.name] = value
        if isinstance(value, pd.DataFrame | pa.Table):
            obj.table_shapes[self.name] = (len(value), [str(c) for c in value.column_names]
                                           if isinstance(value, pa.Table)
                                           else [str(c) for c in value.columns])


class ExplainResult:
    """Everything explain computed for one module.

    Each table attribute is a pandas DataFrame on access. Explain builds the tables as
    Arrow and converts one to pandas only when it is read; with
    ``explain_module(..., return_tables=False)`` a table is read back from the written
    parquet file on each access instead of being held in memory. ``table_shapes`` gives
    each table's (rows, columns) without building or loading it.
    """

    gene_driver_table = _ResultTable()
    transcript_polarity_table = _ResultTable()
    high_vs_low_table = _ResultTable()
    #: top-Q% vs bottom-Q% contrast, when ``contrast_tails`` is set
    tails_contrast_table = _ResultTable()
    vae_drivers = _ResultTable()
    ig_attributions = _ResultTable()

    def __init__(
        self,
        module_id: str,
        gene_driver_table: TableValue,
        transcript_polarity_table: TableValue,
        high_vs_low_table: TableValue,
        eigengene: np.ndarray,
        sample_ids: list[str],
        n_module_genes: int,
        tails_contrast_table: TableValue = None,
        vae_drivers: TableValue = None,
        ig_attributions: TableValue = None,
        ig_convergence_delta: float | None = None,
        plot_files: list[str] | None = None,
    ) -> None:
        self._tables: dict[str, TableValue] = {}
        #: (rows, column names) per table name, known without building or loading it
        self.table_shapes: dict[str, tuple[int, list[str]]] = {}
        self.module_id = module_id
        self.gene_driver_table = gene_driver_table
        self.transcript_polarity_table = transcript_polarity_table
        self.high_vs_low_table = high_vs_low_table
        self.tails_contrast_table = tails_contrast_table
        self.vae_drivers = vae_drivers
        self.ig_attributions = ig_attributions
        #: eigengene over ``sample_ids``, float64
        self.eigengene = eigengene
        self.sample_ids = sample_ids
        self.n_module_genes = n_module_genes
        #: Integrated Gradients completeness error (sum of attributions vs f(x)-f(baseline))
        self.ig_convergence_delta = ig_convergence_delta
        self.plot_files: list[str] = list(plot_files or [])

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` exists, without building or loading it."""
        return self._tables.get(name) is not None

    def arrow_table(self, name: str) -> pa.Table | None:
        """Table ``name`` as Arrow when it is held as Arrow (None otherwise)."""
        value = self._tables.get(name)
        return value if isinstance(value, pa.Table) else None

    def load_lazily(self, name: str, loader: Callable[[], pd.DataFrame]) -> None:
        """Replace table ``name`` by ``loader`` (its shape stays recorded)."""
        self._tables[name] = loader

    def __copy__(self) -> ExplainResult:
        """A shallow copy whose table attributes can be reassigned independently."""
        out = object.__new__(ExplainResult)
        out.__dict__.update(self.__dict__)
        out._tables, out.table_shapes = dict(self._tables), dict(self.table_shapes)
        out.plot_files = list(self.plot_files)
        return out

    def __repr__(self) -> str:
        shapes = {k: v[0] for k, v in self.table_shapes.items()}
        return f"ExplainResult(module_id={self.module_id!r}, rows={shapes})"

"""statistics -> tables: the reference's per-module tables as Arrow tables, built from
the device statistics with one device-to-host copy per statistic and module block.

Column names, order and dtypes follow isograph 0.1.5; ties in every sort are broken by id
ascending (a documented deliberate difference: the reference's final sort is unstable).
The id columns are Arrow arrays built once and shared by every module's tables.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from .io.explain_inputs import ExplainInputs
from .memory_model import COLUMN_GROUP
from .statistics import ExplainStatistics

DRIVER_COLUMNS = ["gene_id", "feature_id", "feature_type", "r", "pvalue", "qvalue",
                  "n_samples", "missing_fraction"]
POLARITY_STAT_COLUMNS = ["r", "pvalue", "qvalue", "n_samples", "missing_fraction",
                         "switch_strength"]
#: appended to the driver and polarity tables with --switch-permutations
SWITCH_COLUMNS = ["switch_pvalue", "switch_qvalue"]
HIGH_LOW_COLUMNS = ["feature_id", "gene_id", "mean_high", "mean_low", "delta", "se", "tstat",
                    "pvalue", "n_high", "n_low", "missing_fraction"]
_WELCH_FLOATS = ["mean_high", "mean_low", "delta", "se", "tstat", "pvalue"]


def _strings(values: np.ndarray | list[str]) -> pa.Array:
    """Ids as an Arrow string array; a missing id (None, or NaN as pandas 3's string dtype
    gives it) is null."""
    return pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)


def host_array(values: torch.Tensor) -> np.ndarray:
    """``values`` as a host numpy array in its own dtype: a view on the CPU, one
    device-to-host copy on a GPU (float32 statistics move as float32). Table columns are
    converted to float64 / int64 per module slice (:func:`table_dtype`), so a float32
    [F, K] statistic is never copied whole to float64."""
    return values.detach().cpu().numpy()


def table_dtype(values: np.ndarray) -> np.ndarray:
    """``values`` with floats as float64 and integers as int64 (the tables' dtypes; no
    copy when they already are)."""
    return values.astype(np.float64 if values.dtype.kind == "f" else np.int64, copy=False)


#: rows per step of :func:`module_columns` (a [rows, group] source block fits the cache)
_ROWS_PER_STEP = 4096


def module_columns(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Columns ``start:stop`` of a host [F, K] array as a C-contiguous [stop - start, F]
    array, floats as float64 and integers as int64. Column-major statistics (the CPU's,
    :meth:`~isograph_gpu.compute.results.FeatureStatistics.empty`) in the tables' dtype
    are returned as a view; others are copied (converted in the copy) a block of rows at
    a time: a plain copy of one column reads a whole cache line per value (K values per
    line), this reads each line once for the group (2x less CPU at 250,000 x 32)."""
    columns = values[:, start:stop].T
    if columns.flags.c_contiguous:
        return table_dtype(columns)
    out = np.empty((stop - start, values.shape[0]),
                   dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    for a in range(0, values.shape[0], _ROWS_PER_STEP):
        out[:, a:a + _ROWS_PER_STEP] = values[a:a + _ROWS_PER_STEP, start:stop].T
    return out


class TableIds:
    """The id columns of every table as Arrow arrays, built once per run and shared by
    all modules' tables (Arrow arrays are immutable, so sharing is safe); a module's
    rows are taken from them (:meth:`pyarrow.Array.take`), never rebuilt from Python
    strings."""

    def __init__(self, inputs: ExplainInputs) -> None:
        self.n_total = inputs.n_samples
        #: per table feature (table column order): feature_id, gene_id[, transcript_id]
        self.table_feature_ids = {"feature_id": _strings(inputs.feature_ids),
                                  "gene_id": _strings(inputs.feature_gene_ids)}
        if inputs.feature_transcript_ids is not None:
            self.table_feature_ids["transcript_id"] = _strings(inputs.feature_transcript_ids)
        #: per feature_scores row: gene_id, feature_id, feature_type
        self.score_ids = (_strings(inputs.score_gene_ids), _strings(inputs.score_feature_ids),
                          _strings(inputs.score_feature_types))
        self._feature_missing: pa.Array | None = None

    def feature_missing(self, n_finite: torch.Tensor) -> pa.Array:
        """missing_fraction of every table feature (the same for every module)."""
        if self._feature_missing is None:
            finite = host_array(n_finite).astype(np.float64)
            self._feature_missing = pa.array(1.0 - finite / self.n_total)
        return self._feature_missing


class ResultTables:
    """Builds each module's tables from one block's :class:`ExplainStatistics` (one module
    at a time, so host memory holds one module's tables, not all).

    Each statistic [rows, Kb] is brought to the host once for the whole block, in its
    working dtype (:func:`host_array`: no copy on the CPU); a module's table then takes
    its rows or column from it, converted to float64 / int64 there (the [F, Kb] contrast
    columns copied a few modules at a time, :func:`module_columns`)."""

    def __init__(self, ids: TableIds, stats: ExplainStatistics) -> None:
        self.ids = ids
        d, pol = stats.drivers, stats.polarity
        self._drivers = {name: host_array(getattr(d, name))
                         for name in ("r", "pvalue", "qvalue", "n", "sorted_rows")}
        self._genes_per_module = d.n_genes
        self._polarity = {name: host_array(getattr(pol, name))
                          for name in ("r", "pvalue", "qvalue", "n", "gene_switch")}
        self._polarity["segments"] = host_array(stats.layout.polarity_segments)
        self._polarity_member = host_array(pol.member)
        #: with --switch-permutations: gene p / q [G, Kb] and each score row's gene [R]
        self._switch = None if pol.switch_pvalue is None else (
            host_array(pol.switch_pvalue), host_array(pol.switch_qvalue), pol.score_row_genes)
        self._contrasts = {split: {name: host_array(getattr(c, name))
                                   for name in (*_WELCH_FLOATS, "n_high", "n_low")}
                           for split, c in stats.contrasts.items()}
        self._feature_missing = ids.feature_missing(stats.n_finite)
        self._polarity_rows = stats.layout.polarity_rows
        #: split -> (first module of the group, statistic -> [group, F] columns)
        self._column_groups: dict[str, tuple[int, dict[str, np.ndarray]]] = {}

    def module(self, k: int) -> dict[str, pa.Table]:
        """Block module column ``k``'s tables by result name (``tails_contrast_table`` when the
        tails split was computed)."""
        out = {
            "gene_driver_table": self.gene_driver_table(k),
            "transcript_polarity_table": self.transcript_polarity_table(k),
            "high_vs_low_table": self.high_vs_low_table("split", k),
        }
        if "tails" in self._contrasts:
            out["tails_contrast_table"] = self.high_vs_low_table("tails", k)
        return out

    def gene_driver_table(self, k: int) -> pa.Table:
        """One row per module gene: its best channel (largest |r|, first row on ties),
        sorted by |r| descending (NaN as 0), ties by gene_id ascending."""
        d = self._drivers
        rows = d["sorted_rows"][: self._genes_per_module[k], k]
        n = table_dtype(d["n"][rows, k])
        genes, features, types = (ids.take(rows) for ids in self.ids.score_ids)
        return self._with_switch(pa.table({
            "gene_id": genes,
            "feature_id": features,
            "feature_type": types,
            "r": table_dtype(d["r"][rows, k]), "pvalue": table_dtype(d["pvalue"][rows, k]),
            "qvalue": table_dtype(d["qvalue"][rows, k]),
            "n_samples": n,
            "missing_fraction": 1.0 - n / self.ids.n_total,
        }), None if self._switch is None else self._switch[2][rows], k)

    def _with_switch(self, table: pa.Table, genes: np.ndarray | None, k: int) -> pa.Table:
        """``table`` with switch_pvalue and switch_qvalue of each row's gene (``genes``,
        -1: NaN) appended, when the switch permutations ran."""
        if self._switch is None or genes is None:
            return table
        for name, values in zip(SWITCH_COLUMNS, self._switch[:2], strict=True):
            column = table_dtype(values[genes.clip(0), k])
            table = table.append_column(name, pa.array(np.where(genes >= 0, column, np.nan)))
        return table

    def transcript_polarity_table(self, k: int) -> pa.Table:
        """One row per module transcript-usage feature, in feature_meta order; the switch
        strength is its gene's, repeated per row."""
        pol = self._polarity
        member = np.flatnonzero(self._polarity_member[:, k])
        n = table_dtype(pol["n"][member, k])
        rows = self._polarity_rows[member]
        cols: dict[str, pa.Array | np.ndarray] = {
            name: ids.take(rows) for name, ids in self.ids.table_feature_ids.items()}
        cols.update({
            "r": table_dtype(pol["r"][member, k]),
            "pvalue": table_dtype(pol["pvalue"][member, k]),
            "qvalue": table_dtype(pol["qvalue"][member, k]),
            "n_samples": n,
            "missing_fraction": 1.0 - n / self.ids.n_total,
            "switch_strength": table_dtype(
                pol["gene_switch"][pol["segments"][member], k]),
        })
        return self._with_switch(pa.table(cols), pol["segments"][member], k)

    def high_vs_low_table(self, split: str, k: int) -> pa.Table:
        """Every annotated feature (table column order) for module column ``k`` of the
        ``split`` ("split" or "tails") contrast."""
        first, group = self._column_group(split, k)
        cols: dict[str, pa.Array] = {
            "feature_id": self.ids.table_feature_ids["feature_id"],
            "gene_id": self.ids.table_feature_ids["gene_id"],
            "missing_fraction": self._feature_missing}
        cols.update({name: pa.array(values[k - first]) for name, values in group.items()})
        return pa.table({c: cols[c] for c in HIGH_LOW_COLUMNS})

    def _column_group(self, split: str, k: int) -> tuple[int, dict[str, np.ndarray]]:
        """The columns of the :data:`COLUMN_GROUP` modules around ``k`` (copied when ``k``
        is outside the group held now)."""
        held = self._column_groups.get(split)
        if held is None or not held[0] <= k < held[0] + COLUMN_GROUP:
            first = k - k % COLUMN_GROUP
            stats = self._contrasts[split]
            stop = min(first + COLUMN_GROUP, next(iter(stats.values())).shape[1])
            held = (first, {name: module_columns(values, first, stop)
                            for name, values in stats.items()})
            self._column_groups[split] = held
        return held


def eigengene_table(sample_ids: list[str], module_ids: list[str],
                    eigengenes: np.ndarray) -> pa.Table:
    """sample_id + one float64 column per module (the fixture's eigengenes.parquet layout)."""
    cols: dict[str, pa.Array | np.ndarray] = {"sample_id": _strings(sample_ids)}
    values = np.ascontiguousarray(eigengenes.astype(np.float64).T)
    cols.update({str(m): values[k] for k, m in enumerate(module_ids)})
    return pa.table(cols)

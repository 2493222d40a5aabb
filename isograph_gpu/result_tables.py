"""statistics -> tables: the reference's per-module tables as Arrow tables, built from
the device statistics with one device-to-host copy per table.

Column names, order and dtypes follow isograph 0.1.5; ties in every sort are broken by id
ascending (a documented deliberate difference: the reference's final sort is unstable).
The id columns are Arrow arrays built once and shared by every module's tables.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from .engine import ContrastStatistics
from .io.explain_inputs import ExplainInputs
from .statistics import ExplainStatistics

DRIVER_COLUMNS = ["gene_id", "feature_id", "feature_type", "r", "pvalue", "qvalue",
                  "n_samples", "missing_fraction"]
POLARITY_STAT_COLUMNS = ["r", "pvalue", "qvalue", "n_samples", "missing_fraction",
                         "switch_strength"]
HIGH_LOW_COLUMNS = ["feature_id", "gene_id", "mean_high", "mean_low", "delta", "se", "tstat",
                    "pvalue", "n_high", "n_low", "missing_fraction"]
_WELCH_FLOATS = ["mean_high", "mean_low", "delta", "se", "tstat", "pvalue"]


def _strings(values: np.ndarray | list[str]) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def to_host(columns: list[torch.Tensor]) -> np.ndarray:
    """Stack same-length 1-d device tensors as float64 and copy them to the host at once:
    [len(columns), n] numpy (integers up to 2**53 stay exact)."""
    if not columns:
        return np.empty((0, 0))
    return torch.stack([c.to(torch.float64) for c in columns]).cpu().numpy()


def _int64(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64))


class TableIds:
    """The id columns of every table, built once per run and shared by all modules'
    tables (Arrow arrays are immutable, so sharing is safe)."""

    def __init__(self, inputs: ExplainInputs) -> None:
        self.n_total = inputs.n_samples
        self.feature_ids = _strings(inputs.feature_ids)
        self.feature_gene_ids = _strings(inputs.feature_gene_ids)
        self.score_ids = (np.asarray(inputs.score_gene_ids, dtype=object),
                          np.asarray(inputs.score_feature_ids, dtype=object),
                          np.asarray(inputs.score_feature_types, dtype=object))
        self.table_feature_ids = {
            "feature_id": np.asarray(inputs.feature_ids, dtype=object),
            "gene_id": np.asarray(inputs.feature_gene_ids, dtype=object),
        }
        if inputs.feature_transcript_ids is not None:
            self.table_feature_ids["transcript_id"] = np.asarray(
                inputs.feature_transcript_ids, dtype=object)
        self._feature_missing: pa.Array | None = None

    def feature_missing(self, n_finite: torch.Tensor) -> pa.Array:
        """missing_fraction of every table feature (the same for every module)."""
        if self._feature_missing is None:
            finite = n_finite.cpu().numpy().astype(np.float64)
            self._feature_missing = pa.array(1.0 - finite / self.n_total)
        return self._feature_missing


class ResultTables:
    """Builds each module's tables from one block's :class:`ExplainStatistics` (one module
    at a time, so host memory holds one module's tables, not all)."""

    def __init__(self, ids: TableIds, stats: ExplainStatistics) -> None:
        self.ids, self.stats = ids, stats
        self.n_total = ids.n_total
        self._feature_ids = ids.feature_ids
        self._feature_gene_ids = ids.feature_gene_ids
        self._feature_missing = ids.feature_missing(stats.n_finite)
        self._score_ids = ids.score_ids
        self._polarity_ids = {name: values[stats.polarity.rows]
                              for name, values in ids.table_feature_ids.items()}

    def module(self, k: int) -> dict[str, pa.Table]:
        """Block module column ``k``'s tables by result name (``tails_contrast_table`` when the
        tails split was computed)."""
        out = {
            "gene_driver_table": self.gene_driver_table(k),
            "transcript_polarity_table": self.transcript_polarity_table(k),
            "high_vs_low_table": self.high_vs_low_table(self.stats.contrasts["split"], k),
        }
        if "tails" in self.stats.contrasts:
            out["tails_contrast_table"] = self.high_vs_low_table(self.stats.contrasts["tails"], k)
        return out

    def gene_driver_table(self, k: int) -> pa.Table:
        """One row per module gene: its best channel (largest |r|, first row on ties),
        sorted by |r| descending (NaN as 0), ties by gene_id ascending."""
        d = self.stats.drivers
        rows = d.sorted_rows[: d.n_genes[k], k]
        host = to_host([rows, d.r[rows, k], d.pvalue[rows, k], d.qvalue[rows, k],
                        d.n[rows, k]])
        if host.size == 0:
            host = np.empty((5, 0))
        sel = host[0].astype(np.int64)
        genes, features, types = (ids[sel] for ids in self._score_ids)
        return pa.table({
            "gene_id": _strings(genes),
            "feature_id": _strings(features),
            "feature_type": _strings(types),
            "r": host[1], "pvalue": host[2], "qvalue": host[3],
            "n_samples": _int64(host[4]),
            "missing_fraction": 1.0 - host[4] / self.n_total,
        })

    def transcript_polarity_table(self, k: int) -> pa.Table:
        """One row per module transcript-usage feature, in feature_meta order; the switch
        strength is its gene's, repeated per row."""
        pol = self.stats.polarity
        member = np.flatnonzero(pol.member[:, k])
        index = torch.from_numpy(member).to(pol.r.device)
        host = to_host([pol.r[index, k], pol.pvalue[index, k], pol.qvalue[index, k],
                        pol.n[index, k], pol.switch[index, k]])
        if host.size == 0:
            host = np.empty((5, 0))
        cols: dict[str, pa.Array | np.ndarray] = {
            name: _strings(ids[member]) for name, ids in self._polarity_ids.items()}
        cols.update({
            "r": host[0], "pvalue": host[1], "qvalue": host[2],
            "n_samples": _int64(host[3]),
            "missing_fraction": 1.0 - host[3] / self.n_total,
            "switch_strength": host[4],
        })
        return pa.table(cols)

    def high_vs_low_table(self, stats: ContrastStatistics, k: int) -> pa.Table:
        """Every annotated feature (table column order) for module column ``k``."""
        host = to_host([getattr(stats, name)[:, k] for name in _WELCH_FLOATS]
                       + [stats.n_high[:, k], stats.n_low[:, k]])
        if host.size == 0:
            host = np.empty((len(_WELCH_FLOATS) + 2, 0))
        cols: dict[str, pa.Array | np.ndarray] = {
            "feature_id": self._feature_ids, "gene_id": self._feature_gene_ids}
        cols.update(zip(_WELCH_FLOATS, host, strict=False))
        cols["n_high"] = _int64(host[-2])
        cols["n_low"] = _int64(host[-1])
        cols["missing_fraction"] = self._feature_missing
        return pa.table({c: cols[c] for c in HIGH_LOW_COLUMNS})


def eigengene_table(sample_ids: list[str], module_ids: list[str],
                    eigengenes: np.ndarray) -> pa.Table:
    """sample_id + one float64 column per module (the fixture's eigengenes.parquet layout)."""
    cols: dict[str, pa.Array | np.ndarray] = {"sample_id": _strings(sample_ids)}
    values = np.ascontiguousarray(eigengenes.astype(np.float64).T)
    cols.update({str(m): values[k] for k, m in enumerate(module_ids)})
    return pa.table(cols)

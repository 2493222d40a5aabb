"""Builds the reference's per-module tables (pandas) from the engine's [F, K] arrays.

Column names, order and dtypes follow isograph 0.1.5; ties in every sort are broken by id
ascending (a documented deliberate difference: the reference's final sort is unstable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .engine import ContrastStatistics

DRIVER_COLUMNS = ["gene_id", "feature_id", "feature_type", "r", "pvalue", "qvalue",
                  "n_samples", "missing_fraction"]
POLARITY_STAT_COLUMNS = ["r", "pvalue", "qvalue", "n_samples", "missing_fraction",
                         "switch_strength"]
HIGH_LOW_COLUMNS = ["feature_id", "gene_id", "mean_high", "mean_low", "delta", "se", "tstat",
                    "pvalue", "n_high", "n_low", "missing_fraction"]


def _str_col(values: np.ndarray | list[str]) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object), dtype="string")


def empty_driver_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        DRIVER_COLUMNS,
        ["string", "string", "string", "float64", "float64", "float64", "int64", "float64"],
        strict=True)})


def gene_driver_table(
    rows: np.ndarray,
    gene_ids: np.ndarray,
    feature_ids: np.ndarray,
    feature_types: np.ndarray,
    r: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    n: np.ndarray,
    n_total: int,
) -> pd.DataFrame:
    """One row per module gene: its selected channel ``rows`` (indices into the channel
    arrays), sorted by |r| descending (NaN as 0), ties by gene_id ascending."""
    if len(rows) == 0:
        return empty_driver_table()
    rr = r[rows]
    key = np.where(np.isfinite(rr), np.abs(rr), 0.0)
    genes = np.asarray(gene_ids[rows], dtype=object)
    order = np.lexsort((genes.astype(str), -key))
    sel = rows[order]
    return pd.DataFrame({
        "gene_id": _str_col(gene_ids[sel]),
        "feature_id": _str_col(feature_ids[sel]),
        "feature_type": _str_col(feature_types[sel]),
        "r": r[sel].astype(np.float64),
        "pvalue": p[sel].astype(np.float64),
        "qvalue": q[sel].astype(np.float64),
        "n_samples": n[sel].astype(np.int64),
        "missing_fraction": 1.0 - n[sel].astype(np.float64) / n_total,
    })


def transcript_polarity_table(
    rows: np.ndarray,
    feature_ids: np.ndarray,
    gene_ids: np.ndarray,
    transcript_ids: np.ndarray | None,
    r: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    n: np.ndarray,
    switch: np.ndarray,
    n_total: int,
) -> pd.DataFrame:
    """One row per module transcript-usage feature (``rows`` already in feature_meta order);
    ``switch`` is the gene's switch strength repeated per row."""
    cols: dict[str, pd.Series | np.ndarray] = {
        "feature_id": _str_col(feature_ids[rows]),
        "gene_id": _str_col(gene_ids[rows]),
    }
    if transcript_ids is not None:
        cols["transcript_id"] = _str_col(transcript_ids[rows])
    cols.update({
        "r": r[rows].astype(np.float64),
        "pvalue": p[rows].astype(np.float64),
        "qvalue": q[rows].astype(np.float64),
        "n_samples": n[rows].astype(np.int64),
        "missing_fraction": 1.0 - n[rows].astype(np.float64) / n_total,
        "switch_strength": switch.astype(np.float64),
    })
    return pd.DataFrame(cols)


def high_vs_low_table(
    feature_ids: np.ndarray,
    gene_ids: np.ndarray,
    stats: ContrastStatistics,
    module: int,
    n_finite: np.ndarray,
    n_total: int,
) -> pd.DataFrame:
    """Every annotated feature (table column order) for module column ``module``."""
    k = module
    return pd.DataFrame({
        "feature_id": _str_col(feature_ids),
        "gene_id": _str_col(gene_ids),
        "mean_high": stats.mean_high[:, k],
        "mean_low": stats.mean_low[:, k],
        "delta": stats.delta[:, k],
        "se": stats.se[:, k],
        "tstat": stats.tstat[:, k],
        "pvalue": stats.pvalue[:, k],
        "n_high": stats.n_high[:, k].astype(np.int64),
        "n_low": stats.n_low[:, k].astype(np.int64),
        "missing_fraction": 1.0 - n_finite.astype(np.float64) / n_total,
    }, columns=HIGH_LOW_COLUMNS)


def eigengene_table(sample_ids: list[str], module_ids: list[str],
                    eigengenes: np.ndarray) -> pd.DataFrame:
    """sample_id + one float64 column per module (the fixture's eigengenes.parquet layout)."""
    df = pd.DataFrame(eigengenes.astype(np.float64), columns=list(module_ids))
    df.insert(0, "sample_id", _str_col(sample_ids))
    return df

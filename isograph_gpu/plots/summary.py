"""``module_summary.json``: the reference's per-module digest of the explain tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..result import ExplainResult
from ._data import gene_switch_strength


def summarize_module(result: ExplainResult) -> dict[str, Any]:
    """The reference's module summary (keys and semantics of isograph 0.1.5):

    module_id, n_module_genes, top_driver_genes (first 5 gene_ids of the driver table),
    n_positive_transcripts / n_negative_transcripts (polarity r > 0 / r < 0),
    n_switch_genes (genes whose switch_strength > the median over genes), top_switch_gene,
    top_switch_pair ([lowest-r feature, highest-r feature] of that gene), top_switch_strength,
    mean_abs_driver_r (NaN-skipping mean |r| of the driver table; None when no finite r).
    Without transcripts: counts 0, top_switch_gene/strength None, top_switch_pair [].
    Ties (equal switch strength, equal r) go to the smallest id / first row.
    """
    drivers = result.gene_driver_table
    polarity = result.transcript_polarity_table
    driver_r = np.abs(pd.to_numeric(drivers["r"], errors="coerce").to_numpy(dtype=np.float64)) \
        if len(drivers) else np.empty(0)
    finite_r = driver_r[np.isfinite(driver_r)]
    summary: dict[str, Any] = {
        "module_id": str(result.module_id),
        "n_module_genes": int(result.n_module_genes),
        "top_driver_genes": [str(g) for g in drivers["gene_id"].head(5)] if len(drivers) else [],
        "n_positive_transcripts": 0,
        "n_negative_transcripts": 0,
        "n_switch_genes": 0,
        "top_switch_gene": None,
        "top_switch_pair": [],
        "top_switch_strength": None,
        "mean_abs_driver_r": float(finite_r.mean()) if finite_r.size else None,
    }
    if polarity is None or len(polarity) == 0:
        return summary
    r = pd.to_numeric(polarity["r"], errors="coerce").to_numpy(dtype=np.float64)
    summary["n_positive_transcripts"] = int(np.sum(r > 0))
    summary["n_negative_transcripts"] = int(np.sum(r < 0))
    strength = gene_switch_strength(polarity)
    summary["n_switch_genes"] = int(np.sum(strength.to_numpy() > np.nanmedian(strength)))
    if strength.notna().any():
        top_gene = str(strength.idxmax())
        summary["top_switch_gene"] = top_gene
        summary["top_switch_strength"] = float(strength[top_gene])
        tx = polarity[polarity["gene_id"].astype(str) == top_gene]
        tx_r = pd.to_numeric(tx["r"], errors="coerce")
        if tx_r.notna().any():
            summary["top_switch_pair"] = [str(tx.loc[tx_r.idxmin(), "feature_id"]),
                                          str(tx.loc[tx_r.idxmax(), "feature_id"])]
    return summary

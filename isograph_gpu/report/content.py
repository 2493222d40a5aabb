"""What report.html shows, selected from a run's manifest and result tables (nothing drawn
or formatted here): the run's facts, and per module the top rows of its tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io.table_readers import read_table
from ..plots._data import gene_name_map, gene_switch_strength, top_drivers
from ..result import ExplainResult

#: the module x trait statistics table at the output root (written by the trait step)
MODULE_TRAIT_NAME = "module_trait_table.parquet"
#: rows of each per-module table on the page (the parquet files hold all of them)
TOP_ROWS = 15
#: per-gene switch test columns, shown where the tables carry them
SWITCH_TEST_COLUMNS = ("switch_pvalue", "switch_qvalue")


@dataclass
class ModuleContent:
    """One module's section: its counts, the top rows of its tables, its files."""

    module_id: str
    n_module_genes: int
    n_driver_genes: int
    n_transcripts: int
    drivers: pd.DataFrame
    switching: pd.DataFrame
    high_vs_low: pd.DataFrame
    #: the module's files, relative to the output dir (links on the page)
    files: list[str] = field(default_factory=list)


@dataclass
class ReportContent:
    """Everything the page shows, as plain values and small DataFrames."""

    manifest: dict[str, Any]
    modules: list[ModuleContent]
    module_traits: pd.DataFrame | None
    #: "bh" or "by": how the q-values were adjusted
    fdr_method: str


def _with_gene_names(table: pd.DataFrame, gene_names: dict[str, str]) -> pd.DataFrame:
    if not gene_names or table.empty:
        return table
    names = [gene_names.get(str(g), "") for g in table["gene_id"]]
    return table.assign(gene_name=names)[
        ["gene_id", "gene_name", *[c for c in table.columns if c != "gene_id"]]]


def driver_rows(result: ExplainResult, gene_names: dict[str, str],
                top_n: int = TOP_ROWS) -> pd.DataFrame:
    """The module's top driver genes as the summary panel ranks them (|r| descending,
    :func:`~isograph_gpu.plots._data.top_drivers`): gene, the channel that made it a
    driver (feature_id, feature_type), r, p, q, n, and switch p/q where present."""
    top = top_drivers(result.gene_driver_table, top_n)
    wanted = ["gene_id", "feature_id", "feature_type", "r", "pvalue", "qvalue",
              "n_samples", *SWITCH_TEST_COLUMNS]
    top = top[[c for c in wanted if c in top.columns]]
    return _with_gene_names(top.reset_index(drop=True), gene_names)


def switching_rows(result: ExplainResult, gene_names: dict[str, str],
                   top_n: int = TOP_ROWS) -> pd.DataFrame:
    """The module's genes by switch strength (descending, ties by gene id): the strength,
    the transcripts moving most against (lowest r) and with (highest r) the module, their
    r, the transcript count, and the switch p/q where the polarity table carries them."""
    polarity = result.transcript_polarity_table
    strength = gene_switch_strength(polarity).dropna()
    if strength.empty:
        return pd.DataFrame(columns=["gene_id", "switch_strength"])
    order = sorted(strength.index, key=lambda g: (-strength[g], g))[:top_n]
    table = polarity.assign(gene_id=polarity["gene_id"].astype(str),
                            r=pd.to_numeric(polarity["r"], errors="coerce"))
    rows = []
    for gene in order:
        tx = table[table["gene_id"] == gene]
        finite = tx[tx["r"].notna()]
        low = finite.loc[finite["r"].idxmin()] if len(finite) else None
        high = finite.loc[finite["r"].idxmax()] if len(finite) else None
        row = {"gene_id": gene, "switch_strength": float(strength[gene]),
               "n_transcripts": len(tx),
               "against_feature": None if low is None else str(low["feature_id"]),
               "against_r": np.nan if low is None else float(low["r"]),
               "with_feature": None if high is None else str(high["feature_id"]),
               "with_r": np.nan if high is None else float(high["r"])}
        for column in SWITCH_TEST_COLUMNS:
            if column in tx.columns:
                row[column] = float(pd.to_numeric(tx[column], errors="coerce").iloc[0])
        rows.append(row)
    return _with_gene_names(pd.DataFrame(rows), gene_names)


def high_vs_low_rows(result: ExplainResult, top_n: int = TOP_ROWS) -> pd.DataFrame:
    """The high-vs-low table's features with the smallest p (ties by feature id)."""
    table = result.high_vs_low_table
    if table is None or table.empty:
        return pd.DataFrame(columns=["feature_id", "gene_id", "delta", "pvalue"])
    p = pd.to_numeric(table["pvalue"], errors="coerce").to_numpy(np.float64)
    ids = table["feature_id"].astype(str).to_numpy(dtype=object)
    order = sorted(np.flatnonzero(np.isfinite(p)).tolist(), key=lambda i: (p[i], ids[i]))
    wanted = ["feature_id", "gene_id", "mean_high", "mean_low", "delta", "tstat", "pvalue",
              "n_high", "n_low"]
    top = table.iloc[order[:top_n]]
    return top[[c for c in wanted if c in top.columns]].reset_index(drop=True)


def read_module_traits(explain_dir: Path) -> pd.DataFrame | None:
    """``module_trait_table.parquet`` of the output dir (module_id, trait, kind,
    statistic, r, pvalue, qvalue, n_samples), or None when the run has none."""
    path = Path(explain_dir) / MODULE_TRAIT_NAME
    if not path.is_file():
        return None
    table = read_table(path, "module trait table")
    return table.assign(module_id=table["module_id"].astype(str),
                        trait=table["trait"].astype(str))


def select_content(explain_dir: Path, results: dict[str, ExplainResult],
                   manifest: dict[str, Any], feature_meta: pd.DataFrame | None = None,
                   top_n: int = TOP_ROWS) -> ReportContent:
    """The report's content for the run in ``explain_dir`` (the output dir or its staging
    folder): ``results`` as the run or :func:`~isograph_gpu.plots.load_explain_dir` gives
    them, its ``manifest`` dict, ``feature_meta`` for gene names."""
    gene_names = gene_name_map(feature_meta)
    files = [str(f) for f in manifest.get("files", []) or []]
    info = manifest.get("modules") if isinstance(manifest.get("modules"), dict) else {}
    modules = []
    for module_id, result in results.items():
        counts = info.get(module_id, {}) if isinstance(info, dict) else {}
        modules.append(ModuleContent(
            module_id=str(module_id),
            n_module_genes=int(result.n_module_genes),
            n_driver_genes=int(counts.get("n_driver_genes", len(result.gene_driver_table))),
            n_transcripts=int(counts.get("n_transcripts",
                                         len(result.transcript_polarity_table))),
            drivers=driver_rows(result, gene_names, top_n),
            switching=switching_rows(result, gene_names, top_n),
            high_vs_low=high_vs_low_rows(result, top_n),
            files=[f for f in files if f.startswith(f"{module_id}/") and f.endswith(".parquet")],
        ))
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    return ReportContent(manifest=manifest, modules=modules,
                         module_traits=read_module_traits(explain_dir),
                         fdr_method=str(config.get("fdr_method", "bh")))

"""The statistics isograph 0.1.5 does not have, as the pipeline runs them: their sample
tables loaded and checked (before any statistic), the module-trait table and heatmap,
and what the manifest records about them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from .config import ExplainConfig
from .errors import InputError
from .io.sample_tables import Covariates, Trait, load_covariates, load_sample_traits
from .io.table_readers import describe_source
from .trait_association import MODULE_TRAIT_TABLE, module_trait_table

#: tables whose statistics --covariates adjusts, and those it leaves as they are
COVARIATE_ADJUSTED = ("module_trait_table", "gene_driver_table", "transcript_polarity_table")
COVARIATE_UNADJUSTED = ("high_vs_low_table", "high_vs_low_tails_table")


@dataclass
class SampleTables:
    """The run's sample traits and covariates (None where not asked for)."""

    traits: list[Trait] | None = None
    covariates: Covariates | None = None
    #: with --trait-switch: [n] float64 values of that trait (NaN = missing)
    switch_trait: np.ndarray | None = None

    @property
    def covariate_matrix(self) -> np.ndarray | None:
        """[n, C] float64 covariate design (NaN = missing), None without covariates."""
        return None if self.covariates is None else self.covariates.matrix


def load_sample_tables(config: ExplainConfig, sample_ids: list[str]) -> SampleTables:
    """Read and check ``config.sample_traits`` / ``config.covariates`` against the run's
    samples (InputError naming the file and column)."""
    tables = SampleTables(
        traits=None if config.sample_traits is None else load_sample_traits(
            config.sample_traits, sample_ids, config.trait_columns),
        covariates=None if config.covariates is None else load_covariates(
            config.covariates, sample_ids, config.covariate_columns))
    if config.trait_switch is not None:
        assert tables.traits is not None  # ExplainConfig: trait_switch needs sample_traits
        found = [t for t in tables.traits if t.name == config.trait_switch]
        where = f"sample traits table {describe_source(config.sample_traits)}"
        if not found:
            raise InputError(f"{where} has no trait column {config.trait_switch!r} "
                             "(--trait-switch; is it in --trait-columns?)")
        if found[0].kind == "categorical":
            raise InputError(f"{where} column {config.trait_switch!r} is categorical; "
                             "--trait-switch needs a numeric or binary trait")
        tables.switch_trait = found[0].values
    return tables


def trait_table(tables: SampleTables, module_ids: list[str], scores: np.ndarray,
                config: ExplainConfig, device: torch.device) -> pa.Table | None:
    """module_trait_table of the run's module scores [n, K], or None without traits."""
    if tables.traits is None:
        return None
    return module_trait_table(module_ids, scores, tables.traits, tables.covariates, device,
                              config.fdr_method, int(config.min_complete_pairs))


def trait_heatmap(table: pa.Table, output_dir: Path, formats: tuple[str, ...]) -> list[str]:
    """The module x trait heatmap written under ``output_dir``; its relative paths."""
    from .plots.style import save_figure
    from .plots.traits import TRAIT_HEATMAP, plot_module_trait_heatmap

    ax = plot_module_trait_heatmap(table.to_pandas())
    return [p.relative_to(output_dir).as_posix()
            for p in save_figure(ax.figure, output_dir / TRAIT_HEATMAP, formats)]


def _source(value: Any) -> dict[str, Any]:
    if isinstance(value, str | os.PathLike):
        from .io.inputs import fingerprint

        return fingerprint(value)
    return {"path": None, "in_memory": True, "shape": list(getattr(value, "shape", ()))}


def manifest_entries(config: ExplainConfig, tables: SampleTables, device: torch.device,
                     dtype: torch.dtype) -> dict[str, Any]:
    """The manifest's record of the statistics beyond the reference."""
    out: dict[str, Any] = {}
    if tables.traits is not None:
        out["module_traits"] = {
            "table": MODULE_TRAIT_TABLE, "source": describe_source(config.sample_traits),
            "input": _source(config.sample_traits),
            "traits": {t.name: {"kind": t.kind, "levels": t.levels} for t in tables.traits},
            "qvalue": f"{config.fdr_method} over all module x trait pairs",
        }
    if tables.covariates is not None:
        cov = tables.covariates
        out["covariates"] = {
            "source": cov.source, "input": _source(config.covariates),
            "columns": cov.columns, "design_columns": cov.names,
            "adjusted_tables": list(COVARIATE_ADJUSTED),
            "unadjusted_tables": list(COVARIATE_UNADJUSTED),
            "statistic": "pairwise-complete partial correlation given [1, covariates] "
                         "(r, pvalue, qvalue, switch_strength); categorical traits: ANCOVA "
                         "F; p at n - 2 - C degrees of freedom; high_vs_low unadjusted",
        }
    if config.trait_switch is not None:
        out["trait_switch"] = {
            "trait": config.trait_switch,
            "tables": ["transcript_polarity_table"],
            "statistic": "r, pvalue, qvalue and switch_strength against the trait instead "
                         "of each module's score (the module's transcripts)"}
    if config.switch_permutations:
        out["switch_permutations"] = {
            "permutations": int(config.switch_permutations), "seed": int(config.seed),
            "generator": "torch.Generator (CPU) randperm per permutation",
            "null_precision": str(dtype).replace("torch.", ""),
            "pvalue_precision": "float64", "device": str(device),
            "pvalue": "(1 + #{null >= observed}) / (B + 1)",
            "qvalue": f"{config.fdr_method} over each module's genes with >= 2 transcripts",
            "covariate_adjusted": tables.covariates is not None,
            "null": ("Freedman-Lane: the module scores' residuals on [1, covariates] "
                     "permuted" if tables.covariates is not None else
                     "the module scores permuted; the features' missing-value masks stay"),
        }
    return out


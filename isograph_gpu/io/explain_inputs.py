"""ExplainInputs: the validated, sample-aligned host arrays that the loader
(:func:`~isograph_gpu.io.inputs.load_explain_inputs`) hands to the statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class ExplainInputs:
    """Validated, sample-aligned inputs of an explain run (host memory, float64).

    Sample order everywhere is ``sample_ids`` (sorted string overlap of feature_scores
    and feature_table, as in the reference).
    """

    artifact_dir: Path
    sample_ids: list[str]
    #: modules to process, in processing order
    module_ids: list[str]
    #: genes of each module, in modules.parquet row order
    module_genes: dict[str, list[str]]
    #: rows in modules.parquet per module (the reference's n_module_genes)
    n_module_genes: dict[str, int]
    #: feature_scores, samples x rows, float64 (rows in feature_scores order)
    scores: np.ndarray
    score_feature_ids: np.ndarray
    score_gene_ids: np.ndarray
    score_feature_types: np.ndarray
    #: annotated feature_table columns (in table column order), samples x features; a
    #: ``ParquetFeatureBlocks`` (read block by block, ``np.asarray`` for all of it) when
    #: the table is streamed
    features: Any
    feature_ids: np.ndarray
    feature_gene_ids: np.ndarray
    feature_types: np.ndarray
    #: transcript_id per feature, or None when feature_meta has no transcript_id column
    feature_transcript_ids: np.ndarray | None
    #: precomputed module scores (samples x modules, in module_ids order) or None
    module_scores: np.ndarray | None = None
    #: path of vae_checkpoint.pt when it exists
    checkpoint_path: Path | None = None
    #: feature_meta as given (for annotation gene mapping)
    feature_meta: pd.DataFrame | None = None
    #: input file fingerprints, for the manifest
    fingerprints: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

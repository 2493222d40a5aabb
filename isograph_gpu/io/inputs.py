"""Loading, validating and aligning explain inputs (isograph 0.1.5 order of checks).

Produces :class:`~isograph_gpu.io.explain_inputs.ExplainInputs`: host float64 matrices in the
reference's sample order (sorted string overlap of feature_scores and feature_table).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, MissingInputError
from ..progress import Progress
from .explain_inputs import ExplainInputs
from .feature_scores import FeatureScores
from .feature_tables import FeatureLayout, FeatureTable, open_feature_table
from .table_readers import (
    TableSource,
    describe_source,
    duplicate_values,
    read_arrow,
    read_table,
)

REQUIRED_META_COLUMNS = ["feature_id", "gene_id", "feature_type"]
MIN_OVERLAP_SAMPLES = 10


def fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Absolute path, size, mtime and a SHA-256 of the first and last MiB of a file (cheap
    on big files)."""
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if stat.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read())
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime": stat.st_mtime,
            "sha256_head_tail": digest.hexdigest()}


def _source_fingerprint(source: Any) -> dict[str, Any] | None:
    if source is None:
        return None
    if not isinstance(source, str | os.PathLike):  # a DataFrame or an AnnData
        return {"path": None, "in_memory": True, "shape": list(source.shape)}
    return fingerprint(source)


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str,
                   where: str | None = None) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        suffix = f" (in {where})" if where else ""
        raise InputError(f"{what} is missing required columns: {missing}{suffix}")


def _check_no_nulls(values: pd.Series, column: str, what: str) -> None:
    """InputError naming ``what`` and ``column`` when the id column has null values (a
    null id would become the string 'nan' or 'None')."""
    nulls = np.flatnonzero(values.isna().to_numpy())
    if nulls.size:
        raise InputError(f"{what} has {nulls.size} null {column} value(s) (first at row "
                         f"{int(nulls[0])}); every {column} must be set")


def load_modules(artifact_dir: Path) -> tuple[pd.DataFrame, Path]:
    """modules.parquet and the path of feature_scores.parquet (existence checked in the
    reference's order: modules first)."""
    modules_path = artifact_dir / "modules.parquet"
    scores_path = artifact_dir / "feature_scores.parquet"
    if not artifact_dir.is_dir():
        raise MissingInputError(f"artifact dir not found: {artifact_dir}")
    for path in (modules_path, scores_path):
        if not path.exists():
            raise MissingInputError(
                f"Required artifact file not found: {path}. Run 'isograph fit' to generate it."
            )
    modules = read_arrow(modules_path, "modules.parquet").to_pandas()
    _check_columns(modules, ["gene_id", "module_id"], f"modules.parquet ({modules_path})")
    if len(modules) == 0:
        raise InputError(f"modules.parquet ({modules_path}) has no rows; there is no module "
                         "to explain")
    for column in ("module_id", "gene_id"):
        _check_no_nulls(modules[column], column, f"modules.parquet ({modules_path})")
    modules = modules.assign(gene_id=modules["gene_id"].astype(str),
                             module_id=modules["module_id"].astype(str))
    return modules, scores_path


def validate_feature_meta(meta: pd.DataFrame, where: str = "feature_meta",
                          for_plots: bool = False) -> pd.DataFrame:
    """Required columns, non-empty, no null ids, unique feature ids (reference checks).

    Optional columns are warned about only where an output needs them: ``transcript_id``
    when there are transcript_usage features (the polarity table's transcript_id column),
    ``gene_name`` when figures are drawn (gene labels). ``where`` names the source.
    """
    _check_columns(meta, REQUIRED_META_COLUMNS, "feature_meta", where)
    if len(meta) == 0:
        raise InputError(f"feature_meta ({where}) has no rows; it must describe the "
                         "feature_table's columns")
    for col in ("feature_id", "gene_id", "feature_type"):
        _check_no_nulls(meta[col], col, f"feature_meta ({where})")
    if "transcript_id" not in meta.columns and (
            meta["feature_type"].astype(str) == "transcript_usage").any():
        warnings.warn(f"feature_meta ({where}) has no transcript_id column: the "
                      "transcript_polarity_table will have no transcript_id column",
                      UserWarning, stacklevel=3)
    if for_plots and "gene_name" not in meta.columns:
        warnings.warn(f"feature_meta ({where}) has no gene_name column: figures label genes "
                      "by gene_id", UserWarning, stacklevel=3)
    dupes = duplicate_values(meta["feature_id"])
    if dupes:
        raise InputError(f"feature_meta has duplicate feature_id values: {dupes} (in {where})")
    meta = meta.copy()
    for col in ("feature_id", "gene_id", "feature_type"):
        meta[col] = meta[col].astype(str)
    return meta


def _module_score_matrix(
    source: TableSource, module_ids: list[str], sample_ids: list[str]
) -> np.ndarray:
    mst = read_table(source, "module score table")
    if "sample_id" in mst.columns:
        mst = mst.set_index("sample_id")
    mst.index = mst.index.astype(str)
    mst.columns = [str(c) for c in mst.columns]
    dupes = duplicate_values(mst.index)
    if dupes:
        raise InputError(f"module_score_table has duplicate sample IDs: {dupes}")
    missing = [m for m in module_ids if m not in mst.columns]
    if missing:
        raise InputError(
            f"module_score_table is missing columns for requested module(s): {missing}"
        )
    overlap = set(sample_ids) & set(mst.index)
    if len(overlap) < MIN_OVERLAP_SAMPLES:
        raise InputError(
            f"Only {len(overlap)} samples overlap between module_score_table and the "
            f"feature data (minimum required: {MIN_OVERLAP_SAMPLES}); "
            + _sample_examples("module_score_table", list(mst.index),
                               "the feature data", sample_ids))
    absent = [s for s in sample_ids if s not in overlap]
    if absent:
        warnings.warn(
            f"module_score_table lacks {len(absent)} of the {len(sample_ids)} samples "
            f"(e.g. {absent[:3]}); their module scores are treated as missing",
            UserWarning, stacklevel=3,
        )
    sub = mst.reindex(index=sample_ids)[module_ids]
    try:
        return sub.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InputError(f"module_score_table has non-numeric module scores: {exc}") from exc


def load_explain_inputs(
    artifact_dir: str | os.PathLike[str],
    feature_table: TableSource,
    feature_meta: TableSource | None,
    module_ids: Sequence[str] | None = None,
    module_score_table: TableSource | None = None,
    stream_features: bool | None = None,
    for_plots: bool = False,
    feature_layout: FeatureLayout | str = "auto",
    module_score_rows_only: bool = False,
    feature_cache: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> ExplainInputs:
    """Read, validate and align every explain input (reference order of checks).

    ``feature_table``: a path, DataFrame or AnnData (see
    :func:`~isograph_gpu.io.feature_tables.open_feature_table` and ``feature_layout``).
    ``feature_meta``: ``None`` takes the metadata the table carries (an AnnData's ``var``,
    a features x samples table's gene_id/feature_type columns).
    ``stream_features``: a samples x features parquet or an ``.h5ad`` is not loaded;
    ``features`` is then a block reader the engine reads chunk by chunk. ``None``: stream
    only when the table does not fit in memory (:mod:`isograph_gpu.io.memory`).
    ``for_plots``: figures will be drawn (feature_meta's gene_name is then wanted).
    ``module_score_rows_only``: keep only the feature_scores rows of the processed
    modules' genes (all the eigengenes and gene-driver tables read; the VAE encoder needs
    every row). At 32 modules of 50 genes that is 3,200 of 125,000 rows.
    ``feature_cache``: a feature-matrix cache file for a feature table file
    (:mod:`isograph_gpu.io.feature_cache`). ``progress`` reports the table's decode.
    """
    artifact_dir = Path(artifact_dir)
    modules, scores_path = load_modules(artifact_dir)
    score_rows = FeatureScores(scores_path)
    table, meta = _feature_table_and_meta(feature_table, feature_meta, feature_layout,
                                          stream_features, for_plots, feature_cache,
                                          progress)
    sample_ids = _overlapping_samples(score_rows.sample_ids, table.sample_ids.tolist())
    resolved = _resolve_modules(modules, module_ids)
    module_scores = None
    if module_score_table is not None:
        module_scores = _module_score_matrix(module_score_table, resolved, sample_ids)
    module_genes = _module_genes(modules, resolved, score_rows.gene_ids, scores_path,
                                 check_present=module_scores is None)
    if module_score_rows_only:
        wanted = {g for m in resolved for g in module_genes[m]}
        score_rows.keep_rows(np.flatnonzero([g in wanted for g in score_rows.gene_ids]))
    scores = score_rows.matrix(sample_ids)  # [n, R] float64, Fortran
    feature_ids, features, sub = _table_features(table, meta, sample_ids, feature_meta)
    checkpoint = artifact_dir / "vae_checkpoint.pt"
    return ExplainInputs(
        artifact_dir=artifact_dir,
        sample_ids=sample_ids,
        module_ids=resolved,
        module_genes=module_genes,
        n_module_genes={m: len(module_genes[m]) for m in resolved},
        scores=scores,
        score_feature_ids=score_rows.feature_ids,
        score_gene_ids=score_rows.gene_ids,
        score_feature_types=score_rows.feature_types,
        features=features,
        feature_ids=np.asarray(feature_ids, dtype=object),
        feature_gene_ids=sub["gene_id"].to_numpy(dtype=object),
        feature_types=sub["feature_type"].to_numpy(dtype=object),
        feature_transcript_ids=(sub["transcript_id"].to_numpy(dtype=object)
                                if "transcript_id" in meta.columns else None),
        module_scores=module_scores,
        checkpoint_path=checkpoint if checkpoint.exists() else None,
        feature_meta=meta,
        fingerprints=_fingerprints(artifact_dir, scores_path, feature_table, feature_meta,
                                   module_score_table, checkpoint),
    )


def _feature_table_and_meta(feature_table: TableSource, feature_meta: TableSource | None,
                            layout: FeatureLayout | str, stream: bool | None,
                            for_plots: bool,
                            cache: str | os.PathLike[str] | None = None,
                            progress: Progress | None = None
                            ) -> tuple[FeatureTable, pd.DataFrame]:
    """The feature table's reader and the validated feature metadata (given, or the
    table's own when ``feature_meta`` is None)."""
    meta = None
    if feature_meta is not None:
        meta = validate_feature_meta(read_table(feature_meta, "feature_meta"),
                                     describe_source(feature_meta), for_plots=for_plots)
    table = open_feature_table(feature_table, "feature_table", layout, stream=stream,
                               cache=cache, progress=progress)
    if meta is None:
        own = table.feature_meta()
        if own is None:
            raise InputError(
                f"feature_meta is required: feature_table {table.where} carries no feature "
                "metadata (an AnnData var or a features x samples table with gene_id and "
                "feature_type columns would)")
        meta = validate_feature_meta(own, f"{table.where} (its own metadata)",
                                     for_plots=for_plots)
    if not table.columns:
        raise InputError(f"feature_table {table.where} has no feature columns besides the "
                         "sample ids")
    return table, meta


def _overlapping_samples(score_samples: list[str], table_samples: list[str]) -> list[str]:
    """Sorted string overlap of the two sample lists (at least
    :data:`MIN_OVERLAP_SAMPLES`); a warning counts the samples each side drops."""
    table_set = set(table_samples)
    sample_ids = sorted(set(score_samples) & table_set)
    if len(sample_ids) < MIN_OVERLAP_SAMPLES:
        raise InputError(
            f"Only {len(sample_ids)} samples overlap between feature_scores and feature_table "
            f"(minimum required: {MIN_OVERLAP_SAMPLES}). Check that sample IDs match: "
            + _sample_examples("feature_scores", score_samples, "feature_table",
                               table_samples))
    dropped_scores = len(set(score_samples) - set(sample_ids))
    dropped_table = len(table_set - set(sample_ids))
    if dropped_scores:
        warnings.warn(f"{dropped_scores} sample(s) in feature_scores not in feature_table "
                      "and will be dropped.", UserWarning, stacklevel=3)
    if dropped_table:
        warnings.warn(f"{dropped_table} sample(s) in feature_table not in feature_scores "
                      "and will be dropped.", UserWarning, stacklevel=3)
    return sample_ids


def _sample_examples(left: str, left_ids: Sequence[str], right: str,
                     right_ids: Sequence[str], count: int = 3) -> str:
    """``feature_scores has e.g. ['S001', ...]; feature_table has e.g. ['s1', ...]``: the
    first ids of each side, for an error about their overlap."""
    return (f"{left} has e.g. {[str(s) for s in left_ids[:count]]}; {right} has e.g. "
            f"{[str(s) for s in right_ids[:count]]}")


def _resolve_modules(modules: pd.DataFrame, module_ids: Sequence[str] | None) -> list[str]:
    """The modules to process: all (sorted) or the requested ones, each once, in order."""
    available = sorted(modules["module_id"].unique().tolist())
    if module_ids is None or len(module_ids) == 0:
        return available
    resolved = [str(m) for m in module_ids]
    unknown = [m for m in resolved if m not in available]
    if unknown:
        raise InputError(f"Unknown module ID(s): {unknown}. Available modules: {available}")
    return list(dict.fromkeys(resolved))


def _module_genes(modules: pd.DataFrame, resolved: list[str], score_gene_ids: np.ndarray,
                  scores_path: Path, check_present: bool) -> dict[str, list[str]]:
    """Each module's genes in modules.parquet row order. ``check_present``: a module
    with no gene in feature_scores (its eigengene is undefined) is an InputError."""
    groups = modules.groupby("module_id", sort=False)["gene_id"]
    module_genes = {m: groups.get_group(m).tolist() for m in resolved}
    if check_present:
        present = set(score_gene_ids.tolist())
        empty = [m for m in resolved if not any(g in present for g in module_genes[m])]
        if empty:
            raise InputError(
                f"module(s) {empty[:5]} have no genes in {scores_path}; their eigengene is "
                "undefined (exclude them with --module-ids or pass a module score table)"
            )
    return module_genes


def _table_features(table: FeatureTable, meta: pd.DataFrame, sample_ids: list[str],
                    feature_meta: TableSource | None) -> tuple[list[str], Any, pd.DataFrame]:
    """The annotated feature_table columns (table order), their samples x features
    matrix (or block reader) in ``sample_ids`` order, and their feature_meta rows."""
    meta_ids = set(meta["feature_id"].tolist())
    feature_ids = [c for c in table.columns if c in meta_ids]
    if not feature_ids:
        raise InputError(
            f"none of the {len(table.columns)} feature_table columns (e.g. "
            f"{table.columns[:3]}, in {table.where}) is a feature_id of feature_meta "
            f"({table.where if feature_meta is None else describe_source(feature_meta)})")
    unannotated = len(table.columns) - len(feature_ids)
    if unannotated:
        examples = [c for c in table.columns if c not in meta_ids][:3]
        warnings.warn(
            f"{unannotated} of the {len(table.columns)} feature_table columns are not in "
            f"feature_meta and are left out (e.g. {examples}); "
            f"{len(feature_ids)} features are used", UserWarning, stacklevel=3)
    positions = {s: i for i, s in enumerate(table.sample_ids.tolist())}
    rows = np.fromiter((positions[s] for s in sample_ids), dtype=np.int64, count=len(sample_ids))
    features = table.matrix(feature_ids, rows)
    sub = meta.set_index("feature_id").loc[feature_ids]
    return feature_ids, features, sub


def _fingerprints(artifact_dir: Path, scores_path: Path, feature_table: TableSource,
                  feature_meta: TableSource | None, module_score_table: TableSource | None,
                  checkpoint: Path) -> dict[str, Any]:
    """Input fingerprints for the manifest."""
    fingerprints: dict[str, Any] = {
        "modules": fingerprint(artifact_dir / "modules.parquet"),
        "feature_scores": fingerprint(scores_path),
        "feature_table": _source_fingerprint(feature_table),
        "feature_meta": _source_fingerprint(feature_meta),
    }
    if module_score_table is not None:
        fingerprints["module_score_table"] = _source_fingerprint(module_score_table)
    if checkpoint.exists():
        fingerprints["vae_checkpoint"] = fingerprint(checkpoint)
    return fingerprints

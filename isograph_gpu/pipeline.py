"""explain_module: inputs -> tensors -> statistics for all modules at once -> tables -> files."""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import REFERENCE_VERSION, __version__
from .config import ExplainConfig
from .device import disable_reduced_precision, resolve_device, resolve_dtype
from .engine import FeatureStatistics, feature_statistics
from .extras import check_optional_dependencies
from .io.inputs import load_explain_inputs
from .io.output import StagedOutput, check_path_components, staged_output
from .io.tables import TableSource
from .ops.contrast import percentile_split, tail_split
from .ops.eigengene import module_eigengenes
from .ops.fdr import fdr_adjust
from .ops.segments import segment_argmax, switch_strength
from .progress import Progress, describe_device
from .results import ExplainInputs, ExplainResult
from .tables import (
    eigengene_table,
    gene_driver_table,
    high_vs_low_table,
    transcript_polarity_table,
)

CORE_TABLES = ("gene_driver_table.parquet", "transcript_polarity_table.parquet",
               "high_vs_low_table.parquet")
TAILS_TABLE = "high_vs_low_tails_table.parquet"
MANIFEST = "module_explanation_manifest.json"


def explain_module(
    artifact_dir: str | os.PathLike[str],
    feature_table: TableSource,
    feature_meta: TableSource | None,
    module_ids: Sequence[str] | None = None,
    module_score_table: TableSource | None = None,
    annotation_table: TableSource | None = None,
    config: ExplainConfig | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    sample_meta: Any = None,
) -> dict[str, ExplainResult]:
    """Explain IsoGraph modules: gene drivers, transcript polarity, high-vs-low contrasts.

    Parameters mirror ``isograph.explain.explain_module`` (0.1.5). Tables may be given as
    DataFrames or as parquet/CSV/TSV(.gz) paths; ``feature_table`` may also be an AnnData
    or ``.h5ad`` path, or a features x samples table (``config.feature_layout``), and
    ``feature_meta`` may then be ``None`` (docs/input_formats.md). ``sample_meta`` is accepted and ignored,
    as in the reference. All modules are computed in one batched pass on
    ``config.device``. With ``output_dir`` the files are written atomically (all or
    nothing). Returns ``{module_id: ExplainResult}`` in processing order.
    """
    del sample_meta
    config = config or ExplainConfig()
    check_optional_dependencies(config, feature_table, feature_meta, module_score_table)
    progress = Progress(config.progress)
    annotation = None
    if annotation_table is not None:  # reference order: annotation errors come first
        from .structure.annotation import load_annotation_table

        annotation = load_annotation_table(annotation_table)

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.precision, device)
    progress.message(describe_device(device, dtype))
    outer = (staged_output(output_dir, replace_foreign=config.replace_output_dir,
                           inputs=(artifact_dir, feature_table, feature_meta,
                                   module_score_table, annotation_table))
             if output_dir is not None else contextlib.nullcontext())
    with outer as staged:
        with progress.stage("load inputs"):
            inputs = load_explain_inputs(
                artifact_dir, feature_table, feature_meta, module_ids, module_score_table,
                config.transcript_usage_feature_type,
                stream_features=config.stream_features, for_plots=config.plot,
                feature_layout=config.feature_layout,
            )
        if staged is not None:  # module ids name folders: refuse '../x', '/abs', '' now
            check_path_components(inputs.module_ids, "module_id")
        progress.message(
            f"{inputs.n_samples} samples, {inputs.scores.shape[1]} feature_scores rows, "
            f"{inputs.features.shape[1]} table features, {len(inputs.module_ids)} modules"
        )
        if device.type == "cuda":
            disable_reduced_precision()
        results, eigengenes = _compute(inputs, config, device, dtype, progress)

        if annotation is not None:
            with progress.stage("annotation merge"):
                _merge_annotation(results, annotation, inputs)
        if config.vae_attribution or config.integrated_gradients:
            _attribute(results, inputs, eigengenes, config, device, progress)
        if staged is not None:
            with progress.stage("write outputs"):
                _write(staged, results, inputs, eigengenes, config, device, dtype, progress,
                       annotation is not None)
    return results


def _module_membership(gene_ids: np.ndarray, inputs: ExplainInputs) -> np.ndarray:
    """[len(gene_ids), K] bool: the row's gene belongs to module k."""
    genes = pd.Index(np.asarray(gene_ids, dtype=str))
    return np.stack(
        [genes.isin(inputs.module_genes[m]) for m in inputs.module_ids], axis=1
    ) if len(inputs.module_ids) else np.zeros((len(genes), 0), dtype=bool)


def _segments(gene_ids: np.ndarray) -> tuple[torch.Tensor, int]:
    codes, uniques = pd.factorize(np.asarray(gene_ids, dtype=str))
    return torch.from_numpy(codes.astype(np.int64)), len(uniques)


def _eigengenes(inputs: ExplainInputs, membership: np.ndarray, device: torch.device,
                dtype: torch.dtype) -> np.ndarray:
    """[n, K] module scores; ``membership`` [R, K]: feature_scores row in module k."""
    if inputs.module_scores is not None:
        return inputs.module_scores.astype(np.float64)
    per_module = [np.flatnonzero(membership[:, k]) for k in range(membership.shape[1])]
    width = max((len(r) for r in per_module), default=0)
    rows = np.full((len(per_module), max(width, 1)), -1, dtype=np.int64)
    for k, r in enumerate(per_module):
        rows[k, : len(r)] = r
    scores = torch.from_numpy(inputs.scores).to(device=device, dtype=dtype)  # no host copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eig = module_eigengenes(scores, torch.from_numpy(rows).to(device))
    return eig.to(torch.float64).cpu().numpy()


def _compute(
    inputs: ExplainInputs, config: ExplainConfig, device: torch.device, dtype: torch.dtype,
    progress: Progress,
) -> tuple[dict[str, ExplainResult], np.ndarray]:
    n_total = inputs.n_samples
    channel_family = _module_membership(inputs.score_gene_ids, inputs)  # [R, K]
    with progress.stage("eigengenes"):
        eigengenes = _eigengenes(inputs, channel_family, device, dtype)  # [n, K]
    scores_t = torch.from_numpy(eigengenes)
    common = dict(min_pairs=int(config.min_complete_pairs), device=device, dtype=dtype,
                  memory_budget_bytes=int(config.memory_budget_bytes),
                  chunk_features=config.chunk_features, progress=progress)

    with progress.stage("gene drivers"):
        channel = feature_statistics(inputs.scores, scores_t, label="feature_scores",
                                     pvalue_where=channel_family, **common)
        channel_q = fdr_adjust(torch.from_numpy(channel.pvalue),
                               torch.from_numpy(channel_family), config.fdr_method).numpy()
        seg, n_genes = _segments(inputs.score_gene_ids)
        key = torch.from_numpy(np.where(np.isfinite(channel.r), np.abs(channel.r), 0.0))
        best = segment_argmax(key, seg, n_genes).numpy()  # [G, K]

    splits = {"split": percentile_split(scores_t, float(config.split_percentile))}
    if config.contrast_tails is not None:
        splits["tails"] = tail_split(scores_t, float(config.contrast_tails))
    with progress.stage("feature statistics"):
        # Pearson p of table features is used only by the transcript polarity tables
        is_usage = inputs.feature_types == config.transcript_usage_feature_type
        feature_family = _module_membership(inputs.feature_gene_ids, inputs)  # [F, K]
        polarity_where = is_usage[:, None] & feature_family
        feats = feature_statistics(inputs.features, scores_t, splits=splits, label="features",
                                   pvalue_where=polarity_where, **common)

    with progress.stage("transcript polarity"):
        polarity = _polarity_inputs(inputs, feats, config, feature_family)

    with progress.stage("tables"):
        results: dict[str, ExplainResult] = {}
        seg_np = seg.numpy()
        for k, module_id in enumerate(inputs.module_ids):
            genes_in = np.unique(seg_np[channel_family[:, k]])
            rows = best[genes_in, k]
            drivers = gene_driver_table(
                rows, inputs.score_gene_ids, inputs.score_feature_ids, inputs.score_feature_types,
                channel.r[:, k], channel.pvalue[:, k], channel_q[:, k], channel.n[:, k], n_total,
            )
            results[module_id] = ExplainResult(
                module_id=module_id,
                gene_driver_table=drivers,
                transcript_polarity_table=polarity.table(k),
                high_vs_low_table=high_vs_low_table(
                    inputs.feature_ids, inputs.feature_gene_ids, feats.contrasts["split"], k,
                    feats.n_finite, n_total),
                eigengene=eigengenes[:, k].copy(),
                sample_ids=list(inputs.sample_ids),
                n_module_genes=inputs.n_module_genes[module_id],
                tails_contrast_table=(
                    high_vs_low_table(inputs.feature_ids, inputs.feature_gene_ids,
                                      feats.contrasts["tails"], k, feats.n_finite, n_total)
                    if "tails" in feats.contrasts else None),
            )
    return results, eigengenes


class _Polarity:
    """Transcript polarity for all modules: rows, q-values and switch strength."""

    def __init__(self, inputs: ExplainInputs, feats: FeatureStatistics, rows: np.ndarray,
                 family: np.ndarray, q: np.ndarray, switch_rows: np.ndarray) -> None:
        self.inputs, self.feats, self.rows = inputs, feats, rows
        self.family, self.q, self.switch_rows = family, q, switch_rows

    def table(self, k: int) -> pd.DataFrame:
        member = self.family[:, k]
        rows = self.rows[member]
        inp, f = self.inputs, self.feats
        q = np.full(len(inp.feature_ids), np.nan)
        q[self.rows] = self.q[:, k]
        return transcript_polarity_table(
            rows, inp.feature_ids, inp.feature_gene_ids, inp.feature_transcript_ids,
            f.r[:, k], f.pvalue[:, k], q, f.n[:, k], self.switch_rows[member, k],
            inp.n_samples,
        )


def _polarity_inputs(inputs: ExplainInputs, feats: FeatureStatistics, config: ExplainConfig,
                     feature_family: np.ndarray) -> _Polarity:
    """``feature_family`` [F, K]: table feature's gene belongs to module k."""
    is_tu = inputs.feature_types == config.transcript_usage_feature_type
    tu_rows = np.flatnonzero(is_tu)
    # feature_meta row order
    assert inputs.feature_meta is not None
    meta_pos = pd.Index(inputs.feature_meta["feature_id"]).get_indexer(inputs.feature_ids[tu_rows])
    tu_rows = tu_rows[np.argsort(meta_pos, kind="stable")]
    family = feature_family[tu_rows]  # [T, K]
    q = fdr_adjust(torch.from_numpy(feats.pvalue[tu_rows]), torch.from_numpy(family),
                   config.fdr_method).numpy()
    seg, n_genes = _segments(inputs.feature_gene_ids[tu_rows])
    strength = switch_strength(torch.from_numpy(feats.r[tu_rows]), seg, n_genes)  # [G, K]
    per_row = strength.numpy()[seg.numpy()]  # [T, K]
    return _Polarity(inputs, feats, tu_rows, family, q, per_row)


def _merge_annotation(results: dict[str, ExplainResult], annotation: pd.DataFrame,
                      inputs: ExplainInputs) -> None:
    from .structure.annotation import (
        annotate_driver_table,
        annotate_transcript_table,
        fill_annotation_gene_ids,
    )

    assert inputs.feature_meta is not None
    annotation = fill_annotation_gene_ids(annotation, inputs.feature_meta)
    for res in results.values():
        res.gene_driver_table = annotate_driver_table(res.gene_driver_table, annotation)
        res.transcript_polarity_table = annotate_transcript_table(
            res.transcript_polarity_table, annotation)


def _attribute(results: dict[str, ExplainResult], inputs: ExplainInputs, eigengenes: np.ndarray,
               config: ExplainConfig, device: torch.device, progress: Progress) -> None:
    from .attribution import run_attribution

    with progress.stage("attribution"):
        out = run_attribution(inputs, eigengenes,
                              {m: r.gene_driver_table for m, r in results.items()},
                              config, device, progress)
    for module_id, att in out.items():
        res = results[module_id]
        res.vae_drivers = att.vae_drivers
        res.ig_attributions = att.ig_attributions
        res.ig_convergence_delta = att.ig_convergence_delta


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"isograph_gpu": __version__, "python": platform.python_version()}
    for dist in ("torch", "numpy", "scipy", "pandas", "pyarrow", "click", "cupy", "captum"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _write(staged: StagedOutput, results: dict[str, ExplainResult], inputs: ExplainInputs,
           eigengenes: np.ndarray, config: ExplainConfig, device: torch.device,
           dtype: torch.dtype, progress: Progress, annotated: bool) -> None:
    tables: list[tuple[pd.DataFrame, str]] = []
    for module_id, res in results.items():
        tables += [(res.gene_driver_table, f"{module_id}/{CORE_TABLES[0]}"),
                   (res.transcript_polarity_table, f"{module_id}/{CORE_TABLES[1]}"),
                   (res.high_vs_low_table, f"{module_id}/{CORE_TABLES[2]}")]
        if res.tails_contrast_table is not None:
            tables.append((res.tails_contrast_table, f"{module_id}/{TAILS_TABLE}"))
        if res.vae_drivers is not None:
            tables.append((res.vae_drivers, f"{module_id}/vae_drivers.parquet"))
        if res.ig_attributions is not None:
            tables.append((res.ig_attributions, f"{module_id}/ig_attributions.parquet"))
    tables.append((eigengene_table(inputs.sample_ids, inputs.module_ids, eigengenes),
                   "eigengenes.parquet"))
    staged.write_parquet_many(tables)
    plot_files: list[str] = []
    if config.plot:
        from .plots import figure_files, render_explain_figures

        with progress.stage("plots"):
            plot_files = render_explain_figures(
                results, staged.staging, config.output_formats,
                feature_usage=pd.DataFrame(np.asarray(inputs.features), index=inputs.sample_ids,
                                           columns=inputs.feature_ids),
                feature_meta=inputs.feature_meta, progress=progress,
            )
        for rel in plot_files:
            staged.path(rel)  # register for the commit
        plot_files = figure_files(plot_files)  # as isograph 0.1.5: no module_summary.json
    manifest = build_manifest(results, inputs, config, device, dtype, progress, annotated,
                              plot_files, [*staged.files, MANIFEST])
    staged.write_json(manifest, MANIFEST)


def _attribution_precision(config: ExplainConfig, device: torch.device) -> str | None:
    """The VAE's working dtype when attribution ran (it may differ from ``precision``)."""
    if not (config.vae_attribution or config.integrated_gradients):
        return None
    from .attribution import attribution_dtype

    return str(attribution_dtype(config.precision, device)).replace("torch.", "")


def build_manifest(results: dict[str, ExplainResult], inputs: ExplainInputs,
                   config: ExplainConfig, device: torch.device, dtype: torch.dtype,
                   progress: Progress, annotated: bool, plot_files: list[str],
                   files: list[str]) -> dict[str, Any]:
    """The reference's manifest keys plus what isograph-gpu records (config, files, device,
    precision, versions, input fingerprints, stage timings)."""
    from .tables import DRIVER_COLUMNS

    first = next(iter(results.values()), None)
    annotation_columns: list[str] = []
    if annotated and first is not None:
        from .structure.annotation import CANONICAL_LABELS

        seen = set(first.gene_driver_table.columns) | set(first.transcript_polarity_table.columns)
        annotation_columns = [c for c in CANONICAL_LABELS if c in seen and c not in DRIVER_COLUMNS]
    return {
        # --- isograph 0.1.5 keys ---
        "annotation_columns": annotation_columns,
        "annotation_provided": annotated,
        "ig_attribution_available": any(r.ig_attributions is not None for r in results.values()),
        "isograph_version": REFERENCE_VERSION,
        "module_ids": list(results),
        "n_modules": len(results),
        "plot_files": plot_files,
        "tables_per_module": list(CORE_TABLES),
        "vae_attribution_available": any(r.vae_drivers is not None for r in results.values()),
        # --- isograph-gpu additions ---
        "isograph_gpu_version": __version__,
        "config": config.to_dict(),
        "files": sorted(files),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "precision": str(dtype).replace("torch.", ""),
        "pvalue_precision": "float64",
        "attribution_precision": _attribution_precision(config, device),
        "feature_table_streamed": not isinstance(inputs.features, np.ndarray),
        "versions": _versions(),
        "inputs": inputs.fingerprints,
        "n_samples": inputs.n_samples,
        "sample_order": "sorted string overlap of feature_scores and feature_table",
        "modules": {
            m: {"n_module_genes": r.n_module_genes,
                "n_driver_genes": len(r.gene_driver_table),
                "n_transcripts": len(r.transcript_polarity_table),
                "ig_convergence_delta": r.ig_convergence_delta}
            for m, r in results.items()
        },
        "optional_parts": {
            "annotation": annotated,
            "vae_attribution": config.vae_attribution,
            "integrated_gradients": config.integrated_gradients,
            "contrast_tails": config.contrast_tails,
            "plots": config.plot,
        },
        "timings_seconds": {k: round(v, 4) for k, v in progress.timings.items()},
    }


"""module_explanation_manifest.json: the reference's keys plus what isograph-gpu records
(config, files, device, precision, versions, input fingerprints, stage timings)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

import numpy as np

from . import REFERENCE_VERSION, __version__
from .config import PLOT_FORMATS, ExplainConfig
from .errors import InputError
from .progress import Progress, device_name

if TYPE_CHECKING:
    import torch

    from .io.explain_inputs import ExplainInputs
    from .result import ExplainResult

#: the manifest's file name in an explain output directory (the one definition: io/output,
#: the pipeline, the CLI and plots/load import it; this module imports torch lazily so that
#: the figure-only paths can)
MANIFEST = "module_explanation_manifest.json"
CORE_TABLES = ("gene_driver_table.parquet", "transcript_polarity_table.parquet",
               "high_vs_low_table.parquet")
#: samples x modules eigengenes: a ``sample_id`` column, then one float64 column per module
EIGENGENES = "eigengenes.parquet"
#: the eigengenes.parquet column of the sample ids
SAMPLE_ID_COLUMN = "sample_id"
#: figures drawn at the top of the output dir, one file ``<name>.<format>`` per format
TOP_FIGURES = ("eigengene_heatmap",)
#: the other files at the top of the output dir (report.html and module_trait_table.parquet
#: are the HTML report's), beside one folder per module
ROOT_FILES = (MANIFEST, EIGENGENES, "report.html", "module_trait_table.parquet")


def root_file_names() -> frozenset[str]:
    """Every name the run writes at the top of its output dir besides the module folders,
    case-folded (one file on a case-insensitive file system)."""
    figures = {f"{stem}.{fmt}" for stem in TOP_FIGURES for fmt in PLOT_FORMATS}
    return frozenset(name.casefold() for name in (*ROOT_FILES, *figures))


def check_module_folder_names(module_ids: list[str]) -> None:
    """An :class:`InputError` naming the first module id that would collide with the run's
    own output: one of :func:`root_file_names` (in any case), or ``sample_id``, the sample
    id column of eigengenes.parquet. Call it before computing."""
    reserved = root_file_names()
    for module_id in map(str, module_ids):
        if module_id.casefold() in reserved:
            raise InputError(
                f"module_id {module_id!r} is the name of a file the run writes at the top of "
                f"the output dir (reserved: {', '.join(sorted(reserved))}); rename the module")
        if module_id == SAMPLE_ID_COLUMN:
            raise InputError(
                f"module_id {module_id!r} is the sample id column of {EIGENGENES}; "
                "rename the module")


def package_versions() -> dict[str, str]:
    """Versions of isograph-gpu, Python and the installed libraries it can use."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"isograph_gpu": __version__, "python": platform.python_version()}
    for dist in ("torch", "numpy", "scipy", "pandas", "pyarrow", "polars", "click", "cupy",
                 "captum"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _attribution_precision(config: ExplainConfig, device: torch.device) -> str | None:
    """The VAE's working dtype when attribution ran (it may differ from ``precision``)."""
    if not (config.vae_attribution or config.integrated_gradients):
        return None
    from .attribution import attribution_dtype

    return str(attribution_dtype(config.precision, device)).replace("torch.", "")


def _rows(result: ExplainResult, name: str) -> int:
    return result.table_shapes[name][0] if name in result.table_shapes else len(
        getattr(result, name))


def build_manifest(results: dict[str, ExplainResult], inputs: ExplainInputs,
                   config: ExplainConfig, device: torch.device, dtype: torch.dtype,
                   progress: Progress, annotated: bool, plot_files: list[str],
                   files: list[str]) -> dict[str, Any]:
    """The manifest of a finished run (tables are counted from their recorded shapes,
    never loaded)."""

    from .result_tables import DRIVER_COLUMNS

    first = next(iter(results.values()), None)
    annotation_columns: list[str] = []
    if annotated and first is not None:
        from .structure.annotation_merge import CANONICAL_LABELS

        seen = {c for name in ("gene_driver_table", "transcript_polarity_table")
                for c in first.table_shapes.get(name, (0, []))[1]}
        annotation_columns = [c for c in CANONICAL_LABELS if c in seen and c not in DRIVER_COLUMNS]
    return {
        # --- isograph 0.1.5 keys ---
        "annotation_columns": annotation_columns,
        "annotation_provided": annotated,
        "ig_attribution_available": any(r.has_table("ig_attributions")
                                        for r in results.values()),
        "isograph_version": REFERENCE_VERSION,
        "module_ids": list(results),
        "n_modules": len(results),
        "plot_files": plot_files,
        "tables_per_module": list(CORE_TABLES),
        "vae_attribution_available": any(r.has_table("vae_drivers") for r in results.values()),
        # --- isograph-gpu additions ---
        "isograph_gpu_version": __version__,
        "config": config.to_dict(),
        "files": sorted(files),
        "device": str(device),
        "device_name": device_name(device),
        "precision": str(dtype).replace("torch.", ""),
        "pvalue_precision": "float64",
        "attribution_precision": _attribution_precision(config, device),
        "feature_table_streamed": not isinstance(inputs.features, np.ndarray),
        "versions": package_versions(),
        "inputs": inputs.fingerprints,
        "n_samples": inputs.n_samples,
        "sample_order": "sorted string overlap of feature_scores and feature_table",
        "modules": {
            m: {"n_module_genes": r.n_module_genes,
                "n_driver_genes": _rows(r, "gene_driver_table"),
                "n_transcripts": _rows(r, "transcript_polarity_table"),
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

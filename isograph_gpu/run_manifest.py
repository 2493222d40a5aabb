"""The content of module_explanation_manifest.json for a finished explain run: the
reference's keys plus what isograph-gpu records (config, files, device, precision,
versions, input fingerprints, stage timings). The file's name and the core tables it lists
are :mod:`isograph_gpu.manifest`'s."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import ExplainConfig
from .manifest import CORE_TABLES
from .progress import Progress, device_name
from .version import REFERENCE_VERSION, __version__

if TYPE_CHECKING:
    import torch

    from .io.explain_inputs import ExplainInputs
    from .result import ExplainResult


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


def with_paths_from(fingerprints: dict[str, Any], output_dir: str | None) -> dict[str, Any]:
    """Input fingerprints with ``path_from_output_dir`` added to each one with a path: the
    input's real path relative to the output dir's (still right when both are moved or
    copied together; ``plot --explain-dir`` tries it after the absolute ``path``)."""
    import os

    if output_dir is None:
        return fingerprints
    base = os.path.realpath(output_dir)
    out: dict[str, Any] = {}
    for name, entry in fingerprints.items():
        if isinstance(entry, dict) and entry.get("path"):
            entry = {**entry, "path_from_output_dir": os.path.relpath(
                os.path.realpath(entry["path"]), base)}
        out[name] = entry
    return out


def build_manifest(results: dict[str, ExplainResult], inputs: ExplainInputs,
                   config: ExplainConfig, device: torch.device, dtype: torch.dtype,
                   progress: Progress, annotated: bool, plot_files: list[str],
                   files: list[str], output_dir: str | None = None) -> dict[str, Any]:
    """The manifest of a finished run (tables are counted from their recorded shapes,
    never loaded); ``output_dir``: where it is committed (input paths relative to it are
    recorded too, :func:`with_paths_from`)."""

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
        "inputs": with_paths_from(inputs.fingerprints, output_dir),
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
            "report": config.report,
        },
        "warnings": None if progress.warnings is None else list(progress.warnings),
        "timings_seconds": {k: round(v, 4) for k, v in progress.timings.items()},
    }

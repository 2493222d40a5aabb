"""Rebuild :class:`ExplainResult` objects from an explain output directory (no recomputation)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, MissingInputError
from ..io.table_readers import read_column_names, read_table
from ..manifest import EIGENGENES as EIGENGENES_NAME
from ..manifest import MANIFEST
from ..result import ExplainResult

TABLE_NAMES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


def read_manifest(explain_dir: Path) -> dict:
    """The manifest of an explain output dir (MissingInputError / InputError naming it)."""
    explain_dir = Path(explain_dir)
    if not explain_dir.is_dir():
        raise MissingInputError(f"explain dir {explain_dir} does not exist or is not a folder")
    path = explain_dir / MANIFEST
    if not path.is_file():
        raise MissingInputError(f"{path} not found; is {explain_dir} an explain-module output?")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except (RecursionError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not an explain manifest ("
                         + ("nested too deeply" if isinstance(exc, RecursionError)
                            else "not UTF-8 text") + ")") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("module_ids"), list):
        raise InputError(f"{path} has no module_ids list")
    return manifest


def _read_eigengenes(explain_dir: Path) -> pd.DataFrame | None:
    path = explain_dir / EIGENGENES_NAME
    if not path.is_file():
        warnings.warn(f"{path} not found: eigengene-based figures (eigengene_heatmap, "
                      "isoform_gradient, driver_heatmap) are skipped", stacklevel=3)
        return None
    table = read_table(path, "eigengene table")
    if "sample_id" not in table.columns:
        raise InputError(f"{path} has no sample_id column")
    table = table.assign(sample_id=table["sample_id"].astype(str)).set_index("sample_id")
    return table


def load_explain_dir(explain_dir: Path, manifest: dict | None = None
                     ) -> dict[str, ExplainResult]:
    """Results of an explain run read back from its output directory: the three tables per
    module, the eigengene from ``eigengenes.parquet`` (float64 over its sample ids) and
    n_module_genes from the manifest's ``modules`` entry (else the driver-table row count).
    Modules come in the manifest's ``module_ids`` order. ``manifest``: the directory's
    manifest when the caller has read it already (:func:`read_manifest`)."""
    explain_dir = Path(explain_dir)
    manifest = read_manifest(explain_dir) if manifest is None else manifest
    eigengenes = _read_eigengenes(explain_dir)
    module_info = manifest.get("modules") if isinstance(manifest.get("modules"), dict) else {}
    results: dict[str, ExplainResult] = {}
    for module_id in map(str, manifest["module_ids"]):
        tables = {}
        for name in TABLE_NAMES:
            path = explain_dir / module_id / f"{name}.parquet"
            if not path.is_file():
                raise MissingInputError(f"{path} not found (module {module_id} in the manifest)")
            tables[name] = read_table(path, name)
        if eigengenes is not None:
            if module_id not in eigengenes.columns:
                raise InputError(f"{explain_dir / EIGENGENES_NAME} has no column for module "
                                 f"{module_id!r}")
            eigengene = eigengenes[module_id].to_numpy(dtype=np.float64)
            sample_ids = list(eigengenes.index)
        else:
            eigengene, sample_ids = np.empty(0, dtype=np.float64), []
        info = module_info.get(module_id, {}) if isinstance(module_info, dict) else {}
        n_genes = info.get("n_module_genes") if isinstance(info, dict) else None
        results[module_id] = ExplainResult(
            module_id=module_id,
            gene_driver_table=tables["gene_driver_table"],
            transcript_polarity_table=tables["transcript_polarity_table"],
            high_vs_low_table=tables["high_vs_low_table"],
            eigengene=eigengene,
            sample_ids=sample_ids,
            n_module_genes=int(n_genes) if n_genes is not None
            else len(tables["gene_driver_table"]),
        )
    return results


def manifest_input_path(manifest: dict, name: str,
                        explain_dir: Path | None = None) -> Path | None:
    """The file the explain run read its input ``name`` (``feature_table`` or
    ``feature_meta``) from, as the manifest's ``inputs`` records it: its absolute
    ``path``, then ``path_from_output_dir`` under ``explain_dir`` (both moved together),
    whichever still holds the same file: the recorded size and head/tail SHA-256 (the
    fingerprint) must match, so another file at the same path is never used. None when
    none does (a warning says why when the input was recorded as a file)."""
    inputs = manifest.get("inputs")
    entry = inputs.get(name) if isinstance(inputs, dict) else None
    if not isinstance(entry, dict) or not entry.get("path"):
        return None
    candidates = [Path(str(entry["path"]))]
    relative = entry.get("path_from_output_dir")
    if explain_dir is not None and isinstance(relative, str) and relative:
        candidates.append(Path(os.path.normpath(Path(explain_dir) / relative)))
    changed = []
    for path in dict.fromkeys(candidates):
        if not path.is_file():
            continue
        if _fingerprint_matches(path, entry):
            return path
        changed.append(path)
    option = f"--{name.replace('_', '-')}"
    if changed:
        warnings.warn(f"the explain run's {name} {changed[0]} is not the file the run read "
                      "(its size or content fingerprint differs from the manifest's); not "
                      f"used: give {option} to use a copy", stacklevel=2)
    else:
        warnings.warn(f"the explain run's {name} "
                      + " or ".join(str(p) for p in dict.fromkeys(candidates))
                      + f" no longer exists; give {option} to use another copy", stacklevel=2)
    return None


def _fingerprint_matches(path: Path, entry: dict) -> bool:
    """Whether ``path`` has the size and head/tail SHA-256 the manifest recorded."""
    from ..io.inputs import fingerprint

    if entry.get("size") is not None and path.stat().st_size != int(entry["size"]):
        return False
    recorded = entry.get("sha256_head_tail")
    return recorded is None or fingerprint(path)["sha256_head_tail"] == recorded


def check_usage_matches(usage: pd.DataFrame, results: dict[str, ExplainResult],
                        source: object) -> None:
    """Raise InputError naming ``source`` when the feature usage table ``usage`` (samples
    x features; ``sample_id`` column or index) shares no sample id with the results'
    eigengenes, or no feature id with their transcript polarity tables: it is not this
    run's feature table."""
    from ._data import figure_feature_ids, usage_frame

    usage = usage_frame(usage)
    samples = {str(s) for r in results.values() for s in r.sample_ids}
    if samples and not samples.intersection(map(str, usage.index)):
        raise InputError(f"feature table {source} shares no sample id with the explain run "
                         f"({len(usage.index)} rows); is it this run's table?")
    features = set(figure_feature_ids(results.values()))
    if features and not features.intersection(map(str, usage.columns)):
        raise InputError(f"feature table {source} has no column for any transcript of the "
                         "explain run; is it this run's table?")


def read_feature_usage(path: Path, results: dict[str, ExplainResult]) -> pd.DataFrame:
    """The feature table at ``path`` as far as the figures of ``results`` need it: from a
    table with a ``sample_id`` column only that column and the transcripts of the results'
    polarity tables are read (a 250,000-feature table is not loaded to draw a few
    hundred); a table without one is read whole. Samples x features."""
    names = read_column_names(path, "feature table")
    if "sample_id" not in names:
        return read_table(path, "feature table")
    from ._data import figure_feature_ids

    present = set(names)
    wanted = [f for f in figure_feature_ids(results.values()) if f in present]
    return read_table(path, "feature table", columns=["sample_id", *wanted])

"""Structural annotation tables: normalisation and merge into the explain tables (§8).

``load_annotation_table`` accepts the annotate-structure TSV or any compatible table
(aliases, ID column names, TRUE/FALSE strings); ``annotate_driver_table`` aggregates labels
per gene and appends them to gene_driver_table; ``annotate_transcript_table`` appends them
per feature to transcript_polarity_table. Only the 10 canonical labels are merged.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.table_readers import read_table
from .labels import BOOLEAN_LABELS, CANONICAL_LABELS, NUMERIC_LABELS

__all__ = [
    "CANONICAL_LABELS",
    "annotate_driver_table",
    "annotate_transcript_table",
    "fill_annotation_gene_ids",
    "load_annotation_table",
    "present_annotation_columns",
]

#: lower-case input name -> canonical label (canonical names map to themselves)
ALIASES: dict[str, str] = {
    **{name: name for name in CANONICAL_LABELS},
    "alt_first_last_exon": "first_exon_changed",
    "cassette_exon": "internal_exon_difference",
    "exon_skipping": "internal_exon_difference",
    "intron_retention": "internal_exon_difference",
    "coding_change": "cds_changed",
    "coding_region_change": "cds_changed",
    "coding_noncoding_switch": "coding_status_change",
}
#: accepted names of the ID column, in order of preference
ID_COLUMNS: tuple[str, ...] = ("feature_id", "transcript_id", "isoform_id")
_TRUTH = {"TRUE": True, "1": True, "FALSE": False, "0": False}


def _as_boolean(values: pd.Series) -> pd.arrays.BooleanArray:
    """Nullable booleans: booleans kept; numbers -> bool (NaN -> NA); text TRUE/1, FALSE/0
    (case-insensitive) -> True/False, anything else -> NA."""
    if isinstance(values.dtype, pd.BooleanDtype):
        return values.array
    if pd.api.types.is_bool_dtype(values.dtype):
        return pd.array(values.to_numpy(dtype=bool), dtype="boolean")
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        return pd.arrays.BooleanArray(np.nan_to_num(numbers) != 0, np.isnan(numbers))
    mapped = [_TRUTH.get(str(v).strip().upper()) for v in values]
    return pd.array(mapped, dtype="boolean")


def load_annotation_table(source: pd.DataFrame | str | os.PathLike[str]) -> pd.DataFrame:
    """Normalise an annotation table (DataFrame or a parquet/TSV/CSV(.gz) path read by
    :func:`~isograph_gpu.io.table_readers.read_table`, ids as text).

    The first of feature_id / transcript_id / isoform_id becomes ``feature_id``; label
    aliases (case-insensitive) are renamed to canonical names unless the canonical column
    is already present (then the alias column is left as it is); boolean labels become
    pandas BooleanDtype. Warns when no label column is recognised.
    """
    frame = (source.copy() if isinstance(source, pd.DataFrame)
             else read_table(source, "annotation table"))
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if id_column is None:
        raise InputError(
            f"annotation table has no ID column (one of {list(ID_COLUMNS)}); found "
            f"{[str(c) for c in frame.columns]}")
    frame = frame.rename(columns={id_column: "feature_id"})

    present = set(frame.columns)
    renames: dict[str, str] = {}
    for column in frame.columns:
        canonical = ALIASES.get(str(column).strip().lower())
        if canonical is None or column == canonical:
            continue
        if canonical in present:  # e.g. our own intron_retention beside the canonical
            continue
        if canonical in renames.values():
            warnings.warn(f"annotation table column {column!r} is an alias of {canonical!r}, "
                          "which another column already provides; it is left unused", UserWarning,
                          stacklevel=2)
            continue
        renames[column] = canonical
    frame = frame.rename(columns=renames)

    for name in BOOLEAN_LABELS:
        if name in frame.columns:
            frame[name] = _as_boolean(frame[name])
    if not any(name in frame.columns for name in CANONICAL_LABELS):
        warnings.warn("annotation table has no recognised annotation columns; expected "
                      f"some of {list(CANONICAL_LABELS)}", UserWarning, stacklevel=2)
    return frame


def _labels_in(annotation: pd.DataFrame) -> list[str]:
    return [name for name in CANONICAL_LABELS if name in annotation.columns]


def annotate_driver_table(driver: pd.DataFrame, annotation: pd.DataFrame) -> pd.DataFrame:
    """gene_driver_table with gene-level labels appended (left join on gene_id).

    Over all annotation rows of a gene: booleans any() with NA skipped, and NA (unknown)
    for a gene whose values are all NA (its transcripts are missing from the GTF), as for
    genes without annotation rows; numerics max() (NaN skipped). Appended in canonical
    order, booleans first; genes without annotation get NA / NaN.
    """
    labels = _labels_in(annotation)
    if not labels:
        warnings.warn("annotation table has no recognised annotation columns; gene driver "
                      "table left unannotated", UserWarning, stacklevel=2)
        return driver.copy()
    if "gene_id" not in annotation.columns:
        raise InputError("annotation table has no gene_id column (and none could be mapped "
                         "from feature_meta); gene-level annotation needs one")
    flags = [n for n in BOOLEAN_LABELS if n in labels]
    numbers = [n for n in NUMERIC_LABELS if n in labels]
    keyed = annotation.dropna(subset=["gene_id"])
    parts = []
    if flags:
        values = keyed[flags].astype("boolean")
        genes = keyed["gene_id"].to_numpy()
        any_true = values.fillna(False).astype(bool).groupby(genes, sort=True).any()
        known = values.notna().groupby(genes, sort=True).any()
        per_gene = any_true.astype("boolean").mask(~known)
        per_gene.index.name = "gene_id"
        parts.append(per_gene)
    if numbers:
        values = keyed[numbers].apply(pd.to_numeric, errors="coerce").astype(float)
        values["gene_id"] = keyed["gene_id"].to_numpy()
        parts.append(values.groupby("gene_id", sort=True)[numbers].max())
    per_gene = pd.concat(parts, axis=1).reset_index()
    base = driver.drop(columns=[c for c in labels if c in driver.columns])
    merged = base.merge(per_gene, on="gene_id", how="left")
    for name in flags:
        merged[name] = merged[name].astype("boolean")
    return merged


def annotate_transcript_table(polarity: pd.DataFrame, annotation: pd.DataFrame
                              ) -> pd.DataFrame:
    """transcript_polarity_table with per-feature labels appended (left join on feature_id).

    Duplicate feature_ids in the annotation: the first is kept (UserWarning). An empty
    polarity table is returned unchanged.
    """
    if polarity.empty:
        return polarity.copy()
    labels = _labels_in(annotation)
    if not labels:
        warnings.warn("annotation table has no recognised annotation columns; transcript "
                      "polarity table left unannotated", UserWarning, stacklevel=2)
        return polarity.copy()
    subset = annotation[["feature_id", *labels]]
    repeated = subset["feature_id"].duplicated()
    if repeated.any():
        ids = subset.loc[repeated, "feature_id"].astype(str).unique()[:5].tolist()
        warnings.warn(f"annotation table has {int(repeated.sum())} duplicate feature_id(s) "
                      f"(e.g. {ids}); keeping the first of each", UserWarning, stacklevel=2)
        subset = subset.loc[~repeated]
    base = polarity.drop(columns=[c for c in labels if c in polarity.columns])
    merged = base.merge(subset, on="feature_id", how="left")
    for name in labels:
        if name in BOOLEAN_LABELS:
            merged[name] = merged[name].astype("boolean")
    return merged


def fill_annotation_gene_ids(annotation: pd.DataFrame, feature_meta: pd.DataFrame
                             ) -> pd.DataFrame:
    """Add gene_id by mapping feature_id through feature_meta when the annotation has none.

    Unchanged (with a UserWarning) when no feature_id maps; then gene-level annotation is
    impossible.
    """
    if "gene_id" in annotation.columns:
        return annotation
    lookup = feature_meta.drop_duplicates("feature_id").set_index("feature_id")["gene_id"]
    genes = annotation["feature_id"].map(lookup)
    if genes.notna().any():
        filled = annotation.copy()
        filled["gene_id"] = genes
        return filled
    warnings.warn("annotation table has no gene_id column and none of its feature_ids is in "
                  "feature_meta; gene-level annotation will be skipped", UserWarning,
                  stacklevel=2)
    return annotation


def present_annotation_columns(tables: Iterable[pd.DataFrame]) -> list[str]:
    """Canonical labels present in any of ``tables``, canonical order (manifest field)."""
    seen: set[str] = set()
    for table in tables:
        if table is not None:
            seen.update(str(c) for c in table.columns)
    return [name for name in CANONICAL_LABELS if name in seen]

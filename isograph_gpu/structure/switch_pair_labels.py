"""Switch pairs -> per-transcript structural labels (``annotate-structure``, §14.3-14.4).

One output row per distinct transcript of the pairs, in order of first appearance (row by
row, transcript_id_1 then transcript_id_2); gene_id from the last pair listing it. Over the
transcript's valid comparisons (both transcripts in the GTF): booleans any(), length deltas
max(), shared_exon_fraction min(); no valid comparison -> NA / NaN.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.table_readers import read_table
from ..progress import Progress
from .cache import load_transcript_models
from .compare import compare_pairs
from .labels import (
    BOOLEAN_LABELS,
    EXTRA_BOOLEAN_LABELS,
    OUTPUT_COLUMNS,
    SPLICING_CLASSES,
    SPLICING_EVENTS,
)
from .models import TranscriptModels

PAIR_COLUMNS = ("gene_id", "transcript_id_1", "transcript_id_2")
_MAX_NUMERIC = ("transcript_length_delta", "cds_length_delta", "exon_count_delta",
                "utr5_length_delta", "utr3_length_delta")


def read_switch_pairs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a tab-separated switch-pair table (every column as text, an empty field as
    missing) with the one table reader.

    A file whose header has no tab but names the required columns with another separator
    (a CSV) is an error saying that tabs are expected."""
    path = Path(path)
    table = read_table(path, "switch pairs file", fmt="tsv", all_text=True)
    if len(table.columns) == 1 and not set(PAIR_COLUMNS) <= set(table.columns):
        header = str(table.columns[0])
        separator = next((c for c in (",", ";", "|", " ") if c in header), None)
        if separator is not None:
            raise InputError(
                f"switch pairs {path} must be tab-separated, but its header {header!r} has "
                f"no tab and looks {_SEPARATOR_NAMES[separator]}-separated; expected columns "
                f"{', '.join(PAIR_COLUMNS)} separated by tabs")
    return table


_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}


def annotate_switch_pairs(
    switch_pairs: pd.DataFrame,
    gtf_path: str | os.PathLike[str] | None = None,
    gtf_cache: str | os.PathLike[str] | None = None,
    models: TranscriptModels | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Per-transcript structural labels of the transcripts in ``switch_pairs``.

    ``switch_pairs``: columns gene_id, transcript_id_1, transcript_id_2 (others ignored).
    Transcript models come from ``models`` or from ``gtf_path`` (through ``gtf_cache``);
    ``progress`` reports the GTF stages.
    Returns the reference's 12 columns (7 BooleanDtype labels, 3 float64) followed by the
    extra labels of docs/structure.md.
    """
    missing = sorted(set(PAIR_COLUMNS) - set(switch_pairs.columns))
    if missing:
        raise InputError(f"switch_pairs is missing required columns: {missing}")
    for column in PAIR_COLUMNS[1:]:
        empty = switch_pairs[column].isna().to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise InputError(f"switch_pairs has an empty {column} in data row {row + 1}")
    if models is None:
        if gtf_path is None:
            raise InputError("annotate_switch_pairs needs a GTF path or transcript models")
        models = load_transcript_models(gtf_path, gtf_cache, progress)

    first = switch_pairs["transcript_id_1"].astype(str).to_numpy(dtype=object)
    second = switch_pairs["transcript_id_2"].astype(str).to_numpy(dtype=object)
    genes = switch_pairs["gene_id"].to_numpy(dtype=object)
    # dict: insertion order = first appearance, value = last pair's gene
    gene_of: dict[str, object] = {}
    for t1, t2, gene in zip(first, second, genes, strict=True):
        gene_of[t1] = gene
        gene_of[t2] = gene
    transcripts = np.array(list(gene_of), dtype=object)

    row_of = models.index_of(transcripts)
    absent = transcripts[row_of < 0]
    if len(absent):
        warnings.warn(_missing_message(absent, models, len(transcripts)), UserWarning,
                      stacklevel=2)

    position = pd.Index(transcripts)
    pos1 = position.get_indexer(first)
    pos2 = position.get_indexer(second)
    valid = (row_of[pos1] >= 0) & (row_of[pos2] >= 0)
    labels = compare_pairs(models, row_of[pos1[valid]], row_of[pos2[valid]])
    table = _aggregate(labels, pos1[valid], pos2[valid], len(transcripts))
    table.insert(0, "gene_id", pd.array(list(gene_of.values()), dtype=object)
                 if len(transcripts) else pd.array([], dtype=object))
    table.insert(0, "transcript_id", transcripts)
    return table[list(OUTPUT_COLUMNS)]


_VERSION_SUFFIX = r"\.\d+$"


def _missing_message(absent: np.ndarray, models: TranscriptModels, n_transcripts: int) -> str:
    """What happens to transcripts of the pairs that the GTF lacks, and a hint when '.N'
    version suffixes explain the miss (versioned pairs against an unversioned GTF, the
    reverse, or other versions)."""
    shown = [str(t) for t in absent[:5]]
    text = (f"{len(absent)} transcript ID(s) not found in GTF (of {n_transcripts} in the "
            f"pairs): their rows are written with NA labels and no comparison involving "
            f"them is made: {shown}" + ("..." if len(absent) > 5 else ""))
    unversioned = pd.Series(absent, dtype=object).astype(str).str.replace(
        _VERSION_SUFFIX, "", regex=True)
    gtf_ids = pd.Series(models.transcript_id, dtype=object).astype(str)
    gtf_unversioned = gtf_ids.str.replace(_VERSION_SUFFIX, "", regex=True)
    matched = unversioned.isin(set(gtf_unversioned)).to_numpy()
    if matched.any():
        example = str(absent[np.flatnonzero(matched)[0]])
        base = unversioned[np.flatnonzero(matched)[0]]
        in_gtf = gtf_ids[(gtf_unversioned == base).to_numpy()].iloc[0]
        text += (f". {int(matched.sum())} of them match a GTF transcript once '.N' version "
                 f"suffixes are ignored (pairs {example!r}, GTF {in_gtf!r}): use the same "
                 f"versioning in the pairs and the GTF")
    return text


def _aggregate(labels: dict[str, np.ndarray], pos1: np.ndarray, pos2: np.ndarray,
               n: int) -> pd.DataFrame:
    """Per transcript (n rows) aggregation of pair labels over its valid comparisons."""
    where = np.concatenate([pos1, pos2])
    seen = np.bincount(where, minlength=n) > 0
    out: dict[str, object] = {}

    def both(name: str) -> np.ndarray:
        return np.concatenate([labels[name], labels[name]])

    def boolean(values: np.ndarray) -> pd.arrays.BooleanArray:
        hit = np.bincount(where, weights=values.astype(float), minlength=n) > 0
        return pd.arrays.BooleanArray(hit, ~seen)

    for name in (*BOOLEAN_LABELS, *EXTRA_BOOLEAN_LABELS):
        if name == "nmd_sensitive":  # a property of each transcript, not of the pair
            values = np.concatenate([labels["nmd_sensitive_left"],
                                     labels["nmd_sensitive_right"]])
        else:
            values = both(name)
        out[name] = boolean(values)
    for name in _MAX_NUMERIC:
        best = np.full(n, -np.inf)
        np.fmax.at(best, where, both(name))
        out[name] = np.where(np.isfinite(best), best, np.nan)
    lowest = np.full(n, np.inf)
    np.fmin.at(lowest, where, both("shared_exon_fraction"))
    out["shared_exon_fraction"] = np.where(np.isfinite(lowest), lowest, np.nan)

    # splicing_class: the one kind of event seen over all comparisons, "complex" if several
    codes = both("splicing_class")
    bits = np.zeros(n, dtype=np.int64)
    has_event = codes >= 0
    np.bitwise_or.at(bits, where[has_event], np.left_shift(1, codes[has_event]))
    n_kinds = np.array([int(b).bit_count() for b in bits], dtype=np.int64)
    single = np.where(n_kinds == 1, np.log2(np.maximum(bits, 1)).astype(np.int64), 0)
    names = np.asarray(SPLICING_CLASSES, dtype=object)
    complex_code = len(SPLICING_EVENTS)
    chosen = np.where(n_kinds == 0, len(SPLICING_CLASSES) - 1,
                      np.where(n_kinds == 1, single, complex_code))
    out["splicing_class"] = pd.array(np.where(seen, names[chosen], None), dtype="string")
    return pd.DataFrame(out)

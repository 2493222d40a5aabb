"""Transcript structure: GTF parsing and cache (:mod:`.gtf`, :mod:`.cache`), switch-pair
labels (:mod:`.switch_pair_labels`, written by :mod:`.writer`), and the merge of an
annotation table into the explain tables (:mod:`.annotation_merge`)."""

from __future__ import annotations

from .annotation_merge import (
    annotate_driver_table,
    annotate_transcript_table,
    fill_annotation_gene_ids,
    load_annotation_table,
    present_annotation_columns,
)
from .cache import load_transcript_models
from .gtf import PARSER_VERSION, read_gtf
from .labels import CANONICAL_LABELS, EXTRA_LABELS
from .models import TranscriptModels
from .switch_pair_labels import annotate_switch_pairs, read_switch_pairs
from .writer import write_annotations

__all__ = [
    "CANONICAL_LABELS",
    "EXTRA_LABELS",
    "PARSER_VERSION",
    "TranscriptModels",
    "annotate_driver_table",
    "annotate_switch_pairs",
    "annotate_transcript_table",
    "fill_annotation_gene_ids",
    "load_annotation_table",
    "load_transcript_models",
    "present_annotation_columns",
    "read_gtf",
    "read_switch_pairs",
    "write_annotations",
]

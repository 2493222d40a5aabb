"""Names of the structural labels, in the order the reference writes them, plus ours."""

from __future__ import annotations

#: the reference's boolean labels, canonical order
BOOLEAN_LABELS: tuple[str, ...] = (
    "first_exon_changed",
    "last_exon_changed",
    "internal_exon_difference",
    "cds_changed",
    "utr_changed",
    "biotype_switch",
    "coding_status_change",
)
#: the reference's numeric labels, canonical order
NUMERIC_LABELS: tuple[str, ...] = (
    "transcript_length_delta",
    "cds_length_delta",
    "shared_exon_fraction",
)
#: the reference's 10 labels, canonical order
CANONICAL_LABELS: tuple[str, ...] = BOOLEAN_LABELS + NUMERIC_LABELS

#: labels isograph-gpu appends after the reference's (docs/structure.md defines each)
EXTRA_BOOLEAN_LABELS: tuple[str, ...] = ("tss_changed", "tts_changed", "intron_retention",
                                         "nmd_sensitive")
EXTRA_LABELS: tuple[str, ...] = (
    "tss_changed",
    "tts_changed",
    "exon_count_delta",
    "intron_retention",
    "splicing_class",
    "utr5_length_delta",
    "utr3_length_delta",
    "nmd_sensitive",
)

#: splicing event classes; a pair with several kinds of event is "complex"
SPLICING_EVENTS: tuple[str, ...] = (
    "exon_skipping",
    "mutually_exclusive_exons",
    "alternative_5prime_splice_site",
    "alternative_3prime_splice_site",
    "alternative_first_exon",
    "alternative_last_exon",
    "intron_retention",
)
SPLICING_CLASSES: tuple[str, ...] = (*SPLICING_EVENTS, "complex", "none")

#: exons downstream of the stop codon beyond which a transcript is NMD-sensitive (nt)
NMD_DISTANCE_NT = 50

OUTPUT_COLUMNS: tuple[str, ...] = ("transcript_id", "gene_id", *CANONICAL_LABELS, *EXTRA_LABELS)

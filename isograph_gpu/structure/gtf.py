"""GTF reader (GENCODE / Ensembl, plain or gzip) -> :class:`TranscriptModels`, with polars.

What is read (as the reference, §14.1, except where noted):

* ``transcript``, ``exon`` and ``CDS`` lines (case-sensitive); other features are ignored;
* ``transcript_id`` / ``gene_id`` from ``key "value"`` attributes; the biotype from
  ``transcript_type`` (GENCODE), else ``transcript_biotype`` (Ensembl), else "";
* lines without a transcript_id are dropped; a transcript's gene, chromosome, strand and
  biotype come from its (last) ``transcript`` line, or, when it has none, from its first exon
  line (else its first CDS line).

Differences from the reference: only whole lines that start with ``#`` are comments (the
reference cuts every line at its first ``#``, losing attributes such as ``tag "a#b"``), and a
key matches only as a whole attribute name (``transcript_id`` never matches inside
``xyz_transcript_id``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError, MissingInputError
from .models import TranscriptModels

#: bump when the parse result for the same file could change (invalidates caches)
PARSER_VERSION = "1"

KEPT_FEATURES = ("transcript", "exon", "CDS")


def _attribute(key: str) -> pl.Expr:
    """The value of ``key "value"`` in the attribute column (null when absent or empty)."""
    return pl.col("attributes").str.extract(rf'(?:^|[;\s]){key}\s+"([^"]+)"', 1)


_SCHEMA = {"chrom": pl.String, "source": pl.String, "feature": pl.String, "start": pl.Int64,
           "end": pl.Int64, "score": pl.String, "strand": pl.String, "frame": pl.String,
           "attributes": pl.String}


def _scan(path: Path, typed: bool = True) -> pl.LazyFrame:
    schema = _SCHEMA if typed else {name: pl.String for name in _SCHEMA}
    return pl.scan_csv(path, separator="\t", has_header=False, comment_prefix="#",
                       quote_char=None, schema=schema, raise_if_empty=False)


def _kept_rows(path: Path) -> pl.DataFrame:
    """transcript/exon/CDS rows with a transcript_id: chrom, feature, start, end, strand,
    attributes, transcript_id."""
    query = (
        _scan(path)
        .filter(pl.col("feature").is_in(KEPT_FEATURES))
        .select("chrom", "feature", "start", "end", "strand", "attributes")
        .with_columns(_attribute("transcript_id").alias("transcript_id"))
        .filter(pl.col("transcript_id").is_not_null())
    )
    try:
        return query.collect()
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        _explain_failure(path, exc)
        raise  # pragma: no cover  (_explain_failure always raises)


def _explain_failure(path: Path, exc: Exception) -> None:
    """Raise an InputError naming what is wrong with the GTF."""
    try:
        rows = (
            _scan(path, typed=False)
            .filter(pl.col("feature").is_in(KEPT_FEATURES))
            .with_columns(
                _attribute("transcript_id").alias("transcript_id"),
                pl.col("start").cast(pl.Int64, strict=False).alias("start_int"),
                pl.col("end").cast(pl.Int64, strict=False).alias("end_int"),
            )
            .filter(pl.col("start_int").is_null() | pl.col("end_int").is_null())
            .head(1)
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError):
        rows = None
    if rows is not None and rows.height:
        row = rows.row(0, named=True)
        raise InputError(
            f"GTF {path}: {row['feature']} line of {row['transcript_id']} has a non-integer "
            f"start/end ({row['start']!r}, {row['end']!r})") from exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    raise InputError(f"GTF {path} cannot be parsed as 9 tab-separated columns: {first}") \
        from exc


def read_gtf(path: str | os.PathLike[str]) -> TranscriptModels:
    """Parse a GTF (plain or gzip, detected from content) into transcript models."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"GTF file not found: {path}")
    kept = _kept_rows(path)
    if kept.height == 0:
        return _empty_models()
    is_header = kept["feature"] == "transcript"
    header_rows = kept.filter(is_header).unique("transcript_id", keep="last",
                                                maintain_order=True)
    intervals = kept.filter(~is_header)
    orphan_ids = intervals.select(pl.col("transcript_id").unique(maintain_order=True)).join(
        header_rows.select("transcript_id"), on="transcript_id", how="anti")
    parts = [header_rows]
    if orphan_ids.height:
        # transcripts without a transcript line take their first exon (else CDS) line
        parts.append(
            intervals.filter(pl.col("transcript_id").is_in(orphan_ids["transcript_id"]))
            .with_columns((pl.col("feature") != "exon").alias("_cds_first"))
            .with_row_index("_order")
            .sort("_cds_first", "_order")
            .unique("transcript_id", keep="first", maintain_order=True)
            .sort("_order")
            .drop("_cds_first", "_order"))
    transcripts = (
        pl.concat(parts)
        .with_columns(
            _attribute("gene_id").fill_null("").alias("gene_id"),
            pl.coalesce(_attribute("transcript_type"), _attribute("transcript_biotype"),
                        pl.lit("")).alias("biotype"),
        )
        .select("transcript_id", "gene_id", "chrom", "strand", "biotype")
    )
    n = transcripts.height
    rows = transcripts.select("transcript_id").with_row_index("row")
    located = (
        intervals.select("transcript_id", "feature", "start", "end")
        .join(rows, on="transcript_id", how="inner")
        .sort("row", "start", "end")
    )

    def csr(feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = located.filter(pl.col("feature") == feature)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(part["row"].to_numpy(), minlength=n), out=offsets[1:])
        return (offsets, part["start"].to_numpy().astype(np.int64, copy=False),
                part["end"].to_numpy().astype(np.int64, copy=False))

    exon_offsets, exon_start, exon_end = csr("exon")
    cds_offsets, cds_start, cds_end = csr("CDS")
    return TranscriptModels(
        transcript_id=transcripts["transcript_id"].to_numpy(),
        gene_id=transcripts["gene_id"].to_numpy(),
        chrom=transcripts["chrom"].fill_null("").to_numpy(),
        strand=transcripts["strand"].fill_null("").to_numpy(),
        biotype=transcripts["biotype"].to_numpy(),
        exon_offsets=exon_offsets, exon_start=exon_start, exon_end=exon_end,
        cds_offsets=cds_offsets, cds_start=cds_start, cds_end=cds_end,
    )


def _empty_models() -> TranscriptModels:
    empty_str = np.array([], dtype=object)
    empty_int = np.array([], dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    return TranscriptModels(empty_str, empty_str, empty_str, empty_str, empty_str,
                            zero, empty_int, empty_int, zero, empty_int, empty_int)

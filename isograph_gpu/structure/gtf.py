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
_COLUMNS = ("chrom", "feature", "start", "end", "strand", "attributes")


def _attribute(key: str) -> pl.Expr:
    """The value of ``key "value"`` in the attribute column (null when absent or empty)."""
    return pl.col("attributes").str.extract(rf'(?:^|[;\s]){key}\s+"([^"]+)"', 1)


def _read_lines(path: Path) -> pl.DataFrame:
    """The GTF's columns seqname, feature, start, end, strand, attributes (all strings)."""
    try:
        frame = pl.read_csv(
            path,
            separator="\t",
            has_header=False,
            comment_prefix="#",
            quote_char=None,
            schema={f"column_{i}": pl.String for i in range(9)},
            columns=[0, 2, 3, 4, 6, 8],
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"GTF {path} cannot be parsed as 9 tab-separated columns: {first}") \
            from exc
    return frame.rename(dict(zip(frame.columns, _COLUMNS, strict=True)))


def _to_int(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    cast = frame.with_columns(
        pl.col("start").cast(pl.Int64, strict=False).alias("start_int"),
        pl.col("end").cast(pl.Int64, strict=False).alias("end_int"),
    )
    bad = cast.filter(pl.col("start_int").is_null() | pl.col("end_int").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(
            f"GTF {path}: {row['feature']} line of {row['transcript_id']} has a non-integer "
            f"start/end ({row['start']!r}, {row['end']!r})"
        )
    return cast.drop("start", "end").rename({"start_int": "start", "end_int": "end"})


def read_gtf(path: str | os.PathLike[str]) -> TranscriptModels:
    """Parse a GTF (plain or gzip, detected from content) into transcript models."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"GTF file not found: {path}")
    lines = _read_lines(path)
    if lines.height == 0:
        return _empty_models()
    kept = (
        lines.lazy()
        .filter(pl.col("feature").is_in(KEPT_FEATURES))
        .with_columns(_attribute("transcript_id").alias("transcript_id"))
        .filter(pl.col("transcript_id").is_not_null())
        .collect()
    )
    kept = _to_int(kept, path)

    header_rows = kept.filter(pl.col("feature") == "transcript").unique(
        "transcript_id", keep="last", maintain_order=True
    )
    intervals = kept.filter(pl.col("feature") != "transcript")
    # transcripts without a transcript line take their first exon (else CDS) line
    orphans = (
        intervals.join(header_rows.select("transcript_id"), on="transcript_id", how="anti")
        .with_columns((pl.col("feature") != "exon").alias("_cds_first"))
        .with_row_index("_order")
        .sort("_cds_first", "_order")
        .unique("transcript_id", keep="first", maintain_order=True)
        .sort("_order")
        .drop("_cds_first", "_order")
    )
    transcripts = (
        pl.concat([header_rows, orphans])
        .with_columns(
            _attribute("gene_id").fill_null("").alias("gene_id"),
            pl.coalesce(_attribute("transcript_type"), _attribute("transcript_biotype"),
                        pl.lit("")).alias("biotype"),
        )
        .select("transcript_id", "gene_id", "chrom", "strand", "biotype")
        .with_row_index("row", offset=0)
    )
    n = transcripts.height
    rows = transcripts.select("transcript_id", pl.col("row").cast(pl.Int64))

    def csr(feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = (
            intervals.filter(pl.col("feature") == feature)
            .select("transcript_id", "start", "end")
            .join(rows, on="transcript_id", how="inner")
            .sort("row", "start", "end")
        )
        row = part["row"].to_numpy()
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
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

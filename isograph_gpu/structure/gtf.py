"""GTF reader (GENCODE / Ensembl, plain or gzip) -> :class:`TranscriptModels`, with polars.

What is read (as the reference, §14.1, except where noted):

* ``transcript``, ``exon`` and ``CDS`` lines (case-sensitive); other features are ignored;
* ``transcript_id`` / ``gene_id`` from ``key "value"`` attributes; the biotype from
  ``transcript_type`` (GENCODE), else ``transcript_biotype`` (Ensembl), else "";
* lines without a transcript_id are dropped; a transcript's gene, chromosome, strand and
  biotype come from its (last) ``transcript`` line, or, when it has none, from its first exon
  line (else its first CDS line).

Differences from the reference: a kept line with a missing, non-integer or non-positive
coordinate, or with end < start, is an error naming its line number (the reference used
such lines and got lengths such as 67694 for 418); only whole lines that start with ``#``
are comments (the reference cuts every line at its first ``#``, losing attributes such as
``tag "a#b"``), and a key matches only as a whole attribute name (``transcript_id`` never
matches inside ``xyz_transcript_id``).

How it is fast (a GENCODE-scale GTF is 3.4 M lines, 1.5 GB; see bench/bench_gtf.py): one
streaming polars scan reads the file without polars' comment handling (which makes the
tokenizer 2-3x slower; :func:`_kept_query` says how comment lines are dealt with), keeps
the three features and runs one regex per line (transcript_id) on all cores. gene_id and
the biotype come from the transcript lines, and only their attributes are kept (for
transcripts without a transcript line see :func:`read_gtf`). Lines are mapped to
transcripts with one hash join and sorted within transcripts with one stable argsort of an
integer key; no Python code runs per line.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from ..errors import InputError, MissingInputError
from .models import TranscriptModels

#: bump when the parse result for the same file could change (invalidates caches)
PARSER_VERSION = "2"

KEPT_FEATURES = ("transcript", "exon", "CDS")
_FEATURE = pl.Enum(KEPT_FEATURES)
_GZIP_MAGIC = b"\x1f\x8b"


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


def _open_gtf(path: Path) -> IO[bytes]:
    """``path`` opened for binary reading, through gzip when it starts with gzip's magic."""
    with open(path, "rb") as raw:
        magic = raw.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def _head(path: Path, size: int = 1 << 20) -> list[bytes]:
    """The complete lines in the first ``size`` bytes of a plain or gzip file (none if it
    cannot be read)."""
    try:
        with _open_gtf(path) as fh:
            data = fh.read(size)
            complete = len(data) < size or fh.read(1) == b""
    except (OSError, EOFError, zlib.error):
        return []
    lines = data.split(b"\n")
    return lines if complete else lines[:-1]


def _leading_comment_lines(head: list[bytes]) -> int:
    """Number of ``#`` lines at the top of the file whose head is ``head``."""
    n = 0
    for line in head:
        if not line.startswith(b"#"):
            break
        n += 1
    return n


def _has_transcript_lines(head: list[bytes]) -> bool:
    """False when the head lists exon/CDS lines but no transcript line (an exon-only GTF,
    whose transcripts all take their first exon line's attributes)."""
    features = {fields[2] for fields in (line.split(b"\t", 3) for line in head)
                if len(fields) > 3 and not fields[0].startswith(b"#")}
    return b"transcript" in features or not features & {b"exon", b"CDS"}


def _kept_query(path: Path, fast: bool, head: list[bytes] | None = None) -> pl.LazyFrame:
    """transcript/exon/CDS rows with a transcript_id: feature (enum), chrom, start, end,
    strand, attributes, transcript_id.

    ``fast`` reads without polars' comment handling (which makes the tokenizer 2-3x
    slower): the leading ``#`` lines are skipped and any later line whose first column
    starts with ``#`` is dropped, which is what ``comment_prefix="#"`` does for every line
    that still splits into valid columns. A comment line that does not (a non-integer in
    column 4, more than 9 columns) fails the fast read; the caller then reads again with
    ``comment_prefix``.
    """
    keep = pl.col("feature").is_in(KEPT_FEATURES)
    if fast:
        scan = pl.scan_csv(path, separator="\t", has_header=False, quote_char=None,
                           schema=_SCHEMA, raise_if_empty=False,
                           skip_lines=_leading_comment_lines(
                               _head(path) if head is None else head))
        keep = keep & ~pl.col("chrom").str.starts_with("#")
    else:
        scan = _scan(path)
    return (
        scan.filter(keep)
        .select(pl.col("feature").cast(_FEATURE), "chrom", "start", "end", "strand",
                "attributes", _attribute("transcript_id").alias("transcript_id"))
        .filter(pl.col("transcript_id").is_not_null())
    )


def _kept_rows(path: Path, finish: Callable[[pl.LazyFrame], pl.LazyFrame],
               head: list[bytes] | None = None) -> pl.DataFrame:
    """Collect ``finish(_kept_query(...))`` with the streaming engine (it runs the attribute
    regex on all cores); falls back to the comment-aware read, then explains a failure."""
    try:
        return finish(_kept_query(path, True, head)).collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError):
        pass
    try:
        return finish(_kept_query(path, fast=False)).collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        _explain_failure(path, exc)
        raise  # pragma: no cover  (_explain_failure always raises)


def _no_change(lines: pl.LazyFrame) -> pl.LazyFrame:
    return lines


def _transcript_attributes_only(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Keep the attributes of transcript lines only, as fresh strings: then the scan's
    buffers (1.3 GB at GENCODE scale) are released chunk by chunk instead of being kept
    alive by views into them: about a tenth less CPU time (page faults) and half the peak
    memory of a parse."""
    return lines.with_columns(pl.concat_str(
        [pl.when(pl.col("feature") == "transcript").then(pl.col("attributes")), pl.lit("")]
    ).alias("attributes"))


#: a kept line whose coordinates cannot be a 1-based inclusive interval
_INVALID_COORDINATES = (pl.col("start").is_null() | pl.col("end").is_null()
                        | (pl.col("start") < 1) | (pl.col("end") < pl.col("start")))
_TRANSCRIPT_ID = re.compile(rb'(?:^|[;\s])transcript_id\s+"([^"]+)"')


def _raise_invalid_coordinates(path: Path, n_invalid: int) -> None:
    """Raise an InputError naming the first kept line (1-based line number) whose start or
    end is missing, below 1, or whose end < start; ``n_invalid`` such lines exist. Reads the
    file once more, line by line, up to that line (only on this error path)."""
    with _open_gtf(path) as fh:
        for number, line in enumerate(fh, start=1):
            if line.startswith(b"#"):
                continue
            fields = line.rstrip(b"\r\n").split(b"\t")
            if len(fields) < 9 or fields[2].decode(errors="replace") not in KEPT_FEATURES:
                continue
            match = _TRANSCRIPT_ID.search(fields[8])
            if match is None:
                continue
            try:
                start, end = int(fields[3]), int(fields[4])
                problem = ("a start below 1" if start < 1 else
                           "end < start" if end < start else None)
            except ValueError:
                problem = "a missing coordinate"
            if problem is None:
                continue
            raise InputError(
                f"GTF {path} line {number}: {fields[2].decode(errors='replace')} of "
                f"{match.group(1).decode(errors='replace')} has {problem} "
                f"(start {fields[3].decode(errors='replace')!r}, end "
                f"{fields[4].decode(errors='replace')!r}); GTF coordinates are 1-based with "
                f"start <= end ({n_invalid} such line(s) in the file)")
    raise InputError(f"GTF {path}: {n_invalid} line(s) with a missing coordinate, a start "
                     f"below 1 or end < start")


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
    bad = _first_line_without_nine_columns(_head(path))
    if bad is not None:
        number, n_columns, text = bad
        raise InputError(
            f"GTF {path} cannot be parsed as 9 tab-separated columns: line {number} has "
            f"{n_columns} column(s) ({text!r}); is it a GTF?") from exc
    raise InputError(f"GTF {path} cannot be parsed as 9 tab-separated columns "
                     f"({type(exc).__name__}); is it a GTF?") from exc


def _first_line_without_nine_columns(head: list[bytes]) -> tuple[int, int, str] | None:
    """(line number, column count, start of the line) of the first data line of ``head``
    that does not have 9 tab-separated columns, or None."""
    for number, line in enumerate(head, start=1):
        line = line.rstrip(b"\r")
        if not line or line.startswith(b"#"):
            continue
        n_columns = len(line.split(b"\t"))
        if n_columns != 9:
            text = line[:60].decode("utf-8", errors="replace")
            return number, n_columns, text + ("..." if len(line) > 60 else "")
    return None


def read_gtf(path: str | os.PathLike[str]) -> TranscriptModels:
    """Parse a GTF (plain or gzip, detected from content) into transcript models.

    Transcripts without a transcript line take the attributes of their first exon (else
    CDS) line; a second read fetches those lines, unless the head of the file shows an
    exon-only GTF, for which every line's attributes are kept in the first read.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"GTF file not found: {path}")
    head = _head(path)
    # exon-only GTFs keep every line's attributes: each transcript needs its first exon's
    keep_all = not _has_transcript_lines(head)
    kept = _kept_rows(path, _no_change if keep_all else _transcript_attributes_only, head)
    if kept.height == 0:
        return _empty_models()
    n_invalid = kept.select(_INVALID_COORDINATES.sum()).item()
    if n_invalid:
        _raise_invalid_coordinates(path, n_invalid)
    is_header = kept["feature"] == "transcript"
    header = (kept.filter(is_header).select("transcript_id", "chrom", "strand", "attributes")
              .unique("transcript_id", keep="last", maintain_order=True))
    intervals = kept.select("feature", "start", "end", "transcript_id").filter(~is_header)
    row = _row_of(intervals, header, 0)
    parts = [header]
    if row.null_count():
        orphans = _orphan_transcripts(path, kept, head, keep_all, intervals, row, header)
        parts.append(orphans)
        row = row.fill_null(_row_of(intervals, orphans, header.height))
    del kept
    transcripts = pl.concat(parts).select(
        "transcript_id",
        _attribute("gene_id").fill_null("").alias("gene_id"),
        pl.col("chrom").fill_null(""),
        pl.col("strand").fill_null(""),
        pl.coalesce(_attribute("transcript_type"), _attribute("transcript_biotype"),
                    pl.lit("")).alias("biotype"),
    )
    return _transcript_models(transcripts, row, intervals)


def _orphan_transcripts(path: Path, kept: pl.DataFrame, head: list[bytes], keep_all: bool,
                        intervals: pl.DataFrame, row: pl.Series, header: pl.DataFrame
                        ) -> pl.DataFrame:
    """Header rows (``header``'s columns) for the transcripts without a transcript line
    (``row`` null): each takes its first exon (else CDS) line. Unless every line's
    attributes were kept in the first read (``keep_all``), a second read gets them."""
    ids = intervals.filter(row.is_null())["transcript_id"].unique().implode()

    def orphan_lines(lines: pl.LazyFrame) -> pl.LazyFrame:
        return lines.filter(pl.col("transcript_id").is_in(ids))

    return (
        (orphan_lines(kept.lazy()).collect() if keep_all
         else _kept_rows(path, orphan_lines, head))
        .with_row_index("line")
        .sort(pl.col("feature") != "exon", "line", maintain_order=True)
        .unique("transcript_id", keep="first", maintain_order=True)
        .sort("line")
        .select(header.columns))


def _transcript_models(transcripts: pl.DataFrame, row: pl.Series, intervals: pl.DataFrame
                       ) -> TranscriptModels:
    """Transcript attributes plus their exon and CDS intervals (``row``: each interval's
    transcript) as sorted CSR arrays."""
    n = transcripts.height
    rows = row.to_numpy()
    feature = intervals["feature"].to_physical().to_numpy()
    start = intervals["start"].to_numpy()
    end = intervals["end"].to_numpy()

    def csr(code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = feature == code
        order = _sorted_order(rows[mask], start[mask], end[mask])
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[mask], minlength=n), out=offsets[1:])
        return (offsets, start[mask][order].astype(np.int64, copy=False),
                end[mask][order].astype(np.int64, copy=False))

    exon_offsets, exon_start, exon_end = csr(KEPT_FEATURES.index("exon"))
    cds_offsets, cds_start, cds_end = csr(KEPT_FEATURES.index("CDS"))
    return TranscriptModels(
        transcript_id=transcripts["transcript_id"].to_numpy(),
        gene_id=transcripts["gene_id"].to_numpy(),
        chrom=transcripts["chrom"].to_numpy(),
        strand=transcripts["strand"].to_numpy(),
        biotype=transcripts["biotype"].to_numpy(),
        exon_offsets=exon_offsets, exon_start=exon_start, exon_end=exon_end,
        cds_offsets=cds_offsets, cds_start=cds_start, cds_end=cds_end,
    )


def _row_of(intervals: pl.DataFrame, transcripts: pl.DataFrame, first: int) -> pl.Series:
    """For each interval, ``first`` + the row of its transcript_id in ``transcripts``
    (null where absent), in interval order."""
    rows = transcripts.select("transcript_id").with_row_index("row", offset=first)
    return intervals.select("transcript_id").join(
        rows, on="transcript_id", how="left", maintain_order="left")["row"]


def _sorted_order(rows: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Permutation sorting intervals by (row, start, end).

    One stable argsort of ``row << b | start``, b the bit length of the largest start (fast:
    a GTF lists a transcript's lines together, so the keys come in long sorted or reversed
    runs); ``end`` only decides among equal (row, start), which a full lexsort handles when
    such ties are out of order, as it does keys that would not fit in 63 bits.
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    shift = int(start.max()).bit_length()
    if start.min() < 0 or int(rows.max()).bit_length() + shift > 63:
        return np.lexsort((end, start, rows))
    key = (rows.astype(np.int64) << shift) | start
    order = np.argsort(key, kind="stable")
    key = key[order]
    tied = np.flatnonzero(key[1:] == key[:-1])
    if len(tied) and np.any(end[order[tied]] > end[order[tied + 1]]):
        return np.lexsort((end, start, rows))
    return order


def _empty_models() -> TranscriptModels:
    empty_str = np.array([], dtype=object)
    empty_int = np.array([], dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    return TranscriptModels(empty_str, empty_str, empty_str, empty_str, empty_str,
                            zero, empty_int, empty_int, zero, empty_int, empty_int)

"""Parquet cache of parsed GTF transcript models, keyed by the GTF's content.

A cache is reused only when its schema metadata records the same cache format, the same
parser version and the same GTF (its size and an id derived from the SHA-256 of its whole
content, :func:`gtf_fingerprint`), and when the transcript models read back from it give
the stored checksum: an HMAC-SHA256 of the models keyed by the GTF's SHA-256
(:func:`models_digest`). The key is not in the cache, so the checksum binds the models to
that GTF: a changed or damaged byte is caught even where parquet still decodes it, and a
cache copied from another GTF fails whatever its metadata says. This is integrity, not
authenticity: whoever can read the GTF can compute the key. Anything else (another or
modified GTF, another parser version, unreadable, inconsistent, checksum mismatch) is
rebuilt with a UserWarning, never trusted silently. The GTF's mtime is not part of the key:
a GTF touched or copied without change keeps its cache. Cache files are written atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MissingInputError
from ..io.output import atomic_write_bytes, refuse_output_over_inputs
from ..progress import Progress
from .gtf import PARSER_VERSION, read_gtf
from .models import TranscriptModels

METADATA_KEY = b"isograph_gpu.gtf_cache"
CACHE_FORMAT = 3
_MIB = 1 << 20
#: the GTF is hashed as segments of this size on a thread per core
_SEGMENT = 64 * _MIB
_STRING_COLUMNS = ("transcript_id", "gene_id", "chrom", "strand", "biotype")
_INT_COLUMNS = ("exon_offsets", "exon_start", "exon_end", "cds_offsets", "cds_start",
                "cds_end")


class _StaleCache(Exception):
    """The cache exists but cannot be used; the message says why."""


def _segment_digest(path: Path, start: int, length: int) -> bytes:
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_MIB))
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        while length > 0:
            got = fh.readinto(buffer[: min(_MIB, length)])
            if not got:  # the file shrank while being read: the digest differs anyway
                break
            digest.update(buffer[:got])
            length -= got
    return digest.digest()


def gtf_fingerprint(path: str | os.PathLike[str],
                    progress: Progress | None = None) -> dict[str, object]:
    """Identity of a GTF file: its size and a SHA-256 over all of its bytes.

    The file is read as 64 MiB segments, hashed on a thread per core (hashlib releases the
    GIL); the fingerprint is the SHA-256 of the size and the segments' digests, so it
    depends on every byte and not on the number of threads. ``progress`` counts segments.
    """
    path = Path(path)
    size = path.stat().st_size
    starts = range(0, max(size, 1), _SEGMENT)
    workers = max(1, min(len(starts), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = []
        for part in pool.map(lambda a: _segment_digest(path, a, min(_SEGMENT, size - a)),
                             starts):
            parts.append(part)
            if progress is not None:
                progress.chunk("hash GTF", len(parts), len(starts), unit="segment")
    digest = hashlib.sha256(f"{size}/{_SEGMENT}".encode())
    for part in parts:
        digest.update(part)
    return {"size": size, "sha256": digest.hexdigest()}


def gtf_id(fingerprint: dict[str, object]) -> str:
    """What the cache records of its GTF: its size and a SHA-256 of a tagged copy of the
    GTF's SHA-256 (which identifies the GTF without revealing the checksum key)."""
    tagged = f"isograph-gpu gtf id:{fingerprint['sha256']}".encode()
    return f"{fingerprint['size']}:{hashlib.sha256(tagged).hexdigest()}"


def models_digest(models: TranscriptModels, gtf_sha256: str) -> str:
    """HMAC-SHA256, keyed by the GTF's SHA-256 (hex), of every field of ``models``:
    strings as their lengths and UTF-8 text, integers as little-endian int64. Equal models
    of the same GTF give equal digests."""
    digest = hmac.new(bytes.fromhex(gtf_sha256), digestmod=hashlib.sha256)
    for name in _STRING_COLUMNS:
        values = [str(v) for v in getattr(models, name).tolist()]
        lengths = np.fromiter(map(len, values), dtype="<i8", count=len(values))
        digest.update(f"{name}:{len(values)}:".encode())
        digest.update(lengths.tobytes())
        digest.update("".join(values).encode("utf-8", "surrogatepass"))
    for name in _INT_COLUMNS:
        values = np.ascontiguousarray(getattr(models, name), dtype="<i8")
        digest.update(f"{name}:{len(values)}:".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def load_transcript_models(gtf: str | os.PathLike[str],
                           cache: str | os.PathLike[str] | None = None,
                           progress: Progress | None = None) -> TranscriptModels:
    """Parse ``gtf``, or load its parse from ``cache`` when that was built from the same GTF
    by the same parser version; (re)writes the cache after a parse. ``progress`` reports
    the stages (hash, cached load or parse, cache write)."""
    progress = progress or Progress(enabled=False)
    gtf = Path(gtf)
    if not gtf.is_file():
        raise MissingInputError(f"GTF file not found: {gtf}")
    if cache is None:
        with progress.stage("parse GTF"):
            return read_gtf(gtf)
    cache = Path(cache)
    refuse_output_over_inputs([cache], [gtf], "GTF cache")  # a rebuild writes the cache
    with progress.stage("hash GTF"):
        fingerprint = gtf_fingerprint(gtf, progress)
    if cache.exists():
        try:
            with progress.stage("load GTF cache"):
                return read_cache(cache, fingerprint)
        except _StaleCache as exc:
            warnings.warn(f"GTF cache {cache} {exc}; rebuilding it from {gtf}", UserWarning,
                          stacklevel=2)
    with progress.stage("parse GTF"):
        models = read_gtf(gtf)
    try:
        with progress.stage("write GTF cache"):
            write_cache(models, cache, fingerprint)
    except OSError as exc:
        warnings.warn(f"could not write GTF cache {cache}: {exc.strerror or exc}",
                      UserWarning, stacklevel=2)
    return models


def _identity(fingerprint: dict[str, object]) -> dict[str, object]:
    """The cache metadata that must equal the current one: format, parser, GTF id."""
    return {"format": CACHE_FORMAT, "parser_version": PARSER_VERSION,
            "gtf": gtf_id(fingerprint)}


def write_cache(models: TranscriptModels, path: str | os.PathLike[str],
                fingerprint: dict[str, object]) -> None:
    """Write ``models`` of the GTF with :func:`gtf_fingerprint` ``fingerprint`` as parquet
    (one row per transcript, exon/CDS coordinate lists), with the cache identity and the
    models' :func:`models_digest` in the schema metadata (not the GTF's SHA-256); atomic."""
    columns: dict[str, pa.Array] = {
        name: pa.array(getattr(models, name).tolist(), type=pa.string())
        for name in _STRING_COLUMNS
    }
    for kind in ("exon", "cds"):
        offsets = pa.array(getattr(models, f"{kind}_offsets"), type=pa.int64())
        for side in ("start", "end"):
            values = pa.array(getattr(models, f"{kind}_{side}"), type=pa.int64())
            columns[f"{kind}_{side}"] = pa.LargeListArray.from_arrays(offsets, values)
    stored = {**_identity(fingerprint),
              "content_hmac": models_digest(models, str(fingerprint["sha256"]))}
    table = pa.table(columns).replace_schema_metadata(
        {METADATA_KEY: json.dumps(stored, sort_keys=True).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue())


def read_cache(path: Path, fingerprint: dict[str, object]) -> TranscriptModels:
    """Load a cache built from the GTF with :func:`gtf_fingerprint` ``fingerprint`` by this
    parser and cache format, whose models give its checksum; raises _StaleCache otherwise."""
    expected = _identity(fingerprint)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise _StaleCache(f"is unreadable ({type(exc).__name__})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise _StaleCache("has no isograph-gpu cache metadata")
    try:
        identity = json.loads(raw)
    except ValueError as exc:
        raise _StaleCache("has unreadable cache metadata") from exc
    if not isinstance(identity, dict):
        raise _StaleCache("has unreadable cache metadata")
    if identity.get("format") != expected["format"]:
        raise _StaleCache(f"has cache format {identity.get('format')!r} "
                          f"(current {expected['format']!r})")
    if identity.get("parser_version") != expected["parser_version"]:
        raise _StaleCache(
            f"was written by parser version {identity.get('parser_version')!r} "
            f"(current {expected['parser_version']!r})")
    if identity.get("gtf") != expected["gtf"]:
        raise _StaleCache("was built from a different or modified GTF")
    try:
        models = _models_from_table(pq.read_table(path))
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise _StaleCache(f"is corrupt ({type(exc).__name__})") from exc
    stored = identity.get("content_hmac")
    if not (isinstance(stored, str) and stored.isascii() and hmac.compare_digest(
            models_digest(models, str(fingerprint["sha256"])), stored)):
        raise _StaleCache("does not match its content checksum (changed or damaged)")
    return models


def _models_from_table(table: pa.Table) -> TranscriptModels:
    n = table.num_rows
    strings = {name: np.asarray(table.column(name).to_numpy(), dtype=object)
               for name in _STRING_COLUMNS}
    arrays: dict[str, np.ndarray] = {}
    for kind in ("exon", "cds"):
        offsets_seen = None
        for side in ("start", "end"):
            column = table.column(f"{kind}_{side}").combine_chunks()
            offsets = np.asarray(column.offsets, dtype=np.int64)
            values = np.asarray(column.flatten(), dtype=np.int64)
            offsets = offsets - offsets[0]
            if len(offsets) != n + 1 or len(values) != offsets[-1] or np.any(
                    np.diff(offsets) < 0):
                raise ValueError(f"inconsistent {kind} lists")
            if offsets_seen is not None and not np.array_equal(offsets, offsets_seen):
                raise ValueError(f"{kind} start/end lists differ in length")
            offsets_seen = offsets
            arrays[f"{kind}_{side}"] = values
        arrays[f"{kind}_offsets"] = offsets_seen
    return TranscriptModels(**strings, **arrays)

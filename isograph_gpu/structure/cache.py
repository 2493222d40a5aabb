"""Parquet cache of parsed GTF transcript models, keyed by the GTF's identity.

A cache is reused only when its schema metadata records the same parser version and the
same GTF: size, modification time (ns) and a content fingerprint (SHA-256 of the first and
last MiB and 16 evenly spaced 64 KiB blocks, plus the size). Anything else (stale, from
another GTF or parser version, unreadable, inconsistent) is rebuilt with a UserWarning,
never trusted silently. Cache files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MissingInputError
from ..io.output import atomic_write_bytes
from .gtf import PARSER_VERSION, read_gtf
from .models import TranscriptModels

METADATA_KEY = b"isograph_gpu.gtf_cache"
CACHE_FORMAT = 1
_MIB = 1 << 20
_BLOCK = 1 << 16
_N_BLOCKS = 16
_STRING_COLUMNS = ("transcript_id", "gene_id", "chrom", "strand", "biotype")


class _StaleCache(Exception):
    """The cache exists but cannot be used; the message says why."""


def gtf_fingerprint(path: str | os.PathLike[str]) -> dict[str, object]:
    """Identity of a GTF file: size, mtime_ns and a sampled-content SHA-256."""
    path = Path(path)
    stat = path.stat()
    size = stat.st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_MIB))
        for k in range(_N_BLOCKS):
            fh.seek(size * (k + 1) // (_N_BLOCKS + 1))
            digest.update(fh.read(_BLOCK))
        fh.seek(max(size - _MIB, 0))
        digest.update(fh.read(_MIB))
    return {"size": size, "mtime_ns": stat.st_mtime_ns, "sha256_sampled": digest.hexdigest()}


def load_transcript_models(gtf: str | os.PathLike[str],
                           cache: str | os.PathLike[str] | None = None) -> TranscriptModels:
    """Parse ``gtf``, or load its parse from ``cache`` when that was built from the same GTF
    by the same parser version; (re)writes the cache after a parse."""
    gtf = Path(gtf)
    if not gtf.is_file():
        raise MissingInputError(f"GTF file not found: {gtf}")
    if cache is None:
        return read_gtf(gtf)
    cache = Path(cache)
    expected = {"format": CACHE_FORMAT, "parser_version": PARSER_VERSION,
                "gtf": gtf_fingerprint(gtf)}
    if cache.exists():
        try:
            return read_cache(cache, expected)
        except _StaleCache as exc:
            warnings.warn(f"GTF cache {cache} {exc}; rebuilding it from {gtf}", UserWarning,
                          stacklevel=2)
    models = read_gtf(gtf)
    try:
        write_cache(models, cache, expected)
    except OSError as exc:
        warnings.warn(f"could not write GTF cache {cache}: {exc.strerror or exc}",
                      UserWarning, stacklevel=2)
    return models


def write_cache(models: TranscriptModels, path: str | os.PathLike[str],
                identity: dict[str, object]) -> None:
    """Write ``models`` as parquet (one row per transcript, exon/CDS coordinate lists),
    ``identity`` in the schema metadata; atomic."""
    columns: dict[str, pa.Array] = {
        name: pa.array(getattr(models, name).tolist(), type=pa.string())
        for name in _STRING_COLUMNS
    }
    for kind in ("exon", "cds"):
        offsets = pa.array(getattr(models, f"{kind}_offsets"), type=pa.int64())
        for side in ("start", "end"):
            values = pa.array(getattr(models, f"{kind}_{side}"), type=pa.int64())
            columns[f"{kind}_{side}"] = pa.LargeListArray.from_arrays(offsets, values)
    table = pa.table(columns).replace_schema_metadata(
        {METADATA_KEY: json.dumps(identity, sort_keys=True).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue())


def read_cache(path: Path, expected: dict[str, object]) -> TranscriptModels:
    """Load a cache whose identity equals ``expected``; raises _StaleCache otherwise."""
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
    if identity.get("format") != expected["format"] or \
            identity.get("parser_version") != expected["parser_version"]:
        raise _StaleCache(
            f"was written by parser version {identity.get('parser_version')!r} "
            f"(current {expected['parser_version']!r})")
    if identity.get("gtf") != expected["gtf"]:
        raise _StaleCache("was built from a different or modified GTF")
    try:
        table = pq.read_table(path)
        return _models_from_table(table)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise _StaleCache(f"is corrupt ({type(exc).__name__})") from exc


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

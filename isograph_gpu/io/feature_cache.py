"""The feature-matrix cache (``--feature-cache PATH``, ``ExplainConfig.feature_cache``): the
decoded feature table written once as a memory-mappable file, mapped on later runs instead
of decoded again.

File layout (one file, little-endian):

* ``MAGIC`` (8 bytes), the header length ``H`` (uint64), a 16-byte BLAKE2b digest of the
  header;
* the header, ``H`` bytes of JSON: the cache format, the **key** (the source file's size and
  a digest of all of its bytes, the requested layout), the matrix shape, the data offset,
  the data digest, the sample ids, the feature ids and the table's own feature metadata;
* at ``data_offset`` (a multiple of 4096): the values as float64, features-major: feature
  ``j``'s samples are contiguous (a C-ordered [features, samples] array, i.e. the
  Fortran-ordered samples x features matrix the engine reads), all rows and columns of the
  table in its own order.

Key: the source's bytes are hashed on every run (:func:`content_digest`: xxh3-128 with the
``cache`` extra, ~16 GB/s on one core, else BLAKE2b, ~0.6 GB/s per core, on a thread per
core), so a table rewritten with the same size and mtime is caught; size and mtime are not
trusted. A cache is used only when its header digest, its key and the digest of its data
all match (a damaged byte anywhere is caught); anything else (another or changed table,
another layout, a damaged or truncated cache) is a UserWarning and a rebuild, never a wrong
table. A path that exists and is not a feature cache is refused, never written over; so is
the feature table itself or any other input (real paths compared). Written atomically.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError, OutputError
from ..progress import Progress
from .feature_blocks import FeatureBlocks
from .memory import (
    LOAD_BLOCK_BYTES,
    STREAM_BYTES_IN_FLIGHT,
    stream_read_columns,
    table_fits_in_memory,
)
from .output import atomic_write, refuse_output_over_inputs
from .table_readers import existing_file

if TYPE_CHECKING:  # the opener in feature_tables imports this module
    from .feature_tables import FeatureTable

MAGIC = b"IGFCACHE"
CACHE_FORMAT = 1
_PREFIX = struct.Struct("<8sQ16s")  # magic, header length, header digest
_ALIGN = 4096
_MIB = 1 << 20
#: bytes hashed per task (segments are hashed on a thread per core, then combined)
HASH_SEGMENT = 64 * _MIB
_DTYPE = np.dtype("<f8")


class _StaleCache(Exception):
    """The cache exists but cannot be used; the message says why."""


def hash_algorithm() -> str:
    """``"xxh3_128"`` when the ``xxhash`` package is installed, else ``"blake2b"``."""
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return "blake2b"
    return "xxh3_128"


def _hasher(algorithm: str) -> Callable[[Any], Any]:
    if algorithm == "xxh3_128":
        import xxhash

        return xxhash.xxh3_128
    if algorithm == "blake2b":
        return lambda data=b"": hashlib.blake2b(data, digest_size=16)
    raise _StaleCache(f"uses the unknown hash {algorithm!r}")


def content_digest(buffer: Any, algorithm: str,
                   release: Callable[[int, int], None] | None = None) -> str:
    """Hex digest of every byte of ``buffer`` (bytes-like): the digest of its length and the
    digests of its :data:`HASH_SEGMENT` segments, hashed on a thread per core (hashlib and
    xxhash release the GIL), so it does not depend on the number of threads. ``release``
    is called with each segment's ``(start, length)`` once it is hashed: a mapped buffer
    drops its pages there (:func:`mapping_release`), so hashing a mapped file does not
    make the whole file resident in this process."""
    new = _hasher(algorithm)
    view = memoryview(buffer).cast("B")
    starts = range(0, len(view), HASH_SEGMENT)
    workers = max(1, min(len(starts), os.cpu_count() or 1))

    def segment(a: int) -> bytes:
        digest = new(view[a:a + HASH_SEGMENT]).digest()
        if release is not None:
            release(a, min(HASH_SEGMENT, len(view) - a))
        return digest

    with ThreadPoolExecutor(workers, thread_name_prefix="isograph-hash") as pool:
        parts = list(pool.map(segment, starts))
    total = new(f"{len(view)}/{HASH_SEGMENT}".encode())
    for part in parts:
        total.update(part)
    return total.hexdigest()


def mapping_release(mapped: mmap.mmap, offset: int = 0) -> Callable[[int, int], None]:
    """A ``release`` for :func:`content_digest` of ``mapped`` from byte ``offset`` (a
    multiple of the page size): ``madvise(MADV_DONTNEED)`` each hashed segment (the mapping
    is read-only or private and unwritten: its pages are read from the file again if
    touched later). A no-op where madvise is not available."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return lambda start, length: None

    def release(start: int, length: int) -> None:
        mapped.madvise(mmap.MADV_DONTNEED, offset + start, length)

    return release


def file_digest(path: Path, algorithm: str) -> str:
    """:func:`content_digest` of the bytes of the file ``path`` (mapped, not copied; each
    segment's pages dropped once hashed)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return content_digest(b"", algorithm)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return content_digest(mapped, algorithm, mapping_release(mapped))


def cache_key(source: Path, layout: str, progress: Progress | None = None
              ) -> dict[str, Any]:
    """What a cache of ``source`` read as ``layout`` must record to be used: the cache
    format, the layout, the file's size and the :func:`file_digest` of its bytes."""
    algorithm = hash_algorithm()
    with (progress or Progress()).stage("hash feature table"):
        digest = file_digest(source, algorithm)
    return {"format": CACHE_FORMAT, "layout": str(layout),
            "source": {"size": source.stat().st_size, "hash": algorithm, "digest": digest}}


def check_cache_path(cache: str | os.PathLike[str], inputs: Sequence[object] = (),
                     output_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache`` as a Path after refusing a directory (InputError), a cache that is, or
    resolves to, one of ``inputs`` (:func:`~isograph_gpu.io.output.refuse_output_over_inputs`,
    the rule every output of the package follows: links, ``..``, hard links and the
    entries of an input folder count; OutputError) or lies inside ``output_dir`` (replaced
    whole by each run; OutputError)."""
    cache = Path(cache)
    if cache.is_dir():
        raise InputError(f"feature cache {cache} is a directory; give a file path")
    refuse_output_over_inputs([cache], inputs, "feature cache",
                              own=lambda path: _readable_cache(Path(path)))
    if output_dir is not None:
        real, out = Path(os.path.realpath(cache)), Path(os.path.realpath(output_dir))
        if real == out or out in real.parents:
            raise OutputError(f"feature cache {cache} is inside the output dir {output_dir}, "
                              "which each run replaces; choose a path outside it")
    return cache


class CachedFeatureBlocks(FeatureBlocks):
    """Columns ``positions`` and rows ``rows`` of a mapped cache as the float64 samples x
    features matrix (see :class:`~isograph_gpu.io.feature_tables.FeatureBlocks`): a block
    of adjacent columns with the rows in file order is a view of the mapped file (Fortran
    order, no copy: on CUDA it goes from the page cache to the pinned buffers); other
    blocks are gathered into a new Fortran block. The reader names a read size
    (``read_columns``, as a streamed parquet) and ``read_parts`` (pages faulted in on the
    read-ahead thread)."""

    def __init__(self, data: np.ndarray, path: Path, positions: np.ndarray,
                 rows: np.ndarray) -> None:
        self._data, self._path = data, path  # [features, samples] C order, mapped
        self._positions = np.asarray(positions, dtype=np.int64)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._all_rows = bool(np.array_equal(self._rows, np.arange(data.shape[1])))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self._rows), len(self._positions)

    @property
    def read_columns(self) -> int:
        """Columns per read block: those of a streamed parquet (the same chunk plan)."""
        return max(1, LOAD_BLOCK_BYTES // max(1, 8 * len(self._rows)))

    @property
    def read_ahead_columns(self) -> int:
        """Columns one read may take while the next is read ahead."""
        return stream_read_columns(len(self._rows))

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        cols = self._positions[np.asarray(positions, dtype=np.int64)]
        if not len(cols):
            return np.empty((len(self._rows), 0), dtype=np.float64, order="F")
        adjacent = bool(cols[-1] - cols[0] + 1 == len(cols) and np.all(np.diff(cols) == 1))
        block = self._data[cols[0]:cols[-1] + 1] if adjacent else np.take(self._data, cols,
                                                                          axis=0)
        if not self._all_rows:
            block = np.take(block, self._rows, axis=1)  # C order [b, n]
        return np.asarray(block).T  # [n, b], Fortran order

    def to_matrix(self) -> np.ndarray:
        """The whole matrix, float64, Fortran order: the mapped file itself when the
        columns are adjacent and the rows in file order, else one gathered copy."""
        return self._read_positions(np.arange(len(self._positions), dtype=np.int64))

    def read_parts(self, a: int, b: int
                   ) -> tuple[Callable[[], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
        """Columns a:b as ``decode()`` (the block, its pages read on the calling thread:
        the read-ahead thread) and ``finish`` (called once the last block is freed: the
        mapped pages of the columns before a are dropped from this process's memory, so
        a streamed run's resident memory stays about a block; pages dropped are read
        from the file again if a later read needs them)."""
        def decode() -> np.ndarray:
            block = self._read_positions(np.arange(a, b, dtype=np.int64))
            flat = block.T.reshape(-1)  # C order [b, n]: a view
            if flat.size:
                np.add.reduce(flat[:: mmap.PAGESIZE // 8])  # one value per page
            return block

        def finish(block: np.ndarray) -> np.ndarray:
            if a < len(self._positions):
                self._drop_pages_before(int(self._positions[a]))
            return block

        return decode, finish

    def _drop_pages_before(self, column: int) -> None:
        """``madvise(MADV_DONTNEED)`` the whole pages of the file's columns before
        ``column`` (a private mapping that is never written: they are read again from
        the file if touched later)."""
        mapped = getattr(self._data, "_mmap", None)
        if mapped is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = int(getattr(self._data, "offset", 0)) % mmap.ALLOCATIONGRANULARITY
        end = start + column * self._data.shape[1] * self._data.itemsize  # in the mapping
        end -= end % mmap.PAGESIZE
        if end > 0:
            mapped.madvise(mmap.MADV_DONTNEED, 0, end)

    def __reduce__(self) -> tuple[Any, tuple[str, np.ndarray, np.ndarray]]:
        """Pickles as the cache path, columns and rows; unpickling maps the file again."""
        return _open_blocks, (str(self._path), self._positions, self._rows)


def _open_blocks(path: str, positions: np.ndarray, rows: np.ndarray) -> CachedFeatureBlocks:
    header = _read_header(Path(path))
    return CachedFeatureBlocks(_map_data(Path(path), header), Path(path), positions, rows)


class CachedFeatureTable:
    """A feature table served from its cache (same interface as the other feature tables:
    ``what``, ``where`` (the source table), ``sample_ids``, ``columns``, ``matrix(columns,
    rows)``, ``feature_meta()``). ``stream``: ``matrix`` gives a
    :class:`CachedFeatureBlocks`; ``False``: the matrix (the mapped file when no gather is
    needed); ``None``: stream only when it does not fit in memory."""

    def __init__(self, cache: Path, header: dict[str, Any], data: np.ndarray, what: str,
                 where: str, stream: bool | None) -> None:
        self.what, self.where, self.cache = what, where, cache
        self._data = data
        self.sample_ids = np.asarray(header["sample_ids"], dtype=object)
        self.columns = list(header["feature_ids"])
        self._meta = header["feature_meta"]
        if stream is None:
            stream = not table_fits_in_memory(*data.shape[::-1])
        self.streamed = bool(stream)

    def matrix(self, columns: Sequence[str], rows: np.ndarray
               ) -> np.ndarray | CachedFeatureBlocks:
        """float64 [len(rows), len(columns)], Fortran order, or its block reader."""
        positions = pd.Index(self.columns).get_indexer(list(columns)).astype(np.int64)
        blocks = CachedFeatureBlocks(self._data, self.cache, positions, rows)
        return blocks if self.streamed else blocks.to_matrix()

    def feature_meta(self) -> pd.DataFrame | None:
        """The metadata the source table carried itself (as text), or ``None``."""
        return None if self._meta is None else pd.DataFrame(self._meta, dtype=object)


def _read_prefix(path: Path) -> tuple[int, bytes, bytes]:
    with open(path, "rb") as fh:
        prefix = fh.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise _StaleCache("is truncated")
        _, length, digest = _PREFIX.unpack(prefix)
        if length > os.fstat(fh.fileno()).st_size:
            raise _StaleCache("is truncated")
        return length, digest, fh.read(length)


def _readable_cache(path: Path) -> bool:
    """:func:`is_feature_cache`, False where the file cannot be read."""
    try:
        return is_feature_cache(path)
    except OSError:
        return False


def is_feature_cache(path: Path) -> bool:
    """True when ``path`` starts with the feature-cache magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def _read_header(path: Path) -> dict[str, Any]:
    """The header of the cache ``path``, its digest checked; _StaleCache otherwise."""
    length, digest, raw = _read_prefix(path)
    if len(raw) != length:
        raise _StaleCache("is truncated")
    if hashlib.blake2b(raw, digest_size=16).digest() != digest:
        raise _StaleCache("has a damaged header (digest mismatch)")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise _StaleCache("has an unreadable header") from exc
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise _StaleCache(f"has cache format {header.get('format')!r} (current "
                          f"{CACHE_FORMAT})")
    return header


def _map_data(path: Path, header: dict[str, Any]) -> np.ndarray:
    """The data of the cache mapped copy-on-write (writable for torch, never written
    back): [features, samples] float64, C order."""
    shape = (int(header["n_features"]), int(header["n_samples"]))
    offset = int(header["data_offset"])
    if path.stat().st_size != offset + shape[0] * shape[1] * _DTYPE.itemsize:
        raise _StaleCache("has the wrong size for its matrix (truncated or extended)")
    if shape[0] * shape[1] == 0:
        return np.empty(shape, dtype=_DTYPE)
    return np.memmap(path, dtype=_DTYPE, mode="c", offset=offset, shape=shape)


def _data_release(data: np.ndarray) -> Callable[[int, int], None] | None:
    """The :func:`mapping_release` of the mapped cache data (``None`` when not mapped)."""
    mapped = getattr(data, "_mmap", None)
    if mapped is None:
        return None
    return mapping_release(mapped, int(getattr(data, "offset", 0)) % mmap.ALLOCATIONGRANULARITY)


def read_feature_cache(path: Path, key: dict[str, Any], progress: Progress | None = None
                       ) -> tuple[dict[str, Any], np.ndarray]:
    """The header and mapped data of the cache ``path`` when its key equals ``key`` and
    its data hash to the stored digest; :class:`_StaleCache` otherwise."""
    try:
        header = _read_header(path)
        stored = header.get("key") or {}
        if stored.get("source", {}).get("hash") != key["source"]["hash"]:
            raise _StaleCache(f"was keyed with the hash {stored.get('source', {}).get('hash')!r} "
                              f"(this installation: {key['source']['hash']!r})")
        if stored != key:
            raise _StaleCache("was built from a different or changed feature table "
                              "(or another --feature-layout)")
        data = _map_data(path, header)
        with (progress or Progress()).stage("verify feature cache"):
            digest = content_digest(data, header["key"]["source"]["hash"],
                                    _data_release(data)) if data.size \
                else content_digest(b"", header["key"]["source"]["hash"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise _StaleCache(f"is unreadable ({type(exc).__name__})") from exc
    if digest != header.get("data_digest"):
        raise _StaleCache("does not match its data digest (changed or damaged)")
    return header, data


def _feature_meta_columns(table: FeatureTable) -> dict[str, list[str | None]] | None:
    meta = table.feature_meta()
    if meta is None:
        return None
    return {str(c): [None if pd.isna(v) else str(v) for v in meta[c].tolist()]
            for c in meta.columns}


def write_feature_cache(table: FeatureTable, path: Path, key: dict[str, Any],
                        progress: Progress | None = None) -> None:
    """Write every row and column of ``table`` to the cache ``path`` (atomic): column
    groups are decoded on a thread per core (a streamed parquet decodes each group on
    about one core), :data:`~isograph_gpu.io.memory.STREAM_BYTES_IN_FLIGHT` of values
    at a time, and written at their offsets; then the data are hashed back from the
    file."""
    progress = progress or Progress()
    n, f = len(table.sample_ids), len(table.columns)
    algorithm = key["source"]["hash"]
    header: dict[str, Any] = {
        "format": CACHE_FORMAT, "key": key, "dtype": _DTYPE.str, "n_samples": n,
        "n_features": f, "data_offset": 0, "data_digest": "0" * 32,
        "sample_ids": [str(s) for s in table.sample_ids.tolist()],
        "feature_ids": [str(c) for c in table.columns],
        "feature_meta": _feature_meta_columns(table),
    }
    raw = json.dumps(header).encode()
    offset = -(-(_PREFIX.size + len(raw) + 64) // _ALIGN) * _ALIGN  # room for the offset
    header["data_offset"] = offset
    features = table.matrix(table.columns, np.arange(n, dtype=np.int64))
    workers = max(1, os.cpu_count() or 1)
    step = max(1, STREAM_BYTES_IN_FLIGHT // workers // max(1, 8 * n))
    starts = list(range(0, f, step))

    def write(fh: Any) -> None:
        fd = fh.fileno()
        os.ftruncate(fd, offset + n * f * _DTYPE.itemsize)

        def put(a: int) -> None:
            block = features[:, a:a + step]
            values = np.ascontiguousarray(np.asarray(block, dtype=_DTYPE).T)  # [b, n]
            os.pwrite(fd, memoryview(values).cast("B"), offset + a * n * _DTYPE.itemsize)

        with ThreadPoolExecutor(workers, thread_name_prefix="isograph-cache") as pool:
            for done, _ in enumerate(pool.map(put, starts), start=1):
                progress.chunk("decode feature table", done, len(starts), unit="block")
        if n * f:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
                header["data_digest"] = content_digest(memoryview(mapped)[offset:],
                                                       algorithm,
                                                       mapping_release(mapped, offset))
        else:
            header["data_digest"] = content_digest(b"", algorithm)
        final = json.dumps(header).encode()
        prefix = _PREFIX.pack(MAGIC, len(final), hashlib.blake2b(final,
                                                                 digest_size=16).digest())
        if len(prefix) + len(final) > offset:
            raise AssertionError("feature cache header outgrew its room")
        os.pwrite(fd, prefix + final, 0)
        fh.seek(0, os.SEEK_END)

    with progress.stage("write feature cache"):
        atomic_write(path, write)


def open_cached_feature_table(source: Any, cache: str | os.PathLike[str], what: str,
                              layout: str, stream: bool | None,
                              open_uncached: Callable[[bool | None], FeatureTable],
                              progress: Progress | None = None) -> FeatureTable:
    """The feature table ``source`` (a file) from ``cache`` when that was built from the
    same bytes and layout; else the table read by ``open_uncached(stream)``, written to
    ``cache`` and mapped (a stale or damaged cache is a UserWarning and is rebuilt; a
    cache that cannot be written is a UserWarning and the uncached table)."""
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"feature cache {cache} needs a feature table file, not an "
                         f"in-memory {type(source).__name__}")
    progress = progress or Progress()
    path = existing_file(source, what)
    cache = check_cache_path(cache, inputs=(path,))
    key = cache_key(path, layout, progress)
    if cache.exists():
        if not is_feature_cache(cache):
            raise InputError(f"feature cache {cache} exists and is not an isograph-gpu "
                             "feature cache; refusing to write over it (remove it or "
                             "choose another path)")
        try:
            with progress.stage("map feature cache"):
                header, data = read_feature_cache(cache, key, progress)
            return CachedFeatureTable(cache, header, data, what, str(path), stream)
        except _StaleCache as exc:
            warnings.warn(f"feature cache {cache} {exc}; rebuilding it from {path}",
                          UserWarning, stacklevel=2)
    table = open_uncached(True)
    try:
        write_feature_cache(table, cache, key, progress)
    except OSError as exc:
        warnings.warn(f"could not write feature cache {cache}: {exc}", UserWarning,
                      stacklevel=2)
        return table if stream is True else open_uncached(stream)
    header = _read_header(cache)
    return CachedFeatureTable(cache, header, _map_data(cache, header), what, str(path),
                              stream)

"""Atomic output: everything is written into a staging folder beside the destination and
moved into place only when the whole run succeeded.

A failed or interrupted run removes its staging folder and leaves the destination as it
was; a successful run replaces each file with ``os.replace`` (atomic per file), the
manifest last, so no table is ever half-written or half-overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder; the file
    gets the usual permissions (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(obj: Any) -> bytes:
    """JSON as the reference writes it (indent 2, sorted keys), NaN -> null."""
    return (json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n").encode()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _json_safe(obj.item())
    return obj


def write_parquet(table: pd.DataFrame | pa.Table, path: str | os.PathLike[str]) -> None:
    """Parquet of an Arrow table, or of a DataFrame without its index (as the reference:
    ``index=False``, pyarrow)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path)


class ParquetWriters:
    """Writer threads (one per core; pyarrow encodes without the GIL) with a bounded
    number of tables in flight, so host memory holds a few tables, not all of them."""

    def __init__(self, workers: int | None = None, max_pending: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._slots = threading.BoundedSemaphore(max_pending or 2 * self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    def submit(self, table: pd.DataFrame | pa.Table, path: Path) -> Future[None]:
        """Write ``table`` to ``path`` on a writer thread; blocks while the queue is full."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="isograph-gpu-writer")
        self._slots.acquire()
        try:
            future = self._pool.submit(write_parquet, table, path)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        return future

    def wait(self) -> None:
        """Wait for every write; re-raises the first failure (in submission order)."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def cancel(self) -> None:
        """Drop queued writes and wait for running ones (a failed run: nothing may still be
        writing once the staging folder is removed)."""
        for future in self._futures:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures = []


class WrittenTable:
    """A parquet table submitted to :meth:`StagedOutput.submit_parquet`, read back as a
    DataFrame on each call: from the staging folder until the commit, from the
    destination after it. Picklable (figure workers get it); the pending write is waited
    for in the process that submitted it."""

    def __init__(self, staged: StagedOutput, relative: str, written: Future[None]) -> None:
        self.staging, self.destination = staged.staging, staged.destination
        self.relative = relative
        self._written: Future[None] | None = written

    def __call__(self) -> pd.DataFrame:
        if self._written is not None:
            self._written.result()  # re-raises the write's failure
        path = self.staging / self.relative
        return pd.read_parquet(path if path.exists() else self.destination / self.relative)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_written": None}


class StagedOutput:
    """A staging folder whose files are moved to ``destination`` on :meth:`commit`."""

    def __init__(self, destination: Path, staging: Path) -> None:
        self.destination = destination
        self.staging = staging
        self._files: list[str] = []
        self._writers: ParquetWriters | None = None

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a path under the output dir) while staging."""
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative not in self._files:
            self._files.append(relative)
        return target

    @property
    def files(self) -> list[str]:
        """Relative paths of every file staged so far, in write order."""
        return list(self._files)

    def write_parquet(self, table: pd.DataFrame | pa.Table, relative: str) -> None:
        write_parquet(table, self.path(relative))

    def submit_parquet(self, table: pd.DataFrame | pa.Table, relative: str) -> Future[None]:
        """Register ``relative`` now and write ``table`` there on a writer thread (at most
        a few tables wait in memory; this blocks while they do). :meth:`wait_writes`
        before the commit; :meth:`cancel_writes` when the run fails."""
        if self._writers is None:
            self._writers = ParquetWriters()
        return self._writers.submit(table, self.path(relative))

    def wait_writes(self) -> None:
        """Wait for every submitted write; re-raises the first failure."""
        if self._writers is not None:
            self._writers.wait()

    def cancel_writes(self) -> None:
        """Drop queued writes and wait for the running ones."""
        if self._writers is not None:
            self._writers.cancel()

    def write_parquet_many(self, tables: Sequence[tuple[pd.DataFrame | pa.Table, str]]) -> None:
        """Write several tables at once: paths are registered in the given order, files
        are encoded on writer threads; the first failure is re-raised."""
        try:
            for table, relative in tables:
                self.submit_parquet(table, relative)
            self.wait_writes()
        except BaseException:
            self.cancel_writes()
            raise

    def write_json(self, obj: Any, relative: str) -> None:
        self.path(relative).write_bytes(json_bytes(obj))

    def commit(self, last: tuple[str, ...] = ()) -> None:
        """Move staged files into the destination (``last`` ones after all others)."""
        order = [f for f in self._files if f not in last] + [f for f in last if f in self._files]
        for rel in order:
            target = self.destination / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / rel, target)


@contextmanager
def staged_output(destination: str | os.PathLike[str]) -> Iterator[StagedOutput]:
    """Stage writes for ``destination``; commit only if the block exits normally.

    The staging folder is created first, so an unwritable destination fails before any
    computation (:class:`OutputError` naming the folder).
    """
    destination = Path(destination)
    parent = destination.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if destination.exists() and not destination.is_dir():
            raise OutputError(f"output dir {destination} exists and is not a directory")
        staging = parent / f".{destination.name}.isograph-gpu-staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write to output dir {destination}: {exc.strerror or exc}"
        ) from exc
    staged = StagedOutput(destination, staging)
    try:
        yield staged
        # manifest last: a reader that sees the manifest sees complete tables
        destination.mkdir(parents=True, exist_ok=True)
        staged.commit(last=("module_explanation_manifest.json",))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

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
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Parquet without the index (as the reference: ``index=False``, pyarrow)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path)


class StagedOutput:
    """A staging folder whose files are moved to ``destination`` on :meth:`commit`."""

    def __init__(self, destination: Path, staging: Path) -> None:
        self.destination = destination
        self.staging = staging
        self._files: list[str] = []

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

    def write_parquet(self, df: pd.DataFrame, relative: str) -> None:
        write_parquet(df, self.path(relative))

    def write_parquet_many(self, tables: Sequence[tuple[pd.DataFrame, str]]) -> None:
        """Write several tables at once: paths are registered in the given order, files
        are encoded on a thread per core (pyarrow releases the GIL while it encodes)."""
        targets = [(df, self.path(relative)) for df, relative in tables]
        workers = min(len(targets), os.cpu_count() or 1)
        if workers <= 1:
            for df, target in targets:
                write_parquet(df, target)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(lambda item: write_parquet(*item), targets):
                pass  # re-raises the first failure

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

"""Where the feature columns live between module blocks (:attr:`MemoryPlan.residency
<isograph_gpu.compute.plan.MemoryPlan>`), so each module block reads the table without
decoding it again.

:class:`FeatureColumns` serves every block's chunks. The first pass reads the source as
:func:`~isograph_gpu.compute.transfer.device_chunks` does (views of a host matrix, or a
streamed table read in runs ahead of the compute) and, by residency, keeps what the
later blocks read: "device" fills one [F, n] tensor on the device (the later blocks take
views of it: no host-to-device copy per block); "spill" writes the decoded float64
columns to an unlinked local file mapped into memory (the later blocks read it as a host
matrix: the table is decoded once per run); "host" and "stream" keep nothing. The values
are the same in every pass, so every block's statistics are those of a fresh read.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..errors import OutputError, first_line
from .plan import ChunkPlan, Residency
from .transfer import device_chunks


class _SpillingReader:
    """A block reader whose every read block is also written into ``spill`` [n, F]
    (Fortran order) before it is handed on; the reader's other attributes pass through."""

    def __init__(self, reader: Any, spill: np.ndarray) -> None:
        self._reader, self._spill = reader, spill

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    @property
    def shape(self) -> tuple[int, int]:
        return self._reader.shape

    def _keep(self, a: int, b: int, block: np.ndarray) -> np.ndarray:
        self._spill[:, a:b] = block
        return block

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        a, b = key[1].start, key[1].stop
        return self._keep(a, b, self._reader[:, a:b])

    @property
    def read_parts(self) -> Callable[[int, int], tuple[Callable[[], Any], Callable[[Any], np.ndarray]]]:
        """The reader's ``read_parts`` with each finished block spilled. Reads are
        finished in the order they were split (the reader's read-ahead contract: one
        finish for every read, in order), so each finish takes the next pending span."""
        parts = self._reader.read_parts  # AttributeError when the reader has none
        pending: deque[tuple[int, int, Callable[[Any], np.ndarray]]] = deque()

        def finish_next(decoded: Any) -> np.ndarray:
            a, b, finish = pending.popleft()
            return self._keep(a, b, finish(decoded))

        def split(a: int, b: int) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray]]:
            decode, finish = parts(a, b)
            pending.append((a, b, finish))
            return decode, finish_next

        return split


def spill_matrix(n: int, f: int, directory: str | os.PathLike[str] | None = None
                 ) -> np.ndarray:
    """A float64 [n, f] Fortran-order matrix backed by a local file in ``directory``
    (default: the system's temporary folder), its blocks reserved and the file unlinked at
    once: nothing stays on disk after the run, however it ends; a folder without room is
    an :class:`~isograph_gpu.errors.OutputError` naming it."""
    fd, path = tempfile.mkstemp(prefix="isograph-spill-", suffix=".f64", dir=directory)
    size = max(1, n * f * 8)
    try:
        try:  # reserve the blocks now: a full disk is an error here, not a fault later
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            raise OutputError(f"cannot spill the streamed feature table ({size} bytes) to "
                              f"{os.path.dirname(path)} (set TMPDIR to a folder with room, "
                              f"or --load-features): {first_line(exc)}") from exc
        with os.fdopen(fd, "r+b", closefd=False) as fh:
            mapped = np.memmap(fh, dtype=np.float64, mode="r+", shape=(n, f), order="F")
    finally:
        os.close(fd)
        os.unlink(path)
    return mapped


class FeatureColumns:
    """The feature table's columns as every module block reads them (see the module
    docstring). ``features``: the host matrix or block reader; ``residency`` from the
    run's :class:`~isograph_gpu.compute.plan.MemoryPlan`. :attr:`passes_decoded` counts
    the passes that read ``features`` itself."""

    def __init__(self, features: Any, residency: Residency, device: torch.device,
                 dtype: torch.dtype, spill_dir: str | os.PathLike[str] | None = None) -> None:
        self.source, self.residency = features, residency
        self.device, self.dtype = device, dtype
        self._spill_dir = spill_dir
        self._resident: torch.Tensor | None = None  # [F, n] on the device
        self._spilled: np.ndarray | None = None
        self.passes_decoded = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.source.shape

    def chunks(self, plan: ChunkPlan) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(a, b, x)`` for each span of ``plan``: x [n, b - a] on the device in the
        working dtype (from what an earlier pass kept, else from the source)."""
        if self._resident is not None:
            for a, b in plan.spans:
                yield a, b, self._resident[a:b].T
            return
        if self._spilled is not None:
            yield from device_chunks(self._spilled, plan, self.device, self.dtype)
            return
        yield from self._first_pass(plan)

    def _first_pass(self, plan: ChunkPlan) -> Iterator[tuple[int, int, torch.Tensor]]:
        n, f = self.shape
        self.passes_decoded += 1
        source, keep = self.source, None
        if self.residency == "spill":
            spilled = spill_matrix(n, f, self._spill_dir)
            source = _SpillingReader(self.source, spilled)
        elif self.residency == "device":
            keep = torch.empty((f, n), dtype=self.dtype, device=self.device)
        covered = 0
        for a, b, x in device_chunks(source, plan, self.device, self.dtype):
            if keep is not None:
                keep[a:b] = x.T  # device to device
            covered = b
            yield a, b, x
        if covered == f:  # a pass left early keeps nothing
            if keep is not None:
                self._resident = keep
            elif self.residency == "spill":
                self._spilled = spilled

    def close(self) -> None:
        """Free what the passes kept."""
        self._resident, self._spilled = None, None

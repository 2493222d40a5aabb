"""Where the feature table and its statistics live between module blocks
(:attr:`MemoryPlan.residency <isograph_gpu.compute.plan.MemoryPlan>`), so each module
block is computed without decoding the table again.

:class:`FeatureColumns` serves every pass's chunks: views of a host matrix, or a streamed
table read in runs ahead of the compute (:func:`~isograph_gpu.compute.transfer.device_chunks`).
With residency "device" the first pass fills one [F, n] tensor on the device and the later
blocks take views of it (no host-to-device copy per block). With "spill" (a table read by
several blocks, not kept on the device) one pass computes every module as a run of one
block does (:class:`isograph_gpu.statistics.FeaturePasses`: each chunk read, masked and
centred once, one GEMM set for all modules); the first block's statistics stay on the
device and the later blocks' go to a :class:`StatisticsSpill` (an unlinked local file)
until their tables are built. "host" and "stream" keep nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import OutputError, first_line
from .plan import ChunkPlan, Residency
from .results import FeatureStatistics
from .transfer import device_chunks


class StatisticsSpill:
    """The table features' statistics [F, Kb] of module blocks computed ahead of their
    turn, in one unlinked local file in ``directory`` (default: the system's temporary
    folder) whose blocks are reserved at once: nothing stays on disk after the run,
    however it ends; a folder without room is an
    :class:`~isograph_gpu.errors.OutputError` naming it. ``modules``: the modules (Kb) of
    each block kept, ``splits`` the contrast split names. Written chunk by chunk
    (:meth:`store`), read back once per block (:meth:`load`); nothing is mapped, so the
    host holds one block's statistics at a time."""

    def __init__(self, n_features: int, modules: Sequence[int], splits: Sequence[str],
                 directory: str | os.PathLike[str] | None = None) -> None:
        self.n_features, self.modules = int(n_features), [int(k) for k in modules]
        self.splits = list(splits)
        #: per block: name -> (byte offset, bytes per feature) of each statistic
        self._layout: list[dict[str, tuple[int, int]]] = []
        offset = 0
        for k in self.modules:
            layout = {}
            for name, t in self._empty(0, k).named_tensors().items():
                row = t.element_size() * (k if t.ndim == 2 else 1)
                layout[name] = (offset, row)
                offset += row * self.n_features
            self._layout.append(layout)
        #: bytes of the file
        self.nbytes = offset
        fd, path = tempfile.mkstemp(prefix="isograph-spill-", suffix=".stats", dir=directory)
        os.unlink(path)
        try:  # reserve the blocks now: a full disk is an error here, not a fault later
            if offset:
                os.posix_fallocate(fd, 0, offset)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot spill the statistics of the later module blocks "
                              f"({offset} bytes) to {os.path.dirname(path)} (set TMPDIR to "
                              f"a folder with room, or --load-features): "
                              f"{first_line(exc)}") from exc
        self._fd: int | None = fd

    def _empty(self, f: int, k: int) -> FeatureStatistics:
        # row-major: a chunk's rows a:b are one contiguous range of each statistic
        return FeatureStatistics.empty(f, k, self.splits, torch.device("cpu"),
                                       column_major=False)

    def store(self, index: int, a: int, b: int, chunk: FeatureStatistics) -> None:
        """Write ``chunk`` (block ``index``'s statistics of features a:b, any device) into
        the file."""
        if self._fd is None:
            raise ValueError("the statistics spill is closed")
        layout = self._layout[index]
        for name, t in chunk.named_tensors().items():
            offset, row = layout[name]
            host = np.ascontiguousarray(t.detach().cpu().numpy())
            os.pwrite(self._fd, memoryview(host).cast("B"), offset + a * row)

    def load(self, index: int, device: torch.device) -> FeatureStatistics:
        """Block ``index``'s statistics [F, Kb] on ``device``, as stored."""
        if self._fd is None:
            raise ValueError("the statistics spill is closed")
        out = self._empty(self.n_features, self.modules[index])
        for name, t in out.named_tensors().items():
            offset, _ = self._layout[index][name]
            view = memoryview(t.numpy()).cast("B")
            done = 0
            while done < len(view):
                got = os.preadv(self._fd, [view[done:]], offset + done)
                if got <= 0:
                    raise OutputError(f"the statistics spill ended {len(view) - done} "
                                      f"bytes early reading {name}")
                done += got
        return out if device.type == "cpu" else out.to(device)

    def close(self) -> None:
        """Free the file (already unlinked: its blocks go with the descriptor)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FeatureColumns:
    """The feature table's columns as every pass reads them (see the module docstring).
    ``features``: the host matrix or block reader; ``residency`` from the run's
    :class:`~isograph_gpu.compute.plan.MemoryPlan`. :attr:`passes_decoded` counts the
    passes that read ``features`` itself."""

    def __init__(self, features: Any, residency: Residency, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.source, self.residency = features, residency
        self.device, self.dtype = device, dtype
        self._resident: torch.Tensor | None = None  # [F, n] on the device
        self.passes_decoded = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.source.shape

    def chunks(self, plan: ChunkPlan) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(a, b, x)`` for each span of ``plan``: x [n, b - a] on the device in the
        working dtype (from the device copy a first pass kept, else from the source)."""
        if self._resident is not None:
            for a, b in plan.spans:
                yield a, b, self._resident[a:b].T
            return
        yield from self._first_pass(plan)

    def _first_pass(self, plan: ChunkPlan) -> Iterator[tuple[int, int, torch.Tensor]]:
        n, f = self.shape
        self.passes_decoded += 1
        keep = None
        if self.residency == "device":
            keep = torch.empty((f, n), dtype=self.dtype, device=self.device)
        covered = 0
        for a, b, x in device_chunks(self.source, plan, self.device, self.dtype):
            if keep is not None:
                keep[a:b] = x.T  # device to device
            covered = b
            yield a, b, x
        if keep is not None and covered == f:  # a pass left early keeps nothing
            self._resident = keep

    def close(self) -> None:
        """Free what the passes kept."""
        self._resident = None

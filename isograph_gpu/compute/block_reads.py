"""Reads of a streamed feature table in runs of whole chunks, the next run decoded on a
background thread while the engine computes on the last (:class:`BlockReads`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io.read_ahead import read_ahead


class BlockReads:
    """``x[:, a:b]`` of a block reader served from reads of whole chunk ``groups``
    (``(r0, r1)`` column ranges, in order, each a run of whole chunk spans): each read of
    a wide parquet has a fixed cost, so chunks are views of the last group read.

    The groups are read in order one ahead (:func:`~isograph_gpu.io.read_ahead.read_ahead`):
    group ``i + 1`` is decoded on a background thread while the caller computes on group
    ``i``. A reader with ``read_parts`` (a parquet table) has its decoded columns made a
    block only after group ``i`` is freed; one without (the tests' block readers) is read
    whole on the background thread. Slices must come in group order (a slice outside the
    current and the next group is a ValueError). :meth:`close` waits for a read in flight.
    """

    def __init__(self, features: Any, groups: list[tuple[int, int]]) -> None:
        self._features, self._groups = features, list(groups)
        self._current, self._block = (0, 0), np.empty((0, 0))
        self._next = 0  # index in _groups of the next group read ahead
        parts = getattr(features, "read_parts", None)
        if parts is None:  # one step: each group is read whole on the background thread
            self._blocks = read_ahead([self._reader(r0, r1) for r0, r1 in self._groups])
        else:  # decoded there, made a block here once the last block is freed
            split = [parts(r0, r1) for r0, r1 in self._groups]
            finishes = iter([finish for _, finish in split])  # group i's, in order
            self._blocks = read_ahead([decode for decode, _ in split],
                                      lambda raw: next(finishes)(raw))

    def _reader(self, r0: int, r1: int) -> Any:
        return lambda: self._features[:, r0:r1]

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        a, b = key[1].start, key[1].stop
        r0, r1 = self._current
        if not r0 <= a < b <= r1:
            if self._next == len(self._groups):
                raise ValueError(f"columns {a}:{b} asked after the last read")
            r0, r1 = self._groups[self._next]
            if not r0 <= a < b <= r1:
                raise ValueError(f"columns {a}:{b} are not in the next read {r0}:{r1}: "
                                 "block reads take chunks in order")
            self._block = np.empty((0, 0))  # free the last block before taking the next
            self._current, self._block = (r0, r1), next(self._blocks)
            self._next += 1
        return self._block[:, a - r0:b - r0]

    def close(self) -> None:
        """Stop reading ahead (waits for a read in flight) and free the last block."""
        self._blocks.close()
        self._current, self._block = (0, 0), np.empty((0, 0))

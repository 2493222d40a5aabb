"""Reads of a streamed feature table in runs of whole chunks, the next run decoded on a
background thread while the engine computes on the last (:class:`BlockReads`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io.feature_blocks import FeatureBlocks, as_feature_blocks
from ..io.read_ahead import read_ahead


class BlockReads:
    """``x[:, a:b]`` of a block reader served from reads of whole chunk ``groups``
    (``(r0, r1)`` column ranges, in order, each a run of whole chunk spans): each read of
    a wide parquet has a fixed cost, so chunks are views of the last group read.

    The groups are read in order one ahead (:func:`~isograph_gpu.io.read_ahead.read_ahead`):
    group ``i + 1`` is decoded on a background thread while the caller computes on group
    ``i``, through the reader's
    :meth:`~isograph_gpu.io.feature_blocks.FeatureBlocks.read_parts` (a parquet table's
    decoded columns are made a block only after group ``i`` is freed; a reader without
    its own reads each group whole on the background thread). ``features``: a
    :class:`~isograph_gpu.io.feature_blocks.FeatureBlocks` or what
    :func:`~isograph_gpu.io.feature_blocks.as_feature_blocks` takes. Slices must come in
    group order (a slice outside the current and the next group is a ValueError).
    :meth:`close` waits for a read in flight.
    """

    def __init__(self, features: FeatureBlocks | Any, groups: list[tuple[int, int]]) -> None:
        reader = as_feature_blocks(features)
        self._groups = list(groups)
        self._current, self._block = (0, 0), np.empty((0, 0))
        self._next = 0  # index in _groups of the next group read ahead
        split = [reader.read_parts(r0, r1) for r0, r1 in self._groups]
        finishes = iter([finish for _, finish in split])  # group i's, in order
        self._blocks = read_ahead([decode for decode, _ in split],
                                  lambda raw: next(finishes)(raw))

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

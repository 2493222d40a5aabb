"""A streamed feature table is read in its own large blocks (each read of a wide parquet
has a fixed cost) while the engine computes on smaller chunks of each block."""

from __future__ import annotations

import numpy as np
import torch

from isograph_gpu.engine import device_chunks


class CountingBlocks:
    """A block reader over a matrix that counts its reads."""

    ndim = 2

    def __init__(self, x: np.ndarray, read_columns: int) -> None:
        self.x, self.read_columns, self.reads = x, read_columns, []

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def __getitem__(self, key):
        rows, cols = key
        self.reads.append((cols.start, cols.stop))
        return np.asfortranarray(self.x[rows, cols])


def test_chunks_are_views_of_large_reads():
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(5, 20)))
    blocks = CountingBlocks(x, read_columns=7)
    chunks = list(device_chunks(blocks, 3, torch.device("cpu"), torch.float64))
    assert blocks.reads == [(0, 7), (7, 14), (14, 20)]  # 3 reads, not 7
    spans = [(a, b) for a, b, _ in chunks]
    assert spans == [(0, 3), (3, 6), (6, 7), (7, 10), (10, 13), (13, 14), (14, 17),
                     (17, 20)]  # no chunk crosses a read block
    for a, b, chunk in chunks:
        np.testing.assert_array_equal(chunk.numpy(), x[:, a:b])


def test_plain_matrix_chunks_unchanged():
    x = np.asfortranarray(np.arange(30.0).reshape(3, 10))
    spans = [(a, b) for a, b, _ in device_chunks(x, 4, torch.device("cpu"), torch.float64)]
    assert spans == [(0, 4), (4, 8), (8, 10)]

"""A streamed feature table is read in its own large blocks (each read of a wide parquet
has a fixed cost) while the engine computes on smaller chunks of each block."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from _helpers.files import count_polars_reads
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu.engine import device_chunks
from isograph_gpu.io.feature_blocks import FeatureBlocks
from isograph_gpu.io.read_ahead import THREAD_NAME


class CountingBlocks(FeatureBlocks):
    """A block reader over a matrix that counts its reads (its read widths declared as
    :class:`FeatureBlocks` declares them)."""

    def __init__(self, x: np.ndarray, read_columns: int,
                 read_ahead_columns: int | None = None) -> None:
        self.x, self._read, self.reads = x, read_columns, []
        self._ahead = read_columns if read_ahead_columns is None else read_ahead_columns

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    @property
    def read_columns(self) -> int:
        return self._read

    @property
    def read_ahead_columns(self) -> int:
        return self._ahead

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        return np.asfortranarray(self.x[:, positions])

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


class ThreadRecordingBlocks(CountingBlocks):
    """A block reader that records which thread runs each read and how many chunks the
    caller had taken by then."""

    def __init__(self, x: np.ndarray, read_columns: int, read_ahead_columns: int) -> None:
        super().__init__(x, read_columns, read_ahead_columns)
        self.threads, self.taken, self.taken_at_read = [], 0, []

    def __getitem__(self, key):
        self.threads.append(threading.current_thread().name)
        self.taken_at_read.append(self.taken)
        return super().__getitem__(key)


def test_chunks_wider_than_the_read_ahead_width_are_read_one_at_a_time():
    """A chunk wider than the read-ahead width (a large budget: chunks cross read blocks)
    is read alone, in the caller, only when taken: never beside the next chunk's decode.
    The chunk plan is unchanged (spans of 7 across the 4-column read blocks)."""
    x = np.asfortranarray(np.random.default_rng(1).normal(size=(3, 30)))
    blocks = ThreadRecordingBlocks(x, read_columns=4, read_ahead_columns=6)
    spans = []
    for a, b, chunk in device_chunks(blocks, 7, torch.device("cpu"), torch.float64):
        spans.append((a, b))
        np.testing.assert_array_equal(chunk.numpy(), x[:, a:b])
        blocks.taken += 1
    assert spans == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    assert blocks.reads == spans  # one read per chunk, none twice
    assert blocks.threads == [threading.current_thread().name] * 5  # no read ahead
    assert blocks.taken_at_read == [0, 1, 2, 3, 4]


def test_chunks_within_the_read_ahead_width_are_read_ahead():
    x = np.asfortranarray(np.random.default_rng(2).normal(size=(3, 30)))
    blocks = ThreadRecordingBlocks(x, read_columns=10, read_ahead_columns=12)
    chunks = [(a, b) for a, b, _ in device_chunks(blocks, 6, torch.device("cpu"),
                                                  torch.float64)]
    assert chunks == [(0, 6), (6, 10), (10, 16), (16, 20), (20, 26), (26, 30)]
    assert blocks.reads == [(0, 10), (10, 20), (20, 30)]
    assert set(blocks.threads) == {THREAD_NAME}


def test_parquet_take_keeps_repeats_and_order(tmp_path, monkeypatch):
    """take of repeated, unsorted positions: every column asked for, in that order (a
    polars select of a repeated name returned it once), rows in the order asked for; the
    file is read once, each distinct column once. pandas indexing is the oracle."""
    import pandas as pd

    from isograph_gpu.io.feature_tables import SamplesByFeaturesTable

    rng = np.random.default_rng(7)
    values = rng.normal(size=(6, 12))
    values[rng.random(values.shape) < 0.2] = np.nan
    frame = pd.DataFrame(values, columns=[f"T{j:02d}" for j in range(12)])
    frame.insert(0, "sample_id", [f"0{i}" for i in range(6)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    table = SamplesByFeaturesTable(path, "feature_table", stream=True)
    rows = np.array([5, 0, 3, 1, 4, 2])
    blocks = table.matrix(table.columns, rows)
    widths = count_polars_reads(monkeypatch)
    positions = np.array([9, 2, 9, 0, 2, 11, 3])
    got = blocks.take(positions)
    assert widths == [5]  # 0, 2, 3, 9, 11: one read of the distinct columns
    assert got.shape == (6, 7) and got.flags.f_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, values[np.ix_(rows, positions)])


def test_read_groups_of_no_width_keep_each_chunk_alone():
    """Width 0 (a source without read blocks, as Dask groups it): one group per chunk."""
    from isograph_gpu.engine import read_groups

    assert read_groups([(0, 3), (3, 6), (6, 7)], 0) == [(0, 3), (3, 6), (6, 7)]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 200), st.integers(1, 40), st.integers(1, 40))
def test_read_groups_of_the_read_block_are_the_read_blocks(f, step, read):
    """Dask's tasks (read_groups of the chunk plan at the read block's width) are the
    chunks grouped by the read block they start in: the plain oracle below, whether the
    chunk fits a block (groups of whole blocks) or is wider (one chunk per task)."""
    from isograph_gpu.engine import chunk_spans, read_groups

    spans = chunk_spans(f, step, read)
    oracle: list[list[tuple[int, int]]] = []
    for a, b in spans:
        if oracle and oracle[-1][0][0] // read == a // read:
            oracle[-1].append((a, b))
        else:
            oracle.append([(a, b)])
    assert read_groups(spans, read) == [(g[0][0], g[-1][1]) for g in oracle]


def test_block_reads_take_chunks_in_order_only():
    """Slices of the streamed reads come in the chunk order; one outside the current and
    the next read is refused (no silent extra read)."""
    from isograph_gpu.compute.block_reads import BlockReads

    x = np.asfortranarray(np.arange(40.0).reshape(2, 20))
    blocks = CountingBlocks(x, read_columns=10)
    reads = BlockReads(blocks, [(0, 10), (10, 20)])
    try:
        np.testing.assert_array_equal(reads[:, 2:5], x[:, 2:5])
        with pytest.raises(ValueError, match="columns 8:12 are not in the next read 10:20"):
            reads[:, 8:12]
        np.testing.assert_array_equal(reads[:, 12:15], x[:, 12:15])
        with pytest.raises(ValueError, match="columns 0:3 asked after the last read"):
            reads[:, 0:3]
        assert blocks.reads == [(0, 10), (10, 20)]
    finally:
        reads.close()

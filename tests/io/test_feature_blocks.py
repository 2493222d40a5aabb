"""The declared reader protocol (io.feature_blocks.FeatureBlocks): every feature source
the engine reads (a streamed parquet, a backed .h5ad, a CSV or parquet loaded whole, a
minimal block source) keeps the same contract, checked against the values written to the
file; and the engine reads a reader that declares only ``shape`` and the one read
primitive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from isograph_gpu.engine import chunk_plan, device_chunks
from isograph_gpu.io.feature_blocks import FeatureBlocks, MatrixBlocks, as_feature_blocks
from isograph_gpu.io.feature_tables import SamplesByFeaturesTable

N, F = 7, 23


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, F))
    x[rng.random(x.shape) < 0.15] = np.nan
    return x


def _frame(values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=[f"T{j:03d}" for j in range(F)])
    frame.insert(0, "sample_id", [f"0{i}" for i in range(N)])
    return frame


class MinimalSource:
    """A block source outside the package: shape, x[:, a:b] and read_columns only."""

    read_columns = 5

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def __getitem__(self, key):
        return np.asfortranarray(self.x[key])


def _reader(kind: str, values: np.ndarray, rows: np.ndarray, tmp_path) -> FeatureBlocks:
    frame = _frame(values)
    if kind in ("parquet streamed", "parquet loaded"):
        path = tmp_path / "t.parquet"
        frame.to_parquet(path, index=False)
        table = SamplesByFeaturesTable(path, "feature_table",
                                       stream=kind == "parquet streamed")
        return as_feature_blocks(table.matrix(table.columns, rows))
    if kind == "csv":
        path = tmp_path / "t.csv"
        frame.to_csv(path, index=False)
        table = SamplesByFeaturesTable(path, "feature_table")
        return as_feature_blocks(table.matrix(table.columns, rows))
    if kind == "h5ad backed":
        anndata = pytest.importorskip("anndata")
        from isograph_gpu.io.anndata import AnnDataFeatureTable

        path = tmp_path / "t.h5ad"
        anndata.AnnData(X=values, obs=pd.DataFrame(index=frame["sample_id"]),
                        var=pd.DataFrame(index=frame.columns[1:])).write_h5ad(path)
        table = AnnDataFeatureTable(path, stream=True)
        return as_feature_blocks(table.matrix(table.columns, rows))
    assert kind == "minimal source"
    return as_feature_blocks(MinimalSource(np.asfortranarray(values[rows])))


@pytest.mark.parametrize("kind", ["parquet streamed", "parquet loaded", "csv",
                                  "h5ad backed", "minimal source"])
def test_every_reader_keeps_the_contract(kind, values, tmp_path):
    rows = np.array([6, 0, 3, 1, 5, 2, 4])
    blocks = _reader(kind, values, rows, tmp_path)
    expected = values[rows]
    assert isinstance(blocks, FeatureBlocks)
    assert blocks.shape == (N, F) and blocks.ndim == 2 and blocks.dtype == np.float64
    for a, b in ((0, 5), (5, 23), (11, 12), (4, 4)):
        block = blocks[:, a:b]
        assert block.dtype == np.float64 and block.flags.f_contiguous
        np.testing.assert_array_equal(block, expected[:, a:b])
        decode, finish = blocks.read_parts(a, b)
        np.testing.assert_array_equal(finish(decode()), expected[:, a:b])
    positions = np.array([9, 2, 9, 0, 22, 3])
    taken = blocks.take(positions)
    assert taken.flags.f_contiguous
    np.testing.assert_array_equal(taken, expected[:, positions])
    np.testing.assert_array_equal(blocks.to_matrix(), expected)
    np.testing.assert_array_equal(np.asarray(blocks), expected)
    for width in (blocks.read_columns, blocks.read_ahead_columns):
        assert width is None or (isinstance(width, int) and width >= 1)
    assert (blocks.read_columns is None) == (kind not in ("parquet streamed",
                                                          "minimal source"))


class PositionsOnly(FeatureBlocks):
    """A reader declaring only ``shape`` and the read primitive; records its reads."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.reads = x, []

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def _read_positions(self, positions: np.ndarray) -> np.ndarray:
        self.reads.append((int(positions[0]), int(positions[-1]) + 1))
        return np.asfortranarray(self.x[:, positions])


def test_the_engine_reads_a_reader_through_its_declared_defaults(values):
    """No read block declared (the default): each chunk is one read of its own columns,
    the chunk plan is the in-memory matrix's, and the chunks are the values."""
    x = np.asfortranarray(values)
    reader = PositionsOnly(x)
    chunks = list(device_chunks(reader, 6, torch.device("cpu"), torch.float64))
    assert reader.reads == [(0, 6), (6, 12), (12, 18), (18, 23)]
    for a, b, chunk in chunks:
        np.testing.assert_array_equal(chunk.numpy(), x[:, a:b])
    assert chunk_plan(reader, 3, 1, torch.float64, 0, 6) == chunk_plan(
        x, 3, 1, torch.float64, 0, 6)


def test_a_reader_must_declare_shape_and_its_read():
    class NoRead(FeatureBlocks):
        @property
        def shape(self) -> tuple[int, int]:
            return (1, 1)

    with pytest.raises(TypeError, match="abstract"):
        NoRead()


def test_a_loaded_matrix_is_read_as_views():
    x = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    blocks = as_feature_blocks(x)
    assert isinstance(blocks, MatrixBlocks) and as_feature_blocks(blocks) is blocks
    assert np.shares_memory(blocks[:, 1:3], x) and blocks.to_matrix() is x

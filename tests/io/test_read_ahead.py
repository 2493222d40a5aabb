"""Read ahead: a streamed table's next block is read on a background thread while the
engine computes on the last one. Results come in order, at most one read runs ahead, a
read's error reaches the caller unchanged, and no reader thread is left behind, whether the
loop ends, fails or is left early. The streamed matrix equals the file (pandas oracle)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers.explain import invoke_explain
from _helpers.files import count_polars_reads

from isograph_gpu.engine import device_chunks, read_groups
from isograph_gpu.errors import InputError
from isograph_gpu.io import feature_tables, memory
from isograph_gpu.io.feature_tables import ParquetFeatureBlocks, SamplesByFeaturesTable
from isograph_gpu.io.read_ahead import THREAD_NAME, read_ahead


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_results_in_order_one_read_ahead_at_most():
    taken: list[int] = []
    started: list[tuple[int, int]] = []  # (read, results the caller had taken by then)

    def read(i: int):
        def run() -> int:
            started.append((i, len(taken)))
            time.sleep(0.01)
            return i * i
        return run

    for value in read_ahead([read(i) for i in range(6)]):
        taken.append(value)
        time.sleep(0.02)  # the caller's compute; the next read runs meanwhile
    assert taken == [0, 1, 4, 9, 16, 25]
    # read i starts once the caller holds result i - 1 (taken: i - 1 of them before it)
    assert [i for i, _ in started] == list(range(6))
    assert all(n_taken >= i - 1 for i, n_taken in started)
    assert all(n_taken <= i for i, n_taken in started)
    assert not _reader_threads()


def test_finish_runs_in_the_caller_before_the_next_read_starts():
    """Decoded columns become a block in the caller, and only then is the next read
    started: a raw result, its block and a read in flight are never held together."""
    events: list[tuple[str, int, str]] = []

    def read(i: int):
        def run() -> int:
            events.append(("read", i, threading.current_thread().name))
            return i
        return run

    def finish(raw: int) -> int:
        events.append(("finish", raw, threading.current_thread().name))
        return raw * 10

    main = threading.current_thread().name
    assert list(read_ahead([read(i) for i in range(4)], finish)) == [0, 10, 20, 30]
    assert [(kind, i) for kind, i, _ in events] == [
        ("read", 0), ("finish", 0), ("read", 1), ("finish", 1), ("read", 2), ("finish", 2),
        ("read", 3), ("finish", 3)]
    assert all(name == (main if kind == "finish" else THREAD_NAME)
               for kind, _, name in events)
    assert not _reader_threads()


def test_a_read_error_reaches_the_caller_unchanged_and_no_thread_is_left():
    def fail() -> int:
        raise InputError("cannot read feature_table t.parquet as parquet: broken page")

    got = []
    with pytest.raises(InputError, match=r"^cannot read feature_table t\.parquet as parquet: "
                                         r"broken page$"):
        for value in read_ahead([lambda: 1, fail, lambda: 3]):
            got.append(value)
    assert got == [1]
    assert not _reader_threads()


def test_a_caller_that_stops_waits_for_the_read_in_flight():
    finished = []

    def slow() -> int:
        time.sleep(0.2)
        finished.append(True)
        return 2

    reads = read_ahead([lambda: 1, slow, lambda: 3])
    assert next(reads) == 1  # the slow read now runs ahead
    assert _reader_threads()
    reads.close()  # the caller fails or breaks: the read in flight ends first
    assert finished == [True] and not _reader_threads()


def _parquet(tmp_path, n: int = 7, f: int = 40) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(n, f))
    values[rng.random(values.shape) < 0.2] = np.nan
    frame = pd.DataFrame(values, columns=[f"T{j:03d}" for j in range(f)])
    frame.insert(0, "sample_id", [f"0{i}" for i in range(n)])
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    return frame.set_index("sample_id"), str(path)


def _streamed(path: str, rows: np.ndarray) -> ParquetFeatureBlocks:
    table = SamplesByFeaturesTable(path, "feature_table", stream=True)
    blocks = table.matrix(table.columns, rows)
    assert isinstance(blocks, ParquetFeatureBlocks)
    return blocks


def test_streamed_chunks_equal_the_unprefetched_read(tmp_path, monkeypatch):
    """Chunks keep the plan of a run without read ahead (never across a 12-column read
    block); reads take runs of whole chunks up to the read-ahead width (8 columns: two
    chunks of 4, across a block boundary too), each read once; values equal the file."""
    frame, path = _parquet(tmp_path)
    monkeypatch.setattr(feature_tables, "LOAD_BLOCK_BYTES", 7 * 8 * 12)
    monkeypatch.setattr(memory, "STREAM_BYTES_IN_FLIGHT", 7 * 8 * 3 * 8)
    rows = np.array([6, 0, 3, 1, 5, 2, 4])
    blocks = _streamed(path, rows)
    assert (blocks.read_columns, blocks.read_ahead_columns) == (12, 8)
    widths = count_polars_reads(monkeypatch)
    got = np.empty(blocks.shape)
    spans = []
    for a, b, x in device_chunks(blocks, 4, torch.device("cpu"), torch.float64):
        spans.append((a, b))
        got[:, a:b] = x.numpy()
    assert spans == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 28),
                     (28, 32), (32, 36), (36, 40)]
    assert widths == [8] * 5  # (0, 8), (8, 16), ...: one read per two chunks, none twice
    assert not _reader_threads()
    oracle = frame.iloc[rows].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(got, oracle)
    np.testing.assert_array_equal(got, blocks.to_matrix(workers=1))


def test_read_groups_take_whole_chunks_up_to_the_width():
    assert read_groups([(0, 4), (4, 8), (8, 10), (10, 14), (14, 30), (30, 31)], 9) == [
        (0, 8), (8, 14), (14, 30), (30, 31)]  # a chunk wider than 9 is a read of its own
    assert read_groups([], 5) == []


class FailingBlocks:
    """A block reader whose third read fails as a damaged file does."""

    ndim = 2
    read_columns = 5

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.reads = x, 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def __getitem__(self, key):
        self.reads += 1
        if self.reads == 3:
            raise InputError("cannot read feature_table x.parquet as parquet: bad block")
        return np.asfortranarray(self.x[key])


def test_a_failed_block_read_fails_the_loop_with_its_message(tmp_path):
    x = np.asfortranarray(np.arange(60.0).reshape(3, 20))
    blocks = FailingBlocks(x)
    seen = []
    with pytest.raises(InputError, match="bad block"):
        for a, b, chunk in device_chunks(blocks, 5, torch.device("cpu"), torch.float64):
            np.testing.assert_array_equal(chunk.numpy(), x[:, a:b])
            seen.append((a, b))
    assert seen == [(0, 5), (5, 10)]
    assert not _reader_threads()


def test_a_loop_left_early_leaves_no_reader_thread():
    x = np.asfortranarray(np.arange(60.0).reshape(3, 20))
    chunks = device_chunks(FailingBlocks(x), 5, torch.device("cpu"), torch.float64)
    next(chunks)  # block 2 is now read ahead
    chunks.close()
    assert not _reader_threads()


def test_take_reads_scattered_columns_in_one_read(tmp_path, monkeypatch):
    frame, path = _parquet(tmp_path)
    rows = np.array([2, 4, 6, 0, 1, 3, 5])
    blocks = _streamed(path, rows)
    reads = count_polars_reads(monkeypatch)
    positions = np.array([0, 1, 2, 9, 17, 18, 39])
    got = blocks.take(positions)
    assert len(reads) == 1 and got.flags.f_contiguous
    np.testing.assert_array_equal(got, frame.iloc[rows, positions].to_numpy(dtype=np.float64))
    assert blocks.take(np.array([], dtype=np.int64)).shape == (7, 0)


def test_stream_reads_fit_three_in_flight():
    assert memory.stream_read_columns(1000) * 1000 * 8 * 3 <= memory.STREAM_BYTES_IN_FLIGHT
    assert memory.stream_read_columns(10**12) == 1


def test_a_read_failing_mid_run_leaves_no_output_and_no_thread(ref_inputs, tmp_path,
                                                               monkeypatch):
    """A streamed run whose third read fails (a damaged block) exits with the read's
    one-line error, writes no output dir and leaves no reader thread."""
    # reads of at most 40 columns (the memory plan's width at a tiny budget)
    monkeypatch.setattr(ParquetFeatureBlocks, "read_ahead_columns", property(lambda _: 40))
    reads = []
    original = ParquetFeatureBlocks._decode

    def failing_decode(self, names):
        if self._what != "feature_table":  # feature_scores.parquet reads here too
            return original(self, names)
        reads.append(len(names))
        if len(reads) == 3:
            raise InputError(f"cannot read feature_table {self._path} as parquet: "
                             "damaged page")
        return original(self, names)

    monkeypatch.setattr(ParquetFeatureBlocks, "_decode", failing_decode)
    out = tmp_path / "out"
    result = invoke_explain(ref_inputs, out, "--module-ids", "M000", "--stream-features",
                            "--memory-budget", "64K")
    assert result.exit_code != 0
    assert result.output.strip().endswith("as parquet: damaged page"), result.output
    assert len(reads) == 3 and not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder either
    assert not _reader_threads()

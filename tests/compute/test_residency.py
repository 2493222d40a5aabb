"""Where the feature columns live between module blocks (compute.residency, decided by
compute.plan.MemoryPlan): a streamed table is decoded once per run whatever the number of
module blocks, a matrix kept on the device is copied there once, and every way gives the
tables of a loaded run bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers.explain import explain_api

from isograph_gpu import ExplainConfig, memory_model, pipeline
from isograph_gpu.compute import residency
from isograph_gpu.compute.plan import MemoryPlan, plan_chunks
from isograph_gpu.compute.residency import FeatureColumns
from isograph_gpu.io.feature_tables import ParquetFeatureBlocks, open_feature_table

TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")
#: one module's statistics per block for the reference tables (1,234 features, <= 600
#: feature_scores rows): every module is a block of its own
ONE_MODULE_BUDGET = (1234 * memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE
                     + 600 * memory_model.STATISTICS_BYTES_PER_SCORE_ROW_MODULE)


def _count_decodes(monkeypatch) -> list[int]:
    decodes: list[int] = []
    decode = ParquetFeatureBlocks._decode

    def counted(self, names):
        decodes.append(len(names))
        return decode(self, names)

    monkeypatch.setattr(ParquetFeatureBlocks, "_decode", counted)
    return decodes


def _count_blocks(monkeypatch) -> list[int]:
    blocks: list[int] = []
    compute = pipeline.compute_statistics

    def counted(inputs, ctx, layout, block, columns, *args):
        blocks.append(block.n_modules)
        return compute(inputs, ctx, layout, block, columns, *args)

    monkeypatch.setattr(pipeline, "compute_statistics", counted)
    return blocks


def test_a_streamed_table_is_decoded_once_for_every_module_block(ref_inputs, monkeypatch):
    """Every module a block of its own: the run decodes the table's columns as often as
    a run of one block does (once), and its tables are the loaded run's, bit for bit."""
    common = dict(device="cpu", chunk_features=400)
    loaded = explain_api(ref_inputs, config=ExplainConfig(
        stream_features=False, memory_budget_bytes=ONE_MODULE_BUDGET, **common))
    decodes, blocks = _count_decodes(monkeypatch), _count_blocks(monkeypatch)
    explain_api(ref_inputs, config=ExplainConfig(stream_features=True, **common))
    assert len(blocks) == 1
    one_block = sorted(decodes)
    decodes.clear()
    blocks.clear()
    streamed = explain_api(ref_inputs, config=ExplainConfig(
        stream_features=True, memory_budget_bytes=ONE_MODULE_BUDGET, **common))
    assert len(blocks) == len(loaded) >= 4  # one pass per module block
    assert sorted(decodes) == one_block  # the table's columns decoded once, not per block
    for module, result in loaded.items():
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(streamed[module], name),
                                          getattr(result, name), check_exact=True)


@pytest.mark.parametrize("where", ["device", "spill"])
def test_later_passes_read_what_the_first_kept(ref_inputs, monkeypatch, where):
    """Three passes over a streamed table: one read of the file (the later passes read
    the device copy, or the spilled columns, not the source), each pass the same values
    as a fresh read, in the working dtype. Reads of 250 columns: the first pass reads
    several runs ahead (chunks of 100) or chunk by chunk (chunks of 333)."""
    monkeypatch.setattr(ParquetFeatureBlocks, "read_columns", property(lambda self: 250))
    monkeypatch.setattr(ParquetFeatureBlocks, "read_ahead_columns",
                        property(lambda self: 250))
    table = open_feature_table(ref_inputs["feature_table"], stream=True)
    reader = table.matrix(table.columns, np.arange(len(table.sample_ids)))
    want = np.asarray(reader)
    decodes = _count_decodes(monkeypatch)
    copies: list[int] = []
    device_chunks = residency.device_chunks

    def counted(features, *args):
        copies.append(1)
        return device_chunks(features, *args)

    monkeypatch.setattr(residency, "device_chunks", counted)
    columns = FeatureColumns(reader, where, torch.device("cpu"), torch.float32)
    for width in (100, 333, 1234):  # any later chunk plan reads the kept columns
        plan = plan_chunks(reader, 3, torch.float32, 1 << 30, chunk_features=width)
        got = torch.cat([x for _, _, x in columns.chunks(plan)], dim=1)
        torch.testing.assert_close(got, torch.from_numpy(want).to(torch.float32), rtol=0,
                                   atol=0, equal_nan=True)  # bit for bit, NaN included
    assert sum(decodes) == want.shape[1]  # the source read once
    assert copies == ([1] if where == "device" else [1, 1, 1])  # device: no copy after
    assert columns.passes_decoded == 1


def test_plan_decides_load_and_residency():
    def plan(features, blocks=2, **kw):
        budget = blocks and 1000 * memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE
        return MemoryPlan.build(n_samples=50, n_features=1000, n_score_rows=0,
                                n_modules=2, n_splits=1, budget_bytes=budget,
                                dtype=torch.float64, device=torch.device("cpu"),
                                features=features, **kw)

    matrix, reader = np.zeros((50, 1000)), object()
    assert len(plan(matrix).blocks) == 2
    assert plan(matrix).residency == "host" and not plan(matrix).load
    assert plan(matrix, device_bytes=10**9).residency == "device"
    # opened in blocks, the rule deciding: one read block is loaded whole
    assert plan(reader, fits_in_memory=False).load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memory_model, "LOAD_BLOCK_BYTES", 0)  # as if larger than a read block
        assert plan(reader, fits_in_memory=True).load  # read by two blocks, and fits
        assert not plan(reader, fits_in_memory=False).load
        assert plan(reader, fits_in_memory=False).residency == "spill"
        assert plan(reader, stream_features=True).residency == "spill"
        assert plan(reader, stream_features=True, device_bytes=10**9).residency == "device"
        one = MemoryPlan.build(n_samples=50, n_features=1000, n_score_rows=0, n_modules=1,
                               n_splits=1, budget_bytes=1 << 30, dtype=torch.float64,
                               device=torch.device("cpu"), features=reader,
                               stream_features=True)
        assert one.residency == "stream" and len(one.blocks) == 1


def test_loaded_and_streamed_tables_share_one_chunk_plan(ref_inputs, monkeypatch, tmp_path):
    """Issue 21 item 17: a loaded matrix is cut on the chunk spans of the streamed reader
    (chunks keep to the read block either way), so at the same budget the runs are
    computed on the same chunks and their tables are equal bit for bit, here with read
    blocks of 300 columns, chunks of 70 and 3 module blocks."""
    from isograph_gpu.io import feature_tables

    read = 300
    monkeypatch.setattr(memory_model, "LOAD_BLOCK_BYTES", read * 8 * 200)
    monkeypatch.setattr(feature_tables, "LOAD_BLOCK_BYTES", read * 8 * 200)
    table = open_feature_table(ref_inputs["feature_table"], stream=True)
    reader = table.matrix(table.columns, np.arange(len(table.sample_ids)))
    assert reader.read_columns == read
    plan = MemoryPlan.build(n_samples=200, n_features=reader.shape[1], n_score_rows=600,
                            n_modules=3, n_splits=1, budget_bytes=ONE_MODULE_BUDGET,
                            dtype=torch.float64, device=torch.device("cpu"),
                            features=reader, chunk_features=70)
    spans = plan.feature_chunks(reader, 1).spans
    assert plan.feature_chunks(np.asarray(reader), 1).spans == spans
    assert (280, 300) in spans and (300, 370) in spans  # cut at the read block
    runs = {}
    for stream in (True, False):
        runs[stream] = explain_api(ref_inputs, module_ids=["M000", "M001", "M002"],
                                   config=ExplainConfig(
                                       device="cpu", stream_features=stream, chunk_features=70,
                                       memory_budget_bytes=ONE_MODULE_BUDGET))
    for module, result in runs[False].items():
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(runs[True][module], name),
                                          getattr(result, name), check_exact=True)


def test_attribution_takes_the_driver_columns_in_memory(ref_inputs, tmp_path, monkeypatch):
    """With return_tables=False (the CLI's way) the VAE drivers are joined onto driver
    columns kept in memory: no written table is read back, and vae_drivers is the
    return_tables=True run's."""
    from isograph_gpu.io import output

    config = ExplainConfig(device="cpu", vae_attribution=True)
    kept = explain_api(ref_inputs, module_ids=["M000", "M001"], config=config,
                       output_dir=tmp_path / "kept")
    reads: list[str] = []
    call = output.WrittenTable.__call__

    def counted(self):
        reads.append(self.relative)
        return call(self)

    monkeypatch.setattr(output.WrittenTable, "__call__", counted)
    lazy = explain_api(ref_inputs, module_ids=["M000", "M001"], config=config,
                       output_dir=tmp_path / "lazy", return_tables=False)
    assert reads == []  # nothing read back during the run
    for module in ("M000", "M001"):
        pd.testing.assert_frame_equal(lazy[module].vae_drivers, kept[module].vae_drivers,
                                      check_exact=True)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("source", ["loaded", "streamed"])
def test_cuda_resident_matrix_is_copied_once(ref_inputs, monkeypatch, source):
    """On a GPU a matrix kept on the device is copied there once (pinned transfer on the
    first pass), later passes are views of it, and every chunk is the host value cast."""
    table = open_feature_table(ref_inputs["feature_table"], stream=True)
    reader = table.matrix(table.columns, np.arange(len(table.sample_ids)))
    want = np.asarray(reader)
    features = want if source == "loaded" else reader
    copies: list[int] = []
    device_chunks = residency.device_chunks

    def counted(*args):
        copies.append(1)
        return device_chunks(*args)

    monkeypatch.setattr(residency, "device_chunks", counted)
    cuda = torch.device("cuda")
    columns = FeatureColumns(features, "device", cuda, torch.float64)
    for width in (100, 1234, 77):
        plan = plan_chunks(features, 3, torch.float64, 1 << 30, chunk_features=width)
        got = torch.cat([x for _, _, x in columns.chunks(plan)], dim=1)
        torch.testing.assert_close(got.cpu(), torch.from_numpy(want), rtol=0, atol=0,
                                   equal_nan=True)
    assert copies == [1]


@pytest.mark.cuda
@needs_cuda
def test_cuda_streamed_blocks_match_the_loaded_run(ref_inputs):
    """On a GPU a streamed table read by four module blocks (kept on the device after the
    first pass) gives the loaded run's tables bit for bit."""
    common = dict(device="cuda", chunk_features=400, memory_budget_bytes=ONE_MODULE_BUDGET)
    loaded = explain_api(ref_inputs, config=ExplainConfig(stream_features=False, **common))
    streamed = explain_api(ref_inputs, config=ExplainConfig(stream_features=True, **common))
    for module, result in loaded.items():
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(streamed[module], name),
                                          getattr(result, name), check_exact=True)


def test_a_spill_without_room_is_one_clear_error(tmp_path, monkeypatch):
    from isograph_gpu.errors import OutputError

    spilled = residency.spill_matrix(3, 4, tmp_path)
    spilled[:, 1:3] = 7.0
    assert spilled.flags.f_contiguous and list(tmp_path.iterdir()) == []  # unlinked
    np.testing.assert_array_equal(spilled[:, 2], [7.0, 7.0, 7.0])

    def no_room(fd, offset, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(residency.os, "posix_fallocate", no_room)
    with pytest.raises(OutputError, match="cannot spill the streamed feature table"):
        residency.spill_matrix(10, 20, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind

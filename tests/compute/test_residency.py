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


def test_covariates_and_switch_permutations_read_the_table_once(ref_inputs, monkeypatch,
                                                                 tmp_path):
    """--covariates and --switch-permutations on a streamed run, every module a block of
    its own: the partial statistics and the switch null come from the chunks the run
    reads anyway, so the table's columns are decoded as often as a plain one-block run
    decodes them (once), and the tables are those of a loaded run with the same options,
    bit for bit."""
    samples = pd.read_parquet(ref_inputs["feature_table"], columns=["sample_id"])["sample_id"]
    rng = np.random.default_rng(6)
    covariates = pd.DataFrame({"sample_id": samples, "depth": rng.normal(size=len(samples)),
                               "batch": rng.choice(["b1", "b2"], len(samples))})
    covariates.loc[7, "depth"] = np.nan
    covariates.to_csv(tmp_path / "cov.tsv", sep="\t", index=False)
    common = dict(device="cpu", chunk_features=400)
    options = dict(covariates=str(tmp_path / "cov.tsv"), switch_permutations=20, seed=3,
                   memory_budget_bytes=ONE_MODULE_BUDGET, **common)
    loaded = explain_api(ref_inputs, config=ExplainConfig(stream_features=False, **options))
    decodes, blocks = _count_decodes(monkeypatch), _count_blocks(monkeypatch)
    explain_api(ref_inputs, config=ExplainConfig(stream_features=True, **common))
    assert len(blocks) == 1
    one_block = sorted(decodes)
    decodes.clear()
    blocks.clear()
    streamed = explain_api(ref_inputs, config=ExplainConfig(stream_features=True, **options))
    assert len(blocks) == len(loaded) >= 4
    assert sorted(decodes) == one_block  # decoded once, options and all
    for module, result in loaded.items():
        polarity = streamed[module].transcript_polarity_table
        assert polarity["switch_pvalue"].notna().any()
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(streamed[module], name),
                                          getattr(result, name), check_exact=True)


def test_later_passes_read_the_device_copy(ref_inputs, monkeypatch):
    """Three passes over a streamed table kept on the device: one read of the file (the
    later passes read the device copy, not the source), each pass the same values as a
    fresh read, in the working dtype. Reads of 250 columns: the first pass reads several
    runs ahead (chunks of 100) or chunk by chunk (chunks of 333)."""
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
    columns = FeatureColumns(reader, "device", torch.device("cpu"), torch.float32)
    for width in (100, 333, 1234):  # any later chunk plan reads the kept columns
        plan = plan_chunks(reader, 3, torch.float32, 1 << 30, chunk_features=width)
        got = torch.cat([x for _, _, x in columns.chunks(plan)], dim=1)
        torch.testing.assert_close(got, torch.from_numpy(want).to(torch.float32), rtol=0,
                                   atol=0, equal_nan=True)  # bit for bit, NaN included
    assert sum(decodes) == want.shape[1]  # the source read once
    assert copies == [1]  # no copy after the first pass
    assert columns.passes_decoded == 1


def test_a_spilled_run_masks_and_centres_each_chunk_once(ref_inputs, monkeypatch):
    """Every module a block of its own: one pass over the table for every module (each
    chunk read, masked and centred once, not once per block), the later blocks'
    statistics read back from the spill. Loaded and streamed runs give the same tables,
    and their table-feature tables are those of a run of one block at the same chunks,
    bit for bit (the driver statistics of feature_scores are computed per block)."""
    from isograph_gpu import statistics
    from isograph_gpu.ops import moments

    common = dict(device="cpu", chunk_features=400)
    whole = explain_api(ref_inputs, config=ExplainConfig(stream_features=False, **common))
    passes: list[int] = []  # modules of each pass over the table features
    split: list[int] = []  # columns of each chunk masked and centred in such a pass
    spans: list[tuple[int, int]] = []
    centre, store = moments.centre_and_mask, statistics.store_chunks

    def counted(x, *args):
        if passes and passes[-1]:
            split.append(x.shape[1])
        return centre(x, *args)

    def one_pass(columns, chunks, prepared, *args, **kw):
        passes.append(prepared.n_modules)
        spans.extend(chunks.spans)
        try:
            return store(columns, chunks, prepared, *args, **kw)
        finally:
            passes.append(0)

    monkeypatch.setattr(moments, "centre_and_mask", counted)
    monkeypatch.setattr(statistics, "store_chunks", one_pass)
    blocks = _count_blocks(monkeypatch)
    runs = {}
    for stream in (True, False):
        passes.clear(), split.clear(), spans.clear(), blocks.clear()
        runs[stream] = explain_api(ref_inputs, config=ExplainConfig(
            stream_features=stream, memory_budget_bytes=ONE_MODULE_BUDGET, **common))
        assert len(blocks) == len(whole) >= 4
        assert passes == [len(whole), 0]  # one pass for every module
        assert split == [b - a for a, b in spans] and spans[-1][1] > 1000  # each chunk once
    for module, result in whole.items():
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(runs[True][module], name),
                                          getattr(runs[False][module], name),
                                          check_exact=True)
        for name in ("transcript_polarity_table", "high_vs_low_table"):
            pd.testing.assert_frame_equal(getattr(runs[True][module], name),
                                          getattr(result, name), check_exact=True)


def test_plan_decides_load_and_residency():
    def plan(features, blocks=2, **kw):
        budget = blocks and 1000 * memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE
        return MemoryPlan.build(n_samples=50, n_features=1000, n_score_rows=0,
                                n_modules=2, n_splits=1, budget_bytes=budget,
                                dtype=torch.float64, device=torch.device("cpu"),
                                features=features, **kw)

    matrix, reader = np.zeros((50, 1000)), object()
    assert len(plan(matrix).blocks) == 2
    assert plan(matrix).residency == "spill" and not plan(matrix).load  # one pass
    assert MemoryPlan.build(n_samples=50, n_features=1000, n_score_rows=0, n_modules=2,
                            n_splits=1, budget_bytes=1 << 30, dtype=torch.float64,
                            device=torch.device("cpu"), features=matrix).residency == "host"
    assert plan(matrix, distributed=True).residency == "host"
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
    spans = plan.feature_chunks(reader).spans
    assert plan.feature_chunks(np.asarray(reader)).spans == spans
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


def test_spilled_statistics_read_back_as_stored(tmp_path, monkeypatch):
    """The later blocks' statistics go to one unlinked file chunk by chunk and come back
    as stored, block by block; a folder without room is one clear error, nothing left."""
    from isograph_gpu.compute.results import FeatureStatistics
    from isograph_gpu.errors import OutputError

    rng = np.random.default_rng(0)
    spill = residency.StatisticsSpill(7, [2, 1], ["split"], tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked at once
    want = []
    for i, k in enumerate((2, 1)):
        full = FeatureStatistics.empty(7, k, ["split"], torch.device("cpu"))
        for t in full.named_tensors().values():
            t.copy_(torch.from_numpy(rng.integers(-50, 50, t.shape)).to(t.dtype) / 4)
        for a, b in ((0, 3), (3, 7)):  # two chunks
            chunk = FeatureStatistics.empty(b - a, k, ["split"], torch.device("cpu"))
            chunk.store(0, b - a, FeatureStatistics(
                **{n: getattr(full, n)[a:b] for n in ("r", "n", "pvalue", "n_finite")},
                contrasts={}))
            for name in chunk.named_tensors():
                if "." in name:
                    split, field = name.split(".")
                    getattr(chunk.contrasts[split], field).copy_(
                        getattr(full.contrasts[split], field)[a:b])
            spill.store(i, a, b, chunk)
        want.append(full)
    assert spill.nbytes == 7 * 8 * ((3 + 8) * 3 + 2)  # r/n/p + 8 Welch a module, n_finite
    for i in (0, 1):
        got = spill.load(i, torch.device("cpu")).named_tensors()
        for name, t in want[i].named_tensors().items():
            assert torch.equal(got[name], t), name
    spill.close()

    def no_room(fd, offset, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(residency.os, "posix_fallocate", no_room)
    with pytest.raises(OutputError, match="cannot spill the statistics of the later"):
        residency.StatisticsSpill(10, [3], ["split"], tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_plan_counts_the_switch_null_state_in_every_module_of_a_block():
    """The switch null's running max / min ([B, pairs] twice, float64) live for a module
    block: the plan's blocks hold as many modules as fit the budget with that state
    counted per module (pairs of the largest module)."""
    from isograph_gpu.compute.plan import null_state_bytes

    per_module = 1000 * memory_model.STATISTICS_BYTES_PER_FEATURE_MODULE
    state = null_state_bytes(50, 1000)
    assert state == 50 * 1000 * 2 * 8

    def sizes(null_bytes):
        plan = MemoryPlan.build(n_samples=50, n_features=1000, n_score_rows=0,
                                n_modules=12, n_splits=1, budget_bytes=6 * per_module,
                                dtype=torch.float64, device=torch.device("cpu"),
                                features=np.zeros((50, 1000)), null_state_bytes=null_bytes)
        return [s.stop - s.start for s in plan.blocks]

    assert sizes(0) == [6, 6]
    per_block = 6 * per_module // (per_module + state)
    assert per_block == 1 and sizes(state) == [per_block] * 12

"""result_tables: module columns copied in groups equal plain numpy slicing; every
module's high_vs_low columns come from its own column of the statistics, whatever the
order in which split and tails tables are built; the gene driver and transcript polarity
tables take each module's rows and gene segments as plain numpy indexing does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu import result_tables
from isograph_gpu.ops.contrast import WelchResult
from isograph_gpu.result_tables import HIGH_LOW_COLUMNS, ResultTables, TableIds, module_columns
from isograph_gpu.statistics import (
    DriverStatistics,
    ExplainStatistics,
    PolarityStatistics,
    RowLayout,
)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 9000), k=st.integers(1, 9), data=st.data())
def test_module_columns_are_the_transposed_slice(rows, k, data):
    start = data.draw(st.integers(0, k - 1))
    stop = data.draw(st.integers(start + 1, k))
    values = np.random.default_rng(rows).standard_normal((rows, k))
    got = module_columns(values, start, stop)
    assert got.flags.c_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, values[:, start:stop].T)
    counts = np.arange(rows * k, dtype=np.int64).reshape(rows, k)
    np.testing.assert_array_equal(module_columns(counts, start, stop), counts[:, start:stop].T)
    # float32 / int32 statistics (--precision float32) come out as the tables' dtypes
    single = module_columns(values.astype(np.float32), start, stop)
    assert single.dtype == np.float64
    np.testing.assert_array_equal(single, values[:, start:stop].T.astype(np.float32))
    assert module_columns(counts.astype(np.int32), start, stop).dtype == np.int64
    # column-major statistics (the CPU's layout) in the tables' dtypes: the same values, a
    # view of the statistic, no copy
    for source in (np.asfortranarray(values), np.asfortranarray(counts)):
        view = module_columns(source, start, stop)
        assert view.flags.c_contiguous and np.shares_memory(view, source) == (rows > 0)
        np.testing.assert_array_equal(view, source[:, start:stop].T)
    single = module_columns(np.asfortranarray(values, dtype=np.float32), start, stop)
    assert single.dtype == np.float64 and not np.shares_memory(single, values)


def _layout(polarity_rows: np.ndarray, polarity_segments: torch.Tensor) -> RowLayout:
    """A row layout with the given transcript-usage columns and gene codes (the driver
    side unused by these tests)."""
    return RowLayout(driver_segments=torch.zeros(0, dtype=torch.int64),
                     driver_name_order=torch.zeros(0, dtype=torch.int64), n_driver_genes=0,
                     polarity_rows=polarity_rows, polarity_segments=polarity_segments,
                     polarity_genes=np.asarray(
                         [f"G{g}" for g in range(int(polarity_segments.max()) + 1
                                                 if len(polarity_segments) else 0)]))


def _stats(f: int, k: int, rng: np.random.Generator) -> ExplainStatistics:
    def floats(*shape):
        return torch.from_numpy(rng.standard_normal(shape))

    def counts(*shape):
        return torch.from_numpy(rng.integers(0, 100, shape))

    def contrast():
        return WelchResult(df=None, **{n: floats(f, k) for n in result_tables._WELCH_FLOATS},
                                  n_high=counts(f, k), n_low=counts(f, k))

    layout = _layout(np.arange(f), torch.arange(f))
    polarity = PolarityStatistics(member=torch.from_numpy(rng.random((f, k)) < 0.3),
                                  r=floats(f, k), pvalue=floats(f, k), qvalue=floats(f, k),
                                  n=counts(f, k), gene_switch=floats(f, k))
    drivers = DriverStatistics(r=floats(3, k), pvalue=floats(3, k), qvalue=floats(3, k),
                               n=counts(3, k), sorted_rows=torch.zeros((3, k), dtype=torch.int64),
                               n_genes=[1] * k)
    return ExplainStatistics(drivers=drivers, polarity=polarity,
                             contrasts={"split": contrast(), "tails": contrast()},
                             n_finite=counts(f), layout=layout)


def test_every_module_gets_its_own_columns_in_any_order():
    f, k = 10_000, 7  # not a multiple of the group size nor of the row step
    rng = np.random.default_rng(0)
    stats = _stats(f, k, rng)
    ids = TableIds(SimpleNamespace(
        n_samples=100, feature_ids=np.array([f"T{i}" for i in range(f)], dtype=object),
        feature_gene_ids=np.array([f"G{i // 3}" for i in range(f)], dtype=object),
        feature_transcript_ids=None,
        score_gene_ids=np.array(["A", "B", "C"], dtype=object),
        score_feature_ids=np.array(["a", "b", "c"], dtype=object),
        score_feature_types=np.array(["gene"] * 3, dtype=object)))
    builder = ResultTables(ids, stats)
    for module in [6, 0, 5, 1, 4, 2, 3, 3, 0]:
        for split in ("split", "tails", "split"):
            table = builder.high_vs_low_table(split, module)
            assert table.column_names == HIGH_LOW_COLUMNS
            source = stats.contrasts[split]
            for name in (*result_tables._WELCH_FLOATS, "n_high", "n_low"):
                np.testing.assert_array_equal(table[name].to_numpy(),
                                              getattr(source, name)[:, module].numpy())
            assert table["n_high"].type == "int64"
            np.testing.assert_array_equal(
                table["missing_fraction"].to_numpy(), 1.0 - stats.n_finite.numpy() / 100)


@pytest.mark.parametrize("working", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_gene_driver_and_polarity_tables_take_each_modules_rows(working):
    """Several transcripts per gene, genes out of feature order, transcript rows not the
    identity, modules of different sizes: every column equals numpy indexing written
    plainly, counts int64 and floats float64 whatever the working precision."""
    rng = np.random.default_rng(1)
    n_features, n_score_rows, n_genes, k, n_total = 40, 12, 5, 4, 90
    feature_ids = np.array([f"T{i:03d}" for i in range(n_features)], dtype=object)
    feature_genes = np.array([f"G{i % 7}" for i in range(n_features)], dtype=object)
    transcript_ids = np.array([f"ENST{i:05d}" for i in range(n_features)], dtype=object)
    score_genes = np.array([f"S{i // 2}" for i in range(n_score_rows)], dtype=object)
    score_features = np.array([f"s{i}" for i in range(n_score_rows)], dtype=object)
    score_types = np.array(["gene", "transcript"] * (n_score_rows // 2), dtype=object)
    ids = TableIds(SimpleNamespace(
        n_samples=n_total, feature_ids=feature_ids, feature_gene_ids=feature_genes,
        feature_transcript_ids=transcript_ids, score_gene_ids=score_genes,
        score_feature_ids=score_features, score_feature_types=score_types))

    def floats(*shape):
        return torch.from_numpy(rng.standard_normal(shape)).to(working)

    def counts(*shape):
        return torch.from_numpy(rng.integers(0, n_total, shape))

    # 15 transcript-usage features (a shuffled subset of the table), gene codes
    # repeating and out of order: [2, 0, 2, 4, 1, 0, ...]
    tu_rows = rng.permutation(n_features)[:15]
    segments = np.array([2, 0, 2, 4, 1, 0, 3, 3, 2, 1, 4, 0, 2, 3, 1])
    member = rng.random((15, k)) < 0.5
    member[:, 3] = False  # a module without transcripts
    layout = _layout(tu_rows, torch.from_numpy(segments))
    polarity = PolarityStatistics(member=torch.from_numpy(member),
                                  r=floats(15, k),
                                  pvalue=floats(15, k), qvalue=floats(15, k),
                                  n=counts(15, k), gene_switch=floats(n_genes, k))
    genes_per_module = [3, 1, 6, 0]
    sorted_rows = np.stack([rng.permutation(n_score_rows)[:6] for _ in range(k)], axis=1)
    drivers = DriverStatistics(r=floats(n_score_rows, k), pvalue=floats(n_score_rows, k),
                               qvalue=floats(n_score_rows, k), n=counts(n_score_rows, k),
                               sorted_rows=torch.from_numpy(sorted_rows),
                               n_genes=genes_per_module)
    contrast = WelchResult(df=None, **{n: floats(n_features, k)
                                     for n in result_tables._WELCH_FLOATS},
                                  n_high=counts(n_features, k), n_low=counts(n_features, k))
    stats = ExplainStatistics(drivers=drivers,
                              polarity=polarity, contrasts={"split": contrast},
                              n_finite=counts(n_features), layout=layout)
    builder = ResultTables(ids, stats)

    def host(t):
        return t.numpy().astype(np.float64)

    for module in [2, 0, 3, 1]:
        drv = builder.gene_driver_table(module)
        rows = sorted_rows[: genes_per_module[module], module]
        assert drv.column_names == result_tables.DRIVER_COLUMNS
        assert drv["gene_id"].to_pylist() == [score_genes[i] for i in rows]
        assert drv["feature_id"].to_pylist() == [score_features[i] for i in rows]
        assert drv["feature_type"].to_pylist() == [score_types[i] for i in rows]
        for name, source in (("r", drivers.r), ("pvalue", drivers.pvalue),
                             ("qvalue", drivers.qvalue)):
            assert drv[name].type == pa.float64()
            np.testing.assert_array_equal(drv[name].to_numpy(), host(source)[rows, module])
        n = drivers.n.numpy()[rows, module]
        assert drv["n_samples"].type == pa.int64()
        np.testing.assert_array_equal(drv["n_samples"].to_numpy(), n)
        np.testing.assert_array_equal(drv["missing_fraction"].to_numpy(), 1.0 - n / n_total)

        pol = builder.transcript_polarity_table(module)
        mine = [t for t in range(15) if member[t, module]]
        assert pol.num_rows == len(mine)
        assert pol["feature_id"].to_pylist() == [feature_ids[tu_rows[t]] for t in mine]
        assert pol["gene_id"].to_pylist() == [feature_genes[tu_rows[t]] for t in mine]
        assert pol["transcript_id"].to_pylist() == [transcript_ids[tu_rows[t]] for t in mine]
        for name, source in (("r", polarity.r), ("pvalue", polarity.pvalue),
                             ("qvalue", polarity.qvalue)):
            assert pol[name].type == pa.float64()
            np.testing.assert_array_equal(pol[name].to_numpy(),
                                          [host(source)[t, module] for t in mine])
        n = np.array([polarity.n.numpy()[t, module] for t in mine], dtype=np.int64)
        assert pol["n_samples"].type == pa.int64()
        np.testing.assert_array_equal(pol["n_samples"].to_numpy(), n)
        np.testing.assert_array_equal(pol["missing_fraction"].to_numpy(), 1.0 - n / n_total)
        switch = host(polarity.gene_switch)
        np.testing.assert_array_equal(pol["switch_strength"].to_numpy(),
                                      [switch[segments[t], module] for t in mine])


def test_missing_ids_are_null_strings_whether_none_or_nan():
    """pandas 3 reads a missing string id as NaN (pandas 2 as None): either is a null in
    the Arrow id column, never an error or the text 'nan' (the demo's psi features have no
    transcript_id)."""
    from isograph_gpu.result_tables import _strings

    ids = _strings(np.array(["T1", float("nan"), None, "010262"], dtype=object))
    assert ids.to_pylist() == ["T1", None, None, "010262"]
    assert str(ids.type) == "string"

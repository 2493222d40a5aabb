"""result_tables: module columns copied in groups equal plain numpy slicing, and every
module's high_vs_low columns come from its own column of the statistics, whatever the
order in which split and tails tables are built."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu import result_tables
from isograph_gpu.engine import ContrastStatistics
from isograph_gpu.result_tables import HIGH_LOW_COLUMNS, ResultTables, TableIds, module_columns
from isograph_gpu.statistics import DriverStatistics, ExplainStatistics, PolarityStatistics


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


def _stats(f: int, k: int, rng: np.random.Generator) -> ExplainStatistics:
    def floats(*shape):
        return torch.from_numpy(rng.standard_normal(shape))

    def counts(*shape):
        return torch.from_numpy(rng.integers(0, 100, shape))

    def contrast():
        return ContrastStatistics(**{n: floats(f, k) for n in result_tables._WELCH_FLOATS},
                                  n_high=counts(f, k), n_low=counts(f, k))

    polarity = PolarityStatistics(rows=np.arange(f), member=rng.random((f, k)) < 0.3,
                                  r=floats(f, k), pvalue=floats(f, k), qvalue=floats(f, k),
                                  n=counts(f, k), gene_switch=floats(f, k),
                                  segments=torch.arange(f))
    drivers = DriverStatistics(r=floats(3, k), pvalue=floats(3, k), qvalue=floats(3, k),
                               n=counts(3, k), sorted_rows=torch.zeros((3, k), dtype=torch.int64),
                               n_genes=[1] * k)
    return ExplainStatistics(eigengenes=np.zeros((5, k)), drivers=drivers, polarity=polarity,
                             contrasts={"split": contrast(), "tails": contrast()},
                             n_finite=counts(f))


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

"""The samples x features table reader: every file form gives the same float64 matrix as
the plain pandas oracle (rows in the requested order, Fortran layout, missing -> NaN)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _helpers.files import count_polars_reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isograph_gpu.errors import InputError
from isograph_gpu.io.feature_tables import SamplesByFeaturesTable


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "sample_id": [f"S{i}" for i in range(6)],
        "f_float": rng.normal(size=6),
        "f_int": np.arange(6, dtype=np.int64),
        "f_nullable": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
        "f_bool": [True, False, True, True, False, False],
        "f_nan": [np.nan, 1.5, np.inf, 2.0, np.nan, -1.0],
    })
    return df


def _oracle(df: pd.DataFrame, columns: list[str], rows: np.ndarray) -> np.ndarray:
    return np.column_stack([
        df[c].astype("float64").to_numpy(na_value=np.nan)[rows] for c in columns
    ])


@pytest.mark.parametrize("form", ["parquet", "parquet_index", "csv_gz", "tsv", "frame"])
def test_every_form_gives_the_oracle_matrix(tmp_path, form):
    df = _frame()
    if form == "parquet":
        source = tmp_path / "t.parquet"
        df.to_parquet(source, index=False)
    elif form == "parquet_index":  # ids only in the pandas index (unnamed)
        source = tmp_path / "t.parquet"
        df.set_index("sample_id").rename_axis(None).to_parquet(source)
    elif form == "csv_gz":
        source = tmp_path / "t.csv.gz"
        df.to_csv(source, index=False)
    elif form == "tsv":
        source = tmp_path / "t.tsv"
        df.to_csv(source, sep="\t", index=False)
    else:
        source = df
    table = SamplesByFeaturesTable(source, "feature_table")
    assert list(table.sample_ids) == list(df["sample_id"])
    columns = ["f_nan", "f_float", "f_bool", "f_nullable", "f_int"]
    rows = np.array([5, 0, 3, 1])
    got = table.matrix(columns, rows)
    assert got.dtype == np.float64 and got.flags.f_contiguous
    want = _oracle(df, columns, rows)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15 if form != "frame" else 0)
    identity = table.matrix(["f_float"], np.arange(6))
    np.testing.assert_allclose(identity[:, 0], df["f_float"].to_numpy(), rtol=1e-15)


def test_non_numeric_column_is_named(tmp_path):
    df = _frame().assign(f_text=list("abcdef"))
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    table = SamplesByFeaturesTable(path, "feature_table")
    with pytest.raises(InputError, match=r"t\.parquet: column 'f_text' is not numeric"):
        table.matrix(["f_float", "f_text"], np.arange(6))


def test_missing_sample_ids_is_an_error(tmp_path):
    path = tmp_path / "t.parquet"
    _frame().drop(columns="sample_id").to_parquet(path, index=False)
    with pytest.raises(InputError, match="no sample_id column"):
        SamplesByFeaturesTable(path, "feature_table")


def test_corrupt_parquet_names_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match=r"cannot read feature_table .*broken\.parquet"):
        SamplesByFeaturesTable(path, "feature_table")


def test_streamed_parquet_reads_blocks_and_equals_the_loaded_matrix(tmp_path, monkeypatch):

    rng = np.random.default_rng(5)
    values = rng.normal(size=(9, 40))
    values[rng.random(values.shape) < 0.2] = np.nan
    df = pd.DataFrame(values, columns=[f"f{j}" for j in range(40)])
    df.insert(0, "sample_id", [f"S{i}" for i in range(9)])
    df["f3"] = np.arange(9)  # an integer column is cast like the rest
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    columns = [f"f{j}" for j in range(40)][::-1]
    rows = np.array([8, 2, 0, 1, 3, 4, 5, 6, 7])
    loaded = SamplesByFeaturesTable(path, "feature_table").matrix(columns, rows)

    reads = count_polars_reads(monkeypatch)
    table = SamplesByFeaturesTable(path, "feature_table", stream=True)
    assert list(table.sample_ids) == list(df["sample_id"])
    blocks = table.matrix(columns, rows)
    assert blocks.shape == loaded.shape and reads == [1]  # only the sample ids so far
    for a in range(0, 40, 7):
        block = blocks[:, a:a + 7]
        assert block.flags.f_contiguous and block.dtype == np.float64
        np.testing.assert_array_equal(block, loaded[:, a:a + 7])
    assert reads[1:] == [7, 7, 7, 7, 7, 5]
    np.testing.assert_array_equal(np.asarray(blocks), loaded)
    with pytest.raises(TypeError):
        blocks[0, :]


def test_streamed_parquet_checks_types_and_sample_ids(tmp_path):
    df = _frame().assign(f_text=list("abcdef"))
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"t\.parquet: column 'f_text' is not numeric"):
        SamplesByFeaturesTable(path, "feature_table", stream=True).matrix(["f_text"], np.arange(6))
    df.drop(columns="sample_id").to_parquet(path, index=False)
    with pytest.raises(InputError, match="no sample_id column"):
        SamplesByFeaturesTable(path, "feature_table", stream=True)
    indexed = tmp_path / "indexed.parquet"
    _frame().set_index("sample_id").to_parquet(indexed)
    table = SamplesByFeaturesTable(indexed, "feature_table", stream=True)
    assert list(table.sample_ids) == [f"S{i}" for i in range(6)]
    assert "sample_id" not in table.columns


def test_streamed_blocks_equal_the_oracle_in_any_row_and_column_order(tmp_path):
    """Blocks of a streamed table, rows gathered in sample order and columns in the
    requested order, equal the pandas oracle (integer columns cast, NaN kept)."""
    rng = np.random.default_rng(11)
    values = rng.normal(size=(13, 50))
    values[rng.random(values.shape) < 0.2] = np.nan
    df = pd.DataFrame(values, columns=[f"f{j}" for j in range(50)])
    df["f7"] = np.arange(13, dtype=np.int32)
    df.insert(0, "sample_id", [f"S{i}" for i in range(13)])
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    rows = rng.permutation(13)
    columns = [f"f{j}" for j in rng.permutation(50)]
    want = _oracle(df, columns, rows)
    blocks = SamplesByFeaturesTable(path, "feature_table", stream=True).matrix(columns, rows)
    for a, b in ((0, 50), (5, 22), (49, 50), (3, 3)):
        got = blocks[:, a:b]
        assert got.flags.f_contiguous and got.dtype == np.float64 and got.shape == (13, b - a)
        np.testing.assert_array_equal(got, want[:, a:b])


@pytest.mark.parametrize("share_of_peak,streamed", [(1.0, False), (0.999, True)])
def test_table_streams_only_when_it_does_not_fit_in_memory(ref_inputs, monkeypatch,
                                                           share_of_peak, streamed):
    # share_of_peak: available memory as a share of twice the matrix
    """Default rule: loaded when the float64 matrix (from the footer's row and column
    counts) fits in half the available memory, streamed otherwise; explicit choices win."""
    import pyarrow.parquet as pq

    from isograph_gpu.io import memory
    from isograph_gpu.io.feature_tables import ParquetFeatureBlocks

    path = ref_inputs["feature_table"]
    meta = pq.read_metadata(path)
    matrix_bytes = meta.num_rows * meta.num_columns * 8
    monkeypatch.setattr(memory, "available_memory_bytes",
                        lambda: int(2 * matrix_bytes * share_of_peak))
    table = SamplesByFeaturesTable(path, "feature_table", stream=None)
    matrix = table.matrix(table.columns[:3], np.arange(5))
    assert isinstance(matrix, ParquetFeatureBlocks) is streamed
    assert isinstance(SamplesByFeaturesTable(path, "feature_table", stream=True)
                      .matrix(table.columns[:3], np.arange(5)), ParquetFeatureBlocks)
    assert isinstance(SamplesByFeaturesTable(path, "feature_table", stream=False)
                      .matrix(table.columns[:3], np.arange(5)), np.ndarray)


def test_available_memory_is_positive_and_below_physical_memory():
    import os

    from isograph_gpu.io.memory import available_memory_bytes

    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory_bytes() <= physical


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_layout_and_format_gives_the_same_matrix(tmp_path_factory, data):
    """Property: whatever the layout (samples x features, features x samples, AnnData dense
    or sparse) and the rows/columns asked for, the matrix is the numpy oracle's."""
    import scipy.sparse as sp

    from isograph_gpu.io.feature_tables import open_feature_table

    anndata = pytest.importorskip("anndata")
    n = data.draw(st.integers(1, 7))
    f = data.draw(st.integers(1, 9))
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, f))
    values[rng.random((n, f)) < 0.3] = np.nan
    values[rng.random((n, f)) < 0.2] = 0.0
    samples = [f"{i:04d}" for i in range(n)]
    features = [f"F{j}" for j in range(f)]
    rows = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)
    cols = data.draw(st.lists(st.sampled_from(features), unique=True, max_size=f))
    want = values[rows][:, [features.index(c) for c in cols]]

    tmp = tmp_path_factory.mktemp("layouts")
    by_sample = pd.DataFrame(values, columns=features).assign(sample_id=samples)
    by_sample.to_parquet(tmp / "sbf.parquet", index=False)
    by_feature = pd.DataFrame(values.T, columns=samples).assign(feature_id=features)
    by_feature.to_parquet(tmp / "fbs.parquet", index=False)
    sources = [tmp / "sbf.parquet", tmp / "fbs.parquet", by_feature]
    for x in (values, sp.csr_matrix(np.nan_to_num(values, nan=0.0))):
        sources.append(anndata.AnnData(X=x, obs=pd.DataFrame(index=samples),
                                       var=pd.DataFrame(index=features)))
    for i, source in enumerate(sources):
        table = open_feature_table(source, stream=i == 0 and bool(seed % 2))
        assert list(table.sample_ids) == samples and list(table.columns) == features
        got = np.asarray(table.matrix(cols, rows))
        assert got.dtype == np.float64 and got.shape == (n, len(cols))
        expected = np.nan_to_num(want, nan=0.0) if i == 4 else want
        np.testing.assert_array_equal(got, expected)


def test_loaded_parquet_is_filled_block_by_block(tmp_path, monkeypatch):
    """A loaded table is decoded in blocks straight into one matrix (peak: the matrix and
    one block), equal to the oracle whatever the block width."""

    from isograph_gpu.io import feature_tables

    rng = np.random.default_rng(2)
    values = rng.normal(size=(6, 23))
    values[rng.random(values.shape) < 0.3] = np.nan
    df = pd.DataFrame(values, columns=[f"f{j}" for j in range(23)])
    df.insert(0, "sample_id", [f"S{i}" for i in range(6)])
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    widths = count_polars_reads(monkeypatch)
    monkeypatch.setattr(feature_tables, "LOAD_BLOCK_BYTES", 6 * 8 * 10)  # 10 columns
    columns = [f"f{j}" for j in range(23)][::-1]
    rows = np.array([5, 3, 1, 0, 2, 4])
    got = SamplesByFeaturesTable(path, "feature_table").matrix(columns, rows)
    assert isinstance(got, np.ndarray) and got.flags.f_contiguous
    # sample ids, then 6 groups of at most 10 / 2 columns (two threads read at once, in
    # either order): a multiple of the 2 readers, as even as 23 columns allow
    assert widths[0] == 1 and sorted(widths[1:]) == [3, 4, 4, 4, 4, 4]
    np.testing.assert_array_equal(got, _oracle(df, columns, rows))
    widths.clear()
    table = SamplesByFeaturesTable(path, "feature_table", stream=True)
    one_reader = table.matrix(columns, rows).to_matrix(workers=1)
    assert widths[1:] == [8, 8, 7] and one_reader.flags.f_contiguous  # 3 groups of <= 10
    np.testing.assert_array_equal(one_reader, got)


def test_pandas_index_needs_a_footer_parse_only_when_named(tmp_path, monkeypatch):
    """An unnamed pandas index (column __index_level_0__) names the samples without
    reading the footer's pandas metadata again; a named one (not sample_id) is found
    through that metadata (read once)."""
    from isograph_gpu.io import feature_tables

    metadata_reads = []
    original = feature_tables._pandas_index_columns

    def counting(source):
        metadata_reads.append(source)
        return original(source)

    monkeypatch.setattr(feature_tables, "_pandas_index_columns", counting)
    unnamed = tmp_path / "unnamed.parquet"
    _frame().set_index("sample_id").rename_axis(None).to_parquet(unnamed)
    table = SamplesByFeaturesTable(unnamed, "feature_table", stream=True)
    assert list(table.sample_ids) == [f"S{i}" for i in range(6)]
    assert metadata_reads == [] and not any(c.startswith("__index") for c in table.columns)
    named = tmp_path / "named.parquet"
    _frame().set_index("sample_id").rename_axis("sample").to_parquet(named)
    table = SamplesByFeaturesTable(named, "feature_table", stream=True)
    assert list(table.sample_ids) == [f"S{i}" for i in range(6)]
    assert "sample" not in table.columns and len(metadata_reads) == 1
    np.testing.assert_array_equal(
        table.matrix(table.columns, np.arange(6)).to_matrix(),
        _frame().drop(columns="sample_id").to_numpy(dtype=np.float64))

"""AnnData and features x samples inputs give the tables isograph 0.1.5 gave for the
reference parquet inputs; results go back into an AnnData (issue 13.1)."""

from __future__ import annotations

import itertools
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _helpers.explain import explain_api, invoke_explain
from conftest import EXPECTED, assert_table_matches
from hypothesis import given, settings
from hypothesis import strategies as st

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.errors import InputError, OptionalDependencyError

anndata = pytest.importorskip("anndata")

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]
MODULES = ["M000", "M003"]


def _run(ref_inputs, table, meta=None, **config):
    return explain_api({"artifact": ref_inputs["artifact"], "feature_table": table,
                        "feature_meta": meta}, module_ids=MODULES,
                       config=ExplainConfig(device="cpu", **config))


def _assert_reference_tables(results):
    assert list(results) == MODULES
    for module_id, res in results.items():
        for name in CORE:
            expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(res, name))


def _adata(ref_inputs, x_format="dense"):
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    meta = pd.read_parquet(ref_inputs["feature_meta"]).set_index("feature_id")
    x = table.to_numpy(dtype=np.float64)
    if x_format == "csr":
        x = sp.csr_matrix(x)
    elif x_format == "csc":
        x = sp.csc_matrix(x)
    var = meta.reindex(table.columns)  # table columns absent from meta get NaN metadata
    var = var.dropna(subset=["gene_id"])
    keep = table.columns.isin(var.index)
    x = x[:, np.flatnonzero(keep)]
    return anndata.AnnData(X=x, obs=pd.DataFrame(index=table.index.astype(str)),
                           var=var.loc[table.columns[keep]])


@pytest.fixture(scope="module")
def h5ad_paths(ref_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("h5ad")
    paths = {}
    for fmt in ("dense", "csr", "csc"):
        paths[fmt] = root / f"table_{fmt}.h5ad"
        _adata(ref_inputs, fmt).write_h5ad(paths[fmt])
    return paths


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("stream", [False, True])
def test_h5ad_without_feature_meta_gives_the_reference_tables(ref_inputs, h5ad_paths, fmt,
                                                              stream):
    _assert_reference_tables(_run(ref_inputs, h5ad_paths[fmt], stream_features=stream,
                                  chunk_features=100))


def test_anndata_object_gives_the_reference_tables(ref_inputs):
    _assert_reference_tables(_run(ref_inputs, _adata(ref_inputs, "csr")))


def test_explicit_feature_meta_wins_over_var(ref_inputs):
    adata = _adata(ref_inputs)
    adata.var["gene_id"] = "wrong"  # ignored: feature_meta is given
    _assert_reference_tables(_run(ref_inputs, adata, ref_inputs["feature_meta"]))


def test_anndata_without_var_metadata_needs_feature_meta(ref_inputs):
    adata = _adata(ref_inputs)
    adata.var = pd.DataFrame(index=adata.var_names)
    with pytest.raises(InputError, match="feature_meta is required: feature_table AnnData"):
        _run(ref_inputs, adata)
    _assert_reference_tables(_run(ref_inputs, adata, ref_inputs["feature_meta"]))


def test_duplicate_var_or_obs_names_are_errors(ref_inputs):
    adata = _adata(ref_inputs)
    names = adata.var_names.tolist()
    names[5] = names[4]
    adata.var_names = names
    with pytest.raises(InputError, match=r"duplicate var_names \(feature ids\): \['"
                                         + names[4].replace(".", r"\.")):
        _run(ref_inputs, adata)
    adata = _adata(ref_inputs)
    adata.obs_names = ["S0000"] * adata.n_obs
    with pytest.raises(InputError, match=r"duplicate obs_names \(sample ids\)"):
        _run(ref_inputs, adata)


def test_cli_reads_h5ad_without_feature_meta(ref_inputs, h5ad_paths, tmp_path):
    out = tmp_path / "out"
    result = invoke_explain({"artifact": ref_inputs["artifact"],
                             "feature_table": h5ad_paths["csc"]}, out, "--module-ids", "M003")
    assert result.exit_code == 0, result.output
    for name in CORE:
        assert_table_matches(pd.read_parquet(EXPECTED / "api_run" / "M003" / f"{name}.parquet"),
                             pd.read_parquet(out / "M003" / f"{name}.parquet"))


def test_missing_anndata_package_is_a_clear_error(ref_inputs, h5ad_paths, monkeypatch):
    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(OptionalDependencyError, match=r"isograph-gpu\[anndata\]"):
        _run(ref_inputs, h5ad_paths["dense"])


# --- features x samples ---------------------------------------------------------------


def _features_by_samples(ref_inputs, with_meta=False) -> pd.DataFrame:
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    wide = table.T.rename_axis("feature_id").reset_index()
    wide.columns = [str(c) for c in wide.columns]
    if with_meta:
        meta = pd.read_parquet(ref_inputs["feature_meta"])
        wide = meta.merge(wide, on="feature_id", how="right")
    return wide


@pytest.mark.parametrize("layout", ["auto", "features-by-samples"])
@pytest.mark.parametrize("form", ["parquet", "csv", "frame"])
def test_features_by_samples_table_gives_the_reference_tables(ref_inputs, tmp_path, layout,
                                                              form):
    wide = _features_by_samples(ref_inputs)
    source = {"parquet": tmp_path / "t.parquet", "csv": tmp_path / "t.csv"}.get(form, wide)
    if form == "parquet":
        wide.to_parquet(source, index=False)
    elif form == "csv":
        wide.to_csv(source, index=False)
    _assert_reference_tables(_run(ref_inputs, source, ref_inputs["feature_meta"],
                                  feature_layout=layout))


def test_features_by_samples_table_carries_its_own_metadata(ref_inputs, tmp_path):
    path = tmp_path / "t.parquet"
    _features_by_samples(ref_inputs, with_meta=True).to_parquet(path, index=False)
    _assert_reference_tables(_run(ref_inputs, path))


def test_layout_is_never_guessed(ref_inputs, tmp_path):
    both = tmp_path / "both.parquet"
    _features_by_samples(ref_inputs).assign(sample_id="x").to_parquet(both, index=False)
    with pytest.raises(InputError, match=r"both\.parquet has both a sample_id and a "
                                         r"feature_id column.*--feature-layout"):
        _run(ref_inputs, both, ref_inputs["feature_meta"])
    # the reference layout, named explicitly, is not re-read as features x samples
    wide = tmp_path / "wide.parquet"
    _features_by_samples(ref_inputs).to_parquet(wide, index=False)
    with pytest.raises(InputError, match=r"wide\.parquet has no sample_id column"):
        _run(ref_inputs, wide, ref_inputs["feature_meta"], feature_layout="samples-by-features")
    with pytest.raises(InputError, match="has no feature_id column"):
        _run(ref_inputs, ref_inputs["feature_table"], ref_inputs["feature_meta"],
             feature_layout="features-by-samples")


def test_cli_feature_layout_option(ref_inputs, tmp_path):
    path = tmp_path / "t.parquet"
    _features_by_samples(ref_inputs).to_parquet(path, index=False)
    out = tmp_path / "out"
    result = invoke_explain({**ref_inputs, "feature_table": path}, out,
                            "--feature-layout", "features-by-samples", "--module-ids", "M000")
    assert result.exit_code == 0, result.output
    assert_table_matches(
        pd.read_parquet(EXPECTED / "api_run" / "M000" / "high_vs_low_table.parquet"),
        pd.read_parquet(out / "M000" / "high_vs_low_table.parquet"))


# --- results back into AnnData -----------------------------------------------------------


def test_add_results_puts_r_switch_strength_and_eigengenes_into_the_anndata(ref_inputs,
                                                                           tmp_path):
    from isograph_gpu.io.anndata import add_results

    adata = _adata(ref_inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        results = explain_module(ref_inputs["artifact"], adata, None, module_ids=MODULES,
                                 config=ExplainConfig(device="cpu"), output_dir=tmp_path / "o")
    add_results(adata, results, manifest=tmp_path / "o" / "module_explanation_manifest.json")
    assert adata.varm["isograph_r"].shape == (adata.n_vars, 2)
    var = adata.var_names
    x = np.asarray(adata.X)
    for k, res in enumerate(results.values()):
        polarity = res.transcript_polarity_table
        rows = var.get_indexer(polarity["feature_id"])
        np.testing.assert_array_equal(adata.varm["isograph_r"][rows, k], polarity["r"])
        np.testing.assert_array_equal(adata.varm["isograph_switch_strength"][rows, k],
                                      polarity["switch_strength"])
        others = np.setdiff1d(np.arange(adata.n_vars), rows)
        assert np.isnan(adata.varm["isograph_r"][others, k]).all()
        hvl = res.high_vs_low_table
        np.testing.assert_array_equal(
            adata.varm["isograph_delta"][var.get_indexer(hvl["feature_id"]), k], hvl["delta"])
        # independent oracle: r is numpy's Pearson of the X column with the eigengene
        eig = adata.obsm["isograph_eigengene"][:, k]
        used = adata.obs_names.isin(res.sample_ids)
        assert np.isnan(eig[~used]).all()
        for f in polarity["feature_id"]:
            col = x[used, var.get_loc(f)]
            ok = np.isfinite(col) & np.isfinite(eig[used])
            got = adata.varm["isograph_r"][var.get_loc(f), k]
            if ok.sum() < 3:  # fewer than min_complete_pairs: r undefined
                assert np.isnan(got)
                continue
            want = np.corrcoef(col[ok], eig[used][ok])[0, 1]
            assert abs(got - want) < 1e-10
    uns = adata.uns["isograph"]
    assert list(uns["module_ids"]) == MODULES
    assert json.loads(uns["manifest_json"])["module_ids"] == MODULES
    written = tmp_path / "with_results.h5ad"
    adata.write_h5ad(written)  # h5ad can store every added field
    back = anndata.read_h5ad(written)
    np.testing.assert_array_equal(back.varm["isograph_r"], adata.varm["isograph_r"])


def test_anndata_cannot_be_read_as_features_by_samples(ref_inputs):
    with pytest.raises(InputError, match=r"^feature_table AnnData is an AnnData, whose layout "
                                         r"is samples \(obs\) x features \(var\)"):
        _run(ref_inputs, _adata(ref_inputs), feature_layout="features-by-samples")


def test_features_by_samples_duplicate_or_null_feature_ids_are_errors(ref_inputs, tmp_path):
    wide = _features_by_samples(ref_inputs)
    path = tmp_path / "dup.parquet"
    wide.assign(feature_id=wide["feature_id"].where(wide.index != 3, wide["feature_id"][2])
                ).to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"dup\.parquet has duplicate feature_id values: "
                                         r"\['G00001\.T1'\]"):
        _run(ref_inputs, path, ref_inputs["feature_meta"])
    wide.loc[4, "feature_id"] = None
    wide.to_parquet(path, index=False)
    with pytest.raises(InputError, match=r"dup\.parquet has 1 null feature_id value"):
        _run(ref_inputs, path, ref_inputs["feature_meta"])


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_backed_h5ad_take_reads_scattered_columns(ref_inputs, h5ad_paths, fmt):
    """``take`` of a streamed .h5ad gives the columns asked for, in that order, with the
    rows in the order asked for (numpy indexing of the in-memory X is the oracle)."""
    from isograph_gpu.io.anndata import AnnDataFeatureBlocks, AnnDataFeatureTable

    table = AnnDataFeatureTable(h5ad_paths[fmt], stream=True)
    rows = np.arange(len(table.sample_ids))[::-1].copy()
    blocks = table.matrix(table.columns, rows)
    assert isinstance(blocks, AnnDataFeatureBlocks)
    x = _adata(ref_inputs).X
    positions = np.array([0, 3, 4, 5, 17, len(table.columns) - 1])
    got = blocks.take(positions)
    assert got.flags.f_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, x[np.ix_(rows, positions)])
    np.testing.assert_array_equal(blocks[:, 2:9], x[rows, 2:9])


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_backed_h5ad_take_keeps_repeats_and_order(ref_inputs, h5ad_paths, fmt):
    """take of repeated, unsorted positions of a streamed .h5ad: every column asked for,
    in that order, rows in the order asked for (numpy indexing of X is the oracle)."""
    from isograph_gpu.io.anndata import AnnDataFeatureTable

    table = AnnDataFeatureTable(h5ad_paths[fmt], stream=True)
    rows = np.arange(len(table.sample_ids))[::-1].copy()
    blocks = table.matrix(table.columns, rows)
    x = _adata(ref_inputs).X
    last = len(table.columns) - 1
    positions = np.array([17, 3, last, 3, 0, 17, 4])
    got = blocks.take(positions)
    assert got.shape == (len(rows), 7) and got.flags.f_contiguous
    np.testing.assert_array_equal(got, x[np.ix_(rows, positions)])


class _RecordingX:
    """A backed X that records the column ranges read from it."""

    def __init__(self, x) -> None:
        self.x, self.reads = x, []

    def __getattr__(self, name):
        return getattr(self.x, name)

    def __getitem__(self, key):
        self.reads.append((key[1].start, key[1].stop))
        return self.x[key]


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_backed_h5ad_take_reads_runs_not_the_range_between(ref_inputs, h5ad_paths, fmt):
    """Columns spread over a backed .h5ad (figure transcripts) are read in runs of near
    neighbours, not as the whole range min..max; a backed CSR, whose every column range
    reads all of its data, in one range. Values: numpy indexing of X."""
    from isograph_gpu.io.anndata import AnnDataFeatureTable

    table = AnnDataFeatureTable(h5ad_paths[fmt], stream=True)
    rows = np.arange(len(table.sample_ids))[::-1].copy()
    blocks = table.matrix(table.columns, rows)
    blocks._x = _RecordingX(blocks._x)
    last = len(table.columns) - 1
    assert last > 200
    positions = np.array([last, 17, 0, 3, 41, 4, 5, 40, 17])
    got = blocks.take(positions)
    np.testing.assert_array_equal(got, _adata(ref_inputs).X[np.ix_(rows, positions)])
    if fmt == "csr":
        assert blocks._x.reads == [(0, last + 1)]
    else:  # 0..17 (gaps of at most 16 columns are read through), 40..41, last
        assert blocks._x.reads == [(0, 18), (40, 42), (last, last + 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=40), st.integers(0, 20), st.integers(1, 50))
def test_column_runs_cover_the_positions_within_gap_and_width(values, gap, width):
    from isograph_gpu.io.anndata import column_runs

    positions = np.unique(np.asarray(values, dtype=np.int64))
    runs = column_runs(positions, gap, width)
    starts, ends = [i for i, _ in runs], [j for _, j in runs]
    assert starts == [0] * bool(runs) + ends[:-1]  # in order, no overlap, no hole
    assert (ends[-1] if runs else 0) == len(positions)
    for i, j in runs:
        assert i < j and positions[j - 1] - positions[i] < width
        assert np.all(np.diff(positions[i:j]) <= gap + 1)
    # no two runs could have been one: a gap, or the width, parts them
    for (i, j), (k, _) in itertools.pairwise(runs):
        assert positions[k] - positions[j - 1] > gap + 1 or positions[k] - positions[i] >= width


def test_h5ad_path_that_is_missing_or_a_folder_is_named_in_the_error(tmp_path):
    """The .h5ad reader checks its path as every table reader does (io.table_readers
    .existing_file): a missing file and a folder get different messages naming the path."""
    from isograph_gpu.errors import MissingInputError
    from isograph_gpu.io.anndata import AnnDataFeatureTable

    missing = tmp_path / "gone.h5ad"
    with pytest.raises(MissingInputError, match=r"feature_table not found: .*gone\.h5ad"):
        AnnDataFeatureTable(missing, "feature_table")
    folder = tmp_path / "dir.h5ad"
    folder.mkdir()
    with pytest.raises(InputError, match=r"dir\.h5ad is a directory"):
        AnnDataFeatureTable(folder, "feature_table")

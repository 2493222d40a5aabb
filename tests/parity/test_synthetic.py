"""The synthetic dataset generator: layout identical to the reference fixture, values computed
as ``isograph fit`` computes them (checked against plain per-gene numpy), planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from _helpers import paths

from isograph_gpu.errors import InputError
from isograph_gpu.synthetic import make_synthetic_dataset, switch_scores

FIXTURE = paths.DATA / "isograph-0.1.5" / "inputs"


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic_dataset(seed=3, keep_counts=True)


@pytest.fixture(scope="module")
def dataset_no_nan():
    return make_synthetic_dataset(n_samples=60, n_genes=80, n_modules=3, genes_per_module=10,
                                  transcripts_per_gene=(1, 5), nan_fraction=0.0, seed=11,
                                  keep_counts=True)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_shapes(dataset):
    truth = dataset.truth
    n_tx = truth["n_transcripts"].to_numpy()
    assert len(truth) == 300
    assert len(dataset.modules) == 5 * 20
    assert sorted(dataset.modules["module_id"].unique()) == ["M000", "M001", "M002", "M003", "M004"]
    assert dataset.modules.groupby("module_id").size().eq(20).all()
    assert n_tx.min() >= 2 and n_tx.max() <= 4
    assert dataset.feature_scores.shape == (300 + int((n_tx >= 2).sum()), 4 + 200)
    assert dataset.feature_table.shape == (200, 1 + int(n_tx.sum()) + 10)
    assert len(dataset.feature_meta) == int(n_tx.sum()) + 10
    assert dataset.transcript_counts.shape == (int(n_tx.sum()), 200)
    values = dataset.feature_table.iloc[:, 1:].to_numpy()
    assert 0.01 < np.isnan(values).mean() < 0.03


@pytest.mark.parametrize(
    "name, relative",
    [
        ("modules", "artifact/modules.parquet"),
        ("feature_scores", "artifact/feature_scores.parquet"),
        ("feature_table", "feature_table.parquet"),
        ("feature_meta", "feature_meta.parquet"),
    ],
)
def test_written_layout_matches_reference_fixture(dataset, tmp_path, name, relative):
    paths = dataset.write(tmp_path)
    assert paths[name] == tmp_path / relative
    ours = pq.read_schema(paths[name])
    theirs = pq.read_schema(FIXTURE / relative)
    n_meta = {"modules": 2, "feature_scores": 4, "feature_table": 1, "feature_meta": 5}[name]
    # metadata columns: same names, order and parquet types
    assert ours.names[:n_meta] == theirs.names[:n_meta]
    assert [str(t) for t in ours.types[:n_meta]] == [str(t) for t in theirs.types[:n_meta]]
    assert len(ours.names) == n_meta or {str(t) for t in ours.types[n_meta:]} == {"double"}
    # pandas dtypes on reading back agree with the fixture's
    ours_df = pd.read_parquet(paths[name])
    theirs_df = pd.read_parquet(FIXTURE / relative)
    assert list(ours_df.dtypes.iloc[:n_meta]) == list(theirs_df.dtypes.iloc[:n_meta])
    pd.testing.assert_frame_equal(ours_df, getattr(dataset, name), check_dtype=False)
    if name == "feature_scores":  # sample columns named like the fixture's
        assert ours.names[n_meta] == theirs.names[n_meta] == "S0000"


def test_feature_scores_rows_sorted_like_the_fit(dataset):
    fs = dataset.feature_scores
    order = fs.sort_values(["gene_id", "feature_type", "feature_id"]).index
    assert (order == fs.index).all()
    assert (fs["feature_id"] == fs["gene_id"] + "::" + fs["feature_type"]).all()
    abundance = fs["feature_type"] == "abundance"
    assert fs.loc[abundance, "n_transcripts"].isna().all()
    n_tx = dataset.truth.set_index("gene_id")["n_transcripts"]
    switch = fs.loc[~abundance]
    assert (switch["n_transcripts"].to_numpy() == n_tx.loc[switch["gene_id"]].to_numpy()).all()


def test_genes_with_one_transcript_have_no_switch_row(dataset_no_nan):
    fs = dataset_no_nan.feature_scores
    single = dataset_no_nan.truth.loc[dataset_no_nan.truth["n_transcripts"] == 1, "gene_id"]
    assert len(single) > 0
    assert not fs.loc[fs["feature_type"] == "switch", "gene_id"].isin(single).any()
    assert fs.loc[fs["feature_type"] == "abundance", "gene_id"].tolist() == dataset_no_nan.truth["gene_id"].tolist()


def test_usage_sums_to_one_per_gene_and_matches_counts(dataset_no_nan):
    ds = dataset_no_nan
    meta = ds.feature_meta
    usage_ids = meta.loc[meta["feature_type"] == "transcript_usage", "feature_id"]
    usage = ds.feature_table[usage_ids].to_numpy()  # samples x transcripts
    gene_of = meta.loc[meta["feature_type"] == "transcript_usage", "gene_id"].to_numpy()
    for gene in np.unique(gene_of):
        cols = gene_of == gene
        np.testing.assert_allclose(usage[:, cols].sum(axis=1), 1.0, rtol=0, atol=1e-12)
        counts = ds.transcript_counts[cols]
        totals = counts.sum(axis=0)
        ok = totals > 0
        np.testing.assert_allclose(usage[ok][:, cols], (counts[:, ok] / totals[ok]).T, rtol=1e-15)


def _reference_switch_row(counts: np.ndarray) -> np.ndarray:
    """isograph 0.1.5 fit, one gene, written plainly: counts (transcripts, samples)."""
    pseudo = counts + 0.5
    usage = pseudo / pseudo.sum(axis=0, keepdims=True)
    logs = np.log(np.clip(usage, 1e-8, 1.0))
    clr = logs - logs.mean(axis=0, keepdims=True)
    centred = clr.T - clr.T.mean(axis=0, keepdims=True)
    _, _, vh = np.linalg.svd(centred, full_matrices=False)
    scores = centred @ vh[0]
    mags = np.abs(vh[0])
    pivot = int(np.flatnonzero(mags >= mags.max() - 1e-9 * mags.max())[0])
    return scores if vh[0][pivot] >= 0 else -scores


def test_switch_and_abundance_rows_equal_plain_numpy(dataset):
    ds = dataset
    fs = ds.feature_scores.set_index("feature_id")
    samples = ds.sample_ids
    n_tx = ds.truth["n_transcripts"].to_numpy()
    offsets = np.concatenate([[0], np.cumsum(n_tx)[:-1]])
    genes = ds.truth["gene_id"].to_numpy()
    # a 2-transcript gene (tied loadings), a 3- and a 4-transcript gene, a switching gene
    picks = {int(np.flatnonzero(n_tx == k)[0]) for k in (2, 3, 4)}
    picks.add(int(np.flatnonzero(ds.truth["switches"].to_numpy())[0]))
    for gi in sorted(picks):
        counts = ds.transcript_counts[offsets[gi] : offsets[gi] + n_tx[gi]]
        expected = _reference_switch_row(counts)
        got = fs.loc[f"{genes[gi]}::switch", samples].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)

    gene_counts = np.add.reduceat(ds.transcript_counts, offsets, axis=0)
    log_cpm = np.log2(gene_counts / gene_counts.sum(axis=0) * 1e6 + 0.5)
    for gi in sorted(picks):
        row = log_cpm[gi]
        expected = (row - row.mean()) / row.std()
        got = fs.loc[f"{genes[gi]}::abundance", samples].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_switch_orientation_makes_largest_loading_positive():
    rng = np.random.default_rng(0)
    counts = rng.poisson(50, size=(6, 3, 40)).astype(float)
    got = switch_scores(counts)
    for g in range(counts.shape[0]):
        np.testing.assert_allclose(got[g], _reference_switch_row(counts[g]), rtol=0, atol=1e-10)


def test_planted_modules_follow_their_latent_factor(dataset):
    ds = dataset
    fs = ds.feature_scores
    values = fs[ds.sample_ids].to_numpy()
    factors = ds.module_factors
    module_of = ds.truth.set_index("gene_id")["module_id"]
    best: dict[str, float] = {}
    background: list[float] = []
    for row, gene in zip(values, fs["gene_id"], strict=True):
        module = module_of[gene]
        if isinstance(module, str):
            best[gene] = max(best.get(gene, 0.0), abs(_pearson(row, factors[module].to_numpy())))
        else:
            background.append(max(abs(_pearson(row, factors[m].to_numpy())) for m in factors.columns[1:]))
    assert len(best) == 100
    assert min(best.values()) > 0.5
    assert max(background) < 0.5
    assert np.mean(background) < 0.15


def test_switching_genes_move_one_transcript_up_and_another_down(dataset):
    ds = dataset
    switching = ds.truth[ds.truth["switches"]]
    assert len(switching) >= 20
    table = ds.feature_table
    ups, downs = [], []
    for row in switching.itertuples():
        factor = ds.module_factors[row.module_id].to_numpy()
        for tx, out in ((row.switch_up, ups), (row.switch_down, downs)):
            usage = table[tx].to_numpy()
            ok = np.isfinite(usage)
            out.append(_pearson(usage[ok], factor[ok]))
    assert np.median(ups) > 0.5
    assert np.median(downs) < -0.5


def test_deterministic_for_a_seed():
    a = make_synthetic_dataset(n_samples=30, n_genes=40, n_modules=2, genes_per_module=5, seed=7)
    b = make_synthetic_dataset(n_samples=30, n_genes=40, n_modules=2, genes_per_module=5, seed=7)
    c = make_synthetic_dataset(n_samples=30, n_genes=40, n_modules=2, genes_per_module=5, seed=8)
    for name in ("modules", "feature_scores", "feature_table", "feature_meta", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.feature_scores.equals(c.feature_scores)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_genes": 10, "n_modules": 2, "genes_per_module": 6},
        {"transcripts_per_gene": (3, 2)},
        {"transcripts_per_gene": (0, 2)},
        {"nan_fraction": 1.0},
        {"n_samples": 2},
    ],
)
def test_bad_arguments_raise_input_error(kwargs):
    with pytest.raises(InputError):
        make_synthetic_dataset(**kwargs)


@pytest.mark.parametrize("transcripts, nan_fraction", [((1, 5), 0.05), ((4, 4), 0.0)])
def test_write_synthetic_dataset_streams_the_same_tables(tmp_path, transcripts, nan_fraction):
    """The streamed writer (several row groups and gene blocks: a 64 KiB block) writes
    make_synthetic_dataset's tables: the feature table's values as float32, NaN where it
    has NaN, everything else equal."""
    from isograph_gpu.synthetic import write_synthetic_dataset

    args = dict(n_samples=70, n_genes=90, n_modules=3, genes_per_module=10,
                transcripts_per_gene=transcripts, nan_fraction=nan_fraction, seed=5)
    whole = make_synthetic_dataset(n_psi=0, **args)
    paths = write_synthetic_dataset(tmp_path, block_bytes=64 * 1024, **args)
    table = pq.ParquetFile(paths["feature_table"])
    assert table.metadata.num_row_groups > 1
    written = pd.read_parquet(paths["feature_table"])
    expected = whole.feature_table
    assert list(written.columns) == list(expected.columns)
    assert written["sample_id"].tolist() == expected["sample_id"].tolist()
    got = written.drop(columns="sample_id").to_numpy()
    want = expected.drop(columns="sample_id").to_numpy().astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(want).mean() == pytest.approx(nan_fraction, abs=0.01)
    scores = pq.ParquetFile(paths["feature_scores"])
    assert scores.metadata.num_row_groups > 1
    pd.testing.assert_frame_equal(pd.read_parquet(paths["feature_scores"]),
                                  whole.feature_scores, check_exact=True)
    for name in ("feature_meta", "modules"):
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), getattr(whole, name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "feature_meta.parquet",
                                                           "feature_table.parquet"]

"""Chunked streaming equals one pass; the tail contrast and progress output behave."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import oracles
from _helpers.blas import gemm_bits_independent_of_threads
from _helpers.explain import explain_api, invoke_explain
from _helpers.memory import PeakAllocation
from _helpers.testers import Tolerance, assert_matches, device_marks

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.engine import chunk_size, device_chunks, feature_statistics
from isograph_gpu.ops.contrast import percentile_split, tail_split
from isograph_gpu.progress import Progress


def host_statistics(stats):
    """A copy of engine statistics with every tensor on the host."""
    contrasts = {name: type(c)(**{f: getattr(c, f).cpu() for f in c.__dataclass_fields__})
                 for name, c in stats.contrasts.items()}
    return type(stats)(r=stats.r.cpu(), n=stats.n.cpu(), pvalue=stats.pvalue.cpu(),
                       n_finite=stats.n_finite.cpu(), contrasts=contrasts)


def test_chunked_equals_single_pass():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 101))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = torch.from_numpy(rng.normal(size=(60, 3)))
    splits = {"split": percentile_split(y, 50.0)}
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30)
    one = feature_statistics(x, y, **common)
    buf = io.StringIO()
    many = feature_statistics(x, y, chunk_features=7, progress=Progress(True, buf), **common)
    for name in ("r", "n", "pvalue", "n_finite"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-12,
                                   equal_nan=True)
    for name in ("tstat", "pvalue", "se", "n_high"):
        np.testing.assert_allclose(getattr(many.contrasts["split"], name),
                                   getattr(one.contrasts["split"], name), rtol=1e-12,
                                   equal_nan=True)
    assert "features: chunk 15/15" in buf.getvalue()


def test_cpu_statistics_are_stored_in_the_chunk_steps_column_major_layout():
    """On the CPU the GEMMs run as block' x, so the chunk step's statistics are column-major;
    the engine's [F, K] container takes that layout (a store is a plain copy, a module's
    column is contiguous for its table) and holds what a row-major container holds."""
    from isograph_gpu.compute.results import FeatureStatistics
    from isograph_gpu.compute.step import chunk_statistics, prepare_scores

    rng = np.random.default_rng(3)
    x = np.asfortranarray(rng.normal(size=(50, 40)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = torch.from_numpy(rng.normal(size=(50, 5)))
    splits = {"split": percentile_split(y, 50.0)}
    cpu = torch.device("cpu")
    stats = feature_statistics(x, y, min_pairs=3, splits=splits, device=cpu,
                               dtype=torch.float64, memory_budget_bytes=1 << 30,
                               chunk_features=9)
    rows = FeatureStatistics.empty(40, 5, ["split"], cpu, column_major=False)
    prepared = prepare_scores(y, splits, min_pairs=3, dtype=torch.float64, device=cpu)
    for a in range(0, 40, 9):
        chunk = chunk_statistics(torch.from_numpy(x[:, a:a + 9]), prepared)
        assert chunk.r.stride()[0] == 1  # column-major from the GEMMs
        rows.store(a, min(a + 9, 40), chunk)
    assert rows.r.stride() == (5, 1)
    for name, t in stats.named_tensors().items():
        if t.ndim == 2:
            assert t.stride() == (1, 40), name
        assert torch.equal(t.nan_to_num(7.0), rows.named_tensors()[name].nan_to_num(7.0)), name


def test_pvalues_only_where_asked_equal_the_full_computation():
    rng = np.random.default_rng(9)
    x = np.asfortranarray(rng.normal(size=(40, 30)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = torch.from_numpy(rng.normal(size=(40, 4)))
    where = rng.random((30, 4)) < 0.3
    common = dict(min_pairs=3, device=torch.device("cpu"), dtype=torch.float64,
                  memory_budget_bytes=1 << 30, chunk_features=7)
    full = feature_statistics(x, y, **common)
    some = feature_statistics(x, y, pvalue_where=where, **common)
    np.testing.assert_array_equal(some.pvalue.numpy()[where], full.pvalue.numpy()[where])
    assert np.isnan(some.pvalue.numpy()[~where]).all()
    np.testing.assert_array_equal(some.r, full.r)
    _, want, _ = oracles.pearson(x, y.numpy())  # and they are scipy's p-values
    np.testing.assert_allclose(some.pvalue[where], want[where], rtol=1e-10)


def test_device_chunks_cover_the_matrix_in_order():
    x = np.asfortranarray(np.arange(5 * 11, dtype=np.float64).reshape(5, 11))
    got = list(device_chunks(x, 4, torch.device("cpu"), torch.float32))
    assert [(a, b) for a, b, _ in got] == [(0, 4), (4, 8), (8, 11)]
    for a, b, chunk in got:
        assert chunk.dtype == torch.float32 and tuple(chunk.shape) == (5, b - a)
        np.testing.assert_array_equal(chunk.numpy(), x[:, a:b].astype(np.float32))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_streaming_equals_cpu(dtype):
    """Pinned double-buffered chunks on CUDA give the CPU float64 statistics (DESIGN.md:
    float32 |dr| <= 1e-5), whatever the chunking."""
    rng = np.random.default_rng(8)
    x = np.asfortranarray(rng.lognormal(size=(150, 1003)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = torch.from_numpy(rng.normal(size=(150, 5)))
    splits = {"split": percentile_split(y, 50.0)}
    common = dict(min_pairs=3, splits=splits, memory_budget_bytes=1 << 30)
    cpu = feature_statistics(x, y, device=torch.device("cpu"), dtype=torch.float64, **common)
    gpu = feature_statistics(x, y, device=torch.device("cuda"), dtype=dtype,
                             chunk_features=97, **common)
    assert gpu.r.device.type == "cuda"  # results stay on the device until a table asks
    gpu = host_statistics(gpu)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert np.nanmax(np.abs(gpu.r - cpu.r)) <= tol
    np.testing.assert_array_equal(np.isnan(gpu.r), np.isnan(cpu.r))
    np.testing.assert_array_equal(gpu.n, cpu.n)
    np.testing.assert_array_equal(gpu.n_finite, cpu.n_finite)
    np.testing.assert_array_equal(gpu.contrasts["split"].n_high, cpu.contrasts["split"].n_high)
    np.testing.assert_allclose(gpu.contrasts["split"].delta, cpu.contrasts["split"].delta,
                               rtol=100 * tol, atol=100 * tol)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pipeline_matches_cpu_tables(ref_inputs):
    args = (ref_inputs["artifact"], ref_inputs["feature_table"], ref_inputs["feature_meta"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = explain_module(*args, config=ExplainConfig(device="cpu", progress=False))
        gpu = explain_module(*args, config=ExplainConfig(device="cuda", progress=False))
    for module_id, want in cpu.items():
        got = gpu[module_id]
        a = want.transcript_polarity_table.set_index("feature_id")
        b = got.transcript_polarity_table.set_index("feature_id")
        assert set(a.index) == set(b.index)
        assert np.nanmax(np.abs(a["r"] - b.loc[a.index, "r"]).to_numpy()) <= 1e-5
        np.testing.assert_allclose(want.eigengene, got.eigengene, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("budget", [1 << 20, 4 << 20])
def test_feature_statistics_working_set_fits_the_memory_budget(dtype, budget):
    """The peak of the tensors torch allocates during feature_statistics, measured by a
    dispatch mode (not the engine's own bytes-per-feature constant), stays within the
    budget, and the budget is used: more than one chunk, and at least 1/8 of it."""
    rng = np.random.default_rng(5)
    x = np.asfortranarray(rng.normal(size=(400, 600)))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = torch.from_numpy(rng.normal(size=(400, 3)))
    buf = io.StringIO()
    with PeakAllocation() as meter:
        feature_statistics(x, y, min_pairs=3, splits={"s": percentile_split(y, 50.0)},
                           device=torch.device("cpu"), dtype=dtype,
                           memory_budget_bytes=budget, progress=Progress(True, buf))
    assert budget / 8 <= meter.peak <= budget, meter.peak
    n_chunks = int(re.findall(r"chunk \d+/(\d+)", buf.getvalue())[-1])
    assert n_chunks > 1


def test_chunk_size_limits():
    """At least one feature, at most all of them; an explicit chunk_features wins."""
    assert chunk_size(1000, 10, 8, 2 * 1024**3) == 10
    assert chunk_size(1000, 250_000, 8, 1) == 1
    assert chunk_size(10, 100, 8, 1 << 30, chunk_features=33) == 33
    assert chunk_size(10, 100, 8, 1 << 30, chunk_features=500) == 100


def test_contrast_tails_table(ref_inputs):
    res = explain_api(ref_inputs, module_ids=["M001"],
                      config=ExplainConfig(contrast_tails=20.0))["M001"]
    tails = res.tails_contrast_table
    assert list(tails.columns) == list(res.high_vs_low_table.columns)
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    table = table.loc[res.sample_ids]
    hi, lo = oracles.tail_split(res.eigengene, 20.0)
    fids = ["G00001.T1", tails["feature_id"].iloc[500]]
    want = vars(oracles.welch(table[fids].to_numpy(dtype=float), hi, lo))
    rows = tails.set_index("feature_id").loc[fids]
    assert_matches({name: rows[name].to_numpy()[:, None] for name in want}, want,
                   Tolerance(atol=1e-12, rtol=1e-9, log10=4e-8),
                   ("n_high", "n_low", "tstat", "pvalue", "delta"))


def test_cli_writes_tails_table_and_progress(ref_inputs, tmp_path):
    out = tmp_path / "o"
    result = invoke_explain(ref_inputs, out, "--module-ids", "M004", "--contrast-tails", "10",
                            "--memory-budget", "64K", device=None, quiet=False)
    assert result.exit_code == 0, result.output
    assert (out / "M004" / "high_vs_low_tails_table.parquet").exists()
    assert "[isograph-gpu] feature statistics:" in result.output  # stderr is mixed in
    assert "chunk" in result.output  # 64K budget forces several chunks


@pytest.mark.parametrize(("dtype", "magnitudes", "tol"), [
    (torch.float64, [1e300, 1e-300, 1e-310, 1.0, 2.0**-600, 1e150], 1e-9),
    (torch.float32, [1e30, 1e-30, 1.0, 1e18, 1e-18, 3e-36], 2e-4),
], ids=["float64", "float32"])
@pytest.mark.parametrize("device", [pytest.param(d, marks=device_marks(d))
                                    for d in ("cpu", "cuda")])
def test_feature_statistics_at_extreme_magnitudes(dtype, magnitudes, tol, device):
    """Features and scores of 1e300 / 1e-300 (float32: 1e30 / 1e-30) gave all-NaN r, se,
    t and p: squares overflowed or underflowed. Now every statistic equals scipy on the
    unscaled values; means, deltas and se carry the feature's magnitude."""
    rng = np.random.default_rng(11)
    n, f, k = 50, len(magnitudes), 2
    y = rng.normal(size=(n, k))
    x = 0.6 * y[:, [0]] + rng.normal(size=(n, f))
    x[rng.random(x.shape) < 0.1] = np.nan
    unit = np.asarray(magnitudes)
    y_unit = np.array([magnitudes[0], magnitudes[1]])
    scores = torch.from_numpy(y * y_unit)
    high, low = percentile_split(scores, 50.0)
    got = feature_statistics(x * unit, scores, min_pairs=3, splits={"s": (high, low)},
                             device=torch.device(device), dtype=dtype,
                             memory_budget_bytes=1 << 20)
    r, p, n = oracles.pearson(x, y)
    assert_matches({"r": got.r, "pvalue": got.pvalue, "n": got.n},
                   {"r": r, "pvalue": p, "n": n}, Tolerance(tol, 100 * tol, 100 * tol))
    hv = vars(got.contrasts["s"])
    for name in ("mean_high", "mean_low", "delta", "se"):  # in the feature's units
        hv[name] = hv[name] / unit[:, None]
    want = vars(oracles.welch(x, high.numpy(), low.numpy()))
    assert_matches(hv, want, Tolerance(tol, 100 * tol, 1000 * tol / 2.31),
                   ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue"))


def _scaled_inputs(ref_inputs, tmp_path, table_units, score_unit):
    """The reference inputs with feature-table column i multiplied by
    ``table_units[i % len]`` and every feature_scores value by ``score_unit``."""
    table = pd.read_parquet(ref_inputs["feature_table"])
    columns = [c for c in table.columns if c != "sample_id"]
    units = pd.Series([table_units[i % len(table_units)] for i in range(len(columns))],
                      index=columns)
    table[columns] = table[columns] * units
    table.to_parquet(tmp_path / "feature_table.parquet")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "modules.parquet").write_bytes(
        (ref_inputs["artifact"] / "modules.parquet").read_bytes())
    scores = pd.read_parquet(ref_inputs["artifact"] / "feature_scores.parquet")
    meta = {"feature_id", "gene_id", "feature_type", "n_transcripts"}
    samples = [c for c in scores.columns if c not in meta]
    scores[samples] = scores[samples] * score_unit
    scores.to_parquet(artifact / "feature_scores.parquet")
    return artifact, tmp_path / "feature_table.parquet", units


@pytest.mark.parametrize(("table_units", "score_unit"), [
    ([1e300], 1e300), ([1e-300], 1e-300), ([1e300, 1e-300, 1.0, 1e-310], 1e300),
], ids=["1e300", "1e-300", "mixed"])
def test_cli_at_extreme_magnitudes_matches_the_reference(ref_inputs, tmp_path, table_units,
                                                         score_unit):
    """explain-module on the reference inputs with every value multiplied by 1e300, 1e-300
    or per-column mixed magnitudes writes isograph 0.1.5's tables (run on the unscaled
    inputs): r, p, q, t and counts unchanged; means, deltas and se in the column's units."""
    from conftest import EXPECTED, assert_table_matches

    artifact, table, units = _scaled_inputs(ref_inputs, tmp_path, table_units, score_unit)
    out = tmp_path / "out"
    result = invoke_explain({**ref_inputs, "artifact": artifact, "feature_table": table}, out,
                            "--module-ids", "M000")
    assert result.exit_code == 0, result.output
    for name in ("gene_driver_table", "transcript_polarity_table"):
        expected = pd.read_parquet(EXPECTED / "api_run" / "M000" / f"{name}.parquet")
        assert_table_matches(expected, pd.read_parquet(out / "M000" / f"{name}.parquet"))
    expected = pd.read_parquet(EXPECTED / "api_run" / "M000" / "high_vs_low_table.parquet")
    got = pd.read_parquet(out / "M000" / "high_vs_low_table.parquet")
    assert got["feature_id"].tolist() == expected["feature_id"].tolist()
    unit = units.loc[got["feature_id"]].to_numpy()
    for column in ("mean_high", "mean_low", "delta", "se"):
        got[column] = got[column] / unit
    assert_table_matches(expected, got)
    eigengenes = pd.read_parquet(out / "eigengenes.parquet")
    reference = pd.read_parquet(EXPECTED / "api_run" / "eigengenes.parquet")
    np.testing.assert_allclose(eigengenes["M000"] / score_unit, reference["M000"], atol=1e-9)


def _statistics_with_1_and_2_threads(k: int) -> list[list]:
    rng = np.random.default_rng(k)
    x = np.asfortranarray(rng.normal(size=(200, 300)) + 5.0)
    x[rng.random(x.shape) < 0.05] = np.nan
    y = torch.from_numpy(rng.normal(size=(200, k)))
    splits = {"split": percentile_split(y, 50.0), "tails": tail_split(y, 20.0)}
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30)
    threads = torch.get_num_threads()
    try:
        runs = []
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            runs.append([feature_statistics(x, y, chunk_features=c, **common)
                         for c in (13, 34, 300)])
    finally:
        torch.set_num_threads(threads)
    return runs


def _compare_thread_counts(k: int, same) -> None:
    for one, two in zip(*_statistics_with_1_and_2_threads(k), strict=True):
        for name in ("r", "pvalue", "n", "n_finite"):
            same(getattr(one, name), getattr(two, name), name)
        for split in one.contrasts:
            for name in ("delta", "se", "tstat", "pvalue"):
                same(getattr(one.contrasts[split], name), getattr(two.contrasts[split], name),
                     (split, name))


@pytest.mark.parametrize("k", [3, 32])  # GEMM blocks of 13..16 and of 129..193 columns
@pytest.mark.skipif(not gemm_bits_independent_of_threads(),
                    reason="this CPU's BLAS gives thread-dependent GEMM bits (MKL ignores "
                           "its strict reproducibility mode on AMD CPUs)")
def test_feature_statistics_do_not_depend_on_the_thread_count(k):
    """Same bits with 1 and 2 torch threads (a Dask worker may run another thread count
    than the caller) wherever the BLAS's own GEMMs have them (MKL's strict mode, which the
    package sets, on Intel CPUs)."""
    def equal(a, b, name):
        assert torch.equal(a.nan_to_num(9.0), b.nan_to_num(9.0)), name

    _compare_thread_counts(k, equal)


@pytest.mark.parametrize("k", [3, 32])
def test_feature_statistics_agree_to_rounding_across_thread_counts(k):
    """On every CPU, 1 and 2 threads agree to rounding (a few ulp of the GEMM sums):
    counts exactly, statistics to 1e-12 relative."""
    def close(a, b, name):
        if a.dtype in (torch.int64, torch.int32):
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0.0, equal_nan=True, msg=str(name))

    _compare_thread_counts(k, close)

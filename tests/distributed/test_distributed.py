"""The feature statistics as Dask tasks (ExplainConfig.scheduler): the same tables as one
process, byte for byte; a worker that dies is retried; a bad chunk fails the run with the
local error and writes nothing. One LocalCluster (2 worker processes, 1 thread each) for
the module. The test process keeps its own thread count (2 on a 2-core host) where the
BLAS gives the same GEMM bits at any thread count (MKL's strict mode on Intel CPUs), and
runs the workers' one thread where it does not (AMD CPUs): byte-identity is promised for
the same thread count there (docs/distributed.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.blas import gemm_bits_independent_of_threads
from _helpers.explain import explain_api, invoke_explain
from _helpers.files import snapshot
from conftest import EXPECTED, assert_table_matches

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import torch  # noqa: E402

from isograph_gpu import ExplainConfig  # noqa: E402
from isograph_gpu.distributed import feature_statistics_on_dask  # noqa: E402
from isograph_gpu.engine import feature_statistics  # noqa: E402
from isograph_gpu.errors import InputError  # noqa: E402
from isograph_gpu.io.feature_tables import ParquetFeatureBlocks, open_feature_table  # noqa: E402

# the dying reader below is defined here: workers get it by value, not by import
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TABLES = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table",
          "tails_contrast_table"]
#: small chunks: the reference table (1,234 features) becomes ~18 tasks
SMALL_CHUNKS = dict(chunk_features=70, device="cpu", contrast_tails=10.0)


@pytest.fixture(scope="module", autouse=True)
def _workers_thread_count_where_the_blas_needs_it():
    threads = torch.get_num_threads()
    if not gemm_bits_independent_of_threads():
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


def _explain(ref_inputs, feature_table, output_dir=None, module_ids=None, **config):
    return explain_api({**ref_inputs, "feature_table": feature_table}, module_ids=module_ids,
                       config=ExplainConfig(**SMALL_CHUNKS, **config), output_dir=output_dir)


@pytest.mark.parametrize("stream", [True, False], ids=["read-on-workers", "scattered-blocks"])
def test_scheduler_tables_equal_single_process_byte_for_byte(ref_inputs, cluster, tmp_path,
                                                             stream):
    """Streamed parquet: tasks read their own columns; loaded: blocks are scattered."""
    local = _explain(ref_inputs, ref_inputs["feature_table"], tmp_path / "local",
                     stream_features=stream)
    on_dask = _explain(ref_inputs, ref_inputs["feature_table"], tmp_path / "dask",
                       stream_features=stream, scheduler=cluster.scheduler_address)
    assert list(on_dask) == list(local)
    for module_id in local:
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(on_dask[module_id], name),
                                          getattr(local[module_id], name), check_exact=True)
    files = snapshot(tmp_path / "local", "*.parquet")
    assert len(files) > 5 and files == snapshot(tmp_path / "dask", "*.parquet")


@pytest.mark.parametrize("stream", [True, False], ids=["read-on-workers", "scattered-blocks"])
def test_scheduler_with_covariates_and_permutations_equals_single_process(
        ref_inputs, cluster, tmp_path, stream, monkeypatch):
    """--covariates and --switch-permutations: the tasks return the partial r / n / p
    and the switch null's extremes of their columns (a streamed table: the client
    decodes no more of it than in a run without the options), and the tables (switch
    p / q included) are the single-process ones byte for byte."""
    samples = pd.read_parquet(ref_inputs["feature_table"], columns=["sample_id"])["sample_id"]
    rng = np.random.default_rng(2)
    covariates = pd.DataFrame({"sample_id": samples, "depth": rng.normal(size=len(samples))})
    covariates.loc[3, "depth"] = np.nan
    covariates.to_csv(tmp_path / "cov.tsv", sep="\t", index=False)
    options = dict(covariates=str(tmp_path / "cov.tsv"), switch_permutations=15, seed=4,
                   stream_features=stream)
    local = _explain(ref_inputs, ref_inputs["feature_table"], tmp_path / "local", **options)
    decoded: list[int] = []
    decode = ParquetFeatureBlocks._decode
    monkeypatch.setattr(ParquetFeatureBlocks, "_decode",
                        lambda self, names: decoded.append(len(names)) or decode(self, names))
    _explain(ref_inputs, ref_inputs["feature_table"], scheduler=cluster.scheduler_address,
             stream_features=stream)
    plain = sorted(decoded)
    decoded.clear()
    on_dask = _explain(ref_inputs, ref_inputs["feature_table"], tmp_path / "dask",
                       scheduler=cluster.scheduler_address, **options)
    assert sorted(decoded) == plain  # on the client (the workers are other processes)
    polarity = next(iter(local.values())).transcript_polarity_table
    assert polarity["switch_pvalue"].notna().any()
    for module_id in local:
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(on_dask[module_id], name),
                                          getattr(local[module_id], name), check_exact=True)
    files = snapshot(tmp_path / "local", "*.parquet")
    assert len(files) > 5 and files == snapshot(tmp_path / "dask", "*.parquet")


def test_scheduler_matches_reference_fixture(ref_inputs, cluster):
    """The Dask path against isograph 0.1.5's stored tables (independent oracle)."""
    res = _explain(ref_inputs, pd.read_parquet(ref_inputs["feature_table"]),
                   scheduler=cluster.scheduler_address)
    for module_id, result in res.items():
        for name in TABLES[:3]:
            expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(result, name))


def _blocks(ref_inputs) -> ParquetFeatureBlocks:
    table = open_feature_table(ref_inputs["feature_table"], stream=True)
    ids = [c for c in pd.read_parquet(ref_inputs["feature_table"]).columns if c != "sample_id"]
    blocks = table.matrix(ids, np.arange(200))
    assert isinstance(blocks, ParquetFeatureBlocks)
    return blocks


def _span(blocks: ParquetFeatureBlocks, names: list[str]) -> tuple[int, int]:
    """Column span (a, b) of the contiguous column ``names`` a reader decodes."""
    a = blocks._columns.index(names[0])
    return a, a + len(names)


class DyingBlocks(ParquetFeatureBlocks):
    """A parquet reader whose worker process exits (no exception: the process is gone) on
    its first read of column ``die_at``; the marker file makes the retry succeed."""

    def __init__(self, blocks: ParquetFeatureBlocks, marker: Path, die_at: int) -> None:
        self.__dict__.update(blocks.__dict__)
        self.marker, self.die_at = marker, die_at

    def _decode(self, names):  # every read decodes here: x[:, a:b], take, read ahead
        a, b = _span(self, names)
        if a <= self.die_at < b and not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return super()._decode(names)


class BadChunkBlocks(ParquetFeatureBlocks):
    """A parquet reader that raises the readers' InputError for one chunk."""

    def __init__(self, blocks: ParquetFeatureBlocks, bad_at: int) -> None:
        self.__dict__.update(blocks.__dict__)
        self.bad_at = bad_at

    def _decode(self, names):  # every read decodes here: x[:, a:b], take, read ahead
        if self._columns[self.bad_at] in names:
            raise InputError(f"feature_table: column {self.bad_at} is not numeric")
        return super()._decode(names)


def _statistics_inputs(n_modules=3, seed=0):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.standard_normal((200, n_modules)))
    high = scores > scores.median(dim=0).values
    return scores, {"split": (high, ~high)}


class CountingBlocks(ParquetFeatureBlocks):
    """A parquet reader with a read block of ``read`` columns that leaves one file in
    ``reads_dir`` per read (the reads of every worker process are counted)."""

    def __init__(self, blocks: ParquetFeatureBlocks, reads_dir: Path, read: int) -> None:
        self.__dict__.update(blocks.__dict__)
        self.reads_dir, self.read = reads_dir, read

    @property
    def read_columns(self) -> int:
        return self.read

    @property
    def read_ahead_columns(self) -> int:  # one process reads ahead in blocks of ``read`` too
        return self.read

    def _decode(self, names):
        a, b = _span(self, names)
        (self.reads_dir / f"{a}-{b}-{os.getpid()}-{len(os.listdir(self.reads_dir))}").touch()
        return super()._decode(names)


def _reads(reads_dir: Path) -> list[tuple[int, int]]:
    return sorted(tuple(int(v) for v in p.name.split("-")[:2]) for p in reads_dir.iterdir())


def test_tasks_read_each_block_once_as_one_process_does(ref_inputs, client, tmp_path):
    """One task per read block: the workers read the file as often as one process does
    (5 blocks of 300 columns, not the 13 chunks of 100), with identical statistics."""
    scores, splits = _statistics_inputs()
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30, chunk_features=100)
    stats = {}
    for name in ("local", "dask"):
        reads_dir = tmp_path / name
        reads_dir.mkdir()
        blocks = CountingBlocks(_blocks(ref_inputs), reads_dir, read=300)
        stats[name] = (feature_statistics(blocks, scores, **common) if name == "local"
                       else feature_statistics_on_dask(client, blocks, scores, **common))
    blocks_of_300 = [(a, min(a + 300, 1234)) for a in range(0, 1234, 300)]
    assert _reads(tmp_path / "local") == _reads(tmp_path / "dask") == blocks_of_300
    want, have = stats["local"].to_host(), stats["dask"].to_host()
    for name in want:
        np.testing.assert_array_equal(have[name], want[name], err_msg=name)


def test_statistics_cross_to_the_host_and_back_by_name(ref_inputs):
    """to_host names every tensor (checked against the dataclass fields listed here) and
    store_rows writes each array into the rows and tensor of its name."""
    scores, splits = _statistics_inputs()
    x = pd.read_parquet(ref_inputs["feature_table"]).iloc[:200, 1:41].to_numpy(np.float64)
    stats = feature_statistics(x, scores, min_pairs=3, splits=splits,
                               device=torch.device("cpu"), dtype=torch.float64,
                               memory_budget_bytes=1 << 30)
    host = stats.to_host()
    welch = ["mean_high", "mean_low", "delta", "se", "tstat", "pvalue", "n_high", "n_low"]
    assert set(host) == {"r", "n", "pvalue", "n_finite", *(f"split.{w}" for w in welch)}
    np.testing.assert_array_equal(host["r"], stats.r.numpy())
    np.testing.assert_array_equal(host["split.tstat"], stats.contrasts["split"].tstat.numpy())
    copy = type(stats).empty(80, 3, ["split"], torch.device("cpu"))
    copy.store_rows(0, 40, host)
    copy.store_rows(40, 80, host)
    for name, value in copy.to_host().items():
        np.testing.assert_array_equal(value[40:], host[name], err_msg=name)
        np.testing.assert_array_equal(value[:40], host[name], err_msg=name)
    with pytest.raises(ValueError, match="do not match"):
        copy.store_rows(0, 40, {"r": host["r"]})


def test_killed_worker_is_retried(ref_inputs, client, tmp_path):
    blocks = _blocks(ref_inputs)
    scores, splits = _statistics_inputs()
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30, chunk_features=100)
    expected = feature_statistics(blocks, scores, **common)
    marker = tmp_path / "died-once"
    got = feature_statistics_on_dask(client, DyingBlocks(blocks, marker, die_at=450),
                                     scores, **common)
    assert marker.exists()  # a worker process did die on the chunk holding column 450
    want = expected.to_host()
    have = got.to_host()
    assert want.keys() == have.keys()
    for name in want:
        np.testing.assert_array_equal(have[name], want[name], err_msg=name)


def test_killed_worker_is_retried_when_the_scheduler_keeps_one_copy(ref_inputs, tmp_path):
    """As above with the scheduler's memory manager dropping extra copies every 10 ms (on
    a loaded host its 2 s default does the same): the worker that dies may hold the only
    copy of the shared inputs (scores, masks, the reader), which are then computed again,
    not lost with their dependents cancelled ("already forgotten")."""
    import dask

    blocks = _blocks(ref_inputs)
    scores, splits = _statistics_inputs(seed=1)
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30, chunk_features=100)
    expected = feature_statistics(blocks, scores, **common).to_host()
    marker = tmp_path / "died-once"
    with dask.config.set({"distributed.scheduler.active-memory-manager.interval": "10ms"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as local, \
            distributed.Client(local) as one_copy:
        got = feature_statistics_on_dask(one_copy, DyingBlocks(blocks, marker, die_at=450),
                                         scores, **common).to_host()
    assert marker.exists()
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_bad_chunk_fails_like_single_process(ref_inputs, client):
    """The worker's InputError (a package exception, pickled across processes) reaches
    the client as the same type with the same message as the single-process loop's."""
    bad = BadChunkBlocks(_blocks(ref_inputs), bad_at=777)
    scores, splits = _statistics_inputs()
    common = dict(min_pairs=3, splits=splits, device=torch.device("cpu"),
                  dtype=torch.float64, memory_budget_bytes=1 << 30, chunk_features=100)
    with pytest.raises(InputError) as local:
        feature_statistics(bad, scores, **common)
    with pytest.raises(InputError) as on_dask:
        feature_statistics_on_dask(client, bad, scores, **common)
    assert str(on_dask.value) == str(local.value) == "feature_table: column 777 is not numeric"


def test_bad_column_in_a_late_chunk_writes_nothing(ref_inputs, cluster, tmp_path):
    """A non-numeric column met by one task: the run fails with the local one-line error
    and the output dir is never created (the commit stays on the client)."""
    table = pd.read_parquet(ref_inputs["feature_table"])
    column = table.columns[-5]
    table[column] = table[column].astype(str)
    bad_file = tmp_path / "bad_features.parquet"
    table.to_parquet(bad_file)
    errors = {}
    for name, extra in (("local", {}), ("dask", {"scheduler": cluster.scheduler_address})):
        with pytest.raises(InputError) as raised:
            _explain(ref_inputs, bad_file, tmp_path / name, stream_features=True, **extra)
        errors[name] = str(raised.value)
        assert not (tmp_path / name).exists()
    assert errors["dask"] == errors["local"]
    assert f"column {column!r} is not numeric" in errors["dask"]
    assert len(errors["dask"].splitlines()) == 1


def test_scheduler_setting_is_checked():
    for bad in ("", "local:0", "local:x", 3):
        with pytest.raises(InputError, match="scheduler"):
            ExplainConfig(scheduler=bad)
    assert ExplainConfig(scheduler="local:2").scheduler == "local:2"
    assert ExplainConfig(scheduler="tcp://10.0.0.1:8786").scheduler == "tcp://10.0.0.1:8786"


def test_package_errors_survive_pickling():
    """Every IsographGpuError subclass crosses a process boundary as itself (same type,
    same message): what a worker raises is what the client re-raises."""
    import pickle

    import isograph_gpu.errors as errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.IsographGpuError)]
    assert len(classes) >= 5
    for cls in classes:
        back = pickle.loads(pickle.dumps(cls("input.parquet: column 'x' is bad")))
        assert type(back) is cls and str(back) == "input.parquet: column 'x' is bad"


def _cli(ref_inputs, out: Path, *extra: str):
    return invoke_explain(ref_inputs, out, "--contrast-tails", "10", *extra)


def test_cli_scheduler_writes_the_single_process_files(ref_inputs, cluster, tmp_path):
    assert _cli(ref_inputs, tmp_path / "local").exit_code == 0
    result = _cli(ref_inputs, tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    files = snapshot(tmp_path / "local", "*.parquet")
    assert len(files) > 5 and files == snapshot(tmp_path / "dask", "*.parquet")


def test_cli_unreachable_scheduler_is_one_line(ref_inputs, tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = _cli(ref_inputs, tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "scheduler (--scheduler) tcp://127.0.0.1:9: cannot connect" \
        in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("x_format", ["dense", "csr"])
def test_backed_h5ad_tasks_read_their_own_columns(ref_inputs, cluster, tmp_path, x_format):
    """A backed .h5ad reader pickles as its path (a worker reopens the file) and the
    scheduler run equals the single-process one."""
    import pickle

    anndata = pytest.importorskip("anndata")
    import scipy.sparse as sp

    from isograph_gpu.io.anndata import AnnDataFeatureBlocks

    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    meta = pd.read_parquet(ref_inputs["feature_meta"]).set_index("feature_id")
    keep = table.columns[table.columns.isin(meta.dropna(subset=["gene_id"]).index)]
    x = table[keep].to_numpy(dtype=np.float64)
    path = tmp_path / f"features_{x_format}.h5ad"
    anndata.AnnData(X=sp.csr_matrix(x) if x_format == "csr" else x,
                    obs=pd.DataFrame(index=table.index.astype(str)),
                    var=meta.loc[keep]).write_h5ad(path)

    backed = anndata.read_h5ad(path, backed="r")
    blocks = AnnDataFeatureBlocks(backed.X, np.arange(30, 90), np.arange(150))
    reopened = pickle.loads(pickle.dumps(blocks))
    np.testing.assert_array_equal(reopened[:, 5:40], x[:150, 35:70])

    def run(**extra):
        return explain_api({"artifact": ref_inputs["artifact"], "feature_table": path},
                           config=ExplainConfig(**SMALL_CHUNKS, stream_features=True, **extra))

    local, on_dask = run(), run(scheduler=cluster.scheduler_address)
    for module_id in local:
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(on_dask[module_id], name),
                                          getattr(local[module_id], name), check_exact=True)


def test_local_scheduler_starts_and_stops_its_own_cluster(ref_inputs):
    """scheduler="local:1": the run starts its own one-worker cluster; same tables."""
    local = _explain(ref_inputs, ref_inputs["feature_table"], module_ids=["M002"],
                     stream_features=True)
    own = _explain(ref_inputs, ref_inputs["feature_table"], module_ids=["M002"],
                   stream_features=True, scheduler="local:1")
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(own["M002"], name),
                                      getattr(local["M002"], name), check_exact=True)


_UNGUARDED_SCRIPT = """
from isograph_gpu import ExplainConfig, explain_module

explain_module({artifact!r}, {table!r}, {meta!r}, output_dir={out!r},
               config=ExplainConfig(device="cpu", scheduler="local:1", report=False))
print("finished")
"""


@pytest.mark.slow
def test_a_script_without_a_main_guard_gets_one_error_naming_the_fix(ref_inputs, tmp_path):
    """Issue 23.6: a script calling explain_module with a local cluster at its top level
    (no ``if __name__ == "__main__":``) died with ~230 lines of tracebacks from every worker
    (each re-ran the script and tried to start a cluster of its own); now the workers stop
    quietly and the caller gets one InputError saying what to change."""
    import subprocess

    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT.format(
        artifact=str(ref_inputs["artifact"]), table=str(ref_inputs["feature_table"]),
        meta=str(ref_inputs["feature_meta"]), out=str(tmp_path / "out")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 1 and "finished" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("isograph_gpu.errors.InputError: scheduler 'local:1' starts "
                           "worker processes")
    assert 'if __name__ == "__main__":' in last
    assert "bootstrapping phase" not in done.stderr
    assert done.stderr.count("Traceback") == 1  # the caller's own, no worker's
    assert not (tmp_path / "out").exists()

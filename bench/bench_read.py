"""Feature-table reader micro-benchmark: the readers side by side in one process, on the two
kinds of wide parquet a user meets.

* ``pandas``: written by ``DataFrame.to_parquet`` with the sample ids as the (named) index,
  as the reference's users write it (pandas metadata lists every column);
* ``synthetic``: written by the package's synthetic generator (``pyarrow.parquet.write_table``,
  a ``sample_id`` column, as ``bench_explain.py`` uses);
* ``features_by_samples``: the same values transposed (one row per feature, a ``feature_id``
  column), and ``h5ad``: a dense AnnData (when anndata is installed), each read by
  isograph-gpu's reader for that form.

Each reader produces the same Fortran-ordered float64 samples x features matrix (checked
against the first one's). Readers:

* ``polars_read_parquet``: ``polars.read_parquet`` + one multi-threaded ``to_numpy``;
* ``pyarrow_read_table``: ``pyarrow.parquet.read_table`` + polars ``to_numpy``;
* ``pyarrow_file_blocks``: ``ParquetFile.read`` of column blocks (the streamed path before
  the column-group reader);
* ``pyarrow_pre_buffer``: ``pyarrow.parquet.read_table(pre_buffer=True, use_threads=True)``;
* ``loaded``: isograph-gpu's loaded path (``SamplesByFeaturesTable(...).matrix``);
* ``loaded_all_cores``: the same column-group reader on a thread per core;
* ``streamed``: isograph-gpu's streamed path, all blocks read one after another;
* ``cache_first_run``: the feature cache built from the file (hash the file, decode on
  a thread per core, write, hash the cache) then its matrix (``--feature-cache``, first run);
* ``cache_rerun``: the cache mapped (its key and data digest checked) and its matrix;
* ``npy_mmap``: ``numpy.load(mmap_mode="r")`` of the same values as a Fortran ``.npy``
  (the floor of a mapped file: no hash).

``--csv`` adds the same table as a CSV (``csv``): ``pandas_read_csv`` (pandas' reader with
``float_precision="round_trip"``, the reader before polars), ``loaded`` (isograph-gpu's,
polars' multithreaded reader) and ``cache_rerun``.

Usage: ``python bench/bench_read.py [--samples 1000] [--features 50000] [--repeats 3]
[--block 4096] [--dtype float64|float32] [--csv] [--skip pyarrow_read_table,...]``; prints a table of median seconds (and GB/s of the float64 matrix) and, with
``--json PATH``, writes them. Files go to a temporary directory unless ``--workdir`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isograph_gpu.io.feature_tables import (  # noqa: E402
    SamplesByFeaturesTable,
    _float64_matrix,
    open_feature_table,
)
from isograph_gpu.io.table_readers import EXACT_CSV_FLOATS  # noqa: E402
from isograph_gpu.synthetic import _write_parquet_atomic  # noqa: E402


def write_files(workdir: Path, n_samples: int, n_features: int, dtype: str = "float64",
                csv: bool = False) -> dict[str, Path]:
    """The same values written the pandas way and the synthetic generator's way (and as
    a CSV with ``csv``, and as a Fortran ``.npy``)."""
    rng = np.random.default_rng(0)
    values = rng.random((n_samples, n_features)).astype(dtype)
    values[rng.random(values.shape) < 0.02] = np.nan
    ids = [f"S{i:05d}" for i in range(n_samples)]
    frame = pd.DataFrame(values, columns=[f"G{j // 4:06d}.T{j % 4}" for j in range(n_features)])
    paths = {"pandas": workdir / "pandas.parquet", "synthetic": workdir / "synthetic.parquet",
             "features_by_samples": workdir / "features_by_samples.parquet"}
    frame.set_axis(pd.Index(ids, name="sample_id")).to_parquet(paths["pandas"])
    _write_parquet_atomic(frame.assign(sample_id=ids)[["sample_id", *frame.columns]],
                          paths["synthetic"])
    transposed = pd.DataFrame(values.T, columns=ids)
    transposed.insert(0, "feature_id", list(frame.columns))
    _write_parquet_atomic(transposed, paths["features_by_samples"])
    del transposed
    paths["npy"] = workdir / "values.npy"
    np.save(paths["npy"], np.asfortranarray(values, dtype=np.float64))
    if csv:
        paths["csv"] = workdir / "table.csv"
        # float64 text of the stored values (a float32's shortest text would parse to
        # another float64)
        pl.from_pandas(frame.astype(np.float64).assign(sample_id=ids)[
            ["sample_id", *frame.columns]]).write_csv(paths["csv"])
    try:
        import anndata
    except ImportError:
        return paths
    paths["h5ad"] = workdir / "dense.h5ad"
    anndata.AnnData(X=values, obs=pd.DataFrame(index=ids),
                    var=pd.DataFrame(index=list(frame.columns))).write_h5ad(paths["h5ad"])
    return paths


def _feature_columns(path: Path) -> list[str]:
    names = pq.read_schema(path).names
    return [c for c in names if c != "sample_id" and not c.startswith("__index_level_")]


def readers(block: int) -> dict[str, Callable[[Path], np.ndarray]]:
    def polars_read_parquet(path: Path) -> np.ndarray:
        frame = pl.read_parquet(path)
        return _float64_matrix(frame.drop("sample_id"), None, str(path))

    def pyarrow_read_table(path: Path) -> np.ndarray:
        frame = pl.from_arrow(pq.read_table(path))
        assert isinstance(frame, pl.DataFrame)
        return _float64_matrix(frame.drop("sample_id"), None, str(path))

    def pyarrow_file_blocks(path: Path) -> np.ndarray:
        file = pq.ParquetFile(path)
        names = _feature_columns(path)
        out = np.empty((file.metadata.num_rows, len(names)), dtype=np.float64, order="F")
        for a in range(0, len(names), block):
            frame = pl.from_arrow(file.read(columns=names[a:a + block], use_threads=True))
            assert isinstance(frame, pl.DataFrame)
            out[:, a:a + block] = _float64_matrix(frame, None, str(path))
        return out

    def pyarrow_pre_buffer(path: Path) -> np.ndarray:
        frame = pl.from_arrow(pq.read_table(path, pre_buffer=True, use_threads=True))
        assert isinstance(frame, pl.DataFrame)
        return _float64_matrix(frame.drop("sample_id"), None, str(path))

    def loaded(path: Path) -> np.ndarray:
        table = SamplesByFeaturesTable(path, "feature_table")
        return np.asarray(table.matrix(table.columns, np.arange(len(table.sample_ids))))

    def loaded_all_cores(path: Path) -> np.ndarray:
        table = SamplesByFeaturesTable(path, "feature_table", stream=True)
        blocks = table.matrix(table.columns, np.arange(len(table.sample_ids)))
        return blocks.to_matrix(workers=os.cpu_count() or 1)

    def streamed(path: Path) -> np.ndarray:
        table = SamplesByFeaturesTable(path, "feature_table", stream=True)
        blocks = table.matrix(table.columns, np.arange(len(table.sample_ids)))
        out = np.empty(blocks.shape, dtype=np.float64, order="F")
        for a in range(0, blocks.shape[1], block):
            out[:, a:a + block] = blocks[:, a:a + block]
        return out

    return {f.__name__: f for f in (polars_read_parquet, pyarrow_read_table,
                                    pyarrow_pre_buffer, pyarrow_file_blocks, loaded,
                                    loaded_all_cores, streamed, *cache_readers())}


def cache_readers() -> tuple[Callable[[Path], np.ndarray], ...]:
    """The feature cache's first run (built from the file) and rerun (mapped)."""
    def cache_first_run(path: Path) -> np.ndarray:
        cache = path.with_name(path.name + ".igcache")
        cache.unlink(missing_ok=True)
        return cache_rerun(path)

    def cache_rerun(path: Path) -> np.ndarray:
        table = open_feature_table(path, stream=False,
                                   cache=path.with_name(path.name + ".igcache"))
        return np.asarray(table.matrix(table.columns, np.arange(len(table.sample_ids))))

    return cache_first_run, cache_rerun


def csv_readers() -> dict[str, Callable[[Path], np.ndarray]]:
    """A CSV through pandas (the reader before polars) and through isograph-gpu."""
    def pandas_read_csv(path: Path) -> np.ndarray:
        frame = pd.read_csv(path, dtype={"sample_id": str}, **EXACT_CSV_FLOATS)
        return np.asfortranarray(frame.drop(columns="sample_id").to_numpy(dtype=np.float64))

    def loaded(path: Path) -> np.ndarray:
        table = open_feature_table(path, stream=False)
        return np.asarray(table.matrix(table.columns, np.arange(len(table.sample_ids))))

    first, rerun = cache_readers()
    return {"pandas_read_csv": pandas_read_csv, "loaded": loaded,
            "cache_first_run": first, "cache_rerun": rerun}


def npy_mmap(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def other_layout_readers(block: int) -> dict[str, Callable[[Path], np.ndarray]]:
    """isograph-gpu's readers of a features x samples parquet and an .h5ad."""
    def loaded(path: Path) -> np.ndarray:
        table = open_feature_table(path, stream=False)
        return np.asarray(table.matrix(table.columns, np.arange(len(table.sample_ids))))

    def streamed(path: Path) -> np.ndarray:
        table = open_feature_table(path, stream=True)
        blocks = table.matrix(table.columns, np.arange(len(table.sample_ids)))
        out = np.empty(blocks.shape, dtype=np.float64, order="F")
        for a in range(0, blocks.shape[1], block):
            out[:, a:a + block] = blocks[:, a:a + block]
        return out

    first, rerun = cache_readers()
    return {"loaded": loaded, "streamed": streamed, "cache_first_run": first,
            "cache_rerun": rerun}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--features", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--csv", action="store_true")
    parser.add_argument("--skip", default="", help="readers to leave out, comma-separated")
    args = parser.parse_args()
    skip = {name for name in args.skip.split(",") if name}

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = write_files(workdir, args.samples, args.features, args.dtype, args.csv)
        nbytes = args.samples * args.features * 8
        rows = []
        reference = None
        for kind, path in paths.items():
            if kind in ("pandas", "synthetic"):
                chosen = readers(args.block)
            elif kind == "h5ad":
                chosen = other_layout_readers(args.block)
            elif kind == "csv":
                chosen = csv_readers()
            elif kind == "npy":
                chosen = {"npy_mmap": npy_mmap}
            else:  # features x samples: always loaded
                others = other_layout_readers(args.block)
                chosen = {k: others[k] for k in ("loaded", "cache_first_run", "cache_rerun")}
            for name, read in chosen.items():
                if name in skip:
                    continue
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    matrix = read(path)
                    times.append(time.perf_counter() - start)
                if reference is None:
                    reference = matrix if kind == "pandas" else reference
                assert matrix.flags.f_contiguous and matrix.dtype == np.float64, name
                if name == "cache_rerun":
                    cache = path.with_name(path.name + ".igcache")
                    rows_extra = {"cache_mb": cache.stat().st_size / 1e6}
                else:
                    rows_extra = {}
                np.testing.assert_array_equal(matrix, reference, err_msg=f"{kind}/{name}")
                median = statistics.median(times)
                rows.append({"file": kind, "reader": name, "median_s": median,
                             "matrix_gb_per_s": nbytes / median / 1e9,
                             "file_mb": path.stat().st_size / 1e6, **rows_extra})
                del matrix
    print(f"{args.samples} x {args.features} {args.dtype} values as float64 "
          f"({nbytes / 1e9:.2f} GB), median of {args.repeats}, loaded host "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'file':20} {'reader':22} {'median s':>9} {'GB/s':>7}")
    for row in rows:
        print(f"{row['file']:20} {row['reader']:22} {row['median_s']:9.3f} "
              f"{row['matrix_gb_per_s']:7.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "samples": args.samples, "features": args.features, "dtype": args.dtype,
            "repeats": args.repeats, "cpu_count": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "host": "shared 2-core host, loaded by other work during the run",
            "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

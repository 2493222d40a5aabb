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
* ``loaded``: isograph-gpu's loaded path (``SamplesByFeaturesTable(...).matrix``);
* ``streamed``: isograph-gpu's streamed path, all blocks read one after another.

Usage: ``python bench/bench_read.py [--samples 1000] [--features 50000] [--repeats 3]
[--block 4096]``; prints a table of median seconds (and GB/s of the float64 matrix) and, with
``--json PATH``, writes them. Files go to a temporary directory unless ``--workdir`` is given.
"""

from __future__ import annotations

import argparse
import json
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
from isograph_gpu.synthetic import _write_parquet_atomic  # noqa: E402


def write_files(workdir: Path, n_samples: int, n_features: int) -> dict[str, Path]:
    """The same values written the pandas way and the synthetic generator's way."""
    rng = np.random.default_rng(0)
    values = rng.random((n_samples, n_features))
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

    def loaded(path: Path) -> np.ndarray:
        table = SamplesByFeaturesTable(path, "feature_table")
        return np.asarray(table.matrix(table.columns, np.arange(len(table.sample_ids))))

    def streamed(path: Path) -> np.ndarray:
        table = SamplesByFeaturesTable(path, "feature_table", stream=True)
        blocks = table.matrix(table.columns, np.arange(len(table.sample_ids)))
        out = np.empty(blocks.shape, dtype=np.float64, order="F")
        for a in range(0, blocks.shape[1], block):
            out[:, a:a + block] = blocks[:, a:a + block]
        return out

    return {f.__name__: f for f in (polars_read_parquet, pyarrow_read_table,
                                    pyarrow_file_blocks, loaded, streamed)}


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

    return {"loaded": loaded, "streamed": streamed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--features", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = write_files(workdir, args.samples, args.features)
        nbytes = args.samples * args.features * 8
        rows = []
        reference = None
        for kind, path in paths.items():
            if kind in ("pandas", "synthetic"):
                chosen = readers(args.block)
            elif kind == "h5ad":
                chosen = other_layout_readers(args.block)
            else:  # features x samples: always loaded
                chosen = {"loaded": other_layout_readers(args.block)["loaded"]}
            for name, read in chosen.items():
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    matrix = read(path)
                    times.append(time.perf_counter() - start)
                if reference is None:
                    reference = matrix if kind == "pandas" else reference
                assert matrix.flags.f_contiguous and matrix.dtype == np.float64, name
                np.testing.assert_array_equal(matrix, reference, err_msg=f"{kind}/{name}")
                median = statistics.median(times)
                rows.append({"file": kind, "reader": name, "median_s": median,
                             "matrix_gb_per_s": nbytes / median / 1e9,
                             "file_mb": path.stat().st_size / 1e6})
                del matrix
    print(f"{args.samples} x {args.features} float64 ({nbytes / 1e9:.2f} GB), "
          f"median of {args.repeats}")
    print(f"{'file':20} {'reader':22} {'median s':>9} {'GB/s':>7}")
    for row in rows:
        print(f"{row['file']:20} {row['reader']:22} {row['median_s']:9.3f} "
              f"{row['matrix_gb_per_s']:7.2f}")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "features": args.features,
                                         "repeats": args.repeats, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

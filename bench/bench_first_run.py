"""A first run of ``explain-module`` against the floor of its input: the polars decode of the
same feature table, side by side in one benchmark run.

Per repeat, in this order and each in a fresh process: polars decoding the feature table
(``pl.read_parquet`` of every column, then one multi-threaded ``to_numpy`` into the
float64 samples x features matrix a run needs; the decode alone is timed, imports not),
the CLI without a feature cache (``no_cache``) and the CLI writing a new one
(``first_run``), both ``--no-report`` and timed whole (imports, decode, statistics, tables,
exit). Medians, peak RSS (``wait4``) and each run over the polars decode. The issue's
done-when figure is ``first_run / polars_decode <= 1.25`` at 1,000 x 250,000 x 32.

Usage: ``python bench/bench_first_run.py [--size 250k|50k] [--repeats 3] [--output PATH]``;
writes ``bench/results/first_run_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_explain import SIZES, ours_cmd, prepare_inputs  # noqa: E402
from bench_scaling import _peak_rss_run, _whole_run_inputs  # noqa: E402

RESULTS = BENCH_DIR / "results" / "first_run_cpu.json"

#: the decode, timed inside a fresh process (its imports are not the decode's)
POLARS_DECODE = """
import sys, time
import numpy as np, polars as pl
path = sys.argv[1]
t = time.perf_counter()
frame = pl.read_parquet(path)
read = time.perf_counter() - t
values = frame.select([c for c, d in frame.schema.items() if d.is_numeric()])
matrix = values.to_numpy(order="fortran").astype(np.float64, copy=False)
print(read, time.perf_counter() - t, matrix.shape[1])
"""


def polars_decode(path: Path) -> dict[str, float]:
    """``read_parquet`` seconds and read + ``to_numpy`` seconds of ``path``, in a child."""
    out = subprocess.run([sys.executable, "-c", POLARS_DECODE, str(path)], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"read_parquet_s": float(out[0]), "decode_s": float(out[1]),
            "n_features": int(out[2])}


def cli_run(paths: dict[str, Path], out: Path, cache: Path | None) -> dict[str, float]:
    cmd = [*ours_cmd(paths, out), "--no-report", "--quiet",
           *(["--feature-cache", str(cache)] if cache is not None else [])]
    wall, peak_kib = _peak_rss_run(cmd)
    timings = json.loads((out / "module_explanation_manifest.json").read_text())[
        "timings_seconds"]
    return {"wall_s": round(wall, 3), "peak_rss_gib": round(peak_kib / 2**20, 3),
            "stage_timings_s": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="250k", choices=["250k", "50k"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    paths = (_whole_run_inputs(BENCH_DIR / ".work" / "whole_1000_250000_32" / "inputs",
                               1000, 250000, 32) if args.size == "250k"
             else prepare_inputs("large", SIZES["large"]))
    load = [os.getloadavg()[0]]
    runs: dict[str, list] = {"polars_decode": [], "no_cache": [], "first_run": []}
    with tempfile.TemporaryDirectory(prefix="isograph_gpu_first_run_") as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            runs["polars_decode"].append(polars_decode(paths["feature_table"]))
            print("polars_decode", runs["polars_decode"][-1], flush=True)
            for name, cache in (("no_cache", None), ("first_run", root / f"cache{i}")):
                out = root / f"{name}{i}"
                runs[name].append(cli_run(paths, out, cache))
                print(name, json.dumps(runs[name][-1]), flush=True)
                shutil.rmtree(out)
                if cache is not None:
                    cache.unlink()
            load.append(os.getloadavg()[0])
    decode = statistics.median(r["decode_s"] for r in runs["polars_decode"])
    medians = {name: statistics.median(r["wall_s"] for r in runs[name])
               for name in ("no_cache", "first_run")}
    record = {
        "benchmark": "bench/bench_first_run.py", "size": args.size,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR,
                                 capture_output=True, text=True).stdout.strip(),
        "cpu_count": os.cpu_count(), "repeats": args.repeats, "runs": runs,
        "polars_decode_median_s": round(decode, 3),
        "polars_read_parquet_median_s": round(statistics.median(
            r["read_parquet_s"] for r in runs["polars_decode"]), 3),
        "wall_median_s": medians,
        "over_polars_decode": {name: round(m / decode, 3) for name, m in medians.items()},
        "peak_rss_median_gib": {name: statistics.median(r["peak_rss_gib"] for r in runs[name])
                                for name in ("no_cache", "first_run")},
        "load_average_1min": load,
        # judged before the first run: the runs' own threads then load the host
        "host": "quiet" if load[0] <= 0.75 * (os.cpu_count() or 1) else "loaded host",
    }
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("polars_decode_median_s", "wall_median_s",
                                             "over_polars_decode", "host")}, indent=1))


if __name__ == "__main__":
    main()

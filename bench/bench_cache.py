"""``explain-module`` end to end without the feature cache, writing it, and from it.

On bench_explain.py's inputs, per repeat and in this order: the CLI without
``--feature-cache`` (``no_cache``), with a cache that does not exist yet (``first_run``:
decode, write, hash) and again with it (``rerun``: map and verify). Wall clock, peak RSS
(``/usr/bin/time``) and the CPU seconds (user + system) of each run: on a host loaded by
other work the wall clock follows the load (a run with more threads also gets a larger
share of an oversubscribed host), the CPU seconds much less. The tables of the three are
checked equal.

Usage: ``python bench/bench_cache.py [--size large] [--repeats 2]``; writes
``bench/results/cache_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_explain import SIZES, describe_inputs, ours_cmd, prepare_inputs, timed_run  # noqa: E402

RESULTS = BENCH_DIR / "results" / "cache_cpu.json"
TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


def _same_tables(a: Path, b: Path) -> None:
    for module in sorted(p.name for p in a.iterdir() if p.is_dir()):
        for name in TABLES:
            pd.testing.assert_frame_equal(pd.read_parquet(a / module / f"{name}.parquet"),
                                          pd.read_parquet(b / module / f"{name}.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=sorted(SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    paths = prepare_inputs(args.size, SIZES[args.size])
    runs: dict[str, list[dict[str, float]]] = {"no_cache": [], "first_run": [], "rerun": []}
    loads = [os.getloadavg()[0]]
    cache_mb = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            cache = root / f"features{i}.igcache"
            for name in runs:
                out = root / f"{name}{i}"
                extra = [] if name == "no_cache" else ["--feature-cache", str(cache)]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                run = timed_run([*ours_cmd(paths, out), *extra, "--quiet"],
                                root / f"{name}{i}.log")
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                run["cpu_s"] = (after.ru_utime - before.ru_utime
                                + after.ru_stime - before.ru_stime)
                runs[name].append(run)
                loads.append(os.getloadavg()[0])
            _same_tables(root / f"no_cache{i}", root / f"first_run{i}")
            _same_tables(root / f"no_cache{i}", root / f"rerun{i}")
            cache_mb = cache.stat().st_size / 1e6
    rows = {name: {"runs": got,
                   "wall_median_s": statistics.median(r["wall_s"] for r in got),
                   "cpu_median_s": statistics.median(r["cpu_s"] for r in got),
                   "peak_rss_median_mb": statistics.median(r["peak_rss_mb"] for r in got)}
            for name, got in runs.items()}
    for name, row in rows.items():
        print(f"{name:10} wall {row['wall_median_s']:7.2f} s  cpu {row['cpu_median_s']:7.2f} s  "
              f"{row['peak_rss_median_mb']:7.0f} MB")
    RESULTS.write_text(json.dumps({
        "size": args.size, "inputs": describe_inputs(paths), "repeats": args.repeats,
        "cache_mb": cache_mb, "cpu_count": os.cpu_count(), "load_average_1min": loads,
        "host": "shared 2-core host, loaded by other work during the run",
        "identical_tables": True, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()

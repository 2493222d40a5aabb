"""``explain-module`` end to end without the feature cache, writing it, and from it.

On bench_explain.py's inputs, per repeat and in this order: the CLI without
``--feature-cache`` (``no_cache``), with a cache that does not exist yet (``first_run``:
decode, write, hash) and again with it (``rerun``: map and verify). Wall clock, peak RSS
(``/usr/bin/time``) and the CPU seconds (user + system) of each run: on a host loaded by
other work the wall clock follows the load (a run with more threads also gets a larger
share of an oversubscribed host), the CPU seconds much less. The tables of the three are
checked equal.

Usage: ``python bench/bench_cache.py [--size large|250k] [--repeats 2] [--no-report]
[--output PATH]``; writes ``bench/results/cache_cpu.json`` (``--size 250k``: the 1,000 x
250,000 x 32 inputs of bench_scaling.py's whole run, generated once under bench/.work).
``--no-report``: the tables only (isograph 0.1.5 draws no report), as the done-when
figures are stated.
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
from bench_scaling import _whole_run_inputs  # noqa: E402

RESULTS = BENCH_DIR / "results" / "cache_cpu.json"
TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


def _same_tables(a: Path, b: Path) -> None:
    for module in sorted(p.name for p in a.iterdir() if p.is_dir()):
        for name in TABLES:
            pd.testing.assert_frame_equal(pd.read_parquet(a / module / f"{name}.parquet"),
                                          pd.read_parquet(b / module / f"{name}.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=[*sorted(SIZES), "250k"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    paths = (_whole_run_inputs(BENCH_DIR / ".work" / "whole_1000_250000_32" / "inputs",
                               1000, 250000, 32) if args.size == "250k"
             else prepare_inputs(args.size, SIZES[args.size]))
    report = ["--no-report"] if args.no_report else []
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
                run = timed_run([*ours_cmd(paths, out), *extra, *report, "--quiet"],
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
    cpus = os.cpu_count() or 1
    args.output.write_text(json.dumps({
        "size": args.size, "inputs": describe_inputs(paths), "repeats": args.repeats,
        "report": not args.no_report, "cache_mb": cache_mb, "cpu_count": cpus,
        "load_average_1min": loads,
        # judged before the first run: the runs themselves (decode, hash and BLAS
        # threads) then raise the load above the core count
        "host": "quiet" if loads[0] <= 0.75 * cpus else "loaded by other work",
        "identical_tables": True, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Figure rendering benchmark: every figure for 20 modules over 1,000 samples.

Inputs: the embedded synthetic generator (``isograph_gpu.synthetic``), 1,000 samples x
600 genes (2-4 transcripts each), 20 planted modules of 20 genes, explained once with
``explain_module`` (CPU; not timed). Timed: ``render_explain_figures`` for all 20 modules
(eigengene heatmap + 7 figures per module + module_summary.json) with the default settings
(png at 300 dpi, one worker process per CPU core): ``--repeats`` runs, reported as the median.
Also timed, for reference: png in one process (``jobs=1``) and each vector format. Every run
records wall time and CPU time (this process and its workers), so a run on a busy host can
be told apart from a slow renderer; the load average before and after and the commit are
recorded too. Results go to bench/results/plots.json.

    python bench/bench_plots.py [--repeats 3] [--jobs N] [--dpi 300] [--serial-repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

TARGET_SECONDS = 30.0


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _commit() -> dict[str, object]:
    """HEAD of the checkout this script runs from, and whether the package differs from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--", "isograph_gpu", "bench/bench_plots.py")
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else bool(status)}


def _cpu_seconds() -> float:
    t = os.times()  # children: worker processes, once they have been joined
    return t.user + t.system + t.children_user + t.children_system


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="png runs (default settings)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: the renderer's default, one per core)")
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--serial-repeats", type=int, default=1,
                        help="png runs with jobs=1, for reference (0: skip)")
    parser.add_argument("--vector-formats", nargs="*", default=["pdf", "svg"])
    parser.add_argument("--vector-repeats", type=int, default=1)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "plots.json")
    args = parser.parse_args()

    import pandas as pd

    from isograph_gpu import __version__
    from isograph_gpu.config import ExplainConfig
    from isograph_gpu.pipeline import explain_module
    from isograph_gpu.plots import default_jobs, render_explain_figures
    from isograph_gpu.synthetic import make_synthetic_dataset

    load_before = _load_average()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        data = make_synthetic_dataset(n_samples=args.samples, n_genes=30 * args.modules,
                                      n_modules=args.modules, genes_per_module=20,
                                      transcripts_per_gene=(2, 4), seed=0)
        paths = data.write(tmp_path / "inputs")
        results = explain_module(paths["artifact_dir"], paths["feature_table"],
                                 paths["feature_meta"], config=ExplainConfig(device="cpu"))
        setup_s = time.perf_counter() - t0
        usage = pd.read_parquet(paths["feature_table"])
        meta = pd.read_parquet(paths["feature_meta"])
        n_tx = int((meta["feature_type"] == "transcript_usage").sum())
        jobs = default_jobs(len(results)) if args.jobs is None else args.jobs
        print(f"setup {setup_s:.1f} s: {args.samples} samples, {n_tx} transcripts, "
              f"{len(results)} modules; {jobs} worker(s)", file=sys.stderr)

        def run(fmt: str, jobs: int, k: int) -> dict[str, float]:
            out = tmp_path / f"figs_{fmt}_{jobs}_{k}"
            cpu, start = _cpu_seconds(), time.perf_counter()
            files = render_explain_figures(results, out, (fmt,), usage, meta, top_n=10,
                                           dpi=args.dpi, jobs=jobs)
            elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            size = sum((out / f).stat().st_size for f in files)
            print(f"{fmt} jobs={jobs}: {elapsed:.2f} s wall, {cpu:.2f} s cpu, load "
                  f"{_load_average()}", file=sys.stderr)
            return {"seconds": elapsed, "cpu_seconds": cpu, "files": len(files),
                    "mbytes": size / 1e6}

        def summary(runs: list[dict[str, float]], jobs: int) -> dict[str, object]:
            wall = [r["seconds"] for r in runs]
            return {"jobs": jobs, "seconds_median": _median(wall),
                    "seconds_runs": [round(t, 3) for t in wall],
                    "cpu_seconds_runs": [round(r["cpu_seconds"], 3) for r in runs],
                    "files": runs[0]["files"], "mbytes": round(runs[0]["mbytes"], 2)}

        png = [run("png", jobs, k) for k in range(args.repeats)]
        serial = [run("png", 1, k) for k in range(args.serial_repeats)]
        vector = {fmt: summary([run(fmt, jobs, k) for k in range(args.vector_repeats)], jobs)
                  for fmt in args.vector_formats}

    png_s = [r["seconds"] for r in png]
    record = {
        "what": "render_explain_figures: eigengene_heatmap + 7 figures x modules + "
                "module_summary.json; default settings unless noted",
        "n_samples": args.samples, "n_modules": len(results), "n_transcripts": n_tx,
        "top_n": 10, "dpi": args.dpi, "jobs": jobs, "repeats": args.repeats,
        "png_seconds_median": _median(png_s),
        "png_seconds_runs": [round(t, 3) for t in png_s],
        "png_cpu_seconds_runs": [round(r["cpu_seconds"], 3) for r in png],
        "png_seconds_per_module": round(statistics.median(png_s) / len(results), 3),
        "png_files": png[0]["files"], "png_mbytes": round(png[0]["mbytes"], 2),
        "png_one_process": summary(serial, 1) if serial else None,
        "vector": vector,
        "target_seconds_png_20_modules": TARGET_SECONDS,
        # the target is for the default problem size only
        "target_met": statistics.median(png_s) < TARGET_SECONDS
        if (args.samples, len(results), args.dpi) == (1000, 20, 300) else None,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_average_before": load_before, "load_average_after": _load_average(),
                 "python": platform.python_version(),
                 "matplotlib": matplotlib.__version__, "isograph_gpu": __version__,
                 **_commit()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

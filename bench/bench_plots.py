"""Figure rendering benchmark: every figure for 20 modules over 1,000 samples.

Inputs: the embedded synthetic generator (``isograph_gpu.synthetic``), 1,000 samples x
600 genes (2-4 transcripts each), 20 planted modules of 20 genes, explained once with
``explain_module`` (CPU; not timed). Timed: ``render_explain_figures`` for all 20 modules
(eigengene heatmap + 7 figures per module + module_summary.json) in png at the default
300 dpi, and once per vector format; medians go to bench/results/plots.json.

    python bench/bench_plots.py [--repeats 3] [--jobs 1] [--dpi 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--vector-formats", nargs="*", default=["pdf", "svg"])
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "plots.json")
    args = parser.parse_args()

    import pandas as pd

    from isograph_gpu import __version__
    from isograph_gpu.config import ExplainConfig
    from isograph_gpu.pipeline import explain_module
    from isograph_gpu.plots import render_explain_figures
    from isograph_gpu.synthetic import make_synthetic_dataset

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
        print(f"setup {setup_s:.1f} s: {args.samples} samples, {n_tx} transcripts, "
              f"{len(results)} modules", file=sys.stderr)

        def run(formats: tuple[str, ...], k: int) -> tuple[float, int]:
            out = tmp_path / f"figs_{'_'.join(formats)}_{k}"
            start = time.perf_counter()
            files = render_explain_figures(results, out, formats, usage, meta, top_n=10,
                                           dpi=args.dpi, jobs=args.jobs)
            elapsed = time.perf_counter() - start
            size = sum((out / f).stat().st_size for f in files)
            return elapsed, len(files), size

        png = [run(("png",), k) for k in range(args.repeats)]
        png_s = [t for t, _, _ in png]
        print(f"png: {[round(t, 2) for t in png_s]} s", file=sys.stderr)
        vector = {}
        for fmt in args.vector_formats:
            elapsed, n_files, size = run((fmt,), 0)
            vector[fmt] = {"seconds": round(elapsed, 3), "files": n_files,
                           "mbytes": round(size / 1e6, 2)}
            print(f"{fmt}: {elapsed:.2f} s", file=sys.stderr)

    record = {
        "what": "render_explain_figures: eigengene_heatmap + 7 figures x modules + "
                "module_summary.json",
        "n_samples": args.samples, "n_modules": len(results), "n_transcripts": n_tx,
        "top_n": 10, "dpi": args.dpi, "jobs": args.jobs, "repeats": args.repeats,
        "png_seconds_median": round(statistics.median(png_s), 3),
        "png_seconds_runs": [round(t, 3) for t in png_s],
        "png_seconds_per_module": round(statistics.median(png_s) / len(results), 3),
        "png_files": png[0][1], "png_mbytes": round(png[0][2] / 1e6, 2),
        "vector_single_run": vector,
        "target_seconds_png_20_modules": 30.0,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_average_after": _load_average(), "python": platform.python_version(),
                 "matplotlib": matplotlib.__version__, "isograph_gpu": __version__},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

"""End-to-end ``explain-module`` benchmark on the CPU: isograph-gpu vs a vectorised numpy/scipy
baseline vs the real isograph 0.1.5, side by side in one run.

For each size the synthetic generator writes the inputs under ``bench/.work/<size>/`` (reused
when the parameters did not change), then every tool is run as a subprocess on the same files
and timed by wall clock (interpreter start, parquet reads, all modules, the three tables,
writing them), with its peak RSS from ``/usr/bin/time`` and, for isograph-gpu, the stage
timings of its manifest plus the wall clock outside every stage (start-up):

* ``isograph_gpu``: ``isograph-gpu explain-module ... --device cpu``;
* ``isograph_gpu_pandas_parquet``: the same on the feature table rewritten by pandas
  (``DataFrame.to_parquet``, as the reference's users write it; it reads slower than the
  generator's file);
* ``numpy_baseline``: ``python bench/numpy_baseline.py ...`` (same flags, same outputs);
* ``isograph_0_1_5``: ``isograph explain-module ...`` from ``bench/.venv-reference`` (created on
  first use by ``reference_env.py``). The reference loops per module; where running all
  modules would take too long (the ``large`` size) its CLI is run on 2 modules and the
  20-module time is extrapolated as that + 18 x the per-module compute time measured in-process
  by ``reference_stages.py`` (labelled ``extrapolated``; the naive 10 x two-module figure is
  recorded beside it as ``naive_linear_s``).

Tools are interleaved per repeat (ours, baseline, ours, baseline, ...) so host noise hits both
alike; medians are reported. The outputs of the tools are compared (max |difference| of the
numeric columns, rows matched by id) so the timings are for the same, correct work.

Usage: ``python bench/bench_explain.py [--sizes small,medium,large] [--repeats 3]
[--skip-reference]``; results go to ``bench/results/explain_cpu.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
RESULTS = BENCH_DIR / "results" / "explain_cpu.json"
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))  # this checkout's package when it is not installed

from reference_env import ensure_reference_env, reference_versions  # noqa: E402

TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")


@dataclass(frozen=True)
class Size:
    """Generator parameters of one benchmark size."""

    n_samples: int
    n_genes: int
    n_modules: int
    genes_per_module: int
    transcripts_per_gene: tuple[int, int]
    n_psi: int = 10
    nan_fraction: float = 0.02
    seed: int = 0
    # run the reference on all modules (True) or on 1 and 2 modules and extrapolate (False)
    reference_all_modules: bool = True


SIZES = {
    # 200 samples x ~1,200 features x 5 modules (the fixture's shape)
    "small": Size(200, 300, 5, 20, (2, 6)),
    # 1,000 samples x 10,000 transcripts (2,500 genes x 4) x 20 modules of 50 genes
    "medium": Size(1000, 2500, 20, 50, (4, 4)),
    # 1,000 samples x 50,000 transcripts (12,500 genes x 4) x 20 modules of 50 genes
    "large": Size(1000, 12500, 20, 50, (4, 4), reference_all_modules=False),
}


# ----------------------------------------------------------------------------- inputs


def prepare_inputs(name: str, size: Size) -> dict[str, Path]:
    """Generate (or reuse) the inputs of one size under bench/.work/<name>/inputs."""
    from isograph_gpu.synthetic import make_synthetic_dataset

    root = WORK / name / "inputs"
    stamp = root / "params.json"
    params = {k: v for k, v in asdict(size).items() if k != "reference_all_modules"}
    params["transcripts_per_gene"] = list(params["transcripts_per_gene"])
    paths = {
        "artifact_dir": root / "artifact",
        "feature_table": root / "feature_table.parquet",
        "feature_meta": root / "feature_meta.parquet",
    }
    if stamp.exists() and json.loads(stamp.read_text()) == params and all(p.exists() for p in paths.values()):
        return paths
    t0 = time.perf_counter()
    dataset = make_synthetic_dataset(
        n_samples=size.n_samples, n_genes=size.n_genes, n_modules=size.n_modules,
        genes_per_module=size.genes_per_module, transcripts_per_gene=size.transcripts_per_gene,
        n_psi=size.n_psi, nan_fraction=size.nan_fraction, seed=size.seed,
    )
    generated = time.perf_counter() - t0
    dataset.write(root)
    stamp.write_text(json.dumps(params))
    print(f"[bench] {name}: generated in {generated:.1f} s, written in "
          f"{time.perf_counter() - t0 - generated:.1f} s", file=sys.stderr)
    return paths


def pandas_written(paths: dict[str, Path]) -> dict[str, Path]:
    """The same inputs with the feature table rewritten by pandas (``DataFrame.to_parquet``,
    as the reference's users write it: one row group, pandas metadata), next to the
    synthetic one; reused while it is newer than the synthetic file."""
    target = paths["feature_table"].with_name("feature_table.pandas.parquet")
    if not target.exists() or target.stat().st_mtime < paths["feature_table"].stat().st_mtime:
        pd.read_parquet(paths["feature_table"]).to_parquet(target)
    return {**paths, "feature_table": target}


def describe_inputs(paths: dict[str, Path]) -> dict[str, int]:
    import pyarrow.parquet as pq

    table = pq.read_metadata(paths["feature_table"])
    scores = pq.read_metadata(paths["artifact_dir"] / "feature_scores.parquet")
    modules = pd.read_parquet(paths["artifact_dir"] / "modules.parquet")
    return {
        "n_samples": table.num_rows,
        "n_table_features": table.num_columns - 1,
        "n_feature_scores_rows": scores.num_rows,
        "n_modules": int(modules["module_id"].nunique()),
        "n_module_genes": len(modules),
        "feature_table_mb": round(paths["feature_table"].stat().st_size / 2**20, 1),
    }


# ----------------------------------------------------------------------------- running


def timed_run(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``cmd`` under /usr/bin/time; wall clock (s) and peak RSS (MB) of the child."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as fh:
        time_file = Path(fh.name)
    try:
        t0 = time.perf_counter()
        with log.open("w") as out:
            proc = subprocess.run(
                ["/usr/bin/time", "-f", "%e %M", "-o", str(time_file), *cmd],
                stdout=out, stderr=subprocess.STDOUT, check=False, cwd=REPO,
            )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}); see {log}")
        rss_kb = float(time_file.read_text().split()[-1])
    finally:
        time_file.unlink(missing_ok=True)
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024.0}


def explain_args(paths: dict[str, Path], out: Path, module_ids: list[str] | None = None) -> list[str]:
    args = [
        "--artifact-dir", str(paths["artifact_dir"]),
        "--feature-table", str(paths["feature_table"]),
        "--feature-meta", str(paths["feature_meta"]),
        "--output-dir", str(out),
    ]
    if module_ids:
        args += ["--module-ids", *module_ids]
    return args


def ours_cmd(paths: dict[str, Path], out: Path) -> list[str]:
    exe = shutil.which("isograph-gpu")
    # not installed: run this checkout's package (python -m puts the cwd first on sys.path)
    start = [exe] if exe else [sys.executable, "-m", "isograph_gpu"]
    return [*start, "explain-module", *explain_args(paths, out), "--device", "cpu"]


def baseline_cmd(paths: dict[str, Path], out: Path) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "numpy_baseline.py"), *explain_args(paths, out)]


def reference_cmd(cli: Path, paths: dict[str, Path], out: Path, module_ids: list[str] | None) -> list[str]:
    return [str(cli), "explain-module", *explain_args(paths, out, module_ids)]


def reference_stage_timings(cli: Path, paths: dict[str, Path], n_modules: int) -> dict:
    """Per-stage reference timings in one process (bench/reference_stages.py, venv python)."""
    python = cli.parent / "python"
    proc = subprocess.run(
        [str(python), str(BENCH_DIR / "reference_stages.py"), *explain_args(paths, Path("unused"))[:6],
         "--n-modules", str(n_modules)],
        capture_output=True, text=True, check=True,
    )
    stages = json.loads(proc.stdout.strip().splitlines()[-1])
    return json.loads(json.dumps(stages), parse_float=lambda v: round(float(v), 3))


def run_repeats(name: str, cmd_of, out_root: Path, repeats: int, runs: dict[str, list[dict]]) -> None:
    """One repeat of every tool in ``cmd_of`` per round (interleaved)."""
    for rep in range(repeats):
        for tool, make_cmd in cmd_of.items():
            out = out_root / tool
            shutil.rmtree(out, ignore_errors=True)
            result = timed_run(make_cmd(out), out_root / f"{tool}.{rep}.log")
            if tool.startswith("isograph_gpu"):
                manifest = json.loads((out / "module_explanation_manifest.json").read_text())
                stages = manifest.get("timings_seconds") or manifest.get("timings") or {}
                result["stage_timings_s"] = stages
                # interpreter start, imports, device set-up: wall clock outside every stage
                result["outside_stages_s"] = round(result["wall_s"] - sum(stages.values()), 3)
            runs.setdefault(tool, []).append(result)
            print(f"[bench] {name} {tool} #{rep + 1}: {result['wall_s']:.2f} s, "
                  f"{result['peak_rss_mb']:.0f} MB", file=sys.stderr)


def summarise(results: list[dict]) -> dict:
    walls = [r["wall_s"] for r in results]
    median = statistics.median(walls)
    summary = {
        "wall_s": [round(w, 3) for w in walls],
        "median_s": round(median, 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
        "n_repeats": len(walls),
    }
    timed = [r for r in results if r.get("stage_timings_s")]
    if timed:  # stage timings of the run closest to the median
        closest = min(timed, key=lambda r: abs(r["wall_s"] - median))
        summary["stage_timings_s"] = closest["stage_timings_s"]
        summary["outside_stages_s"] = closest.get("outside_stages_s")
    return summary


# ----------------------------------------------------------------------------- agreement


def _key(table: str) -> str:
    return "gene_id" if table == "gene_driver_table" else "feature_id"


def compare_outputs(ours: Path, other: Path, module_ids: list[str]) -> dict[str, float]:
    """Max |difference| per table over shared numeric columns (rows matched by id).

    p/q values are compared on log10 (values both below 1e-290 count as equal).
    """
    worst: dict[str, float] = {}
    for module in module_ids:
        for table in TABLES:
            a = pd.read_parquet(ours / module / f"{table}.parquet")
            b = pd.read_parquet(other / module / f"{table}.parquet")
            key = _key(table)
            if len(a) != len(b) or set(a[key]) != set(b[key]):
                worst[f"{table}.rows_differ"] = 1.0
                continue
            merged = a.merge(b, on=key, suffixes=("_a", "_b"))
            for column in b.columns:
                if column == key or f"{column}_a" not in merged or merged[f"{column}_b"].dtype.kind not in "fi":
                    continue
                x = merged[f"{column}_a"].to_numpy(dtype=float)
                y = merged[f"{column}_b"].to_numpy(dtype=float)
                if column in ("pvalue", "qvalue"):
                    tiny = (x < 1e-290) & (y < 1e-290)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        x, y = np.where(tiny, 0.0, np.log10(x)), np.where(tiny, 0.0, np.log10(y))
                    column = f"log10_{column}"
                both_nan = np.isnan(x) & np.isnan(y)
                with np.errstate(invalid="ignore"):
                    diff = np.where(both_nan, 0.0, np.abs(x - y))
                diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
                name = f"{table}.{column}"
                worst[name] = max(worst.get(name, 0.0), float(diff.max(initial=0.0)))
    return {k: float(f"{v:.3g}") for k, v in sorted(worst.items())}


# ----------------------------------------------------------------------------- main


def machine_info() -> dict:
    import numpy
    import pyarrow
    import scipy
    import torch

    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        mem_gb = round(kb / 2**20, 1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=False).stdout.strip()
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "isograph_gpu_commit": commit,
        "load_average_at_start": list(os.getloadavg()),
    }


def bench_size(name: str, size: Size, repeats: int, reference_cli: Path | None,
               no_report: bool = False) -> dict:
    paths = prepare_inputs(name, size)
    out_root = WORK / name / "runs"
    out_root.mkdir(parents=True, exist_ok=True)
    module_ids = sorted(pd.read_parquet(paths["artifact_dir"] / "modules.parquet")["module_id"].unique())
    runs: dict[str, list[dict]] = {}
    pandas_paths = pandas_written(paths)
    extra = ["--no-report"] if no_report else []  # the reference and the baseline draw none
    run_repeats(name, {"isograph_gpu": lambda o: [*ours_cmd(paths, o), *extra],
                       "numpy_baseline": lambda o: baseline_cmd(paths, o),
                       "isograph_gpu_pandas_parquet": lambda o: [*ours_cmd(pandas_paths, o),
                                                                 *extra]},
                out_root, repeats, runs)
    tools = {tool: summarise(r) for tool, r in runs.items()}
    agreement = {"numpy_baseline": compare_outputs(out_root / "isograph_gpu", out_root / "numpy_baseline", module_ids),
                 "isograph_gpu_pandas_parquet": compare_outputs(
                     out_root / "isograph_gpu", out_root / "isograph_gpu_pandas_parquet", module_ids)}

    if reference_cli is not None:
        ref: dict = {}
        if size.reference_all_modules:
            ref_repeats = repeats if name == "small" else 1
            ref_runs: dict[str, list[dict]] = {}
            run_repeats(name, {"isograph_0_1_5": lambda o: reference_cmd(reference_cli, paths, o, None)},
                        out_root, ref_repeats, ref_runs)
            ref = summarise(ref_runs["isograph_0_1_5"]) | {"extrapolated": False, "modules_run": len(module_ids)}
            compared = module_ids
        else:
            shutil.rmtree(out_root / "isograph_0_1_5", ignore_errors=True)
            two = timed_run(reference_cmd(reference_cli, paths, out_root / "isograph_0_1_5", module_ids[:2]),
                            out_root / "isograph_0_1_5.2modules.log")
            print(f"[bench] {name} isograph_0_1_5 (CLI, 2 modules): {two['wall_s']:.1f} s", file=sys.stderr)
            stages = reference_stage_timings(reference_cli, paths, n_modules=2)
            per_module = stages["mean_per_module_s"]
            print(f"[bench] {name} isograph_0_1_5 per module (in-process, 2 modules): "
                  f"{per_module:.1f} s", file=sys.stderr)
            k = len(module_ids)
            ref = {
                "extrapolated": True,
                "method": (f"CLI wall clock on 2 modules + {k - 2} x the mean per-module compute time "
                           "(eigengene + 3 tables) measured in-process on the same 2 modules"),
                "measured_2_modules_s": round(two["wall_s"], 3),
                "per_module_s": round(per_module, 3),
                "median_s": round(two["wall_s"] + (k - 2) * per_module, 3),
                "naive_linear_s": round(two["wall_s"] * k / 2, 3),
                "stage_timings_s": stages,
                "peak_rss_mb": round(two["peak_rss_mb"], 1),
                "n_repeats": 1,
                "modules_run": 2,
            }
            compared = module_ids[:2]
        tools["isograph_0_1_5"] = ref
        agreement["isograph_0_1_5"] = compare_outputs(out_root / "isograph_gpu", out_root / "isograph_0_1_5", compared)

    ours = tools["isograph_gpu"]["median_s"]
    ratios = {"numpy_baseline_over_isograph_gpu": round(tools["numpy_baseline"]["median_s"] / ours, 2)}
    if "isograph_0_1_5" in tools:
        ratios["isograph_0_1_5_over_isograph_gpu"] = round(tools["isograph_0_1_5"]["median_s"] / ours, 1)
    return {"size": asdict(size), "inputs": describe_inputs(paths), "tools": tools, "ratios": ratios,
            "max_abs_difference_vs_isograph_gpu": agreement}


def print_table(results: dict) -> None:
    header = f"{'size':<8}{'tool':<18}{'median s':>10}{'peak MB':>10}{'x vs ours':>11}  note"
    print(header)
    print("-" * len(header))
    for name, res in results["sizes"].items():
        ours = res["tools"]["isograph_gpu"]["median_s"]
        for tool, t in res["tools"].items():
            note = "extrapolated" if t.get("extrapolated") else f"median of {t['n_repeats']}"
            print(f"{name:<8}{tool:<18}{t['median_s']:>10.2f}{t['peak_rss_mb']:>10.0f}"
                  f"{t['median_s'] / ours:>11.1f}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="explain-module CPU benchmark")
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--no-report", action="store_true",
                        help="isograph-gpu without report.html (isograph 0.1.5 draws none)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")

    reference_cli = None if args.skip_reference else ensure_reference_env()
    results: dict = {
        "benchmark": "explain-module end to end on CPU (three core tables, all modules)",
        "machine": machine_info(),
        "reference_env": None if reference_cli is None else reference_versions(),
        "sizes": {},
        "report": not args.no_report,
    }
    for name in names:
        results["sizes"][name] = bench_size(name, SIZES[name], args.repeats, reference_cli,
                                            args.no_report)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")  # keep partial results
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
